"""An event's polls and questions go from its main server, and from no other, to the Center.

The planner keeps the main server's record (``RecordPolls``) when it changes;
the link refuses a record out of the wire's bounds before anything is kept.
"""

from __future__ import annotations

import msgspec
import pytest

from tests.controller.controller_support import T0, Due
from tests.controller.test_controller_plan import TREE, all_linked, planner
from townhall.controller import link
from townhall.controller.plan import RecordPolls
from townhall.wire import Poll, PollState, Question, QuestionState

LUNCH = Poll(
    poll_id=1,
    question="Lunch?",
    options=("pizza", "soup"),
    multiple=False,
    state=PollState.CLOSED,
    shared=True,
    counts=(2, 1),
    voters=3,
)
WHY = Question(
    question_id=1, text="Why?", asker="bo", anonymous=True, votes=2, state=QuestionState.OPEN
)


def test_the_main_servers_record_is_kept_when_it_changes_and_no_one_elses_ever() -> None:
    plan = planner()
    all_linked(plan)
    plan.tick(T0, [Due(7)], {7: TREE})
    forged = msgspec.structs.replace(LUNCH, counts=(99, 0), voters=99)
    assert plan.record_received("child-a", 7, [forged], []) == []  # a child holds no authority
    assert plan.record_received("main", 8, [forged], []) == []  # not its event
    assert plan.record_received("main", 7, [LUNCH], [WHY]) == [RecordPolls(7, (LUNCH,), (WHY,))]
    assert plan.record_received("main", 7, [LUNCH], [WHY]) == []  # unchanged: kept already
    answered = msgspec.structs.replace(WHY, state=QuestionState.ANSWERED_LIVE)
    assert plan.record_received("main", 7, [LUNCH], [answered]) == [
        RecordPolls(7, (LUNCH,), (answered,))
    ]


def test_a_record_travels_the_link_and_one_out_of_bounds_is_refused() -> None:
    record = link.Record(event_id=7, polls=[LUNCH], questions=[WHY])
    frame = link.encode_frame(record)
    assert link.decode_frames(bytearray(frame)) == [record]

    bad_counts = msgspec.structs.replace(LUNCH, counts=(1,))
    too_many = [msgspec.structs.replace(LUNCH, poll_id=n) for n in range(101)]
    for bad in (
        link.Record(event_id=7, polls=[bad_counts]),
        link.Record(event_id=7, polls=too_many),
    ):
        with pytest.raises(link.RemoteLinkError):
            link.decode_frames(bytearray(link.encode_frame(bad)))

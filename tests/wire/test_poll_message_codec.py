"""Poll and Q&A messages: their samples, and every bound a peer's payload must keep."""

from __future__ import annotations

import msgspec
import pytest

from townhall.wire import (
    AskQuestion,
    ClosePoll,
    CreatePoll,
    LinkRequest,
    Message,
    OpenPoll,
    Poll,
    PollState,
    PollUpdated,
    Question,
    QuestionState,
    QuestionUpdated,
    RemoteProtocolError,
    SettleQuestion,
    SharePollResults,
    UpvoteQuestion,
    Vote,
    encode_message,
)
from townhall.wire.messages import (
    MAX_POLL_OPTIONS,
    POLL_OPTION_MAX,
    POLL_QUESTION_MAX,
    QUESTION_TEXT_MAX,
    decode_message,
)

LUNCH = Poll(
    poll_id=3,
    question="Where shall we eat?",
    options=("canteen", "park", "café ☕"),
    multiple=True,
    state=PollState.OPEN,
    shared=False,
    counts=(4, 0, 2**32 - 1),
    voters=5,
)
POLLS: list[Message] = [
    CreatePoll(question="Lunch?", options=("yes", "no")),
    CreatePoll(
        question="q" * POLL_QUESTION_MAX,
        options=tuple(f"{n}" * POLL_OPTION_MAX for n in range(MAX_POLL_OPTIONS)),
        multiple=True,
        shared=True,
    ),
    OpenPoll(poll_id=1),
    ClosePoll(poll_id=2**32 - 1),
    SharePollResults(poll_id=1),
    SharePollResults(poll_id=1, shared=False),
    Vote(poll_id=1, choices=(0,)),
    Vote(poll_id=1, choices=(9, 0, 3)),
    PollUpdated(poll=LUNCH),
    PollUpdated(poll=msgspec.structs.replace(LUNCH, counts=None, voters=None)),
    AskQuestion(text="Will the slides\nbe shared?"),
    AskQuestion(text="Why?", anonymous=True),
    UpvoteQuestion(question_id=7),
    SettleQuestion(question_id=7, state=QuestionState.ANSWERED, answer="Yes, tonight."),
    SettleQuestion(question_id=7, state=QuestionState.ANSWERED_LIVE),
    SettleQuestion(question_id=7, state=QuestionState.DISMISSED),
    QuestionUpdated(
        question=Question(
            question_id=7,
            text="Why?",
            asker=None,
            anonymous=True,
            votes=3,
            state=QuestionState.OPEN,
        )
    ),
    QuestionUpdated(
        question=Question(
            question_id=8,
            text="How?",
            asker="bo",
            anonymous=False,
            votes=0,
            state=QuestionState.ANSWERED,
            answer="Like this.",
        )
    ),
]


def raw(*fields: object) -> bytes:
    return msgspec.msgpack.encode(list(fields))


@pytest.mark.parametrize(
    ("message_type", "payload", "field"),
    [
        (CreatePoll, raw("q" * (POLL_QUESTION_MAX + 1), ["a", "b"], False, False), "question"),
        (CreatePoll, raw("   ", ["a", "b"], False, False), "question"),
        (CreatePoll, raw("two\nlines", ["a", "b"], False, False), "question"),
        (CreatePoll, raw("q", ["a"], False, False), "options"),
        (CreatePoll, raw("q", ["a"] * (MAX_POLL_OPTIONS + 1), False, False), "options"),
        (CreatePoll, raw("q", ["a", "b" * (POLL_OPTION_MAX + 1)], False, False), "options"),
        (CreatePoll, raw("q", ["a", ""], False, False), "options"),
        (Vote, raw(1, []), "choices"),
        (Vote, raw(1, [-1]), "choices"),
        (Vote, raw(1, [MAX_POLL_OPTIONS]), "choices"),
        (Vote, raw(-1, [0]), "poll_id"),
        (AskQuestion, raw("x" * (QUESTION_TEXT_MAX + 1), False), "text"),
        (AskQuestion, raw("", False), "text"),
        (AskQuestion, raw("bell\x07", False), "text"),
        (SettleQuestion, raw(1, "forgotten", ""), "state"),
        (PollUpdated, raw([1, "q", ["a", "b"], False, "voting", False, None, None]), "poll"),
    ],
)
def test_a_poll_or_question_payload_out_of_bounds_is_refused_naming_the_field(
    message_type: type[Message], payload: bytes, field: str
) -> None:
    with pytest.raises(RemoteProtocolError, match=f"^bad {message_type.__name__}") as refused:
        decode_message(message_type, payload)
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("message_type", "payload", "rule"),
    [
        (CreatePoll, raw("q", ["a", "a"], False, False), "an option appears twice"),
        (Vote, raw(1, [2, 2]), "a choice appears twice"),
        (SettleQuestion, raw(1, "open", ""), "settled as"),
        (SettleQuestion, raw(1, "answered", " "), "written answer"),
        (SettleQuestion, raw(1, "dismissed", "no"), "written answer"),
        (PollUpdated, raw([1, "q", ["a", "b"], False, "open", False, [1], 1]), "one count"),
        (PollUpdated, raw([1, "q", ["a", "b"], False, "open", False, [1, 0], None]), "together"),
    ],
)
def test_a_poll_or_question_payload_that_breaks_a_rule_says_which(
    message_type: type[Message], payload: bytes, rule: str
) -> None:
    with pytest.raises(RemoteProtocolError, match=rule):
        decode_message(message_type, payload)


def test_the_largest_poll_a_moderator_may_write_travels_up_a_server_link() -> None:
    largest = CreatePoll(
        question="é" * POLL_QUESTION_MAX,
        options=tuple(chr(0x1F600 + n) * POLL_OPTION_MAX for n in range(MAX_POLL_OPTIONS)),
    )
    request = LinkRequest.of("ana", largest)
    assert decode_message(LinkRequest, encode_message(request).data[8:]) == request

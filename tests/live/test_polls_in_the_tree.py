"""Polls across a tree (main, child-a, child-b): each vote counted once, the same results everywhere.

ana is the moderator, on the main server; bo is on child-a, cy and di on
child-b. What the tests look at is what a participant or a moderator would
see (the polls their client was sent, the errors it got) and what every
server holds.
"""

from __future__ import annotations

import msgspec

from tests.live.live_support import World
from townhall.live import Upstream
from townhall.wire import (
    ByeReason,
    Channel,
    ClosePoll,
    CreatePoll,
    ErrorCode,
    OpenPoll,
    PollState,
    SharePollResults,
    Vote,
)
from townhall.wire.frames import pack_frame
from townhall.wire.messages import POLL_QUESTION_MAX, address_of


def open_poll(world: World, *, multiple: bool = False) -> int:
    world.ana.send(
        CreatePoll(question="Lunch?", options=("pizza", "soup", "salad"), multiple=multiple)
    )
    world.net.pump()
    (poll_id,) = world.ana.polls
    world.ana.send(OpenPoll(poll_id=poll_id))
    world.net.pump()
    return poll_id


def errors(client: object) -> list[tuple[ErrorCode, str]]:
    return [(e.code, e.message) for e in client.errors]  # type: ignore[attr-defined]


def test_a_draft_is_seen_by_moderators_only_until_it_is_opened(world: World) -> None:
    world.ana.send(CreatePoll(question="Lunch?", options=("pizza", "soup")))
    world.net.pump()
    assert world.ana.polls[1].state is PollState.DRAFT
    assert world.bo.polls == world.cy.polls == {}
    world.bo.send(Vote(poll_id=1, choices=(0,)))
    world.net.pump()
    assert errors(world.bo) == [(ErrorCode.NOT_FOUND, "there is no poll 1")]

    world.ana.send(OpenPoll(poll_id=1))
    world.net.pump()
    for client in world.everyone:
        assert client.polls[1].state is PollState.OPEN, client
        assert client.polls[1].options == ("pizza", "soup")


def test_every_vote_on_every_server_is_counted_once_and_results_are_equal_everywhere(
    world: World,
) -> None:
    poll_id = open_poll(world)
    world.bo.send(Vote(poll_id=poll_id, choices=(0,)))
    world.cy.send(Vote(poll_id=poll_id, choices=(2,)))
    world.di.send(Vote(poll_id=poll_id, choices=(0,)))
    world.ana.send(Vote(poll_id=poll_id, choices=(1,)))
    world.net.pump()

    results = world.main.room.polls[poll_id]
    assert (results.counts, results.voters) == ((2, 1, 1), 4)
    assert world.a.room.polls == world.b.room.polls == world.main.room.polls
    # the moderator watches the results live; the others see none until they are shared
    assert world.ana.polls[poll_id] == results
    for client in (world.bo, world.cy, world.di):
        assert client.polls[poll_id].counts is None and client.polls[poll_id].voters is None

    world.ana.send(SharePollResults(poll_id=poll_id))
    world.net.pump()
    for client in world.everyone:
        assert client.polls[poll_id].counts == (2, 1, 1), client


def test_a_second_vote_is_refused_and_the_first_one_stands(world: World) -> None:
    poll_id = open_poll(world)
    world.bo.send(Vote(poll_id=poll_id, choices=(0,)))
    world.bo.send(Vote(poll_id=poll_id, choices=(1,)))
    world.net.pump()
    assert errors(world.bo) == [(ErrorCode.NOT_ALLOWED, "you have voted in poll 1 already")]
    assert world.ana.polls[poll_id].counts == (1, 0, 0)
    assert world.main.room.polls == world.a.room.polls == world.b.room.polls
    assert errors(world.cy) == errors(world.di) == errors(world.ana) == []


def test_a_multiple_choice_poll_counts_each_choice_and_a_single_choice_poll_takes_one(
    world: World,
) -> None:
    world.ana.send(CreatePoll(question="Which days?", options=("mon", "tue", "wed"), multiple=True))
    world.ana.send(CreatePoll(question="One day?", options=("mon", "tue")))
    world.net.pump()
    world.ana.send(OpenPoll(poll_id=1))
    world.ana.send(OpenPoll(poll_id=2))
    world.net.pump()
    world.cy.send(Vote(poll_id=1, choices=(0, 2)))
    world.di.send(Vote(poll_id=1, choices=(2,)))
    world.cy.send(Vote(poll_id=2, choices=(0, 1)))
    world.net.pump()
    assert world.ana.polls[1].counts == (1, 0, 2) and world.ana.polls[1].voters == 2
    assert world.ana.polls[2].voters == 0
    assert errors(world.cy) == [(ErrorCode.NOT_ALLOWED, "poll 2 takes one choice")]


def test_votes_for_options_that_do_not_exist_or_on_a_closed_poll_are_refused(
    world: World,
) -> None:
    poll_id = open_poll(world)
    world.bo.send(Vote(poll_id=poll_id, choices=(7,)))
    world.cy.send(Vote(poll_id=9, choices=(0,)))
    world.net.pump()
    world.di.send(Vote(poll_id=poll_id, choices=(1,)))
    world.net.pump()
    world.ana.send(ClosePoll(poll_id=poll_id))
    world.net.pump()
    world.bo.send(Vote(poll_id=poll_id, choices=(0,)))
    world.net.pump()

    assert errors(world.bo) == [
        (ErrorCode.NOT_FOUND, "poll 1 has options 0 to 2, not 7"),
        (ErrorCode.NOT_ALLOWED, "poll 1 is closed"),
    ]
    assert errors(world.cy) == [(ErrorCode.NOT_FOUND, "there is no poll 9")]
    closed = world.main.room.polls[poll_id]
    assert closed.state is PollState.CLOSED and closed.counts == (0, 1, 0)
    for client in world.everyone:
        assert client.polls[poll_id].state is PollState.CLOSED and client.is_open
    assert world.a.room.polls == world.b.room.polls == world.main.room.polls


def test_only_a_moderator_writes_opens_closes_or_shares_a_poll(world: World) -> None:
    poll_id = open_poll(world)
    world.bo.send(CreatePoll(question="Mine?", options=("a", "b")))
    world.cy.send(ClosePoll(poll_id=poll_id))
    world.di.send(SharePollResults(poll_id=poll_id))
    world.net.pump()
    assert errors(world.bo) == [(ErrorCode.NOT_ALLOWED, "only a moderator may write a poll")]
    assert errors(world.cy) == [(ErrorCode.NOT_ALLOWED, "only a moderator may")]
    assert errors(world.di) == [(ErrorCode.NOT_ALLOWED, "only a moderator may")]
    assert list(world.main.room.polls) == [poll_id]
    assert world.main.room.polls[poll_id].state is PollState.OPEN
    assert not world.main.room.polls[poll_id].shared


def test_an_oversized_poll_closes_only_the_sender_saying_why_and_the_vote_goes_on(
    world: World,
) -> None:
    poll_id = open_poll(world)
    channel, type_ = address_of(CreatePoll)
    payload = msgspec.msgpack.encode(["x" * (POLL_QUESTION_MAX + 1), ["a", "b"], False, False])
    world.ana.outgoing += pack_frame(channel, type_, payload)
    world.net.pump()

    assert world.ana.closed is not None and world.ana.closed.reason is ByeReason.PROTOCOL_ERROR
    assert "bad CreatePoll.question" in world.ana.closed.message
    assert channel is Channel.CONTROL and list(world.main.room.polls) == [poll_id]
    world.bo.send(Vote(poll_id=poll_id, choices=(2,)))
    world.net.pump()
    assert errors(world.bo) == []
    assert world.main.room.polls[poll_id].counts == (0, 0, 1)
    assert world.a.room.polls == world.b.room.polls == world.main.room.polls


def test_a_child_cut_off_while_votes_came_in_holds_the_same_results_once_back(
    world: World,
) -> None:
    poll_id = open_poll(world)
    world.net.cut(world.a)
    world.bo.send(Vote(poll_id=poll_id, choices=(0,)))  # refused: the main is out of reach
    world.cy.send(Vote(poll_id=poll_id, choices=(1,)))
    world.ana.send(SharePollResults(poll_id=poll_id))
    world.net.pump()
    assert errors(world.bo) == [(ErrorCode.UNAVAILABLE, "the main server is out of reach")]

    world.net.mend(world.a)
    world.net.step(30)
    assert world.a.room.upstream is Upstream.UP
    assert world.a.room.polls == world.main.room.polls
    assert world.bo.polls[poll_id].counts == (0, 1, 0)
    world.bo.send(Vote(poll_id=poll_id, choices=(0,)))
    world.net.pump()
    assert world.bo.polls[poll_id].counts == (1, 1, 0)


def test_a_participant_who_joins_late_is_shown_the_polls_as_they_stand(world: World) -> None:
    poll_id = open_poll(world)
    world.cy.send(Vote(poll_id=poll_id, choices=(1,)))
    world.net.pump()
    world.bo.leave()
    world.net.pump()
    late = world.net.participant(world.a, "bo")
    assert late.polls[poll_id].state is PollState.OPEN and late.polls[poll_id].counts is None
    late.send(Vote(poll_id=poll_id, choices=(1,)))
    world.net.pump()
    assert world.ana.polls[poll_id].counts == (0, 2, 0)

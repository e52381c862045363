"""Q&A across a tree (main, child-a, child-b): upvotes counted once, anonymity kept from peers only.

ana is the moderator, on the main server; bo is on child-a, cy and di on
child-b. The tests look at what each client was sent and what every server
holds.
"""

from __future__ import annotations

from tests.live.live_support import Client, World
from townhall.live.questions import by_votes
from townhall.wire import (
    AskQuestion,
    AuthFailed,
    AuthFailure,
    ByeReason,
    ErrorCode,
    QuestionState,
    Remove,
    SettleQuestion,
    UpvoteQuestion,
)


def errors(client: Client) -> list[tuple[ErrorCode, str]]:
    return [(e.code, e.message) for e in client.errors]


def test_a_question_upvoted_twice_by_one_participant_counts_once(world: World) -> None:
    world.bo.send(AskQuestion(text="Will the slides be shared?"))
    world.net.pump()
    world.cy.send(UpvoteQuestion(question_id=1))
    world.cy.send(UpvoteQuestion(question_id=1))
    world.di.send(UpvoteQuestion(question_id=1))
    world.net.pump()

    assert errors(world.cy) == [(ErrorCode.NOT_ALLOWED, "you have upvoted question 1 already")]
    for client in world.everyone:
        assert client.questions[1].votes == 2, client
    assert world.a.room.questions == world.b.room.questions == world.main.room.questions


def test_nobody_upvotes_their_own_question_or_one_that_does_not_exist(world: World) -> None:
    world.bo.send(AskQuestion(text="Mine?"))
    world.net.pump()
    world.bo.send(UpvoteQuestion(question_id=1))
    world.bo.send(UpvoteQuestion(question_id=5))
    world.net.pump()
    assert errors(world.bo) == [
        (ErrorCode.NOT_ALLOWED, "you cannot upvote your question"),
        (ErrorCode.NOT_FOUND, "there is no question 5"),
    ]
    assert world.main.room.questions[1].votes == 0


def test_an_anonymous_question_hides_the_asker_from_participants_but_not_from_moderators(
    world: World,
) -> None:
    world.cy.send(AskQuestion(text="Are layoffs planned?", anonymous=True))
    world.di.send(AskQuestion(text="When is the next one?"))
    world.net.pump()
    assert world.ana.questions[1].asker == "cy"
    for client in (world.bo, world.cy, world.di):
        assert client.questions[1].asker is None and client.questions[1].anonymous, client
        assert client.questions[2].asker == "di"
    # joined later, a participant is told no more
    world.bo.leave()
    world.net.pump()
    assert world.net.participant(world.a, "bo").questions[1].asker is None


def test_questions_are_ordered_by_votes_and_moderators_answer_or_dismiss_them(
    world: World,
) -> None:
    for client, text in ((world.bo, "first"), (world.cy, "second"), (world.di, "third")):
        client.send(AskQuestion(text=text))
        world.net.pump()
    for voter in (world.ana, world.bo, world.di):
        voter.send(UpvoteQuestion(question_id=2))
    world.ana.send(UpvoteQuestion(question_id=3))
    world.net.pump()
    assert [q.text for q in by_votes(world.bo.questions.values())] == ["second", "third", "first"]

    world.ana.send(SettleQuestion(question_id=2, state=QuestionState.ANSWERED, answer="Yes."))
    world.ana.send(SettleQuestion(question_id=3, state=QuestionState.ANSWERED_LIVE))
    world.ana.send(SettleQuestion(question_id=1, state=QuestionState.DISMISSED))
    world.bo.send(SettleQuestion(question_id=1, state=QuestionState.ANSWERED_LIVE))
    world.net.pump()
    assert errors(world.bo) == [(ErrorCode.NOT_ALLOWED, "only a moderator may")]
    for client in world.everyone:
        shown = {q.text: (q.state, q.answer) for q in client.questions.values()}
        assert shown == {
            "first": (QuestionState.DISMISSED, ""),
            "second": (QuestionState.ANSWERED, "Yes."),
            "third": (QuestionState.ANSWERED_LIVE, ""),
        }, client
    world.cy.send(UpvoteQuestion(question_id=3))
    world.net.pump()
    assert errors(world.cy) == [(ErrorCode.NOT_ALLOWED, "question 3 is answered-live")]


def test_a_question_from_a_removed_participant_is_not_taken_and_nothing_else_moves(
    world: World,
) -> None:
    world.cy.send(AskQuestion(text="kept"))
    world.net.pump()
    # bo's question is on its way through child-a when the moderator's Remove lands
    world.bo.send(AskQuestion(text="spam"))
    world.ana.send(Remove(name="bo"))
    world.net.pump()

    assert world.bo.closed is not None and world.bo.closed.reason is ByeReason.REMOVED
    assert world.bo.closed.message == "removed by ana"
    for server in (world.main, world.a, world.b):
        assert [q.text for q in server.room.questions.values()] == ["kept"], server.name
    again = world.net.join(world.a, Client("bo-again", world.bo.ticket, world.net.now))
    assert isinstance(again.auth, AuthFailed) and again.auth.reason is AuthFailure.NOT_ALLOWED
    assert again.auth.message == "removed from this event"

    world.di.send(UpvoteQuestion(question_id=1))
    world.net.pump()
    for client in (world.ana, world.cy, world.di):
        assert client.is_open and [q.votes for q in client.questions.values()] == [1], client

"""``Questions``: the main server's authority over an event's Q&A, and what each member may see.

Members ask questions (anonymously to the other participants if they wish,
never to the moderators) and upvote other members' open questions once each;
moderators answer in writing, mark a question answered live, or dismiss it.
``Questions`` answers each command with what goes Down the tree: a
``QuestionUpdated`` carrying the asker's name, or a ``Refused`` for the member
at fault. Servers pass the whole question along their links and cut it per
participant with ``question_for``. Lists are ordered by votes
(``by_votes``). Like ``floor`` it never sees a connection or bytes, and the
caller says who is a moderator. docs/live.md, "Polls and questions".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from townhall.wire import (
    AskQuestion,
    ErrorCode,
    Message,
    Question,
    QuestionState,
    QuestionUpdated,
    Refused,
    SettleQuestion,
    UpvoteQuestion,
)

__all__ = ["MAX_QUESTIONS", "QUESTION_COMMANDS", "Questions", "by_votes", "question_for"]

MAX_QUESTIONS: Final = 500  # questions in one event: every joining member is sent them all
QUESTION_COMMANDS: Final = (AskQuestion, UpvoteQuestion, SettleQuestion)


def question_for(question: Question, *, moderator: bool) -> Question:
    """``question`` as a participant may see it: an anonymous asker named to moderators only."""
    if moderator or not question.anonymous or question.asker is None:
        return question
    return Question(
        question_id=question.question_id,
        text=question.text,
        asker=None,
        anonymous=True,
        votes=question.votes,
        state=question.state,
        answer=question.answer,
    )


def by_votes(questions: Iterable[Question]) -> list[Question]:
    """Most votes first; among equals, the one asked first."""
    return sorted(questions, key=lambda q: (-q.votes, q.question_id))


@dataclass(slots=True)
class _Entry:
    question_id: int
    text: str
    asker: str
    anonymous: bool
    state: QuestionState = QuestionState.OPEN
    answer: str = ""
    voters: set[str] = field(default_factory=set)  # member names: one upvote each

    def question(self) -> Question:
        return Question(
            question_id=self.question_id,
            text=self.text,
            asker=self.asker,
            anonymous=self.anonymous,
            votes=len(self.voters),
            state=self.state,
            answer=self.answer,
        )


class Questions:
    """Every question of the event with its upvotes; ``request`` applies one command."""

    def __init__(self, *, limit: int = MAX_QUESTIONS) -> None:
        self._limit = limit
        self._entries: dict[int, _Entry] = {}

    @property
    def questions(self) -> tuple[Question, ...]:
        """Every question, named, in the order asked."""
        return tuple(entry.question() for entry in self._entries.values())

    def request(self, name: str, command: Message, *, moderator: bool) -> list[Message]:
        """Apply member ``name``'s command; what goes Down (an update, or a ``Refused``)."""
        match command:
            case AskQuestion(text=text, anonymous=anonymous):
                if len(self._entries) >= self._limit:
                    return _refuse(
                        name, ErrorCode.UNAVAILABLE, f"this event has {self._limit} questions"
                    )
                question_id = len(self._entries) + 1
                asked = _Entry(question_id, text, name, anonymous)
                self._entries[question_id] = asked
                return [QuestionUpdated(question=asked.question())]
            case UpvoteQuestion(question_id=question_id):
                entry = self._entries.get(question_id)
                if entry is None:
                    return _unknown(name, question_id)
                if entry.asker == name:
                    return _refuse(name, ErrorCode.NOT_ALLOWED, "you cannot upvote your question")
                if entry.state is not QuestionState.OPEN:
                    return _refuse(
                        name,
                        ErrorCode.NOT_ALLOWED,
                        f"question {question_id} is {entry.state.value}",
                    )
                if name in entry.voters:
                    return _refuse(
                        name,
                        ErrorCode.NOT_ALLOWED,
                        f"you have upvoted question {question_id} already",
                    )
                entry.voters.add(name)
                return [QuestionUpdated(question=entry.question())]
            case SettleQuestion(question_id=question_id, state=state, answer=answer):
                if not moderator:
                    return _refuse(name, ErrorCode.NOT_ALLOWED, "only a moderator may")
                entry = self._entries.get(question_id)
                if entry is None:
                    return _unknown(name, question_id)
                if (entry.state, entry.answer) == (state, answer):
                    return []
                entry.state, entry.answer = state, answer
                return [QuestionUpdated(question=entry.question())]
            case _:
                return _refuse(name, ErrorCode.NOT_ALLOWED, f"{type(command).__name__}?")


def _unknown(name: str, question_id: int) -> list[Message]:
    return _refuse(name, ErrorCode.NOT_FOUND, f"there is no question {question_id}")


def _refuse(name: str, code: ErrorCode, message: str) -> list[Message]:
    return [Refused(name=name, code=code, message=message)]

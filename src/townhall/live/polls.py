"""``Polls``: the main server's authority over an event's polls, and what each member may see.

A moderator writes a poll (a draft), opens it, closes it, and chooses whether
everyone sees its results; members vote once each, whatever server they are
on. ``Polls`` holds the votes and answers each command with what goes Down
the tree: a ``PollUpdated`` carrying the whole poll with its counts, or a
``Refused`` for the member at fault. The servers pass the whole poll along
their links and cut it per participant with ``poll_for`` (drafts to
moderators only; counts to moderators, and to everyone once shared). Like
``floor``, it never sees a connection, a link or bytes, and it does not know
who is a moderator: the caller says. docs/live.md, "Polls and questions".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from townhall.wire import (
    ClosePoll,
    CreatePoll,
    ErrorCode,
    Message,
    OpenPoll,
    Poll,
    PollState,
    PollUpdated,
    Refused,
    SharePollResults,
    Vote,
)

__all__ = ["MAX_POLLS", "POLL_COMMANDS", "Polls", "poll_for"]

MAX_POLLS: Final = 100  # polls in one event: every joining member is sent them all
POLL_COMMANDS: Final = (CreatePoll, OpenPoll, ClosePoll, SharePollResults, Vote)


def poll_for(poll: Poll, *, moderator: bool) -> Poll | None:
    """``poll`` as one participant may see it; None: not at all (a draft, to a non-moderator)."""
    if moderator:
        return poll
    if poll.state is PollState.DRAFT:
        return None
    if poll.shared or poll.counts is None:
        return poll
    return Poll(
        poll_id=poll.poll_id,
        question=poll.question,
        options=poll.options,
        multiple=poll.multiple,
        state=poll.state,
        shared=poll.shared,
    )


@dataclass(slots=True)
class _Entry:
    poll_id: int
    question: str
    options: tuple[str, ...]
    multiple: bool
    shared: bool
    state: PollState = PollState.DRAFT
    counts: list[int] = field(default_factory=list)
    voters: set[str] = field(default_factory=set)  # member names: one vote each

    def poll(self) -> Poll:
        return Poll(
            poll_id=self.poll_id,
            question=self.question,
            options=self.options,
            multiple=self.multiple,
            state=self.state,
            shared=self.shared,
            counts=tuple(self.counts),
            voters=len(self.voters),
        )


class Polls:
    """Every poll of the event, its state and its votes; ``request`` applies one command."""

    def __init__(self, *, limit: int = MAX_POLLS) -> None:
        self._limit = limit
        self._entries: dict[int, _Entry] = {}

    @property
    def polls(self) -> tuple[Poll, ...]:
        """Every poll with its results, oldest first."""
        return tuple(entry.poll() for entry in self._entries.values())

    def request(self, name: str, command: Message, *, moderator: bool) -> list[Message]:
        """Apply member ``name``'s command; what goes Down (an update, or a ``Refused``)."""
        match command:
            case CreatePoll():
                if not moderator:
                    return _refuse(name, ErrorCode.NOT_ALLOWED, "only a moderator may write a poll")
                if len(self._entries) >= self._limit:
                    return _refuse(
                        name, ErrorCode.UNAVAILABLE, f"this event has {self._limit} polls already"
                    )
                poll_id = len(self._entries) + 1
                written = _Entry(
                    poll_id,
                    command.question,
                    command.options,
                    command.multiple,
                    command.shared,
                    counts=[0] * len(command.options),
                )
                self._entries[poll_id] = written
                return [PollUpdated(poll=written.poll())]
            case Vote(poll_id=poll_id, choices=choices):
                entry = self._entries.get(poll_id)
                if entry is None or (entry.state is PollState.DRAFT and not moderator):
                    return _refuse(name, ErrorCode.NOT_FOUND, f"there is no poll {poll_id}")
                if entry.state is not PollState.OPEN:
                    return _refuse(name, ErrorCode.NOT_ALLOWED, _not_open(entry))
                beyond = [choice for choice in choices if choice >= len(entry.options)]
                if beyond:
                    return _refuse(
                        name,
                        ErrorCode.NOT_FOUND,
                        f"poll {poll_id} has options 0 to {len(entry.options) - 1}, "
                        f"not {beyond[0]}",
                    )
                if len(choices) > 1 and not entry.multiple:
                    return _refuse(name, ErrorCode.NOT_ALLOWED, f"poll {poll_id} takes one choice")
                if name in entry.voters:
                    return _refuse(
                        name, ErrorCode.NOT_ALLOWED, f"you have voted in poll {poll_id} already"
                    )
                entry.voters.add(name)
                for choice in choices:
                    entry.counts[choice] += 1
                return [PollUpdated(poll=entry.poll())]
            case (
                OpenPoll(poll_id=poll_id)
                | ClosePoll(poll_id=poll_id)
                | SharePollResults(poll_id=poll_id)
            ):
                if not moderator:
                    return _refuse(name, ErrorCode.NOT_ALLOWED, "only a moderator may")
                entry = self._entries.get(poll_id)
                if entry is None:
                    return _refuse(name, ErrorCode.NOT_FOUND, f"there is no poll {poll_id}")
                return self._manage(name, entry, command)
            case _:
                return _refuse(name, ErrorCode.NOT_ALLOWED, f"{type(command).__name__}?")

    def _manage(self, name: str, entry: _Entry, command: Message) -> list[Message]:
        match command:
            case OpenPoll():
                if entry.state is not PollState.DRAFT:
                    return _refuse(
                        name,
                        ErrorCode.NOT_ALLOWED,
                        f"poll {entry.poll_id} is {entry.state.value}: only a draft opens",
                    )
                entry.state = PollState.OPEN
            case ClosePoll():
                if entry.state is not PollState.OPEN:
                    return _refuse(name, ErrorCode.NOT_ALLOWED, _not_open(entry))
                entry.state = PollState.CLOSED
            case SharePollResults(shared=shared):
                if entry.shared == shared:
                    return []
                entry.shared = shared
        return [PollUpdated(poll=entry.poll())]


def _not_open(entry: _Entry) -> str:
    if entry.state is PollState.CLOSED:
        return f"poll {entry.poll_id} is closed"
    return f"poll {entry.poll_id} is not open yet"


def _refuse(name: str, code: ErrorCode, message: str) -> list[Message]:
    return [Refused(name=name, code=code, message=message)]

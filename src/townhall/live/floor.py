"""The authoritative event state, held by the main server alone: roster, floor, hands, streams.

``Floor`` takes what members did (joined, left, asked for something) and
answers with what must go Down the tree: wire messages every server and
participant sees (``RosterUpdate``, ``StateSnapshot``, ``StreamOpened``,
``StreamClosed``) and link messages addressed to one member or to the
servers (``Evict``, ``Refused``, ``Banned``). It never sees a connection, a
server link or bytes; the room routes what it returns. The rules it applies
are in docs/live.md, "The floor".

Invariants (a property test keeps them): the floor holder is a member; the
hand queue holds members only, each once, never the holder; a stream's owner
is a member; at most ``MAX_STREAMS`` streams.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from townhall.ticket import Role as TicketRole
from townhall.wire import (
    Banned,
    Bye,
    ByeReason,
    CloseStream,
    EndEvent,
    ErrorCode,
    Evict,
    GiveFloor,
    LowerHand,
    Member,
    Message,
    Mute,
    OpenStream,
    RaiseHand,
    RecordingChanged,
    RecordingState,
    Refused,
    Remove,
    RosterUpdate,
    SetRecording,
    SetSpeakingMode,
    SpeakingMode,
    StateSnapshot,
    StreamClosed,
    StreamInfo,
    StreamKind,
    StreamOpened,
    TakeFloor,
)
from townhall.wire.messages import MAX_STREAMS, ROSTER_CHUNK

__all__ = ["Down", "Floor", "Removed", "Seat", "roster_chunks"]

Down = Message
_U32: Final = 0xFFFF_FFFF


@dataclass(slots=True)
class Seat:
    """One member as the main server knows it."""

    name: str
    credential_id: str
    role: TicketRole
    server: str  # the live server the member is connected to
    joined_at: float
    muted: bool = False
    display_name: str = ""  # what people see; "" shows the name

    @property
    def moderator(self) -> bool:
        return self.role is TicketRole.MODERATOR


@dataclass(frozen=True, slots=True)
class Removed:
    """A moderator's Remove, kept so the server can report it to the Controller (and the
    Center then bars the person from new tickets: docs/security.md)."""

    credential_id: str
    name: str
    by_credential_id: str
    by_name: str


def roster_chunks(members: Iterable[Member], left: Iterable[str] = ()) -> list[RosterUpdate]:
    """RosterUpdates of at most ROSTER_CHUNK members and ROSTER_CHUNK names each."""
    changed, gone = list(members), list(left)
    updates = []
    for start in range(0, max(len(changed), len(gone)), ROSTER_CHUNK):
        end = start + ROSTER_CHUNK
        updates.append(RosterUpdate(changed=tuple(changed[start:end]), left=tuple(gone[start:end])))
    return updates


class Floor:
    """Roster with roles, floor holder, FIFO hand queue, mutes, speaking mode, streams, bans."""

    def __init__(
        self, *, event: str, title: str, mode: SpeakingMode = SpeakingMode.MODERATED
    ) -> None:
        self._event = event
        self._title = title
        self._mode = mode
        self._seats: dict[str, Seat] = {}
        self._holder: str | None = None
        self._queue: list[str] = []
        self._streams: dict[int, StreamInfo] = {}
        self._next_stream = 1
        self._banned: set[str] = set()
        self._removed: dict[str, Removed] = {}  # by credential id, in order
        self._recording = RecordingState.OFF
        self._recorder: str | None = None  # the member who said it records

    # -- what anyone may read ----------------------------------------------------

    @property
    def seats(self) -> Mapping[str, Seat]:
        return MappingProxyType(self._seats)

    @property
    def holder(self) -> str | None:
        return self._holder

    @property
    def queue(self) -> tuple[str, ...]:
        return tuple(self._queue)

    @property
    def mode(self) -> SpeakingMode:
        return self._mode

    @property
    def streams(self) -> Mapping[int, StreamInfo]:
        return MappingProxyType(self._streams)

    @property
    def recording(self) -> RecordingState:
        return self._recording

    @property
    def banned(self) -> frozenset[str]:
        return frozenset(self._banned)

    @property
    def removed(self) -> tuple[Removed, ...]:
        """Every Remove of this event here, oldest first."""
        return tuple(self._removed.values())

    def member(self, name: str) -> Member:
        seat = self._seats[name]
        return Member(
            name=name,
            moderator=seat.moderator,
            hand_raised=name in self._queue,
            floor=name == self._holder,
            muted=seat.muted,
            display_name=seat.display_name,
        )

    def snapshot(self) -> StateSnapshot:
        return StateSnapshot(
            event=self._event,
            title=self._title,
            mode=self._mode,
            attendance=len(self._seats),
            streams=tuple(self._streams.values()),
        )

    def can_speak(self, name: str) -> bool:
        """Whether ``name``'s audio and video reach the others (docs/live.md, "The floor")."""
        seat = self._seats.get(name)
        if seat is None or seat.muted:
            return False
        if name == self._holder or self._mode is SpeakingMode.OPEN:
            return True
        return self._mode is SpeakingMode.LECTURE and seat.role is not TicketRole.PARTICIPANT

    # -- what members did -----------------------------------------------------------

    def join(self, seat: Seat) -> list[Down]:
        """A member connected somewhere in the tree (or moved to another server)."""
        if seat.credential_id in self._banned:
            return [
                Evict(name=seat.name, reason=ByeReason.REMOVED, message="removed from this event")
            ]
        old = self._seats.get(seat.name)
        if old is not None:
            shown_before = (old.moderator, old.display_name)
            old.credential_id, old.role = seat.credential_id, seat.role
            old.server, old.joined_at = seat.server, seat.joined_at
            old.display_name = seat.display_name
            if (old.moderator, old.display_name) == shown_before:
                return []
            return [RosterUpdate(changed=(self.member(seat.name),))]
        self._seats[seat.name] = Seat(
            seat.name,
            seat.credential_id,
            seat.role,
            seat.server,
            seat.joined_at,
            seat.muted,
            seat.display_name,
        )
        return [RosterUpdate(changed=(self.member(seat.name),))]

    def leave(self, name: str) -> list[Down]:
        if name not in self._seats:
            return []
        owned = [stream_id for stream_id, info in self._streams.items() if info.owner == name]
        for stream_id in owned:
            del self._streams[stream_id]
        closed: list[Down] = [StreamClosed(stream_id=stream_id) for stream_id in owned]
        if name in self._queue:
            self._queue.remove(name)
        if self._holder == name:
            self._holder = None
        del self._seats[name]
        if name == self._recorder:  # the recorder went: nobody records any more
            closed.extend(self._set_recording(RecordingState.OFF, None))
        return [*closed, RosterUpdate(left=(name,))]

    def request(self, name: str, command: Message) -> list[Down]:
        """Apply one member's command, or refuse it (a ``Refused`` addressed to them)."""
        seat = self._seats.get(name)
        if seat is None:
            return []  # stale: the member left while the command travelled
        match command:
            case RaiseHand():
                if self._mode is SpeakingMode.LECTURE:
                    return self._refuse(name, ErrorCode.NOT_ALLOWED, "no hands in a lecture")
                if name == self._holder or name in self._queue:
                    return []
                self._queue.append(name)
                return self._changed(name)
            case LowerHand(name=target):
                target = name if target is None else target
                if target != name and not seat.moderator:
                    return self._refuse(name, ErrorCode.NOT_ALLOWED, "only a moderator may")
                if target not in self._seats:
                    return self._unknown(name, target)
                if target not in self._queue:
                    return []
                self._queue.remove(target)
                return self._changed(target)
            case GiveFloor(name=target):
                if not seat.moderator:
                    return self._refuse(name, ErrorCode.NOT_ALLOWED, "only a moderator may")
                if target not in self._seats:
                    return self._unknown(name, target)
                return self._give(target)
            case TakeFloor():
                if self._holder == name:
                    return self._give(None)  # the holder yields the floor
                if seat.moderator or self._mode is SpeakingMode.OPEN:
                    return self._give(name)
                return self._refuse(name, ErrorCode.NOT_ALLOWED, "raise your hand instead")
            case Mute(name=target, muted=muted):
                if not seat.moderator:
                    return self._refuse(name, ErrorCode.NOT_ALLOWED, "only a moderator may")
                other = self._seats.get(target)
                if other is None:
                    return self._unknown(name, target)
                if other.muted == muted:
                    return []
                other.muted = muted
                return self._changed(target)
            case Remove(name=target):
                if not seat.moderator:
                    return self._refuse(name, ErrorCode.NOT_ALLOWED, "only a moderator may")
                other = self._seats.get(target)
                if other is None:
                    return self._unknown(name, target)
                self._banned.add(other.credential_id)
                self._removed.setdefault(
                    other.credential_id,
                    Removed(other.credential_id, target, seat.credential_id, name),
                )
                return [
                    Evict(name=target, reason=ByeReason.REMOVED, message=f"removed by {name}"),
                    Banned(credential_ids=(other.credential_id,)),
                    *self.leave(target),
                ]
            case SetSpeakingMode(mode=mode):
                if not seat.moderator:
                    return self._refuse(name, ErrorCode.NOT_ALLOWED, "only a moderator may")
                if mode is self._mode:
                    return []
                self._mode = mode
                lowered = list(self._queue) if mode is SpeakingMode.LECTURE else []
                if lowered:
                    self._queue.clear()
                out: list[Down] = [self.snapshot()]
                if lowered:
                    out.extend(roster_chunks(self.member(n) for n in lowered))
                return out
            case EndEvent():
                if not seat.moderator:
                    return self._refuse(name, ErrorCode.NOT_ALLOWED, "only a moderator may")
                # The room ends the event here and down the tree (EventRoom._down).
                return [Bye(reason=ByeReason.EVENT_ENDED, message=f"ended by {name}")]
            case SetRecording(state=state):
                return self._recording_request(name, seat.moderator, state)
            case OpenStream(codec=codec):
                kind = StreamKind.of(codec, command.kind)
                if any(s.owner == name and s.kind is kind for s in self._streams.values()):
                    return self._refuse(
                        name, ErrorCode.UNAVAILABLE, f"a {kind.value} stream is open"
                    )
                if len(self._streams) >= MAX_STREAMS:
                    return self._refuse(name, ErrorCode.UNAVAILABLE, "no room for another stream")
                while self._next_stream in self._streams:
                    self._next_stream = self._next_stream % _U32 + 1
                info = StreamInfo(stream_id=self._next_stream, owner=name, codec=codec, kind=kind)
                self._streams[info.stream_id] = info
                self._next_stream = self._next_stream % _U32 + 1
                return [StreamOpened(stream=info)]
            case CloseStream(stream_id=stream_id):
                found = self._streams.get(stream_id)
                if found is None or (found.owner != name and not seat.moderator):
                    return self._refuse(
                        name, ErrorCode.UNKNOWN_STREAM, f"no stream {stream_id} of yours"
                    )
                del self._streams[stream_id]
                return [StreamClosed(stream_id=stream_id)]
            case _:
                return self._refuse(name, ErrorCode.NOT_ALLOWED, f"{type(command).__name__}?")

    # -- helpers ----------------------------------------------------------------------

    def _recording_request(self, name: str, moderator: bool, state: RecordingState) -> list[Down]:
        """A recorder starts (``recording`` from ``off``) and stops (``off``) itself; only a
        moderator pauses and resumes it."""
        current = self._recording
        if state is current:
            return []
        if current is RecordingState.OFF:
            if state is not RecordingState.RECORDING:
                return self._refuse(name, ErrorCode.UNAVAILABLE, "the event is not being recorded")
            return self._set_recording(state, name)
        if state is RecordingState.OFF:
            if name != self._recorder:
                return self._refuse(name, ErrorCode.NOT_ALLOWED, "only the recorder stops itself")
            return self._set_recording(state, None)
        if not moderator:
            return self._refuse(
                name, ErrorCode.NOT_ALLOWED, "only a moderator may pause or resume the recording"
            )
        return self._set_recording(state, self._recorder)

    def _set_recording(self, state: RecordingState, recorder: str | None) -> list[Down]:
        self._recording, self._recorder = state, recorder
        return [RecordingChanged(state=state)]

    def _give(self, target: str | None) -> list[Down]:
        old, self._holder = self._holder, target
        if old == target:
            return []
        if target is not None and target in self._queue:
            self._queue.remove(target)
        names = [n for n in (old, target) if n is not None and n in self._seats]
        return [RosterUpdate(changed=tuple(self.member(n) for n in names))]

    def _changed(self, name: str) -> list[Down]:
        return [RosterUpdate(changed=(self.member(name),))]

    @staticmethod
    def _refuse(name: str, code: ErrorCode, message: str) -> list[Down]:
        return [Refused(name=name, code=code, message=message)]

    def _unknown(self, name: str, target: str) -> list[Down]:
        return self._refuse(name, ErrorCode.UNKNOWN_MEMBER, f"{target} is not here")

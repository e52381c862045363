"""``townhall join TICKET``: the participant on the command line.

Opens the ticket (``load_ticket``: a ``.townhall`` file, or a ``townhall:``
or https event link whose ticket the Communications Gateway,
``townhall.desktop``, asks of the Center), joins through server selection, carries out the
requested commands (hand, floor, mute, remove, chat, polls, questions), streams a WAV file as
Opus in real time, records what it hears, prints every event (one JSON object
per line with ``--json``), and leaves after ``--seconds`` or on Ctrl-C, or
ends with the event. ``register(app)`` adds the command to a Typer app (the
``townhall`` CLI); ``run_join`` is the same as an async function, for programs
and tests. Exit status: 0 when we left or the event ended, 1 when joining
failed or the session ended otherwise (removed, replaced, no server left), 2
for an unusable ticket or WAV file. docs/client.md shows examples.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TextIO

import typer

from townhall.client.audio import Recorder, send_packets, wav_to_opus
from townhall.client.center import CenterClient
from townhall.client.events import (
    AttendanceCounted,
    ChatReceived,
    ClientEvent,
    ConnectionLost,
    FloorChanged,
    HandsChanged,
    Joined,
    KeyFrameRequested,
    Left,
    MainReachChanged,
    MediaReceived,
    MediaSkipped,
    PollChanged,
    QuestionChanged,
    RecordingStateChanged,
    Rejoining,
    RequestRefused,
    RosterChanged,
    StateChanged,
    StreamEnded,
    StreamStarted,
    event_json,
)
from townhall.client.selection import Ranking, probe
from townhall.client.session import ClientError, ClientSettings, JoinFailed, Participant
from townhall.desktop import DesktopError, resolve_join_target
from townhall.ticket import MAX_TICKET_BYTES, TicketContents, TicketError, open_ticket
from townhall.wire import ByeReason, LocalProtocolError, PollState
from townhall.wire.names import Zone

__all__ = ["JoinOptions", "TicketSourceError", "load_ticket", "register", "run_join"]


class TicketSourceError(Exception):
    """The ticket could not be read from what was given."""


def _fetch_link(link: str) -> bytes:
    """A ``townhall:`` or https event link's ticket, asked of its Center (the Gateway's
    ``resolve_join_target``: the user's API token or proxy session, signing in if asked)."""
    try:
        return resolve_join_target(link)
    except DesktopError as error:
        raise TicketSourceError(str(error)) from error


def load_ticket(
    source: str, *, now: int | None = None, fetch: Callable[[str], bytes] | None = None
) -> TicketContents:
    """Open a ticket given as a ``.townhall`` file path, a ``townhall:`` link or an https
    link to an event's page.

    A link's ticket is fetched by ``fetch`` (default: the Communications
    Gateway's ``townhall.desktop.resolve_join_target``, which asks the Center
    as the browser's Join button does). The ticket is checked against the key
    it carries (docs/tickets.md, "The Center key inside the file"); checking it
    against the key of a Center the user registered is the next step, here.
    """
    if source.strip().lower().startswith(("townhall:", "https://", "http://")):
        data = (fetch or _fetch_link)(source)
        where = "the ticket from that link"
    else:
        path = Path(source).expanduser()
        try:
            with path.open("rb") as file:
                data = file.read(MAX_TICKET_BYTES + 1)
        except OSError as error:
            raise TicketSourceError(f"cannot read {path}: {error.strerror or error}") from error
        where = str(path)
    try:
        return open_ticket(
            data, center_public_key=None, now=int(time.time()) if now is None else now
        )
    except TicketError as error:
        raise TicketSourceError(f"{where} is not a usable ticket: {error}") from error


@dataclass(frozen=True, slots=True)
class JoinOptions:
    """What ``townhall join`` was asked to do, in the order it does it once joined."""

    raise_hand: bool = False
    lower_hand: bool = False
    give_floor: str | None = None
    mute: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    say: tuple[str, ...] = ()
    poll: tuple[str, ...] | None = None  # question, then options: written and opened
    multiple: bool = False  # the poll takes several choices
    share_results: bool = False  # the poll's results shown to everyone
    close_poll: tuple[int, ...] = ()
    vote: tuple[int, ...] = ()  # option numbers from 1, in the first open poll shown
    ask: tuple[str, ...] = ()
    anonymous: bool = False  # the questions asked without our name to other participants
    upvote: tuple[int, ...] = ()  # question numbers, upvoted once shown
    send_audio: Path | None = None
    record_audio: Path | None = None
    json: bool = False
    seconds: float | None = None
    zone: Zone | None = None
    server: str | None = None
    probe: bool = False


def _shown(display_name: str, name: str) -> str:
    """A member as a person reads it: the display name, and the name when it differs."""
    if not display_name or display_name == name:
        return name
    return f"{display_name} ({name})"


def _human(event: ClientEvent) -> str | None:
    match event:
        case Joined():
            role = " (moderator)" if event.moderator else ""
            again = "joined again" if event.rejoin else "joined"
            shown = _shown(event.display_name, event.name)
            return f"{again} {event.server} as {shown}{role}"
        case StateChanged():
            return (
                f"event {event.title!r}: {event.mode.value}, {event.attendance} present, "
                f"{len(event.streams)} streams"
            )
        case RosterChanged():
            parts = [f"+{_shown(m.display_name, m.name)}" for m in event.changed]
            parts += [f"-{name}" for name in event.left]
            return "roster " + " ".join(parts) if parts else None
        case AttendanceCounted():
            listed = "everyone" if event.everyone_listed else "the stage and you"
            return f"{event.members} present; the roster lists {listed}"
        case FloorChanged():
            return f"floor: {event.holder or 'nobody'}"
        case HandsChanged():
            return "hands: " + (", ".join(event.raised) or "none")
        case ChatReceived():
            target = f" → {event.to}" if event.to else ""
            return f"{_shown(event.sender_display_name, event.sender)}{target}: {event.text}"
        case StreamStarted():
            return f"stream {event.stream_id}: {event.owner} sends {event.codec.value}"
        case StreamEnded():
            return f"stream {event.stream_id} ended"
        case MediaReceived() | KeyFrameRequested():
            return None  # `townhall join` sends no video
        case MediaSkipped():
            return (
                f"your connection is behind: {event.audio_frames} audio / "
                f"{event.video_frames} video frames skipped"
            )
        case PollChanged(poll=poll):
            options = "  ".join(
                f"{number}) {option}" + ("" if poll.counts is None else f" [{poll.counts[n]}]")
                for n, (number, option) in enumerate(enumerate(poll.options, 1))
            )
            voters = "" if poll.voters is None else f" — {poll.voters} voted"
            return f"poll {poll.poll_id} ({poll.state.value}): {poll.question}  {options}{voters}"
        case QuestionChanged(question=question):
            asker = question.asker or "anonymous"
            answer = f" — {question.answer}" if question.answer else ""
            return (
                f"question {question.question_id} ({question.state.value}, "
                f"{question.votes} votes) from {asker}: {question.text}{answer}"
            )
        case RequestRefused():
            return f"refused ({event.code.value}): {event.message}"
        case MainReachChanged():
            if event.reachable:
                return f"{event.server} reaches the main server again"
            return f"{event.server} lost the main server: chat waits until it is back"
        case RecordingStateChanged():
            return {
                "recording": "● this event is being recorded",
                "paused": "the recording is paused",
                "off": "the event is not being recorded",
            }[event.state.value]
        case ConnectionLost():
            return f"lost {event.server} ({event.reason.value}: {event.message})"
        case Rejoining():
            return f"joining again in {event.delay:.1f} s (try {event.attempt})"
        case Left():
            return f"left: {event.reason.value}" + (f" ({event.message})" if event.message else "")


def _print_ranking(ranking: Ranking, out: TextIO, as_json: bool) -> None:
    if as_json:
        out.write(json.dumps(ranking.to_json(), ensure_ascii=False) + "\n")
        return
    out.write(f"preferred zone: {ranking.zone.value}\n")
    for probe_ in ranking.probes:
        if probe_.reachable:
            rtt = "-" if probe_.rtt_ms is None else f"{probe_.rtt_ms:.1f} ms"
            load = (
                "-"
                if probe_.participants is None
                else f"{probe_.participants}/{probe_.capacity or '∞'}"
            )
            out.write(
                f"  {probe_.server.name}\t{probe_.server.address}\t"
                f"{probe_.server.zone.value}\t{rtt}\tload {load}\n"
            )
        else:
            out.write(
                f"  {probe_.server.name}\t{probe_.server.address}\t"
                f"{probe_.server.zone.value}\tunreachable: {probe_.error}\n"
            )


async def run_join(
    ticket: TicketContents,
    options: JoinOptions,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    settings: ClientSettings | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """``townhall join`` as a coroutine; the exit status. ``stop`` ends it like Ctrl-C."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    settings = settings if settings is not None else ClientSettings()
    if options.probe:
        try:
            ranking = await probe(
                ticket,
                zone=options.zone,
                only=options.server,
                probe_timeout=settings.probe_timeout,
                pings=settings.pings,
            )
        except ValueError as error:
            err.write(f"townhall: {error}\n")
            return 2
        _print_ranking(ranking, out, options.json)
        return 0 if ranking.best is not None else 1

    packets: list[bytes] = []
    if options.send_audio is not None:
        try:
            packets = await asyncio.to_thread(wav_to_opus, options.send_audio)
        except (OSError, ValueError, EOFError) as error:
            err.write(f"townhall: cannot read {options.send_audio}: {error}\n")
            return 2

    async def refresh() -> TicketContents:
        async with CenterClient(ticket) as center:
            return await center.new_ticket(now=int(time.time()))

    loop = asyncio.get_running_loop()
    recorder = Recorder(loop.time()) if options.record_audio is not None else None
    participant = Participant(
        ticket,
        zone=options.zone,
        server=options.server,
        settings=settings,
        refresh_ticket=refresh,
    )

    pending = _PollAndQuestionCommands(participant, options)

    def show(event: ClientEvent) -> None:
        with contextlib.suppress(ClientError):
            pending.seen(event)
        if recorder is not None and isinstance(event, MediaReceived):
            recorder.feed(event, loop.time())
        if options.json:
            out.write(json.dumps(event_json(event), ensure_ascii=False) + "\n")
        elif (line := _human(event)) is not None:
            out.write(line + "\n")
        out.flush()

    try:
        joined = await participant.join()
    except JoinFailed as error:
        err.write(f"townhall: cannot join: {error}\n")
        return 1
    del joined

    async def read() -> None:
        async for event in participant:
            show(event)

    reader = asyncio.create_task(read())
    stop = stop if stop is not None else asyncio.Event()
    with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, stop.set)  # only in the main thread
    tasks: list[asyncio.Task[None]] = []
    try:
        try:
            _commands(participant, options)
        except (ClientError, LocalProtocolError) as error:
            err.write(f"townhall: {error}\n")
        if packets:
            tasks.append(asyncio.create_task(_send_audio(participant, packets, err)))
        waits: list[asyncio.Future[object]] = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(participant.wait_closed()),
        ]
        if options.seconds is not None:
            waits.append(asyncio.ensure_future(asyncio.sleep(options.seconds)))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for future in waits:
            future.cancel()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        left = await participant.leave()
        await reader
        with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)
    if recorder is not None and options.record_audio is not None:
        await asyncio.to_thread(recorder.write, options.record_audio)
    ours = left.reason is ByeReason.NORMAL and not left.by_peer
    return 0 if ours or left.reason is ByeReason.EVENT_ENDED else 1


def _commands(participant: Participant, options: JoinOptions) -> None:
    if options.raise_hand:
        participant.raise_hand()
    if options.lower_hand:
        participant.lower_hand()
    if options.give_floor is not None:
        participant.give_floor(options.give_floor)
    for name in options.mute:
        participant.mute(name)
    for name in options.remove:
        participant.remove(name)
    for text in options.say:
        participant.say(text)
    if options.poll is not None:
        question, *choices = options.poll
        participant.create_poll(
            question, tuple(choices), multiple=options.multiple, shared=options.share_results
        )
    for poll_id in options.close_poll:
        participant.close_poll(poll_id)
    for text in options.ask:
        participant.ask(text, anonymous=options.anonymous)


class _PollAndQuestionCommands:
    """What ``townhall join`` does once the server shows it something: open the poll it
    wrote, vote in the first open poll, upvote the questions it was asked to."""

    def __init__(self, participant: Participant, options: JoinOptions) -> None:
        self._participant = participant
        self._poll = options.poll
        self._vote = tuple(number - 1 for number in options.vote)
        self._upvote = set(options.upvote)

    def seen(self, event: ClientEvent) -> None:
        match event:
            case PollChanged(poll=poll):
                if (
                    self._poll is not None
                    and poll.state is PollState.DRAFT
                    and (poll.question, *poll.options) == tuple(self._poll)
                ):
                    self._poll = None
                    self._participant.open_poll(poll.poll_id)
                elif self._vote and poll.state is PollState.OPEN:
                    choices, self._vote = self._vote, ()
                    self._participant.vote(poll.poll_id, choices)
            case QuestionChanged(question=question) if question.question_id in self._upvote:
                self._upvote.discard(question.question_id)
                self._participant.upvote(question.question_id)
            case _:
                pass


async def _send_audio(participant: Participant, packets: list[bytes], err: TextIO) -> None:
    try:
        stream_id = await participant.open_stream()
    except ClientError as error:
        err.write(f"townhall: cannot send audio: {error}\n")
        return

    def send(packet: bytes, timestamp_us: int) -> None:
        participant.send_media(stream_id, packet, timestamp_us)

    await send_packets(send, packets)
    with contextlib.suppress(ClientError):
        participant.close_stream(stream_id)


def register(app: typer.Typer) -> None:
    """Add ``join`` to ``app``."""
    app.command("join")(join)


def join(
    ticket: Annotated[
        str,
        typer.Argument(
            metavar="TICKET", help="a .townhall file, a townhall: link or an https event link"
        ),
    ],
    say: Annotated[
        list[str] | None,
        typer.Option("--say", metavar="TEXT", help="post this chat message (repeatable)"),
    ] = None,
    send_audio: Annotated[
        Path | None,
        typer.Option(
            "--send-audio", metavar="FILE.wav", help="stream this 16-bit WAV file as Opus"
        ),
    ] = None,
    record_audio: Annotated[
        Path | None,
        typer.Option("--record-audio", metavar="OUT.wav", help="write what is heard to this WAV"),
    ] = None,
    raise_hand: Annotated[bool, typer.Option("--raise-hand", help="raise my hand")] = False,
    lower_hand: Annotated[bool, typer.Option("--lower-hand", help="lower my hand")] = False,
    give_floor: Annotated[
        str | None,
        typer.Option("--give-floor", metavar="NAME", help="give NAME the floor (moderator)"),
    ] = None,
    mute: Annotated[
        list[str] | None,
        typer.Option("--mute", metavar="NAME", help="mute NAME (moderator; repeatable)"),
    ] = None,
    remove: Annotated[
        list[str] | None,
        typer.Option("--remove", metavar="NAME", help="remove NAME (moderator; repeatable)"),
    ] = None,
    poll: Annotated[
        str | None,
        typer.Option(
            "--poll",
            metavar="QUESTION|OPTION|OPTION…",
            help="write a poll and open it (moderator); '|' separates question and options",
        ),
    ] = None,
    multiple: Annotated[
        bool, typer.Option("--multiple", help="the --poll takes several choices per vote")
    ] = False,
    share_results: Annotated[
        bool, typer.Option("--share-results", help="show the --poll's results to everyone")
    ] = False,
    close_poll: Annotated[
        list[int] | None,
        typer.Option("--close-poll", metavar="N", help="close poll N (moderator; repeatable)"),
    ] = None,
    vote: Annotated[
        str | None,
        typer.Option(
            "--vote",
            metavar="N[,N…]",
            help="vote for these options (numbered from 1) in the first open poll shown",
        ),
    ] = None,
    ask: Annotated[
        list[str] | None,
        typer.Option("--ask", metavar="TEXT", help="ask this question (repeatable)"),
    ] = None,
    anonymous: Annotated[
        bool,
        typer.Option("--anonymous", help="ask without my name to other participants"),
    ] = False,
    upvote: Annotated[
        list[int] | None,
        typer.Option("--upvote", metavar="N", help="upvote question N once shown (repeatable)"),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print every event as one JSON object per line")
    ] = False,
    seconds: Annotated[
        float | None, typer.Option("--seconds", metavar="N", help="leave after N seconds", min=0)
    ] = None,
    zone: Annotated[Zone | None, typer.Option("--zone", help="prefer servers of this zone")] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            metavar="NAME",
            help="join this server of the ticket first (a rejoin may pick another)",
        ),
    ] = None,
    probe_only: Annotated[
        bool, typer.Option("--probe", help="only rank the ticket's servers and print it")
    ] = False,
) -> None:
    """Join a live event with a ticket from the Center."""
    try:
        contents = load_ticket(ticket)
    except TicketSourceError as error:
        typer.echo(f"townhall: {error}", err=True)
        raise typer.Exit(2) from error
    try:
        poll_parts = None if poll is None else tuple(part.strip() for part in poll.split("|"))
        votes = () if vote is None else tuple(int(part) for part in vote.split(","))
    except ValueError as error:
        typer.echo(f"townhall: --vote takes option numbers such as 1 or 1,3: {error}", err=True)
        raise typer.Exit(2) from error
    if poll_parts is not None and len(poll_parts) < 3:
        typer.echo("townhall: --poll is 'QUESTION|OPTION|OPTION', two options at least", err=True)
        raise typer.Exit(2)
    if any(number < 1 for number in votes):
        typer.echo("townhall: --vote numbers options from 1", err=True)
        raise typer.Exit(2)
    options = JoinOptions(
        raise_hand=raise_hand,
        lower_hand=lower_hand,
        give_floor=give_floor,
        mute=tuple(mute or ()),
        remove=tuple(remove or ()),
        say=tuple(say or ()),
        poll=poll_parts,
        multiple=multiple,
        share_results=share_results,
        close_poll=tuple(close_poll or ()),
        vote=votes,
        ask=tuple(ask or ()),
        anonymous=anonymous,
        upvote=tuple(upvote or ()),
        send_audio=send_audio,
        record_audio=record_audio,
        json=as_json,
        seconds=seconds,
        zone=zone,
        server=server,
        probe=probe_only,
    )
    raise typer.Exit(asyncio.run(run_join(contents, options)))

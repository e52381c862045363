"""``townhall join`` end to end: the Typer command and ``run_join`` against real rooms over TLS."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from tests.client.client_support import (
    FAST,
    Issuer,
    RoomServer,
    Watcher,
    dominant_frequency,
    sine_wav,
    wait_for,
)
from townhall.client import (
    ChatReceived,
    FloorChanged,
    HandsChanged,
    Left,
    MediaReceived,
    Participant,
    StreamEnded,
)
from townhall.client.audio import read_wav
from townhall.client.command import JoinOptions, load_ticket, register, run_join
from townhall.live import EventEnded, Outbox
from townhall.ticket import Role as TicketRole
from townhall.wire import ByeReason, Codec


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """A stand-in for the townhall CLI."""

    register(app)
    return app


async def _invoke(*args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = await asyncio.to_thread(runner.invoke, _app(), list(args))
    return result.exit_code, result.stdout, result.stderr


def _end_event(server: RoomServer) -> None:
    server.dispatcher.handle(EventEnded(), 0.0)
    server.pump()


async def test_moderator_commands_and_chat_from_the_command_line_as_json_lines(
    issuer: Issuer, tmp_path: Path
) -> None:
    main = await RoomServer("main", issuer).start()
    ana = issuer.credential("ana", TicketRole.MODERATOR)
    bo, cy = issuer.credential("bo"), issuer.credential("cy")
    main.assign(issuer.assignment())
    ticket_file = tmp_path / "ana.townhall"
    ticket_file.write_bytes(issuer.ticket_bytes(ana, [main.entry()]))
    bo_session = Participant(issuer.ticket(bo, [main.entry()]), settings=FAST)
    cy_session = Participant(issuer.ticket(cy, [main.entry()]), settings=FAST)
    try:
        await bo_session.join()
        await cy_session.join()
        bo_seen, cy_seen = Watcher(bo_session), Watcher(cy_session)
        bo_session.raise_hand()
        command = asyncio.ensure_future(
            _invoke(
                "join",
                str(ticket_file),
                "--json",
                "--say",
                "hello",
                "--say",
                "twice",
                "--give-floor",
                "bo",
                "--mute",
                "bo",
                "--remove",
                "cy",
            )
        )
        await bo_seen.wait(lambda e: isinstance(e, FloorChanged) and e.holder == "bo")
        await bo_seen.wait(lambda e: bo_seen.chats()[-2:] == [("ana", "hello"), ("ana", "twice")])
        await bo_seen.wait(lambda e: bo_session.roster["bo"].muted)
        left = await cy_seen.wait(lambda e: isinstance(e, Left))
        assert left.reason is ByeReason.REMOVED  # type: ignore[union-attr]

        _end_event(main)  # after everything above, on the same connection: the CLI saw it all
        code, out, err = await command
        assert code == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert lines[0]["type"] == "joined" and lines[0]["name"] == "ana"
        assert lines[0]["server"] == "main" and lines[0]["moderator"] is True
        chats = [(x["sender"], x["text"]) for x in lines if x["type"] == "chat"]
        assert chats == [("ana", "hello"), ("ana", "twice")]
        # What a person is shown beside the identity: the ticket's display name.
        assert {x["display_name"] for x in lines if x["type"] == "chat"} == {"Ana"}
        assert lines[0]["display_name"] == "Ana"
        assert any(
            m["name"] == "bo" and m["display_name"] == "Bo"
            for x in lines
            if x["type"] == "roster"
            for m in x["changed"]
        )
        assert {"type": "floor", "holder": "bo"} in lines
        assert any(x["type"] == "hands" and x["raised"] == ["bo"] for x in lines)
        assert any(x["type"] == "roster" and x["left"] == ["cy"] for x in lines)
        assert lines[-1] == {
            "type": "left",
            "reason": "event-ended",
            "message": "the event has ended",
            "by_peer": True,
        }
        await bo_seen.stop()
        await cy_seen.stop()
    finally:
        await main.close()


async def test_media_the_server_dropped_for_us_is_a_media_dropped_json_line(
    issuer: Issuer, tmp_path: Path
) -> None:
    main = await RoomServer("main", issuer).start()
    # A media bound below one frame: the server drops every frame for every listener.
    main.dispatcher.outbox = Outbox(media_limit=64, limit=1024 * 1024)
    ana = issuer.credential("ana")
    bo = issuer.credential("bo", TicketRole.MODERATOR)
    main.assign(issuer.assignment())
    ticket_file = tmp_path / "ana.townhall"
    ticket_file.write_bytes(issuer.ticket_bytes(ana, [main.entry()]))
    bo_session = Participant(issuer.ticket(bo, [main.entry()]), settings=FAST)
    try:
        await bo_session.join()
        bo_session.take_floor()
        stream = await bo_session.open_stream(Codec.OPUS)
        command = asyncio.ensure_future(_invoke("join", str(ticket_file), "--json"))
        await wait_for(lambda: "ana" in bo_session.roster)
        for n in range(5):
            assert bo_session.send_media(stream, b"\xfc" * 160, n * 20_000)
        outbox = main.dispatcher.outbox
        await wait_for(
            lambda: (
                sum(outbox.stats(conn).dropped_frames for conn in main.transports) == 5
                and not outbox.dropping()
            )  # every drop told
        )
        _end_event(main)
        code, out, err = await command
        assert code == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        notices = [x for x in lines if x["type"] == "media-dropped"]
        assert notices, lines
        assert sum(x["audio_frames"] for x in notices) == 5
        assert all(x["video_frames"] == 0 for x in notices)
        assert sum(s["frames"] for x in notices for s in x["streams"]) == 5
        assert {s["stream_id"] for x in notices for s in x["streams"]} == {stream}
        assert not any(x["type"] == "media" for x in lines)  # none got through
    finally:
        await main.close()


async def test_a_tone_sent_from_a_wav_is_recorded_by_another_participant_at_440_hz(
    issuer: Issuer, tmp_path: Path
) -> None:
    main = await RoomServer("main", issuer).start()
    ana = issuer.credential("ana", TicketRole.MODERATOR)
    bo, cy = issuer.credential("bo"), issuer.credential("cy")
    main.assign(issuer.assignment())
    bo_file = tmp_path / "bo.townhall"
    bo_file.write_bytes(issuer.ticket_bytes(bo, [main.entry()]))
    wav = sine_wav(tmp_path / "tone.wav", seconds=1.5, rate=22_050, channels=1)
    recording = tmp_path / "heard.wav"
    cy_out = io.StringIO()
    moderator = Participant(issuer.ticket(ana, [main.entry()]), settings=FAST)
    try:
        await moderator.join()
        ana_seen = Watcher(moderator)
        listener = asyncio.ensure_future(
            run_join(
                issuer.ticket(cy, [main.entry()]),
                JoinOptions(record_audio=recording, json=True),
                out=cy_out,
                err=io.StringIO(),
                settings=FAST,
            )
        )
        await wait_for(lambda: "cy" in moderator.roster)
        sender = asyncio.ensure_future(_invoke("join", str(bo_file), "--send-audio", str(wav)))
        await wait_for(lambda: "bo" in moderator.roster)
        moderator.give_floor("bo")
        await ana_seen.wait(lambda e: isinstance(e, StreamEnded))  # bo sent it all
        heard = ana_seen.of(MediaReceived)
        assert len(heard) >= 25 and {m.owner for m in heard} == {"bo"}

        _end_event(main)
        code, out, err = await sender
        assert code == 0, err
        assert "joined main as Bo (bo)" in out and "floor: bo" in out
        assert await listener == 0
        media = [json.loads(x) for x in cy_out.getvalue().splitlines()]
        assert sum(1 for x in media if x["type"] == "media") == len(heard)
        pcm = read_wav(recording)[0].reshape(-1)
        assert len(pcm) >= 25 * 960
        assert abs(dominant_frequency(pcm) - 440.0) <= 5.0
        await ana_seen.stop()
    finally:
        await main.close()


async def test_hands_from_the_command_line_and_a_quick_rejoin_is_heard(
    issuer: Issuer,
) -> None:
    main = await RoomServer("main", issuer).start()
    ana, bo = issuer.credential("ana", TicketRole.MODERATOR), issuer.credential("bo")
    main.assign(issuer.assignment())
    moderator = Participant(issuer.ticket(ana, [main.entry()]), settings=FAST)
    try:
        await moderator.join()
        seen = Watcher(moderator)
        stop = asyncio.Event()
        out = io.StringIO()
        raising = asyncio.ensure_future(
            run_join(
                issuer.ticket(bo, [main.entry()]),
                JoinOptions(raise_hand=True, say=("me!",)),
                out=out,
                err=io.StringIO(),
                settings=FAST,
                stop=stop,
            )
        )
        await seen.wait(lambda e: isinstance(e, HandsChanged) and e.raised == ("bo",))
        await seen.wait(lambda e: isinstance(e, ChatReceived) and e.text == "me!")
        stop.set()  # as Ctrl-C does
        assert await raising == 0
        assert "joined main as Bo (bo)" in out.getvalue() and "left: normal" in out.getvalue()

        await wait_for(lambda: "bo" not in moderator.roster)
        stop = asyncio.Event()
        lowering = asyncio.ensure_future(
            run_join(
                issuer.ticket(bo, [main.entry()]),
                JoinOptions(raise_hand=True, lower_hand=True, say=("down",)),
                out=io.StringIO(),
                err=io.StringIO(),
                settings=FAST,
                stop=stop,
            )
        )
        # bo's chat follows its raise and lower; the moderator's own echo comes a pass
        # later still, after the roster changes of bo's pass: then bo's hand is final.
        await seen.wait(lambda e: isinstance(e, ChatReceived) and e.text == "down")
        moderator.say("seen")
        await seen.wait(lambda e: isinstance(e, ChatReceived) and e.text == "seen")
        assert "bo" in moderator.roster and not moderator.roster["bo"].hand_raised
        stop.set()
        assert await lowering == 0
        await seen.stop()
    finally:
        await main.close()


async def test_probe_prints_the_ranking_and_bad_tickets_are_refused_clearly(
    issuer: Issuer, tmp_path: Path
) -> None:
    main = await RoomServer("main", issuer).start()
    try:
        ticket_file = tmp_path / "ana.townhall"
        ticket_file.write_bytes(issuer.ticket_bytes(issuer.credential("ana"), [main.entry()]))
        code, out, _ = await _invoke("join", str(ticket_file), "--probe", "--json")
        assert code == 0
        ranking = json.loads(out)
        assert ranking["zone"] == "internal"
        assert ranking["servers"][0]["name"] == "main" and ranking["servers"][0]["reachable"]
        code, out, _ = await _invoke("join", str(ticket_file), "--probe")
        assert code == 0 and "preferred zone: internal" in out and "main" in out

        code, _, err = await _invoke("join", str(ticket_file), "--server", "nowhere")
        assert code == 1 and "no server 'nowhere'" in err
        code, _, err = await _invoke("join", str(ticket_file), "--probe", "--server", "nowhere")
        assert code == 2 and "no server 'nowhere'" in err

        code, _, err = await _invoke("join", str(tmp_path / "missing.townhall"))
        assert code == 2 and "cannot read" in err
        broken = tmp_path / "broken.townhall"
        data = ticket_file.read_bytes()
        broken.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # the signature is wrong
        code, _, err = await _invoke("join", str(broken))
        assert code == 2 and "not a usable ticket" in err
        code, _, err = await _invoke("join", "townhall:join?event=42")
        assert code == 2 and "not a townhall: link to an event" in err
        # The event is not assigned to main: joining fails, and says why.
        code, _, err = await _invoke("join", str(ticket_file))
        assert code == 1 and "event-not-live" in err
        assert load_ticket(str(ticket_file)).event_id == 42
        # A link's ticket comes from the Center (the Gateway fetches it; here a stand-in).
        asked: list[str] = []

        def fetch(link: str) -> bytes:
            asked.append(link)
            return ticket_file.read_bytes()

        link = "townhall://center.test/events/42"
        assert load_ticket(link, fetch=fetch).event_id == 42 and asked == [link]
    finally:
        await main.close()

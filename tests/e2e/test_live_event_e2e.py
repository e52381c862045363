"""A live event end to end on loopback: Center, Controller, three live servers, four people.

The tree (main, child-a, child-dmz) is formed by the Controller from the
Manager's default tree once the event is due; participants get their tickets
from the Center's API and join over TLS, spread over the three servers. They
chat both ways, raise and lower hands, the moderator gives the floor to one
who streams a 440 Hz tone encoded to Opus, the others record what they hear,
and a removed participant cannot come back with the same ticket.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.e2e_support import (
    LiveSystem,
    Watcher,
    chat_settled,
    dominant_frequency,
    running_system,
    ticket_for,
)
from tests.support import Center
from townhall.client.audio import SAMPLE_RATE, Recorder, encode_opus, send_packets
from townhall.client.events import FloorChanged, HandsChanged, Left, StreamStarted
from townhall.client.session import JoinFailed, Participant
from townhall.wire import ByeReason, Codec


@pytest.fixture
def system(center: Center, tmp_path: Path) -> Iterator[LiveSystem]:
    for name in ("pia", "quinn"):
        center.add_user(name)
    prepared = LiveSystem.prepare(center, center.settings.data)
    yield from running_system(prepared)


def schedule_now(center: Center) -> int:
    with center.client("olga") as olga:
        response = olga.post(
            "/api/v1/events",
            json={
                "title": "All hands",
                "starts_at": datetime.now(UTC).isoformat(),
                "duration_minutes": 60,
                "visibility": "public",
            },
        )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def tone(seconds: float, frequency: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.4 * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


async def test_an_event_runs_over_a_three_server_tree(system: LiveSystem, center: Center) -> None:
    event_id = schedule_now(center)
    with center.client("olga") as api:
        live = await system.wait_state(api, event_id, "ready")
    servers = {s["name"]: s for s in live["servers"]}  # type: ignore[union-attr]
    assert set(servers) == {"main", "child-a", "child-dmz"}
    assert servers["child-dmz"]["parent"] == "main"

    placement = {"olga": "main", "mike": "child-a", "pia": "child-dmz", "quinn": "child-a"}
    people = {
        name: Watcher(ticket_for(center, name, event_id), server)
        for name, server in placement.items()
    }
    for watcher in people.values():
        joined = await watcher.participant.join()
        assert joined.server == placement[joined.name]
    for watcher in people.values():
        await watcher.wait_for(lambda w=watcher: len(w.participant.roster) == 4, "everyone")
    assert people["olga"].participant.moderator
    assert not people["mike"].participant.moderator

    # Chat both ways: from a child up and across, from the main server down.
    people["pia"].participant.say("hello from the DMZ")
    people["olga"].participant.say("welcome, everyone")
    expected = {("pia", "hello from the DMZ"), ("olga", "welcome, everyone")}
    for watcher in people.values():
        await watcher.wait_for(lambda w=watcher: expected <= set(w.chat()), "both messages")
    # A private message reaches its recipient (and its sender) only.
    people["mike"].participant.say("just for you", to="pia")
    await people["pia"].wait_for(lambda: ("mike", "just for you") in people["pia"].chat(), "dm")
    await chat_settled(people, "mike")
    assert ("mike", "just for you") not in people["quinn"].chat()
    assert ("mike", "just for you") not in people["olga"].chat()
    for watcher in people.values():
        assert len(watcher.chat()) == len(set(watcher.chat())), "a message came twice"

    # Hands go up and down, and everybody sees it.
    people["pia"].participant.raise_hand()
    people["quinn"].participant.raise_hand()

    def hands(watcher: Watcher) -> tuple[str, ...]:
        changes = [e.raised for e in watcher.events if isinstance(e, HandsChanged)]
        return changes[-1] if changes else ()

    for watcher in people.values():
        await watcher.wait_for(lambda w=watcher: hands(w) == ("pia", "quinn"), "two hands")
    people["pia"].participant.lower_hand()
    for watcher in people.values():
        await watcher.wait_for(lambda w=watcher: hands(w) == ("quinn",), "pia's hand down")

    # The moderator gives the floor to mike, who streams a 440 Hz tone from his server.
    people["olga"].participant.give_floor("mike")
    for watcher in people.values():
        await watcher.wait_for(
            lambda w=watcher: any(
                isinstance(e, FloorChanged) and e.holder == "mike" for e in w.events
            ),
            "mike holding the floor",
        )
    mike = people["mike"].participant
    stream_id = await mike.open_stream(Codec.OPUS)
    listeners = [people[name] for name in ("olga", "pia", "quinn")]
    for watcher in listeners:
        await watcher.wait_for(
            lambda w=watcher: any(isinstance(e, StreamStarted) for e in w.events), "the stream"
        )
    packets = encode_opus(tone(2.0))
    await send_packets(lambda packet, ts: mike.send_media(stream_id, packet, ts), packets)
    for watcher in listeners:
        await watcher.wait_for(
            lambda w=watcher: len(w.media) >= len(packets) * 0.9, "most of the tone", timeout=10
        )
        recorder = Recorder(watcher.media[0][1])
        for frame, arrived in watcher.media:
            recorder.feed(frame, arrived)
        heard = dominant_frequency(recorder.pcm(), SAMPLE_RATE)
        assert abs(heard - 440) <= 5, f"{watcher.participant.name} heard {heard} Hz"
    assert all(f.stream_id == stream_id for f, _ in people["olga"].media)

    # A removed participant is gone, and its ticket no longer opens the event anywhere.
    removed_ticket = people["quinn"].participant.ticket
    people["olga"].participant.remove("quinn")
    await people["quinn"].wait_for(lambda: people["quinn"].left() is not None, "removal")
    assert people["quinn"].left() == Left(ByeReason.REMOVED, people["quinn"].left().message, True)
    for watcher in (people["olga"], people["mike"], people["pia"]):
        await watcher.wait_for(lambda w=watcher: "quinn" not in w.participant.roster, "quinn gone")
    for server in ("child-a", "main", "child-dmz"):
        again = Participant(removed_ticket, server=server)
        with pytest.raises(JoinFailed):
            await again.join()

    for name in ("olga", "mike", "pia"):
        await people[name].participant.leave()

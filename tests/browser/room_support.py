"""Support for the room tests: a two-server tree as processes, a Python participant in a thread.

The tree (``main`` and its child ``child-a``) is registered in the Manager and run as
``townhall controller`` and ``townhall live`` processes, as tests/e2e does; their
certificates come from the development CA, which the test's Chromium trusts through its
NSS db. Playwright's sync API owns the test's thread, so the Python participant
(``townhall.client``) runs its asyncio loop in a thread of its own (``PythonPeer``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from playwright.sync_api import BrowserContext, Page

from tests.e2e.e2e_support import LiveSystem, Watcher, ticket_for
from tests.support import Center, free_port
from townhall.client.audio import Recorder, encode_opus, send_packets
from townhall.controller.identity import issue_local_identity
from townhall.pki import DevCA
from townhall.wire import Codec

T = TypeVar("T")
TREE = (("main", "internal", None), ("child-a", "internal", "main"))
PASSWORD = "correct horse"


def prepare_two_servers(center: Center, data: Path, live: str = "") -> LiveSystem:
    """``live``: lines of the ``[live]`` section of the servers' townhall.toml."""
    ports = {name: free_port() for name, _, _ in TREE}
    ports["controller"] = free_port()
    (data / "townhall.toml").write_text(
        "[center]\n"
        f'database_url = "{center.settings.database_url}"\n'
        f'base_url = "{center.url}"\n'
        "[controller]\n"
        f'listen = "127.0.0.1:{ports["controller"]}"\n'
        "tick_seconds = 0.3\n"
        "report_seconds = 0.5\n"
        "keepalive_seconds = 2\n" + (f"[live]\n{live}" if live else "")
    )
    with center.client("ada") as admin:
        for name, zone, _ in TREE:
            server = {"name": name, "host": "127.0.0.1", "port": ports[name], "zone": zone}
            response = admin.post("/manager/api/v1/servers", json=server)
            assert response.status_code == 201, response.text
        nodes = [{"server": name, "parent": parent} for name, _, parent in TREE]
        tree = admin.post("/manager/api/v1/trees", json={"name": "room", "nodes": nodes})
        assert tree.status_code == 201, tree.text
        made = admin.post(f"/manager/api/v1/trees/{tree.json()['id']}/default")
        assert made.status_code == 200, made.text
    for name, _, _ in TREE:
        issue_local_identity(center.settings, name, ["127.0.0.1"])
    return LiveSystem(center, data, ports)


def run_two_servers(system: LiveSystem) -> Iterator[LiveSystem]:
    for name in ("controller", *(name for name, _, _ in TREE)):
        system.start(name)
    try:
        yield system
    finally:
        system.stop_all()


def schedule_now(center: Center, username: str = "olga") -> int:
    with center.client(username) as client:
        response = client.post(
            "/api/v1/events",
            json={
                "title": "Town meeting",
                "starts_at": datetime.now(UTC).isoformat(),
                "duration_minutes": 60,
                "visibility": "public",
            },
        )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def dev_ca_file(center: Center) -> Path:
    return DevCA.ensure(center.settings.ca_dir).cert_file


def wait_until(check: Callable[[], object], what: str, timeout: float = 30, *pages: Page) -> None:
    """Poll ``check``; on timeout, say what each page showed."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}\n" + "\n".join(map(describe, pages)))
        time.sleep(0.1)


def describe(page: Page) -> str:
    shown = page.evaluate(
        "() => [document.getElementById('status')?.textContent,"
        " document.getElementById('problems')?.textContent,"
        " JSON.stringify(window.townhallRoom?.snapshot())]"
    )
    console = getattr(page, "townhall_console", [])
    return f"{page.url}: {shown} console: {console[-20:]}"


def record_console(page: Page) -> Page:
    lines: list[str] = []
    page.townhall_console = lines  # type: ignore[attr-defined]
    page.on("console", lambda message: lines.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: lines.append(f"error: {error}"))
    return page


def sign_in(page: Page, center: Center, username: str, next_path: str) -> None:
    """Through the Center's own sign-in form, as a person does."""
    page.goto(f"{center.url}/login?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{center.url}{next_path}")


def live_event(system: LiveSystem, center: Center, organizer: str = "olga") -> int:
    """An event that starts now, once the Controller has formed its tree."""
    event_id = schedule_now(center, organizer)
    with center.client(organizer) as api:
        wait_until(lambda: system.live(api, event_id)["state"] == "ready", "the tree", 60)
    return event_id


def open_room(
    context: BrowserContext, center: Center, username: str, event_id: int, server: str
) -> Page:
    """``username`` signed in, on the event's room page, joined to ``server``."""
    page = record_console(context.new_page())
    sign_in(page, center, username, f"/events/{event_id}")
    page.goto(f"{center.url}/events/{event_id}/room?server={server}")
    wait_until(lambda: room_state(page)["server"] is not None, "joined", 30, page)
    return page


def room_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate("() => window.townhallRoom.snapshot()")
    return state


class PythonPeer:
    """A ``townhall.client.Participant`` on its own event loop thread."""

    def __init__(self, center: Center, username: str, event_id: int, server: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        ticket = ticket_for(center, username, event_id)
        self.watcher: Watcher = self.call(self._make(ticket, server))

    @staticmethod
    async def _make(ticket: Any, server: str) -> Watcher:
        return Watcher(ticket, server)

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def do(self, action: Callable[[], object]) -> None:
        async def run() -> None:
            action()

        self.call(run())

    def chat(self) -> list[tuple[str, str]]:
        return list(self.watcher.chat())

    def start_tone(self, pcm: Any) -> concurrent.futures.Future[None]:
        """Open an Opus stream and send ``pcm`` in real time; the future ends with it."""
        participant = self.watcher.participant

        async def run() -> None:
            stream_id = await participant.open_stream(Codec.OPUS)
            packets = encode_opus(pcm)
            await send_packets(
                lambda packet, ts: participant.send_media(stream_id, packet, ts), packets
            )

        return asyncio.run_coroutine_threadsafe(run(), self.loop)

    def heard(self, since: int = 0) -> Any:
        media = list(self.watcher.media)[since:]
        if not media:
            return None
        recorder = Recorder(media[0][1])
        for frame, arrived in media:
            recorder.feed(frame, arrived)
        return recorder.pcm()

    def close(self) -> None:
        async def leave() -> None:
            if self.watcher.participant.left is None:
                await self.watcher.participant.leave()

        try:
            self.call(leave(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)

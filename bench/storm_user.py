"""Load generator of bench/storm.py: simulated users who fetch the event page and a
ticket from the Center, then join a live server and wait to hear the speaker.

One process of the generator; ``bench/storm.py`` starts several (processes, so
both cores work) and talks to each over stdin/stdout, one JSON object a line.
Each user, in order:

1. ``GET /events/{id}`` (the portal's event page, HTML) and
   ``POST /api/v1/events/{id}/ticket`` (the join ticket, as the desktop
   participant gets it), both with the single sign-on header
   (``X-Remote-User: <name>``) sent from loopback, which the bench's Center
   trusts as its reverse proxy (docs/sso.md); the Center creates the account
   on first sight (``auto_create_users``). The requests go over a few
   keep-alive connections per process (``http_clients``), as a reverse proxy
   would hold them.
2. Opens the ticket (``townhall.ticket.open_ticket``) and connects to one of
   its live servers over TLS with the wire protocol (``Hello``, ``Auth`` with
   the sealed credential), using bench/fanout_loadgen.py's lean client.
   The servers of the internal zone are tried in a random order (a full
   one refuses with ``server-full`` and the next is tried at once, as the
   real participant falls back down its ranking). The real participant
   probes every server and ranks them by zone, load and round trip
   (``townhall.client.selection``), which on loopback, with equal zones and
   round trips, comes down to much the same spread; the probes' extra
   handshakes are not made here.
3. Waits for the first AUDIO frame of the speaker, who streams throughout.

A user whose join fails (refused, closed, timed out) tries again after a
short pause, as the real participant rejoins, until the storm's deadline.

Protocol with bench/storm.py (JSON lines)::

    > {"event": "ready"}
    < {"cmd": "storm", "t0": t0}             start at t0 (time.monotonic())
    > {"event": "done", ...}                 per-user times, failures by reason
    < {"cmd": "exit"}                         close every connection and exit

Connections stay open between ``done`` and ``exit`` so that the bench can read
each live server's memory with every listener connected.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import socket
import sys
import time
from collections import Counter
from typing import Any

from fanout_loadgen import Generator, GroupStats, Peer

from center import response_head  # bench/center.py, beside this file
from townhall.ticket import TicketError, open_ticket
from townhall.wire.names import Zone

HTTP_TIMEOUT = 30.0
RETRY_PAUSE = 0.5  # seconds before a failed join is tried again


class HttpError(Exception):
    pass


class HttpConnection:
    """One HTTP/1.1 keep-alive connection: a request as bytes in, (status, body) out."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, data: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.get_extra_info("socket").setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
            )
        assert self.reader is not None and self.writer is not None
        try:
            self.writer.write(data)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status, length, chunked, close = response_head(head)
            if chunked:
                parts = []
                while True:
                    size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    parts.append((await self.reader.readexactly(size + 2))[:size])
                    if size == 0:
                        break
                body = b"".join(parts)
            elif length >= 0:
                body = await self.reader.readexactly(length)
            else:
                body = await self.reader.read()
                close = True
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            await self.close()
            raise HttpError(type(e).__name__) from e
        if close:
            await self.close()
        return status, body


class Listener(Peer):
    """fanout_loadgen's connection, noting when its first audio frame arrives."""

    heard: asyncio.Future[float]

    def count_one(self, ts: int, received_us: int) -> None:
        if not self.heard.done():
            self.heard.set_result(time.monotonic())
        super().count_one(ts, received_us)

    def count_many(self, ts: Any, received_us: int) -> None:
        if not self.heard.done():
            self.heard.set_result(time.monotonic())
        super().count_many(ts, received_us)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.heard.done():
            self.heard.set_exception(ConnectionError(f"closed: {exc}"))
            self.heard.exception()  # marks it retrieved: nobody may be waiting


class Storm:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.event_id: int = spec["event_id"]
        host, port = spec["center"].rsplit(":", 1)
        self.center = (host, int(port))
        self.users: list[str] = spec["users"]
        self.rng = random.Random(spec.get("seed", 1))
        self.gen = Generator(
            {
                "system": "townhall",
                "frame_bytes": spec["frame_bytes"],
                "tls": True,
                "ca": spec["ca"],
            }
        )
        self.join_slots = asyncio.Semaphore(spec["join_concurrency"])
        self.errors: Counter[str] = Counter()
        self.records: list[dict[str, Any]] = []
        self.peers: list[Listener] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def _requests(self, user: str) -> tuple[bytes, bytes]:
        host = f"{self.center[0]}:{self.center[1]}"
        common = f"Host: {host}\r\nX-Remote-User: {user}\r\n"
        page = f"GET /events/{self.event_id} HTTP/1.1\r\n{common}\r\n".encode()
        ticket = (
            f"POST /api/v1/events/{self.event_id}/ticket HTTP/1.1\r\n{common}"
            "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        ).encode()
        return page, ticket

    async def http_worker(self, queue: list[str], deadline: float) -> None:
        connection = HttpConnection(*self.center)
        try:
            while queue and time.monotonic() < deadline:
                user = queue.pop()
                record: dict[str, Any] = {"user": user}
                self.records.append(record)
                page, ticket_request = self._requests(user)
                try:
                    started = time.monotonic()
                    status, _ = await asyncio.wait_for(connection.request(page), HTTP_TIMEOUT)
                    record["page"] = [started, time.monotonic()]
                    if status != 200:
                        self.errors[f"event page: HTTP {status}"] += 1
                        continue
                    started = time.monotonic()
                    status, body = await asyncio.wait_for(
                        connection.request(ticket_request), HTTP_TIMEOUT
                    )
                    record["ticket"] = [started, time.monotonic()]
                except (HttpError, TimeoutError, OSError) as error:
                    await connection.close()
                    self.errors[f"Center: {type(error).__name__} {error}"[:120]] += 1
                    continue
                if status != 200:
                    self.errors[f"ticket: HTTP {status} {body[:80]!r}"] += 1
                    continue
                task = asyncio.create_task(self.join(record, body, deadline))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        finally:
            await connection.close()

    async def join(self, record: dict[str, Any], data: bytes, deadline: float) -> None:
        try:
            contents = open_ticket(data, center_public_key=None, now=int(time.time()))
        except TicketError as error:
            self.errors[f"ticket unreadable: {error}"] += 1
            return
        servers = [s for s in contents.servers if s.zone is Zone.INTERNAL] or list(contents.servers)
        order = self.rng.sample(servers, len(servers))
        attempts = 0
        while time.monotonic() < deadline:
            server = order[attempts % len(order)]
            attempts += 1
            record["attempts"] = attempts
            record["server"] = server.name
            spec = {
                "address": f"{server.host}:{server.port}",
                "ticket": base64.b64encode(contents.sealed_credential).decode(),
                "group": server.name,
            }
            async with self.join_slots:
                if time.monotonic() >= deadline:
                    self.errors["the deadline came while waiting to connect"] += 1
                    return
                started = time.monotonic()
                record.setdefault("connect", started)
                try:
                    peer = await asyncio.wait_for(self.open(spec), deadline - time.monotonic())
                except (TimeoutError, OSError, ConnectionError) as error:
                    self.errors[f"join: {type(error).__name__}: {error}"[:120]] += 1
                    if "server-full" not in str(error):  # a full server: the next one at once
                        await asyncio.sleep(RETRY_PAUSE)
                    continue
            record["joined"] = time.monotonic()
            self.peers.append(peer)
            try:
                record["heard"] = await asyncio.wait_for(
                    peer.heard, max(0.1, deadline - time.monotonic())
                )
            except TimeoutError:
                self.errors["joined, heard nothing before the deadline"] += 1
            except ConnectionError as error:
                self.errors[f"closed before hearing: {error}"[:120]] += 1
            return

    async def open(self, spec: dict[str, Any]) -> Listener:
        loop = asyncio.get_running_loop()
        stats = self.gen.groups.setdefault(spec["group"], GroupStats())
        host, port = spec["address"].rsplit(":", 1)

        def factory() -> Listener:
            peer = Listener(self.gen, spec, speaker=False, stats=stats)
            peer.heard = loop.create_future()
            return peer

        _, peer = await loop.create_connection(factory, host, int(port))
        try:
            await peer.joined
        except BaseException:
            if peer.transport is not None:
                peer.transport.abort()
            raise
        return peer

    async def run(self, t0: float) -> dict[str, Any]:
        await asyncio.sleep(max(0.0, t0 - time.monotonic()))
        deadline = t0 + float(self.spec["seconds"])
        queue = list(reversed(self.users))
        await asyncio.gather(
            *(self.http_worker(queue, deadline) for _ in range(self.spec["http_clients"]))
        )
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
        for peer in self.peers:  # a later close makes a heard future fail: nobody waits
            if not peer.heard.done():
                peer.heard.cancel()
        servers = Counter(str(r.get("server")) for r in self.records if "joined" in r)
        return {
            "event": "done",
            "records": self.records,
            "errors": dict(self.errors),
            "connected_by_server": dict(servers),
            "still_open": sum(1 for p in self.peers if not p.closed),
            "not_started": len(queue),
        }

    def close(self) -> None:
        for peer in self.peers:
            if peer.transport is not None and not peer.closed:
                peer.transport.abort()


async def serve(spec: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    storm = Storm(spec)
    sys.stdout.write(json.dumps({"event": "ready"}) + "\n")
    sys.stdout.flush()
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            command = json.loads(line)
            if command["cmd"] == "storm":
                result = await storm.run(command["t0"])
                sys.stdout.write(json.dumps(result) + "\n")
                sys.stdout.flush()
            elif command["cmd"] == "exit":
                return
    finally:
        storm.close()


def main() -> int:
    with open(sys.argv[1]) as file:
        spec = json.load(file)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(spec))
    else:
        uvloop.run(serve(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A live server in a connection flood: bounded, and the real participants still get in.

Real TLS and real TCP on loopback: idle connections that never start TLS
come from other loopback addresses (127.0.0.2 and up), as an attacker's
would, while participants join from 127.0.0.1. The flood is bounded and
closes itself at the end of each test.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.live.live_support import Center
from tests.live.server_support import HOST, Pki, joined, running, sealed
from townhall.live import ServerRole
from townhall.live.limits import ACCEPT_ERROR, quiet_accept_errors
from townhall.live.server import LiveServer


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def assign_main(server: LiveServer, issuer: Center) -> None:
    server.assign(issuer.assignment(ServerRole.MAIN), issuer.signing_key.public_key())


@asynccontextmanager
async def idle_flood(
    port: int, count: int, sources: list[str]
) -> AsyncIterator[list[socket.socket]]:
    """``count`` TCP connections, spread over ``sources``, that never say a word."""
    loop = asyncio.get_running_loop()
    sockets: list[socket.socket] = []

    async def one(source: str) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sockets.append(sock)
        sock.setblocking(False)
        sock.bind((source, 0))
        try:
            await loop.sock_connect(sock, (HOST, port))
        except OSError:
            pass  # refused or reset once the server cut it: that is the point

    try:
        for start in range(0, count, 100):
            batch = range(start, min(count, start + 100))
            await asyncio.gather(*(one(sources[n % len(sources)]) for n in batch))
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


async def test_a_participant_joins_during_a_flood_of_idle_connections(
    pki: Pki, issuer: Center
) -> None:
    async with running(pki, "main", max_connections=512, max_pending_per_address=50) as main:
        assign_main(main, issuer)
        context = pki.client_ssl()
        ana = await joined(main.port, context, "ana", sealed(issuer, "ana"))
        sources = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]

        async def flood() -> None:
            async with idle_flood(main.port, 1_100, sources):
                # 1,100 idle connections from four addresses: at most 50 each are kept (+ ana, bo)
                assert main.counters().connections <= 4 * 50 + 2
                await bo_in.wait()

        bo_in = asyncio.Event()
        flooding = asyncio.create_task(flood())
        try:
            await asyncio.sleep(0)  # the flood is under way
            bo = await joined(main.port, context, "bo", sealed(issuer, "bo"))
            bo_in.set()
            ana.chat("through the flood")
            for client in (ana, bo):
                await client.wait_for(
                    lambda c=client: ("ana", "through the flood") in c.public_chat(),  # type: ignore[misc]
                    "the chat",
                )
            await flooding
        finally:
            bo_in.set()
            flooding.cancel()
        assert ana.joined and bo.joined


async def test_when_full_the_oldest_unauthenticated_connections_go_first(
    pki: Pki, issuer: Center
) -> None:
    async with running(pki, "main", max_connections=64, max_pending_per_address=1_000) as main:
        assign_main(main, issuer)
        context = pki.client_ssl()
        ana = await joined(main.port, context, "ana", sealed(issuer, "ana"))
        async with idle_flood(main.port, 200, ["127.0.0.2"]):
            assert main.counters().connections <= 64
            # full of idle connections: a newcomer pushes out the oldest of them
            bo = await joined(main.port, context, "bo", sealed(issuer, "bo"))
            assert main.counters().connections <= 64
            ana.chat("still here")
            await bo.wait_for(lambda: ("ana", "still here") in bo.public_chat(), "ana's chat")
        assert ana.joined and bo.joined


def test_start_raises_the_open_file_limit_to_what_the_bounds_need(tmp_path: Path) -> None:
    script = """
import asyncio, resource, ssl
from townhall.live.server import LiveServer

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

async def main():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server = LiveServer(name="main", host="127.0.0.1", port=0, server_ssl=context,
                        upstream_ssl=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
                        max_connections=4000)
    await server.start()
    print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], server.max_connections)
    await server.close()

asyncio.run(main())
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    soft, allowed = map(int, result.stdout.split())
    assert soft >= 4000 and allowed == 4000


async def test_accept_failures_are_logged_once_a_minute_not_once_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    try:
        quiet_accept_errors(loop)
        quiet_accept_errors(loop)  # a second server on the loop changes nothing
        with caplog.at_level(logging.ERROR, logger="townhall.live.limits"):
            for _ in range(1_000):
                loop.call_exception_handler(
                    {"message": ACCEPT_ERROR, "exception": OSError(24, "Too many open files")}
                )
        assert len(caplog.records) == 1
    finally:
        loop.set_exception_handler(previous)

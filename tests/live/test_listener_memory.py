"""What a connected listener costs a live server in memory, and that it stays small.

Real TLS on loopback, one in-process ``LiveServer``. The server's own Python
allocations (those made in ``townhall/live``, traced with ``tracemalloc``) are
measured before and after 40 listeners join; the join storm's target is under
50 KiB a listener in all (bench/storm.py, where OpenSSL's share shows too), and
the Python part of it must stay a small share. Every listener then says a line
at once and everyone hears every line: the connections share one read buffer,
and no byte of one may reach another.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from tests.live.live_support import Center
from tests.live.server_support import Pki, joined, running, sealed
from townhall.live import ServerRole
from townhall.ticket import Role as TicketRole

LISTENERS = 40
# The Python heap a listener may hold on the server (roster entry, outbox, wire state...):
# about 2 KiB measured; a per-connection 16 KiB read buffer, as before issue 14, fails it.
MAX_PYTHON_BYTES_PER_LISTENER = 8 * 1024


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def live_heap_bytes() -> int:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, "*townhall/live/*")]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


async def test_listeners_cost_the_server_little_memory_and_never_share_bytes(
    pki: Pki,
) -> None:
    issuer = Center()
    issuer.credential("ana", TicketRole.MODERATOR)
    names = [f"listener{n:02d}" for n in range(LISTENERS)]
    for name in names:
        issuer.credential(name)
    async with running(pki, "main") as main:
        main.assign(issuer.assignment(ServerRole.MAIN), issuer.signing_key.public_key())
        context = pki.client_ssl()
        ana = await joined(main.port, context, "ana", sealed(issuer, "ana"))
        tracemalloc.start()
        try:
            before = live_heap_bytes()
            listeners = [
                await joined(main.port, context, name, sealed(issuer, name)) for name in names
            ]
            await ana.wait_for(lambda: len(ana.roster) == LISTENERS + 1, "everyone in the roster")
            per_listener = (live_heap_bytes() - before) / LISTENERS
        finally:
            tracemalloc.stop()
        assert per_listener < MAX_PYTHON_BYTES_PER_LISTENER, per_listener

        for listener in listeners:
            listener.chat(f"hello from {listener.label}")
        expected = {(name, f"hello from {name}") for name in names}
        for client in [ana, *listeners]:
            await client.wait_for(
                lambda c=client: expected <= set(c.public_chat()),  # type: ignore[misc]
                "every line",
            )

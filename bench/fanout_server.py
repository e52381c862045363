"""The Townhall side of bench/fanout.py: one ``LiveServer`` in its own process.

bench/fanout.py runs this script once per live server of a run (the main
server, and two children for the tree), so the CPU time and memory it reads
from ``/proc/<pid>`` are that server's alone. The script reads a JSON file
(name, certificate, the bench event's Center key, event key and credentials
list, the server's place in the tree), builds a ``LiveServer`` on a free
loopback port, assigns it the event as the Controller would, prints
``{"port": N}`` and then one ``{"upstream": ..., "children": [...]}`` line per
status change on stdout, and runs until SIGTERM or SIGINT, when it closes the
server.

With ``"tls": false`` the server runs with a pass-through instead of its TLS
layer (``PlainSession``, a bench-only stand-in for ``tls.TLSSession``), so
that plain-TCP figures compare with redis and NATS over plain TCP; Townhall
itself always speaks TLS. The event loop is asyncio's own (the live server
runs on it in production).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from townhall.live.events import AssignmentReceived, ServerRole
from townhall.live.server import LiveServer, _Conn
from townhall.live.tls import ALPN, server_ssl_context, upstream_ssl_context


class PlainSession:
    """``TLSSession``'s interface without TLS: what is read is the plaintext, as it is.

    The shell treats the first bytes read as the end of a handshake; they are
    kept and given back by the next ``decrypt``.
    """

    __slots__ = ("_held", "secure")

    def __init__(self) -> None:
        self.secure = False
        self._held = b""

    def handshake(self, data: bytes) -> bytes:
        self.secure = True
        self._held += data
        return b""

    def decrypt(self, data: bytes) -> tuple[bytes, bool]:
        if self._held:
            data, self._held = self._held + data, b""
        return data, False

    def encrypt(self, data: bytes) -> bytes:
        return data

    def record_writer(self) -> tuple[None, None]:
        return None, None

    def pending(self) -> bytes:
        return b""

    def close_notify(self) -> bytes:
        return b""

    def alpn_ok(self) -> bool:
        return self.secure

    def alpn(self) -> str | None:
        return ALPN if self.secure else None


class PlainLiveServer(LiveServer):
    """A ``LiveServer`` whose accepted connections skip TLS (bench only; no links Up)."""

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        port: int = self.port  # type: ignore[has-type]
        self._server = await loop.create_server(
            lambda: _Conn(self, PlainSession()),  # type: ignore[arg-type]
            self.host,
            port,
            backlog=1024,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def serve(config: dict[str, Any]) -> None:
    name = config["name"]
    server_class = LiveServer if config["tls"] else PlainLiveServer
    server: LiveServer | None = None

    def status_changed() -> None:
        if server is None:
            return
        for status in server.status():
            say({"upstream": status.upstream, "children": list(status.children)})

    server = server_class(
        name=name,
        host="127.0.0.1",
        port=0,
        server_ssl=server_ssl_context(config["cert"], config["key"]),
        upstream_ssl=upstream_ssl_context(config["ca"], config["cert"], config["key"]),
        on_status_change=status_changed,
        # the load generator's thousand joins all come from 127.0.0.1 at once
        max_pending_per_address=100_000,
    )
    await server.start()
    role = ServerRole(config["role"])
    assignment = AssignmentReceived(
        event_id=config["event_id"],
        title=config["title"],
        role=role,
        credentials=config["credentials"],
        event_keys=tuple(bytes.fromhex(key) for key in config["event_keys"]),
        parent=config["parent"] if role is ServerRole.CHILD else None,
        link_secret=config["link_secret"] if role is ServerRole.CHILD else None,
        children=config["children"],
    )
    center_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(config["center_public_key"]))
    server.assign(assignment, center_key)
    say({"port": server.port})
    status_changed()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.close()


def main() -> int:
    config = json.loads(Path(sys.argv[1]).read_text())
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())

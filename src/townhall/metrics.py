"""Serving Prometheus metrics from the Controller and the live servers: a small, bounded door.

``MetricsServer`` answers ``GET /metrics`` on an address of its own
(``[controller] metrics_listen``, ``[live] metrics_listen``) with what a
``prometheus_client`` registry collects at that moment, and nothing else. The
port is a network input like any other: a request head is read up to
``MAX_REQUEST_BYTES`` within ``REQUEST_TIMEOUT`` seconds, at most
``MAX_CLIENTS`` scrapes are served at once (more are closed unanswered), a
request with a body, another method or another path gets its 4xx and the
connection is closed; no request is ever kept alive. ``serving_in_thread``
runs one beside a program that has no event loop of its own to lend (the
process that supervises the Center's web workers). ``token_matches``
compares bearer tokens in constant time (the Center's ``/metrics``).
docs/metrics.md lists the metrics and the settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from townhall.config import parse_listen

__all__ = ["MAX_REQUEST_BYTES", "MetricsServer", "serving_in_thread", "token_matches"]

log = logging.getLogger("townhall.metrics")

MAX_REQUEST_BYTES: Final = 4096  # a scrape's request head is a few hundred bytes
REQUEST_TIMEOUT: Final = 5.0  # seconds to send the whole head, and to take the answer
MAX_CLIENTS: Final = 16


def token_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (constant time)."""
    if not token or not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


class MetricsServer:
    """``GET /metrics`` over plain HTTP/1.1 on ``listen``, one answer per connection."""

    def __init__(
        self, listen: str, registry: CollectorRegistry, *, request_timeout: float = REQUEST_TIMEOUT
    ) -> None:
        self.host, self.port = parse_listen(listen)
        self._registry = registry
        self._timeout = request_timeout
        self._server: asyncio.Server | None = None
        self._clients = 0

    async def start(self) -> None:
        """Listen; ``self.port`` is then the port bound (give 0 for any)."""
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=MAX_REQUEST_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._clients >= MAX_CLIENTS:
            writer.transport.abort()
            return
        self._clients += 1
        try:
            status, body, content_type = await self._answer(reader)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await asyncio.wait_for(writer.drain(), self._timeout)
        except (OSError, TimeoutError):
            pass
        finally:
            self._clients -= 1
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), self._timeout)

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[str, bytes, str]:
        text = "text/plain; charset=utf-8"
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self._timeout)
        except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, ValueError):
            return "431 Request Header Fields Too Large", b"request head too large\n", text
        except TimeoutError:
            return "408 Request Timeout", b"request head not received in time\n", text
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return "400 Bad Request", b"not an HTTP/1.x request\n", text
        method, target, _ = parts
        for line in header_lines:
            name, _, value = line.partition(":")
            has_body = value.strip() not in ("", "0")
            if name.strip().lower() in ("content-length", "transfer-encoding") and has_body:
                return "413 Content Too Large", b"a scrape has no body\n", text
        if method != "GET":
            return "405 Method Not Allowed", b"only GET /metrics\n", text
        if target.split("?", 1)[0] != "/metrics":
            return "404 Not Found", b"only GET /metrics\n", text
        return "200 OK", generate_latest(self._registry), CONTENT_TYPE_PLAIN_0_0_4


@contextlib.contextmanager
def serving_in_thread(listen: str, registry: CollectorRegistry) -> Iterator[MetricsServer]:
    """A ``MetricsServer`` on ``listen``, on an event loop of its own in a daemon thread,
    until the block ends. Raises ``OSError`` here if the address cannot be bound."""
    server = MetricsServer(listen, registry)
    loop = asyncio.new_event_loop()
    started: list[BaseException | None] = []
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            started.append(error)
            ready.set()
            loop.close()
            return
        started.append(None)
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(server.close())
            loop.close()

    thread = threading.Thread(target=run, name=f"metrics {listen}", daemon=True)
    thread.start()
    ready.wait()
    if started[0] is not None:
        thread.join()
        raise started[0]
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=REQUEST_TIMEOUT * 2)

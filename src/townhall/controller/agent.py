"""The live server's end of the control link: ``ControllerAgent``.

It keeps a mutual-TLS link to the Controller, reconnecting with
``live.backoff.Backoff`` after any failure, hands what the Controller says to
the live server (``assign``, ``end``) and reports the server's events back
(``status``) whenever they change and every ``report_seconds``. The live
server is only known by the duck-typed ``LiveServerLike`` below, so this
module does not import ``townhall.live.server``. Bytes are ``link``'s.
docs/controller.md, "The live server's side", has more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from townhall.config import parse_listen
from townhall.controller import link
from townhall.live.backoff import Backoff
from townhall.live.events import AssignmentReceived, ServerRole
from townhall.pki import CONTROLLER_USAGE, is_controller_certificate
from townhall.wire.messages import Poll, Question
from townhall.wire.names import Upstream

__all__ = [
    "ControllerAgent",
    "EventStatusLike",
    "LiveServerLike",
    "NotTheController",
    "agent_ssl_context",
]

log = logging.getLogger("townhall.controller.agent")

READ_SIZE: Final = 256 * 1024
# At most one round of polls-and-questions Records a second: a burst of votes or upvotes
# costs one Record, not one per vote; the last second of an ending event may go unsent.
RECORD_INTERVAL: Final = 1.0


class RemovedLike(Protocol):
    """What the agent reads of ``townhall.live.floor.Removed``."""

    @property
    def credential_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def by_credential_id(self) -> str: ...
    @property
    def by_name(self) -> str: ...


class VisitLike(Protocol):
    """What the agent reads of ``townhall.live.attendance.Visit``."""

    @property
    def credential_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def joined_at(self) -> float: ...
    @property
    def left_at(self) -> float | None: ...


class EventStatusLike(Protocol):
    """What the agent reads of ``townhall.live.server.EventStatus``."""

    @property
    def event_id(self) -> int: ...
    @property
    def role(self) -> str: ...
    @property
    def upstream(self) -> str: ...
    @property
    def participants(self) -> int: ...
    @property
    def children(self) -> tuple[str, ...]: ...
    @property
    def removed(self) -> Sequence[RemovedLike]: ...
    @property
    def attendance(self) -> Sequence[VisitLike]: ...
    @property
    def attendance_missed(self) -> int: ...
    @property
    def polls(self) -> Sequence[Poll]: ...
    @property
    def questions(self) -> Sequence[Question]: ...
    @property
    def record_version(self) -> int: ...


class LiveServerLike(Protocol):
    """What the agent uses of ``townhall.live.server.LiveServer``."""

    def assign(self, assignment: AssignmentReceived, center_public_key: Ed25519PublicKey) -> None:
        """Create the event's room, or update it."""

    def end(self, event_id: int) -> None:
        """End the event's room."""

    def status(self) -> Sequence[EventStatusLike]:
        """Every event held now."""

    def load(self) -> tuple[int, int]:
        """(participants, capacity)."""


class NotTheController(OSError):
    """The peer's certificate chains to the CA and names the host, but is not the
    Controller's: it lacks ``pki.CONTROLLER_USAGE`` (a live server's, say)."""


def agent_ssl_context(ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    """The live server's side of the link: verify the Controller, present our certificate.

    The chain and the host name are TLS's; that the certificate is the
    Controller's (``CONTROLLER_USAGE``) the agent checks once the handshake is done.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=ca_file)
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols([link.ALPN])
    return context


def assignment_of(message: link.Assign) -> tuple[AssignmentReceived, Ed25519PublicKey]:
    """The live server's view of an ``Assign``, and the Center's key that came with it."""
    assignment = AssignmentReceived(
        event_id=message.event_id,
        title=message.title,
        role=ServerRole.MAIN if message.role == "main" else ServerRole.CHILD,
        credentials=message.credentials,
        event_keys=tuple(message.event_keys),
        revoked=frozenset(message.revoked),
        parent=message.parent,
        link_secret=message.link_secret,
        children=message.children,
    )
    return assignment, Ed25519PublicKey.from_public_bytes(message.center_key)


class _LinkClosed(Exception):
    """The Controller said Bye, or the stream ended."""


class ControllerAgent:
    """Keeps the control link of ``server`` to the Controller at ``address`` (host:port).

    Give ``status_changed`` to the live server as its ``on_status_change``.
    ``run()`` returns only when cancelled. ``welcome`` is the Controller's
    last greeting (the server's registered name, address and zone).
    """

    def __init__(
        self,
        address: str,
        ssl_context: ssl.SSLContext,
        server: LiveServerLike,
        *,
        report_seconds: float = 5.0,
        backoff: Backoff | None = None,
        server_hostname: str | None = None,
        connect_timeout: float = 10.0,
        jitter: Callable[[], float] = random.random,
        software: str = "townhall",
    ) -> None:
        self.host, self.port = parse_listen(address)
        self._ssl = ssl_context
        self._server = server
        self._report_seconds = report_seconds
        self._backoff = backoff or Backoff()
        self._hostname = server_hostname or self.host
        self._connect_timeout = connect_timeout
        self._jitter = jitter
        self._software = software[:100]
        self._changed = asyncio.Event()
        self._linked = asyncio.Event()
        self.welcome: link.Welcome | None = None
        self._welcomed = False  # on the current (or last) link
        self.refusal: link.Bye | None = None  # the Controller's last Bye, if any

    @property
    def linked(self) -> bool:
        return self._linked.is_set()

    async def wait_linked(self) -> None:
        await self._linked.wait()

    def status_changed(self) -> None:
        """The live server's events changed: report them at once (safe to call any time)."""
        self._changed.set()

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                await self._session()
            except (OSError, TimeoutError, link.LinkError, _LinkClosed) as error:
                log.info("control link to %s:%s: %s", self.host, self.port, error)
            finally:
                self._linked.clear()
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError  # a cancellation a library call swallowed
            if self._welcomed:
                failures = 0  # it worked once: start the delays over
            delay = self._backoff.delay(failures, min(max(self._jitter(), 0.0), 0.999))
            failures += 1
            await asyncio.sleep(delay)

    # -- one link ------------------------------------------------------------------------------

    async def _session(self) -> None:
        self._welcomed = False
        async with asyncio.timeout(self._connect_timeout):
            reader, writer = await asyncio.open_connection(
                self.host,
                self.port,
                ssl=self._ssl,
                server_hostname=self._hostname,
                limit=READ_SIZE,
            )
        tls = writer.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if isinstance(tls, ssl.SSLObject) else None
        if not der or not is_controller_certificate(der):
            writer.close()
            raise NotTheController(
                f"{self.host}:{self.port} presented a certificate of our CA without the "
                f"Controller's usage {CONTROLLER_USAGE.dotted_string}: not the Controller"
            )
        core = link.LinkConnection(link.Side.AGENT)
        try:
            writer.write(core.send(link.Hello(version=link.VERSION, software=self._software)))
            welcome = await self._greeting(reader, core)
            self.welcome, self._welcomed = welcome, True
            self._linked.set()
            log.info("linked to the Controller as %s", welcome.name)
            reporter = asyncio.ensure_future(self._report(writer, core))
            try:
                await self._read(reader, writer, core, welcome.keepalive)
            finally:
                reporter.cancel()
                # gather, not a suppressed await: our own cancellation must go through.
                await asyncio.gather(reporter, return_exceptions=True)
        except link.RemoteLinkError as error:
            with contextlib.suppress(link.LinkError):
                writer.write(
                    core.send(link.Bye(code=link.ByeCode.PROTOCOL_ERROR, message=str(error)[:500]))
                )
            raise
        except asyncio.CancelledError:
            with contextlib.suppress(link.LinkError):
                writer.write(core.send(link.Bye(code=link.ByeCode.SHUTDOWN)))
            raise
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(2):
                    await writer.wait_closed()

    async def _greeting(
        self, reader: asyncio.StreamReader, core: link.LinkConnection
    ) -> link.Welcome:
        while True:
            async with asyncio.timeout(self._connect_timeout):
                data = await reader.read(READ_SIZE)
            messages = core.receive_data(data)
            if not messages:
                if core.closed:
                    raise _LinkClosed("the Controller closed the link")
                continue
            first = messages[0]
            if isinstance(first, link.Bye):
                self.refusal = first
                log.warning(
                    "the Controller refused the link: %s %s",
                    first.code.value,
                    link.clean_text(first.message),
                )
                raise _LinkClosed(first.message)
            if not isinstance(first, link.Welcome):
                raise link.RemoteLinkError("expected Welcome")
            for message in messages[1:]:
                self._handle(message, None, core)
            return first

    async def _read(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        core: link.LinkConnection,
        keepalive: float,
    ) -> None:
        # The Controller has nothing to say while no event changes, and it only pings
        # a link it has not heard from; so this side pings a quiet Controller itself,
        # and gives up only after three keepalives without a word back.
        loop = asyncio.get_running_loop()
        heard_at = loop.time()
        nonce = 0
        while True:
            try:
                async with asyncio.timeout(keepalive):
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                if loop.time() - heard_at < 3 * keepalive:
                    nonce += 1
                    writer.write(core.send(link.Ping(nonce=nonce)))
                    continue
                with contextlib.suppress(link.LinkError):
                    writer.write(core.send(link.Bye(code=link.ByeCode.TIMEOUT)))
                raise
            heard_at = loop.time()
            for message in core.receive_data(data):
                self._handle(message, writer, core)
            if core.closed:
                raise _LinkClosed("the link is closed")

    def _handle(
        self,
        message: link.LinkMessage,
        writer: asyncio.StreamWriter | None,
        core: link.LinkConnection,
    ) -> None:
        match message:
            case link.Assign():
                assignment, center_key = assignment_of(message)
                log.info(
                    "event %d: %s%s, %d credentials, %d revoked",
                    assignment.event_id,
                    assignment.role.value,
                    f" under {assignment.parent}" if assignment.parent else "",
                    len(assignment.credentials),
                    len(assignment.revoked),
                )
                try:
                    self._server.assign(assignment, center_key)
                except Exception:  # noqa: BLE001 - one bad assignment must not cut the link
                    log.exception("the live server refused the assignment of %s", message.event_id)
                self._changed.set()
            case link.End(event_id=event_id):
                log.info("event %d: ended here", event_id)
                try:
                    self._server.end(event_id)
                except Exception:  # noqa: BLE001 - the same
                    log.exception("the live server could not end %s", event_id)
                self._changed.set()
            case link.Ping(nonce=nonce):
                if writer is not None:
                    writer.write(core.send(link.Pong(nonce=nonce)))
            case link.Bye(code=code, message=text):
                self.refusal = message
                log.info("the Controller closes the link: %s %s", code.value, link.clean_text(text))
            case _:
                pass

    async def _report(self, writer: asyncio.StreamWriter, core: link.LinkConnection) -> None:
        last: link.Status | None = None
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        recorded: dict[int, int] = {}  # event id -> the record_version sent on this link
        recorded_at, held = -RECORD_INTERVAL, False
        self._changed.set()  # the first report at once
        while not core.closed:
            wait = max(0.0, sent_at + self._report_seconds - loop.time())
            if held:
                wait = min(wait, max(0.0, recorded_at + RECORD_INTERVAL - loop.time()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._changed.wait()
            self._changed.clear()
            try:
                status = self._status()
            except Exception:  # noqa: BLE001 - report again next time rather than stop
                log.exception("could not read the live server's status")
                continue
            # ``at`` alone changes every time: it does not make a report due.
            same = last is not None and msgspec.structs.replace(status, at=last.at) == last
            if not same or loop.time() - sent_at >= self._report_seconds:
                writer.write(core.send(status))
                last, sent_at = status, loop.time()
            held = loop.time() - recorded_at < RECORD_INTERVAL
            if not held and self._send_records(writer, core, recorded):
                recorded_at = loop.time()

    def _send_records(
        self, writer: asyncio.StreamWriter, core: link.LinkConnection, recorded: dict[int, int]
    ) -> bool:
        """Send a ``Record`` of each main event whose polls or questions moved; any sent."""
        sent = False
        for e in list(self._server.status())[: link.MAX_EVENTS]:
            if e.role != "main" or recorded.get(e.event_id, 0) == e.record_version:
                continue
            record = link.Record(
                event_id=e.event_id,
                polls=list(e.polls)[: link.MAX_RECORDED_POLLS],
                questions=list(e.questions)[: link.MAX_RECORDED_QUESTIONS],
            )
            try:
                writer.write(core.send(record))
            except link.LocalLinkError:
                log.exception("event %d: could not report its polls and questions", e.event_id)
            recorded[e.event_id] = e.record_version
            sent = True
        return sent

    def _status(self) -> link.Status:
        budget = link.MAX_STATUS_VISITS
        events = []
        for e in list(self._server.status())[: link.MAX_EVENTS]:
            visits = list(e.attendance)[: min(link.MAX_VISITS, budget)]
            budget -= len(visits)
            report = link.EventReport(
                event_id=e.event_id,
                role="main" if e.role == "main" else "child",
                upstream=_upstream(e.upstream),
                participants=_count(e.participants),
                children=sorted(e.children)[: link.MAX_CHILDREN],
                removed=[
                    link.Removal(
                        credential_id=r.credential_id,
                        by_credential_id=r.by_credential_id,
                        name=r.name[:200],
                        by_name=r.by_name[:200],
                    )
                    for r in list(e.removed)[-link.MAX_REMOVALS :]
                ],
                attendance=[_visit(v) for v in visits],
                attendance_missed=_count(e.attendance_missed + len(e.attendance) - len(visits)),
            )
            events.append(report)
        participants, capacity = self._server.load()
        return link.Status(
            events=events,
            participants=_count(participants),
            capacity=_count(capacity),
            at=time.time(),
        )


def _visit(visit: VisitLike) -> link.Visit:
    return link.Visit(
        credential_id=visit.credential_id,
        name=visit.name[:200],
        joined_at=visit.joined_at,
        left_at=visit.left_at,
    )


def _upstream(value: str) -> Upstream:
    try:
        return Upstream(value)
    except ValueError:
        return Upstream.NONE


def _count(value: int) -> int:
    return min(max(0, int(value)), 10_000_000)

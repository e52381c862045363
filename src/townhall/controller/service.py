"""The Controller as an asyncio service: mutual-TLS control links, a tick, the database.

A thin shell around ``plan.Planner``. It accepts live servers on
``controller.listen`` over TLS, requiring a client certificate from the
Manager's CA; the certificate's common name must be a server registered in
the Manager, and when that server enrolled, the very certificate it enrolled
with. Every ``controller.tick_seconds`` it reads the due events and their
trees, in a worker thread so the loop never waits, and carries out what the
Planner answers: assignments and ends over the links (``link``), its own rows
(``records``), and the trees' state for the Center, in order, one command at
a time. Everything it knows of the Center and the Manager comes through the
``sources.ControllerSources`` it is given; its own database holds only its
assignments (and, on PostgreSQL, the lock that makes it the active
Controller). A peer that misbehaves loses its own link and nothing else.
docs/controller.md describes the service, its certificate and running
several instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import secrets
import ssl
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from townhall.config import Settings, parse_listen
from townhall.controller import link, records
from townhall.controller.linksecrets import LinkSecretBox
from townhall.controller.plan import (
    CloseAttendance,
    Command,
    DueEventLike,
    EventTree,
    ForgetEvent,
    Planner,
    RecordAttendance,
    RecordLiveState,
    RecordPolls,
    RecordRemovals,
    RemovedMember,
    ReportedEvent,
    ReportedVisit,
    SaveAssignments,
    SendAssignment,
    SendEnd,
    StoredAssignment,
)
from townhall.controller.sources import (
    ControllerSources,
    SourceRefused,
    SourceUnavailable,
    address_of,
)
from townhall.live.backoff import Backoff
from townhall.live.events import AssignmentReceived, ServerRole
from townhall.store.conventions import now_utc
from townhall.wire.names import Zone

__all__ = ["ControllerService", "PeerRefused", "address_of", "server_ssl_context"]

log = logging.getLogger("townhall.controller")

SLOW_LINK_BYTES: Final = 4 * link.MAX_FRAME
READ_SIZE: Final = 256 * 1024
DB_ATTEMPTS: Final = 3
DB_BACKOFF: Final = Backoff(initial=0.2, maximum=10)
# After a restart, how long the servers get to link again before a tree is shown degraded.
SETTLE: Final = timedelta(seconds=15)
# pg_advisory_lock key of the active Controller: b"THCTRL01" as a signed 64-bit integer.
LEADER_LOCK: Final = int.from_bytes(b"THCTRL01", "big", signed=True)


class PeerRefused(Exception):
    """A peer the Controller will not keep a link with; ``code`` goes in its Bye."""

    def __init__(self, code: link.ByeCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def server_ssl_context(cert_file: str, key_file: str, ca_file: str) -> ssl.SSLContext:
    """The Controller's listening side: its certificate; client certificates required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.load_verify_locations(cafile=ca_file)
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols([link.ALPN])
    return context


def _common_name(ssl_object: Any) -> str | None:
    certificate = ssl_object.getpeercert() if ssl_object is not None else None
    if not certificate:
        return None
    for rdn in certificate.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class _TickDone:
    """Queued after the first tick's commands, so ``ticked()`` means they are carried out."""


class _Link:
    """One accepted control link: its transport and its link core."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.core = link.LinkConnection(link.Side.CONTROLLER)
        self.name: str | None = None

    def send(self, message: link.LinkMessage) -> bool:
        """Queue ``message``; False when the link is closed or has stopped reading."""
        if self.core.closed or self.writer.is_closing():
            return False
        if self.writer.transport.get_write_buffer_size() > SLOW_LINK_BYTES:
            self.bye(link.ByeCode.TIMEOUT, "the link stopped reading")
            return False
        try:
            self.writer.write(self.core.send(message))
        except link.LocalLinkError as error:
            log.error("not sent to %s: %s", self.name, error)
            return False
        return True

    def bye(self, code: link.ByeCode, message: str) -> None:
        if not self.core.finished and not self.writer.is_closing():
            with contextlib.suppress(link.LinkError):
                self.writer.write(self.core.send(link.Bye(code=code, message=message[:500])))
        self.close()

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()


class ControllerService:
    """The running Controller: ``await start()``, then ``await close()``.

    ``sessions`` opens sessions on the database holding the Controller's own
    table; ``sources`` answers for the Center and the Manager; ``ssl_context``
    from ``server_ssl_context``; ``center_key``, the Center's public key, is
    sent in every assignment.
    ``port`` overrides the port of ``controller.listen`` (0: any free one;
    the bound one is ``self.port`` after ``start``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        sessions: sessionmaker[Session],
        sources: ControllerSources,
        ssl_context: ssl.SSLContext,
        center_key: Ed25519PublicKey,
        host: str | None = None,
        port: int | None = None,
        new_secret: Callable[[], str] = lambda: secrets.token_urlsafe(32),
        settle: timedelta = SETTLE,
    ) -> None:
        listen_host, listen_port = parse_listen(settings.controller.listen)
        self.host = host if host is not None else listen_host
        self.port = port if port is not None else listen_port
        self._settings = settings.controller
        self._sessions = sessions
        self._link_secrets = LinkSecretBox.for_settings(settings)
        self._sources = sources
        self._ssl = ssl_context
        self._center_key = center_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._new_secret = new_secret
        self._settle = settle
        self._planner: Planner | None = None
        self._links: dict[str, _Link] = {}  # the current link of each server
        self._tasks: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[Command | _TickDone] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self._leader: Connection | None = None
        self._ticked = asyncio.Event()
        self._closing = False

    # -- what tests and the command may read ----------------------------------------------

    @property
    def planner(self) -> Planner:
        if self._planner is None:
            raise RuntimeError("the Controller has not started")
        return self._planner

    @property
    def linked(self) -> frozenset[str]:
        return frozenset(self._links)

    async def ticked(self) -> None:
        """Wait for the first tick to have been carried out."""
        await self._ticked.wait()

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self._become_leader()
        restored = await asyncio.to_thread(self._load)
        self._planner = Planner(
            grace=timedelta(minutes=self._settings.grace_minutes),
            new_secret=self._new_secret,
            restored=restored,
            settle=self._settle,
        )
        self._spawn(self._executor())
        self._server = await asyncio.start_server(
            self._accept,
            self.host,
            self.port,
            ssl=self._ssl,
            ssl_handshake_timeout=10,
            limit=READ_SIZE,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._spawn(self._ticker())
        log.info("the Controller listens on %s", address_of(self.host, self.port))

    async def close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        for current in list(self._links.values()):
            current.bye(link.ByeCode.SHUTDOWN, "the Controller is stopping")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if self._leader is not None:
            leader, self._leader = self._leader, None
            await asyncio.to_thread(self._resign, leader)

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _become_leader(self) -> None:
        """On PostgreSQL, wait to be the one active Controller (a session advisory lock)."""
        engine = self._sessions.kw.get("bind")
        if engine is None or engine.dialect.name != "postgresql":
            return
        connection = await asyncio.to_thread(engine.connect)
        try:
            while True:
                held = await asyncio.to_thread(
                    lambda: connection.scalar(
                        text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK}
                    )
                )
                await asyncio.to_thread(connection.commit)
                if held:
                    self._leader = connection
                    return
                log.info("another Controller is active; standing by")
                await asyncio.sleep(self._settings.tick_seconds)
        except BaseException:
            await asyncio.to_thread(self._resign, connection)
            raise

    @staticmethod
    def _resign(connection: Connection) -> None:
        # Invalidated, not returned to the pool: a session lock would go back with it.
        with contextlib.suppress(SQLAlchemyError):
            connection.invalidate()
        connection.close()

    # -- the database, in worker threads ------------------------------------------------------

    def _load(self) -> list[StoredAssignment]:
        with self._sessions() as session:
            return records.load_assignments(session, self._link_secrets)

    def _read(self, now: datetime) -> tuple[Sequence[DueEventLike], dict[int, EventTree | None]]:
        settings = self._settings
        due = self._sources.due_events(
            now=now,
            lead=timedelta(minutes=settings.lead_minutes),
            grace=timedelta(minutes=settings.grace_minutes),
        )
        trees = self._sources.event_trees([event.event_id for event in due if not event.cancelled])
        return due, trees

    def _write(self, command: Command) -> None:
        if isinstance(command, RecordLiveState):
            self._sources.report_live_state(command.event_id, command.state, command.servers)
            return
        if isinstance(command, RecordRemovals):
            self._sources.report_removals(command.event_id, command.removed)
            return
        if isinstance(command, RecordAttendance):
            self._sources.report_attendance(
                command.event_id,
                command.server,
                command.zone,
                command.at,
                command.visits,
                command.missed,
            )
            return
        if isinstance(command, CloseAttendance):
            self._sources.close_attendance(
                command.event_id, command.server, command.at, command.cause
            )
        if isinstance(command, RecordPolls):
            self._sources.record_polls(command.event_id, command.polls, command.questions)
            return
        with self._sessions() as session:
            match command:
                case SaveAssignments(event_id=event_id, rows=rows):
                    records.save_assignments(session, event_id, rows, self._link_secrets)
                case ForgetEvent(event_id=event_id):
                    records.forget_event(session, event_id)
            session.commit()

    # -- carrying out the Planner's commands, in order -------------------------------------------

    def _apply(self, commands: Iterable[Command]) -> None:
        for command in commands:
            self._queue.put_nowait(command)

    async def _executor(self) -> None:
        while True:
            command = await self._queue.get()
            try:
                await self._carry_out(command)
            except Exception:  # noqa: BLE001 - the one executor must outlive any bug
                log.exception("could not carry out %s", type(command).__name__)

    async def _carry_out(self, command: Command | _TickDone) -> None:
        match command:
            case _TickDone():
                self._ticked.set()
            case SendAssignment(server=server, assignment=assignment):
                current = self._links.get(server)
                if current is not None:
                    current.send(self._assign_message(assignment))
            case SendEnd(server=server, event_id=event_id):
                current = self._links.get(server)
                if current is not None:
                    current.send(link.End(event_id=event_id))
            case _:
                await self._write_with_retries(command)

    async def _write_with_retries(self, command: Command) -> None:
        # New link secrets must be stored before the assignments holding them go out
        # (they wait behind this in the queue): a restarted Controller would otherwise
        # hand out other secrets and break the children's links. So SaveAssignments
        # is retried until the database takes it; other writes give up after a few.
        must_land = isinstance(command, SaveAssignments | RecordRemovals | CloseAttendance)
        failures = 0
        while True:
            try:
                await asyncio.to_thread(self._write, command)
                return
            except (OperationalError, SourceUnavailable) as error:
                failures += 1
                if failures >= DB_ATTEMPTS and not must_land:
                    log.error("could not store %s: %s", type(command).__name__, error)
                    return
                if failures >= DB_ATTEMPTS:
                    log.error("could not store %s yet, trying again: %s", "assignments", error)
                await asyncio.sleep(DB_BACKOFF.delay(failures - 1, random.random()))
            except (SQLAlchemyError, ValueError, SourceRefused) as error:
                # An event deleted meanwhile, say: logged, and the next change writes again.
                log.warning("could not store %s: %s", type(command).__name__, error)
                return

    def _assign_message(self, assignment: AssignmentReceived) -> link.Assign:
        main = assignment.role is ServerRole.MAIN
        return link.Assign(
            event_id=assignment.event_id,
            title=assignment.title[:1000],
            role="main" if main else "child",
            credentials=dict(assignment.credentials),
            revoked=sorted(assignment.revoked),
            event_keys=list(assignment.event_keys),
            center_key=self._center_key,
            parent=assignment.parent,
            link_secret=assignment.link_secret,
            children=dict(assignment.children),
        )

    # -- the tick ------------------------------------------------------------------------------

    async def _ticker(self) -> None:
        while True:
            now = now_utc()
            try:
                due, trees = await asyncio.to_thread(self._read, now)
            except (SQLAlchemyError, OSError, SourceUnavailable, SourceRefused) as error:
                # No tick on a failed read: an empty list would end every event.
                log.error("could not read the due events: %s", error)
            else:
                try:
                    self._apply(self.planner.tick(now, due, trees))
                except Exception:  # noqa: BLE001 - a bug in one tick must not stop the next
                    log.exception("the tick failed")
                if not self._ticked.is_set():
                    self._queue.put_nowait(_TickDone())
            await asyncio.sleep(self._settings.tick_seconds)

    # -- links ---------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        current = _Link(reader, writer)
        try:
            await self._serve(current)
        except PeerRefused as refusal:
            log.warning("refused a control link: %s", refusal.message)
            current.bye(refusal.code, refusal.message)
        except link.RemoteLinkError as error:
            log.warning("control link of %s: %s", current.name or "a peer", error)
            current.bye(link.ByeCode.PROTOCOL_ERROR, str(error))
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
            log.info("control link of %s lost: %s", current.name or "a peer", error)
        except (SQLAlchemyError, SourceUnavailable, SourceRefused) as error:
            log.error("could not look up a linking server: %s", error)
            current.bye(link.ByeCode.SHUTDOWN, "the Controller cannot reach the Manager now")
        except Exception:  # noqa: BLE001 - whatever it was, it ends this link only
            log.exception("control link of %s failed", current.name or "a peer")
            current.bye(link.ByeCode.SHUTDOWN, "the Controller failed on this link")
        finally:
            current.close()
            name = current.name
            if name is not None and self._links.get(name) is current:
                del self._links[name]
                if not self._closing:
                    self._apply(self.planner.server_lost(name))
                log.info("%s is no longer linked", name)
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(2):
                    await writer.wait_closed()

    async def _serve(self, current: _Link) -> None:
        ssl_object = current.writer.get_extra_info("ssl_object")
        if ssl_object is None or ssl_object.selected_alpn_protocol() != link.ALPN:
            raise PeerRefused(link.ByeCode.PROTOCOL_ERROR, f"the link speaks ALPN {link.ALPN}")
        common_name = _common_name(ssl_object)
        keepalive = self._settings.keepalive_seconds
        hello, *early = await self._receive_some(current, 3 * keepalive)
        if not isinstance(hello, link.Hello):  # the link core allows nothing else first
            raise link.RemoteLinkError("expected Hello")
        version = link.welcome_version(hello)
        if version is None:
            raise PeerRefused(
                link.ByeCode.UNSUPPORTED_VERSION, f"version {hello.version} is not spoken here"
            )
        if common_name is None:
            raise PeerRefused(link.ByeCode.UNKNOWN_SERVER, "the certificate names no server")
        registered = await asyncio.to_thread(self._sources.registered_server, common_name)
        if registered is None:
            raise PeerRefused(
                link.ByeCode.UNKNOWN_SERVER,
                f"no live server {link.clean_text(common_name, 64)!r} is registered in the "
                "Manager: register it (townhall manager enroll NAME --address host:port)",
            )
        certificate = ssl_object.getpeercert(binary_form=True)
        if registered.fingerprint is not None and (
            hashlib.sha256(certificate).hexdigest() != registered.fingerprint
        ):
            raise PeerRefused(
                link.ByeCode.BAD_CERTIFICATE,
                f"{registered.name} enrolled with another certificate: use the one from its "
                "latest enrolment",
            )
        name = registered.name
        current.name = name
        current.send(
            link.Welcome(
                version=version,
                name=name,
                address=registered.address,
                zone=Zone.DMZ if registered.zone == Zone.DMZ else Zone.INTERNAL,
                keepalive=keepalive,
            )
        )
        previous = self._links.get(name)
        if previous is not None:
            previous.bye(link.ByeCode.REPLACED, "a newer link of this server took over")
        self._links[name] = current
        log.info("%s is linked", name)
        self._apply(self.planner.server_connected(name))
        for message in early:  # sent right behind the Hello
            self._handle(current, name, message)
        await self._read_loop(current, name, keepalive)

    async def _receive_some(self, current: _Link, patience: float) -> list[link.LinkMessage]:
        async with asyncio.timeout(patience):
            while True:
                data = await current.reader.read(READ_SIZE)
                messages = current.core.receive_data(data)
                if messages:
                    return messages
                if current.core.closed:
                    raise asyncio.IncompleteReadError(b"", None)

    async def _read_loop(self, current: _Link, name: str, keepalive: float) -> None:
        loop = asyncio.get_running_loop()
        heard = loop.time()
        nonce = 0
        while not current.core.closed:
            try:
                async with asyncio.timeout(keepalive):
                    data = await current.reader.read(READ_SIZE)
            except TimeoutError:
                if loop.time() - heard > 3 * keepalive:
                    current.bye(link.ByeCode.TIMEOUT, "nothing heard for too long")
                    return
                nonce += 1
                current.send(link.Ping(nonce=nonce))
                continue
            heard = loop.time()
            for message in current.core.receive_data(data):
                if self._links.get(name) is not current:
                    return  # replaced meanwhile
                self._handle(current, name, message)

    def _handle(self, current: _Link, name: str, message: link.LinkMessage) -> None:
        match message:
            case link.Status(events=events, at=at):
                self._apply(self.planner.status_received(name, reports_of(events), naive(at)))
            case link.Record(event_id=event_id, polls=polls, questions=questions):
                self._apply(self.planner.record_received(name, event_id, polls, questions))
            case link.Ping(nonce=nonce):
                current.send(link.Pong(nonce=nonce))
            case link.Bye(code=code, message=text):
                log.info("%s closes its link: %s %s", name, code.value, link.clean_text(text))
                current.close()
            case _:
                pass  # Pong: the read itself proved the link alive


def reports_of(events: Sequence[link.EventReport]) -> list[ReportedEvent]:
    return [
        ReportedEvent(
            e.event_id,
            e.role,
            e.upstream,
            e.participants,
            tuple(e.children),
            tuple(
                RemovedMember(r.credential_id, r.by_credential_id, r.name, r.by_name)
                for r in e.removed
            ),
            tuple(
                ReportedVisit(v.credential_id, v.name, when(v.joined_at), naive(v.left_at))
                for v in e.attendance
            ),
            e.attendance_missed,
        )
        for e in events
    ]


def when(unix: float) -> datetime:
    """A live server's Unix time (the link checked its range) as naive UTC."""
    return datetime.fromtimestamp(unix, UTC).replace(tzinfo=None)


def naive(unix: float | None) -> datetime | None:
    return None if unix is None else when(unix)

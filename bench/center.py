"""Load benchmark of the Center: catalog, event pages and the events API under N clients.

Seeds a fresh database (SQLite in a temporary folder, or a scratch database on
the PostgreSQL server named by ``--database-url``) with users, events, roles
and registrations, starts ``townhall center`` as a separate process on a free
loopback port, and drives each route for ``--seconds`` with ``--clients``
concurrent keep-alive connections. Prints requests/s and p50/p99 latency per
route, plus the CPU the server and the load generator used (so one can tell
which side was the limit).

    .venv/bin/python bench/center.py                       # SQLite
    .venv/bin/python bench/center.py --database-url postgresql+psycopg://u@host:5432/postgres
    bench/run-center.sh                                    # both, PostgreSQL started for you

``--wrk`` drives each route a second time with ``wrk`` (Debian's package, a C
load generator: ``apt-get install wrk``) on the same paths and headers, and
prints its requests/s and p99 beside ours, as a cross-check of the
generator.

The load generator is a small raw asyncio HTTP/1.1 keep-alive client
(``--client raw``, the default): about 30 us of CPU per request, against 1-4 ms
for ``httpx.AsyncClient`` (``--client httpx``), which tops out near 200-650
requests/s on this machine and so could not produce the target load itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

# Issue 14: the catalog API, the event API and the portal's catalog and event pages.
TARGET_RPS = 1000
TARGET_P99_MS = 50.0
TARGET_ROUTES = (
    "GET /api/v1/events?limit=50",
    "GET /api/v1/events/{id}",
    "GET /events",
    "GET /events/{id}",
)
SESSION_COOKIE = "townhall_session"
BENCH_USER = "bench"

WORDS = (
    "budget quarterly roadmap security onboarding research keynote design privacy "
    "accessibility hiring climate finance marketing release community training "
    "infrastructure kubernetes postgres analytics strategy wellbeing compliance"
).split()
SEARCH_WORDS = ("budget", "security", "roadmap", "privacy", "training")
ADJECTIVES = "Annual Weekly Open Internal Regional Global Spring Autumn Team Board".split()
KINDS = ("meeting", "lecture", "webinar")
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Europe/London")
DURATIONS = (30, 45, 60, 90, 120, 180)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- database: create, migrate, seed ---------------------------------------------------


def scratch_postgres(url: str) -> tuple[str, str]:
    """Create a scratch database next to the one named in ``url``; returns (url, name)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"townhall_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False), name


def drop_postgres(url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def server_description(database_url: str) -> str:
    """The Center's web processes and threads as its settings will choose them (the
    environment's TOWNHALL_CENTER__WORKERS and __THREADS included)."""
    from townhall.config import Settings

    settings = Settings(center={"database_url": database_url})
    # Code from before center.threads (run with PYTHONPATH at an export of it, to compare)
    # ran anyio's default of 40.
    threads = getattr(settings, "web_threads", 40)
    return f"townhall center (uvicorn, {settings.center.workers} processes x {threads} threads)"


@dataclass
class Seeded:
    users: int
    organizers: int
    events: int
    public_events: int
    roles: int
    registrations: int
    bench_user_id: int
    visible_ids: list[int]
    token: str
    cookie: str
    seconds: float


def _chunks(rows: list[dict[str, object]], size: int = 5000):  # type: ignore[no-untyped-def]
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def seed(url: str, n_users: int, n_events: int, n_registrations: int, rng: random.Random) -> Seeded:
    from sqlalchemy import func, insert, select, text

    from townhall.center import accounts
    from townhall.center.events import visible_events
    from townhall.center.tables import Event, EventRole, Registration, User
    from townhall.schema import migrate
    from townhall.store import make_engine, make_session_factory

    started = time.perf_counter()
    engine = make_engine(url)
    try:
        migrate(engine)
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)

        n_organizers = max(1, n_users // 50)
        users: list[dict[str, object]] = []
        for i in range(1, n_users + 1):
            if i == n_users:
                username, role = BENCH_USER, "member"
            elif i == 1:
                username, role = "admin", "admin"
            elif i <= n_organizers + 1:
                username, role = f"organizer{i:04d}", "organizer"
            else:
                username, role = f"user{i:05d}", "member"
            users.append(
                {
                    "id": i,
                    "username": username,
                    "email": f"{username}@example.org",
                    "display_name": username.title(),
                    "role": role,
                    "password_hash": None,
                    "timezone": "",
                    "source": "local",
                    "active": True,
                    "created_at": now - timedelta(days=400),
                }
            )
        organizer_ids = [u["id"] for u in users if u["role"] == "organizer"]
        member_ids = [u["id"] for u in users if u["role"] == "member"]

        events: list[dict[str, object]] = []
        roles: list[dict[str, object]] = []
        span = 365 * 24 * 3600
        for i in range(1, n_events + 1):
            starts = now + timedelta(seconds=rng.randrange(-span, span))
            starts = starts.replace(second=0, minute=starts.minute // 15 * 15)
            duration = rng.choice(DURATIONS)
            kind = rng.choice(KINDS)
            topic, other = rng.sample(WORDS, 2)
            organizer = rng.choice(organizer_ids)
            events.append(
                {
                    "id": i,
                    "uid": uuid.UUID(int=rng.getrandbits(128)).hex,
                    "title": f"{rng.choice(ADJECTIVES)} {topic} {kind} #{i}",
                    "description": f"A {kind} about {topic} and {other}. " * rng.randint(1, 6),
                    "agenda": "1. Welcome\n2. Talks\n3. Questions",
                    "starts_at": starts,
                    "timezone": rng.choice(ZONES),
                    "duration_minutes": duration,
                    "ends_at": starts + timedelta(minutes=duration),
                    "kind": kind,
                    "visibility": "public" if rng.random() < 0.7 else "private",
                    "audio_mode": rng.choice(("voip", "voip", "phone", "both")),
                    "recording": rng.random() < 0.3,
                    "status": "cancelled" if rng.random() < 0.03 else "scheduled",
                    "sequence": 0,
                    "organizer_id": organizer,
                    "created_at": now - timedelta(days=400),
                    "updated_at": now - timedelta(days=400),
                }
            )
            roles.append({"event_id": i, "user_id": organizer, "role": "moderator"})
            if rng.random() < 0.2:
                presenter = rng.choice(member_ids)
                roles.append({"event_id": i, "user_id": presenter, "role": "presenter"})

        registrations: list[dict[str, object]] = []
        seen: set[tuple[int, str]] = set()
        n_guests = max(1, n_registrations // 2)
        while len(registrations) < n_registrations:
            event_id = rng.randint(1, n_events)
            if rng.random() < 0.6:
                user = users[rng.randrange(n_users)]
                user_id, email, name = user["id"], str(user["email"]), str(user["display_name"])
            else:
                guest = rng.randrange(n_guests)
                user_id, email, name = None, f"guest{guest:06d}@example.net", f"Guest {guest}"
            if (event_id, email) in seen:
                continue
            seen.add((event_id, email))
            revoked = rng.random() < 0.05
            registrations.append(
                {
                    "id": len(registrations) + 1,
                    "event_id": event_id,
                    "user_id": user_id,
                    "email": email,
                    "display_name": name,
                    "source": "invited" if rng.random() < 0.5 else "self",
                    "status": "revoked" if revoked else "registered",
                    "created_at": now - timedelta(days=rng.randint(1, 300)),
                    "revoked_at": now - timedelta(days=1) if revoked else None,
                }
            )

        with engine.begin() as connection:
            for table, rows in (
                (User.__table__, users),
                (Event.__table__, events),
                (EventRole.__table__, roles),
                (Registration.__table__, registrations),
            ):
                for chunk in _chunks(rows):
                    connection.execute(insert(table), chunk)
            if engine.dialect.name == "postgresql":
                # Explicit ids leave the SERIAL sequences behind; later inserts need them ahead.
                for table in ("center_users", "center_events", "center_registrations"):
                    connection.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT max(id) FROM {table}))"
                        )
                    )
        if engine.dialect.name == "postgresql":
            # What autovacuum would have done by the time a real database held this much.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("ANALYZE"))

        sessions = make_session_factory(engine)
        with sessions() as session:
            user = session.scalar(select(User).where(User.username == BENCH_USER))
            assert user is not None
            _, token = accounts.create_token(session, user, "bench")
            _, cookie = accounts.open_session(session, user, minutes=24 * 60)
            session.commit()
            visible_ids = sorted(session.scalars(visible_events(user).with_only_columns(Event.id)))
            counts = {
                name: session.scalar(select(func.count()).select_from(table))
                for name, table in (
                    ("users", User),
                    ("events", Event),
                    ("roles", EventRole),
                    ("registrations", Registration),
                )
            }
    finally:
        engine.dispose()
    return Seeded(
        users=int(counts["users"] or 0),
        organizers=len(organizer_ids),
        events=int(counts["events"] or 0),
        public_events=sum(1 for e in events if e["visibility"] == "public"),
        roles=int(counts["roles"] or 0),
        registrations=int(counts["registrations"] or 0),
        bench_user_id=int(user.id),
        visible_ids=visible_ids,
        token=token,
        cookie=cookie,
        seconds=time.perf_counter() - started,
    )


# --- the server process ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def townhall_command() -> list[str]:
    script = Path(sys.executable).parent / "townhall"
    if script.exists():
        return [str(script)]
    found = shutil.which("townhall")
    return [found] if found else [sys.executable, "-m", "townhall.cli"]


class CenterProcess:
    """``townhall center`` in its own process group; always stopped by ``stop``."""

    def __init__(self, data: Path, database_url: str, command: list[str]) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = data / "center.log"
        env = dict(os.environ)
        env.update(
            TOWNHALL_CENTER__LISTEN=f"127.0.0.1:{self.port}",
            TOWNHALL_CENTER__DATABASE_URL=database_url,
            TOWNHALL_CENTER__MAIL__POLL_SECONDS="60",
        )
        self._log = open(self.log_file, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [*command, "center", "--data", str(data)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the Center exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the Center did not answer /healthz in {timeout}s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """User+system CPU time so far of the server and of the web processes it started
        (``center.workers``; Linux /proc); NaN once they are gone."""
        seconds = [cpu_seconds(pid) for pid in tree_pids(self.process.pid)]
        return math.fsum(s for s in seconds if not math.isnan(s)) if seconds else math.nan

    def threads(self) -> int:
        """Threads of the server and its web processes."""
        count = 0
        for pid in tree_pids(self.process.pid):
            try:
                count += len(os.listdir(f"/proc/{pid}/task"))
            except OSError:
                continue
        return count

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout=5)
        self._log.close()


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of one process so far (Linux /proc); NaN if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants (``/proc/<pid>/task/<tid>/children``, every thread's)."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
            except OSError:
                continue
            pending.extend(int(child) for child in children)
    return tree


# --- load generators -------------------------------------------------------------------


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat (idle and iowait count as idle)."""
    try:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def response_head(head: bytes) -> tuple[int, int, bool, bool]:
    """An HTTP/1.1 response head's status, Content-Length (-1: none), whether the body is
    chunked and whether the server closes the connection after it."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, close = -1, False, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    return status, length, chunked, close


class HttpError(Exception):
    pass


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client connection: GET only, Content-Length or chunked."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None

    async def get(self, request: bytes) -> tuple[int, int]:
        """Send a ready-made request; returns (status, body length)."""
        if self.writer is None:
            await self._connect()
        assert self.reader is not None and self.writer is not None
        try:
            self.writer.write(request)
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            await self.close()
            raise HttpError(type(error).__name__) from error
        try:
            status, length, chunked, close = response_head(head)
            if chunked:
                size = 0
                while True:
                    chunk = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    await self.reader.readexactly(chunk + 2)
                    size += chunk
                    if chunk == 0:
                        break
                length = size
            elif length >= 0:
                await self.reader.readexactly(length)
            else:
                length = len(await self.reader.read())
                close = True
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            await self.close()
            raise HttpError(type(error).__name__) from error
        if close:
            await self.close()
        return status, length


@dataclass
class Route:
    name: str
    kind: str  # "api" or "page"
    paths: object  # callable returning the next path

    def next_path(self) -> str:
        return self.paths()  # type: ignore[operator,no-any-return]


@dataclass
class Result:
    route: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: Counter[str] = field(default_factory=Counter)
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    machine_cpu: float = 0.0
    bytes: int = 0
    wrk: WrkResult | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[index]

    def as_dict(self) -> dict[str, object]:
        return {
            "route": self.route,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(self.rps, 1),
            "p50_ms": round(self.percentile(50), 2),
            "p90_ms": round(self.percentile(90), 2),
            "p99_ms": round(self.percentile(99), 2),
            "max_ms": round(max(self.latencies_ms, default=float("nan")), 2),
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors),
            "server_cpu_percent": round(self.server_cpu, 1),
            "client_cpu_percent": round(self.client_cpu, 1),
            "machine_cpu_percent": round(self.machine_cpu, 1),
            "mean_body_bytes": round(self.bytes / self.requests) if self.requests else 0,
            "wrk": self.wrk.as_dict() if self.wrk else None,
        }


@dataclass
class WrkResult:
    """What ``wrk --latency`` printed for one route."""

    requests_per_second: float
    p99_ms: float
    not_ok: int  # responses other than 2xx or 3xx
    socket_errors: int

    def as_dict(self) -> dict[str, object]:
        return {
            "requests_per_second": round(self.requests_per_second, 1),
            "p99_ms": round(self.p99_ms, 2),
            "not_ok": self.not_ok,
            "socket_errors": self.socket_errors,
        }


WRK_PATHS = 2000  # paths of a route wrk cycles through, as our generator draws them


def run_wrk(
    base_url: str, route: Route, headers: dict[str, str], clients: int, seconds: float, folder: Path
) -> WrkResult:
    """Drive ``route`` with wrk (2 threads, ``clients`` connections) for ``seconds``: the
    same headers, and the route's paths as our generator would draw them, cycled by a
    Lua script."""
    paths = [route.next_path() for _ in range(WRK_PATHS)]
    script = folder / "wrk-paths.lua"
    script.write_text(
        "local paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\n'
        "end\n"
    )
    command = ["wrk", "-t2", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command += ["-s", str(script), base_url]
    output = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=True
    ).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> WrkResult:
    rps, p99, not_ok, socket_errors = math.nan, math.nan, 0, 0
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
    for line in output.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            rps = float(words[1])
        elif words[:1] == ["99%"] and len(words) == 2:
            number = words[1].rstrip("usm")
            p99 = float(number) * units[words[1][len(number) :]]
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            not_ok = int(words[-1])
        elif line.strip().startswith("Socket errors:"):
            socket_errors = sum(int(w.rstrip(",")) for w in words[3::2])
    return WrkResult(rps, p99, not_ok, socket_errors)


class LoadGenerator:
    def __init__(self, base_url: str, clients: int, kind: str, headers: dict[str, dict[str, str]]):
        self.host, _, port = base_url.removeprefix("http://").partition(":")
        self.port = int(port)
        self.clients = clients
        self.kind = kind
        self.headers = headers  # per route kind ("api", "page")
        self._raw_prefix = {
            k: "".join(f"{name}: {value}\r\n" for name, value in h.items()).encode()
            for k, h in headers.items()
        }
        self._host_line = f"Host: {self.host}:{self.port}\r\n".encode()

    def _raw_request(self, route: Route, path: str) -> bytes:
        return (
            b"GET "
            + path.encode()
            + b" HTTP/1.1\r\n"
            + self._host_line
            + self._raw_prefix[route.kind]
            + b"\r\n"
        )

    async def run(
        self, route: Route | list[Route], seconds: float, cpu: CenterProcess | None = None
    ) -> Result:
        routes = route if isinstance(route, list) else [route]
        name = routes[0].name if len(routes) == 1 else "warm-up"
        result = Result(route=name, requests=0, seconds=0.0, latencies_ms=[])
        server_cpu0 = cpu.cpu_seconds() if cpu else 0.0
        client_cpu0 = time.process_time()
        machine0 = machine_busy()
        started = time.perf_counter()
        deadline = started + seconds
        if self.kind == "raw":
            await asyncio.gather(
                *(self._raw_worker(routes, deadline, result) for _ in range(self.clients))
            )
        else:
            await self._httpx_run(routes, deadline, result)
        result.seconds = time.perf_counter() - started
        result.client_cpu = 100 * (time.process_time() - client_cpu0) / result.seconds
        busy, total = (b - a for a, b in zip(machine0, machine_busy(), strict=True))
        result.machine_cpu = 100 * (os.cpu_count() or 1) * busy / total if total else 0.0
        if cpu:
            result.server_cpu = 100 * (cpu.cpu_seconds() - server_cpu0) / result.seconds
        return result

    async def _raw_worker(self, routes: list[Route], deadline: float, result: Result) -> None:
        connection = RawConnection(self.host, self.port)
        clock = time.perf_counter
        try:
            while clock() < deadline:
                route = routes[result.requests % len(routes)]
                request = self._raw_request(route, route.next_path())
                began = clock()
                try:
                    status, size = await connection.get(request)
                except HttpError as error:
                    result.errors[f"connection: {error}"] += 1
                    result.requests += 1
                    await asyncio.sleep(0.01)
                    continue
                result.latencies_ms.append((clock() - began) * 1000)
                result.requests += 1
                result.bytes += size
                if not 200 <= status < 300:
                    result.errors[f"HTTP {status}"] += 1
        finally:
            await connection.close()

    async def _httpx_run(self, routes: list[Route], deadline: float, result: Result) -> None:
        import httpx

        limits = httpx.Limits(max_connections=self.clients, max_keepalive_connections=self.clients)
        async with httpx.AsyncClient(
            base_url=f"http://{self.host}:{self.port}", limits=limits, timeout=30, http1=True
        ) as client:

            async def worker() -> None:
                clock = time.perf_counter
                while clock() < deadline:
                    route = routes[result.requests % len(routes)]
                    path = route.next_path()
                    began = clock()
                    try:
                        response = await client.get(path, headers=self.headers[route.kind])
                    except httpx.HTTPError as error:
                        result.errors[f"connection: {type(error).__name__}"] += 1
                        result.requests += 1
                        continue
                    result.latencies_ms.append((clock() - began) * 1000)
                    result.requests += 1
                    result.bytes += len(response.content)
                    if not response.is_success:
                        result.errors[f"HTTP {response.status_code}"] += 1

            await asyncio.gather(*(worker() for _ in range(self.clients)))


def make_routes(seeded: Seeded, rng: random.Random, pages: bool) -> list[Route]:
    today = datetime.now(UTC).date()
    past_from = (today - timedelta(days=120)).isoformat()
    past_to = (today - timedelta(days=30)).isoformat()
    ids = seeded.visible_ids

    def search() -> str:
        return "/api/v1/events?" + urlencode({"q": rng.choice(SEARCH_WORDS), "limit": 50})

    def event_api() -> str:
        return f"/api/v1/events/{rng.choice(ids)}"

    def event_page() -> str:
        return f"/events/{rng.choice(ids)}"

    date_filter = "/api/v1/events?" + urlencode(
        {"when": "past", "from": past_from, "to": past_to, "limit": 50}
    )
    routes = [
        Route("GET /api/v1/events?limit=50", "api", lambda: "/api/v1/events?limit=50"),
        Route("GET /api/v1/events?q=<word>", "api", search),
        Route("GET /api/v1/events?when=past&from&to", "api", lambda: date_filter),
        Route("GET /api/v1/events/{id}", "api", event_api),
    ]
    if pages:
        routes += [
            Route("GET /events", "page", lambda: "/events"),
            Route("GET /events/{id}", "page", event_page),
        ]
    return routes


def probe_pages(url: str, cookie: str) -> tuple[bool, str]:
    import httpx

    response = httpx.get(
        url + "/events", cookies={SESSION_COOKIE: cookie}, timeout=30, follow_redirects=False
    )
    if response.status_code == 404:
        return False, "GET /events answered 404: the portal pages are not built yet; skipped"
    if not response.is_success:
        return True, f"note: GET /events answered {response.status_code} before the run"
    return True, ""


# --- profiling the server (optional) --------------------------------------------------


@dataclass
class Spy:
    process: subprocess.Popen[bytes]
    output: Path


def start_py_spy(
    folder: str, number: int, route: Route, server: CenterProcess, seconds: float
) -> Spy | None:
    """``py-spy record`` of the server during one route (collapsed stacks, one file each)."""
    if not folder:
        return None
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in route.name.removeprefix("GET ")).strip("-")
    output = out / f"{number}-{slug}.txt"
    command = [str(py_spy), "record", "--pid", str(server.process.pid), "--rate", "200"]
    command += ["--subprocesses"]  # the web processes (``center.workers``) do the work
    command += ["--nonblocking"]  # the default pauses the server at every sample
    command += ["--duration", str(max(1, int(seconds))), "--format", "raw", "-o", str(output)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)  # let it attach before the load starts
    return Spy(process, output)


def finish_py_spy(spy: Spy, route: Route, top: int = 12) -> None:
    stop_py_spy(spy.process)
    print_profile(spy.output, f"the server during {route.name}", top)


def stop_py_spy(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def print_profile(output: Path, label: str, top: int) -> None:
    """Log a py-spy raw profile's top frames by self time, and Townhall's by inclusive time;
    the samples of idle worker threads are left out."""
    if not output.exists():
        log(f"py-spy wrote no profile of {label}")
        return
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = idle = 0
    for line in output.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        frames = [_frame_name(f) for f in stack.split(";")]
        if frames[-1] in IDLE_FRAMES:
            idle += samples
            continue
        total += samples
        own[frames[-1]] += samples
        for name in set(frames):
            inclusive[name] += samples
    if not total:
        return
    lines = [
        f"profile of {label}: {total} busy samples "
        f"({idle} samples of idle worker threads left out), {output}"
    ]
    lines.append("  self time:")
    lines += [f"    {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines.append("  inclusive, Townhall code:")
    ours = [(k, v) for k, v in inclusive.most_common() if "townhall/" in k]
    lines += [f"    {100 * n / total:5.1f}%  {name}" for name, n in ours[:top]]
    log("\n".join(lines))


# Leaf frames of threads that wait for work (the thread pool's idle workers).
IDLE_FRAMES = {
    "Condition.wait (threading.py)",
    "_worker (concurrent/futures/thread.py)",
    "WorkerThread.run (anyio/_backends/_asyncio.py)",
}


def _frame_name(frame: str) -> str:
    """``func (path/to/file.py:12)`` to ``func (package/file.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


# --- one run against one database ------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    machine_info = machine()  # the load average before this run adds its own
    data = Path(tempfile.mkdtemp(prefix="townhall-bench-"))
    scratch: str | None = None
    server: CenterProcess | None = None
    database_url = args.database_url or f"sqlite:///{data / 'townhall.db'}"
    try:
        if database_url.startswith("postgresql"):
            database_url, scratch = scratch_postgres(args.database_url)
            log(f"PostgreSQL scratch database {scratch}")
        log(f"seeding {args.users} users, {args.events} events, {args.registrations} registrations")
        seeded = seed(database_url, args.users, args.events, args.registrations, rng)
        log(f"seeded in {seeded.seconds:.1f}s; {len(seeded.visible_ids)} events visible to bench")
        command = shlex.split(args.townhall) if args.townhall else townhall_command()
        server = CenterProcess(data, database_url, command)
        server.wait_ready()
        log(f"Center up at {server.url} (pid {server.process.pid}, log {server.log_file})")
        pages, note = probe_pages(server.url, seeded.cookie)
        notes = [note] if note else []
        if note:
            log(note)
        generator = LoadGenerator(
            server.url,
            args.clients,
            args.client,
            {
                "api": {"Authorization": f"Bearer {seeded.token}"},
                "page": {"Cookie": f"{SESSION_COOKIE}={seeded.cookie}"},
            },
        )
        routes = make_routes(seeded, rng, pages)
        results: list[Result] = []
        if args.warmup > 0:
            warm = asyncio.run(generator.run(routes, args.warmup))
            log(f"warm-up: {warm.requests} requests, {sum(warm.errors.values())} errors")
        for number, route in enumerate(routes, 1):
            spy = start_py_spy(args.profile, number, route, server, args.seconds)
            result = asyncio.run(generator.run(route, args.seconds, server))
            if spy is not None:
                finish_py_spy(spy, route)
            results.append(result)
            log(
                f"{route.name}: {result.rps:.0f} req/s, p50 {result.percentile(50):.1f} ms, "
                f"p99 {result.percentile(99):.1f} ms, errors {sum(result.errors.values())}"
            )
            if args.wrk:
                headers = generator.headers[route.kind]
                result.wrk = run_wrk(server.url, route, headers, args.clients, args.seconds, data)
                log(
                    f"{route.name}, wrk: {result.wrk.requests_per_second:.0f} req/s, "
                    f"p99 {result.wrk.p99_ms:.1f} ms"
                )
        if server.process.poll() is not None:
            notes.append(f"the Center exited during the run:\n{server.log_tail()}")
        return {
            "database": "postgresql" if scratch else "sqlite",
            "database_version": database_version(database_url),
            "machine": machine_info,
            "data": {
                "users": seeded.users,
                "organizers": seeded.organizers,
                "events": seeded.events,
                "public_events": seeded.public_events,
                "event_roles": seeded.roles,
                "registrations": seeded.registrations,
                "events_visible_to_bench_user": len(seeded.visible_ids),
                "seed_seconds": round(seeded.seconds, 1),
            },
            "load": {
                "clients": args.clients,
                "seconds_per_route": args.seconds,
                "warmup_seconds": args.warmup,
                "generator": args.client,
                "server": server_description(database_url),
                "server_threads_at_end": server.threads(),
            },
            "target": {"requests_per_second": TARGET_RPS, "p99_ms": TARGET_P99_MS},
            "routes": [r.as_dict() for r in results],
            "notes": notes,
        }
    finally:
        if server is not None:
            server.stop()
            if args.keep:
                log(f"kept {data} (server log: {server.log_file})")
        if scratch is not None:
            try:
                drop_postgres(args.database_url, scratch)
            except Exception as error:  # noqa: BLE001 - cleanup must not hide the real error
                log(f"could not drop scratch database {scratch}: {error}")
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)


def database_version(url: str) -> str:
    from sqlalchemy import create_engine, text

    if url.startswith("sqlite"):
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return str(connection.scalar(text("SHOW server_version")))
    except Exception:  # noqa: BLE001
        return "PostgreSQL"
    finally:
        engine.dispose()


def machine() -> dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
    }


def print_table(report: dict[str, object]) -> None:
    m = report["machine"]
    d = report["data"]
    load = report["load"]
    print(
        f"\n== Center benchmark: {report['database']} ({report['database_version']}) ==\n"
        f"machine: nproc={m['nproc']} {m['cpu']}; Python {m['python']}; "  # type: ignore[index]
        f"load average before the run {m['load_average_before']}\n"  # type: ignore[index]
        f"data: {d['users']} users ({d['organizers']} organizers), {d['events']} events "  # type: ignore[index]
        f"({d['public_events']} public), {d['event_roles']} roles, "  # type: ignore[index]
        f"{d['registrations']} registrations; {d['events_visible_to_bench_user']} visible "  # type: ignore[index]
        f"to the member 'bench'\n"
        f"load: {load['clients']} clients x {load['seconds_per_route']}s per route, "  # type: ignore[index]
        f"generator {load['generator']}, server {load['server']}"  # type: ignore[index]
    )
    routes = report["routes"]
    with_wrk = any(r["wrk"] for r in routes)  # type: ignore[attr-defined]
    header = (
        f"{'route':<38} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'server':>7} {'gen':>5} {'all':>5}"
    ) + (f" {'wrk req/s':>9} {'wrk p99':>7} {'wrk err':>7}" if with_wrk else "")
    print(header)
    print("-" * len(header))
    for r in routes:  # type: ignore[attr-defined]
        wrk = r["wrk"]
        print(
            f"{r['route']:<38} {r['requests']:>8} {r['requests_per_second']:>7.0f} "
            f"{r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['errors']:>6} "
            f"{r['server_cpu_percent']:>6.0f}% {r['client_cpu_percent']:>4.0f}% "
            f"{r['machine_cpu_percent']:>4.0f}%"
            + (
                f" {wrk['requests_per_second']:>9.0f} {wrk['p99_ms']:>7.1f} "
                f"{wrk['not_ok'] + wrk['socket_errors']:>7}"
                if wrk
                else ""
            )
        )
    print(
        f"CPU columns: the server and its web processes, the load generator, the whole machine "
        f"(incl. the database server); 100% = one core of {m['nproc']}"  # type: ignore[index]
    )
    for r in report["routes"]:  # type: ignore[attr-defined]
        if r["error_kinds"]:
            print(f"  errors on {r['route']}: {r['error_kinds']}")
    for note in report["notes"]:  # type: ignore[attr-defined]
        print(f"  note: {note}")
    for r in report["routes"]:  # type: ignore[attr-defined]
        if r["route"] in TARGET_ROUTES:
            ok = r["requests_per_second"] >= TARGET_RPS and r["p99_ms"] < TARGET_P99_MS
            wrk = r["wrk"]
            wrk_ok = wrk and (
                wrk["requests_per_second"] >= TARGET_RPS
                and wrk["p99_ms"] < TARGET_P99_MS
                and not wrk["not_ok"] + wrk["socket_errors"]
            )
            print(
                f"target ({r['route']} >= {TARGET_RPS} req/s, p99 < {TARGET_P99_MS:.0f} ms): "
                f"{'met' if ok else 'MISSED'}"
                + (f"; by wrk: {'met' if wrk_ok else 'MISSED'}" if wrk else "")
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default="",
        help="PostgreSQL server to use (a scratch database is created on it and dropped); "
        "default: SQLite in the temporary data folder",
    )
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=10, help="seconds per route")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds (all routes)")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--registrations", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="load generator: raw asyncio HTTP/1.1 (lean) or httpx.AsyncClient",
    )
    parser.add_argument(
        "--townhall",
        default="",
        help="command that runs townhall (default: the one beside this Python)",
    )
    parser.add_argument(
        "--profile",
        default="",
        metavar="DIR",
        help="record the server with py-spy during each route into DIR and print hot spots "
        "(sampling slows the server a little: take figures from runs without it)",
    )
    parser.add_argument(
        "--wrk",
        action="store_true",
        help="after our generator, drive each route with wrk too (apt-get install wrk)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the data")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    args = parser.parse_args(argv)
    if args.users < 3 or args.events < 1 or args.clients < 1:
        parser.error("need at least 3 users, 1 event and 1 client")
    if args.wrk and shutil.which("wrk") is None:
        parser.error("--wrk needs wrk on the PATH: apt-get install wrk")

    def _terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

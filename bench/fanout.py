"""Fan-out benchmark of the live server, with redis-server and nats-server as peers.

One command prints one table: audio fan-out by a Townhall live server
(``townhall.live.server.LiveServer``, run by bench/fanout_server.py in its
own process), by Debian's ``redis-server`` (pub/sub: one single-threaded C
event loop, the closest analogue of one live server process) and by
``nats-server``, each over plain TCP and TLS, on the same workloads and with
the same load generator (bench/fanout_loadgen.py), all on loopback:

    .venv/bin/python bench/fanout.py                  # everything, about 15 minutes
    .venv/bin/python bench/fanout.py --quick          # one short, scaled-down run of each
    .venv/bin/python bench/fanout.py --json out.json  # the figures as JSON too
    bench/run-fanout.sh [options]                     # installs the peers first (apt-get)

Workloads (audio frames of ``--frame-bytes``, 50 a second per speaker): one
speaker to 1,000 listeners; 10 to 500; 20 to 1,000; a main server and two
children with the listeners on the children (latency added per hop); 10 to
500 with 5 % of the listeners not reading (the others' p99, the drops); a
storm of 1,000 TLS joins. Each figure is the median of ``--runs`` (3) runs,
the systems interleaved run by run; each run starts fresh servers and fresh
connections. The machine's own limits (``iperf3`` with 200-byte writes,
``openssl speed -evp aes-128-gcm``) are measured in the same invocation.
bench/README.md explains what each figure means and how the generator is
kept out of them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fanout_loadgen import histogram_percentile  # noqa: E402

EVENT_ID = 7
TITLE = "Fan-out bench"
LINK_SECRETS = {"child-a": "bench-link-secret-child-a", "child-b": "bench-link-secret-child-b"}
SYSTEMS = ("townhall", "redis", "nats")

# The issue's targets (issue 3, "Benchmark").
TARGET_DELIVERED = 0.999
TARGET_TLS_1000_CPU = 40.0  # % of one core, one speaker to 1,000 listeners over TLS
REDIS_TLS_1000_CPU_REPORTED = 46.0
TARGET_CPU_RATIO = {"plain": 1.0, "tls": 1.5}
TARGET_P99_RATIO = 2.0
TARGET_HOP_P99_MS = 10.0


def log(message: str) -> None:
    print(f"[fanout] {message}", file=sys.stderr, flush=True)


# --- workloads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    speakers: int
    listeners: int
    transports: tuple[str, ...] = ("plain", "tls")
    tree: bool = False
    slow_fraction: float = 0.0
    storm: bool = False

    def scaled(self, scale: float) -> Workload:
        if scale == 1:
            return self
        return replace(
            self,
            speakers=max(1, int(self.speakers * scale)) if self.speakers else 0,
            listeners=max(4, int(self.listeners * scale)),
        )

    @property
    def slow(self) -> int:
        return int(round(self.listeners * self.slow_fraction))

    @property
    def participants(self) -> int:
        return self.speakers + self.listeners

    @property
    def about(self) -> str:
        speakers = f"{self.speakers} speaker{'s' if self.speakers > 1 else ''}"
        if self.storm:
            return f"{self.listeners:,} TLS participants joining"
        if self.tree:
            return (
                f"a main server and 2 children, {self.listeners:,} listeners split evenly over "
                f"the three, {speakers} on the main"
            )
        if self.slow:
            return f"{speakers} to {self.listeners:,} listeners, {self.slow} of which stop reading"
        return f"{speakers} to {self.listeners:,} listeners"


WORKLOADS: tuple[Workload, ...] = (
    Workload("1x1000", 1, 1000),
    Workload("10x500", 10, 500),
    Workload("20x1000", 20, 1000),
    Workload("tree", 1, 1000, transports=("tls",), tree=True),
    Workload("slow", 10, 500, transports=("tls",), slow_fraction=0.05),
    Workload("storm", 0, 1000, transports=("tls",), storm=True),
)


# --- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads) from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def kernel_send_queues(pids: Sequence[int]) -> list[int]:
    """Send-Q in bytes of each established TCP socket of ``pids`` (``ss``): what the kernel
    holds for peers that do not read, beside what the server holds itself (RSS)."""
    try:
        done = subprocess.run(
            ["ss", "-tnpH", "state", "established"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return []
    wanted = tuple(f"pid={pid}," for pid in pids)
    queues = []
    for line in done.stdout.splitlines():
        if any(w in line for w in wanted):
            fields = line.split()  # Recv-Q Send-Q Local Peer Process
            if len(fields) > 1 and fields[1].isdigit():
                queues.append(int(fields[1]))
    return queues


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


class Process:
    """A child process in its own process group; ``stop`` always ends it (and only it)."""

    def __init__(
        self, name: str, command: list[str], log_file: Path, stdout_file: Path | None = None
    ) -> None:
        self.name = name
        self.log_file = log_file
        self._log = open(log_file, "ab")  # noqa: SIM115 - closed in stop()
        self._out = open(stdout_file, "ab") if stdout_file else None  # noqa: SIM115
        self.popen = subprocess.Popen(
            command,
            stdout=self._out or self._log,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 10) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=grace)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=5)
        self._log.close()
        if self._out is not None:
            self._out.close()


async def wait_port(port: int, process: Process, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise RuntimeError(f"{process.name} did not listen on {port} in {within}s")


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


async def wait_log(process: Process, pattern: str, count: int = 1, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        if len(re.findall(pattern, read_text(process.log_file))) >= count:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{process.name}: no {pattern!r} in {within}s:\n{process.log_tail()}")


# --- the shared setup: certificates, keys, credentials --------------------------------------


@dataclass
class Setup:
    folder: Path
    ca_file: Path
    cert_file: Path
    key_file: Path
    center_public_key_hex: str
    event_key_hex: str
    credentials: dict[str, str]  # id -> sha256 of the secret
    sealed: list[str]  # base64 sealed credentials; [0] is a moderator's
    frame_bytes: int
    args: argparse.Namespace


def make_setup(folder: Path, participants: int, args: argparse.Namespace) -> Setup:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from townhall.pki import DevCA
    from townhall.ticket import (
        MAX_LIFETIME,
        Credential,
        Role,
        ServerEntry,
        Zone,
        generate_event_key,
        issue_ticket,
        open_ticket,
    )

    ca = DevCA.ensure(folder / "pki")
    issued = ca.issue("bench-server", ["127.0.0.1", "localhost"], client=True)
    signing_key = Ed25519PrivateKey.generate()
    event_key = generate_event_key()
    now = int(time.time())
    server = ServerEntry(name="main", host="127.0.0.1", port=1, zone=Zone.INTERNAL)
    credentials: dict[str, str] = {}
    sealed: list[str] = []
    for index in range(participants):
        role = Role.MODERATOR if index == 0 else Role.PARTICIPANT
        credential = Credential.new(username=f"bench{index:05d}", display_name="", role=role)
        credentials[credential.credential_id] = credential.secret_sha256
        ticket = issue_ticket(
            signing_key=signing_key,
            event_key=event_key,
            event_id=EVENT_ID,
            title=TITLE,
            center_url="https://center.bench/",
            servers=[server],
            credential=credential,
            now=now,
            lifetime=MAX_LIFETIME,
        )
        contents = open_ticket(ticket, center_public_key=signing_key.public_key(), now=now)
        sealed.append(base64.b64encode(contents.sealed_credential).decode())
    public = signing_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return Setup(
        folder=folder,
        ca_file=ca.cert_file,
        cert_file=issued.cert_file,
        key_file=issued.key_file,
        center_public_key_hex=public.hex(),
        event_key_hex=event_key.hex(),
        credentials=credentials,
        sealed=sealed,
        frame_bytes=args.frame_bytes,
        args=args,
    )


# --- the systems -------------------------------------------------------------------------


@dataclass
class Deployment:
    """Servers of one run: where speakers and each listener group connect, whose CPU counts."""

    speaker_address: str
    group_addresses: dict[str, str]  # listener group -> address
    processes: list[Process]
    note: str = ""

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


class System:
    name = ""

    def __init__(self, setup: Setup, run_dir: Path) -> None:
        self.setup = setup
        self.run_dir = run_dir

    async def start(self, tls: bool, tree: bool) -> Deployment:
        raise NotImplementedError


class Redis(System):
    """redis-server with pub/sub; the tree is a master and two replicas (PUBLISH replicates)."""

    name = "redis"

    def config(self, name: str, port: int, tls: bool, master: int | None) -> Path:
        s = self.setup
        lines = [
            "bind 127.0.0.1",
            "protected-mode no",
            f"port {0 if tls else port}",
            'save ""',
            "appendonly no",
            "daemonize no",
            f"dir {self.run_dir}",
            f"logfile {self.run_dir / (name + '.log')}",
            "maxclients 10000",
            "tcp-backlog 511",
            "client-output-buffer-limit pubsub 32mb 8mb 60",
        ]
        if tls:
            lines += [
                f"tls-port {port}",
                f"tls-cert-file {s.cert_file}",
                f"tls-key-file {s.key_file}",
                f"tls-ca-cert-file {s.ca_file}",
                "tls-auth-clients no",
            ]
        if master is not None:
            lines += [f"replicaof 127.0.0.1 {master}", "replica-read-only yes"]
            if tls:
                lines += ["tls-replication yes"]
        path = self.run_dir / f"{name}.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def launch(self, name: str, tls: bool, master: int | None = None) -> tuple[Process, int]:
        port = free_port()
        config = self.config(name, port, tls, master)
        # redis logs to its logfile; the process log gets what it prints before that.
        process = Process(
            f"redis {name}", ["redis-server", str(config)], self.run_dir / f"{name}.out"
        )
        process.log_file = self.run_dir / f"{name}.log"
        return process, port

    async def start(self, tls: bool, tree: bool) -> Deployment:
        main, main_port = self.launch("redis-main", tls)
        processes = [main]
        try:
            await wait_port(main_port, main)
            addresses = {"main": f"127.0.0.1:{main_port}"}
            if tree:
                for child in ("child-a", "child-b"):
                    process, port = self.launch(f"redis-{child}", tls, master=main_port)
                    processes.append(process)
                    await wait_port(port, process)
                    addresses[child] = f"127.0.0.1:{port}"
                for process in processes[1:]:
                    await wait_log(process, "MASTER <-> REPLICA sync: Finished with success")
        except BaseException:
            for process in processes:
                process.stop()
            raise
        return Deployment(addresses["main"], addresses, processes)


class Nats(System):
    """nats-server; the tree is a hub and two leaf nodes."""

    name = "nats"

    def config(
        self, name: str, port: int, tls: bool, leaf_listen: int | None, hub: int | None, http: int
    ) -> Path:
        s = self.setup
        lines = [
            f"listen: 127.0.0.1:{port}",
            f"http: 127.0.0.1:{http}",
            "max_connections: 10000",
            'write_deadline: "10s"',
            'ping_interval: "2m"',
        ]
        server_tls = (
            f'tls {{\n  cert_file: "{s.cert_file}"\n  key_file: "{s.key_file}"\n  timeout: 5\n}}'
        )
        if tls:
            lines.append(server_tls)
        if leaf_listen is not None:
            lines += ["leafnodes {", f"  listen: 127.0.0.1:{leaf_listen}"]
            lines += [server_tls] if tls else []
            lines.append("}")
        if hub is not None:
            url = f"tls://127.0.0.1:{hub}" if tls else f"nats-leaf://127.0.0.1:{hub}"
            lines += ["leafnodes {", "  remotes: [", "    {", f'      url: "{url}"']
            lines += [f'      tls {{ ca_file: "{s.ca_file}" }}'] if tls else []
            lines += ["    }", "  ]", "}"]
        path = self.run_dir / f"{name}.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    async def start(self, tls: bool, tree: bool) -> Deployment:
        processes: list[Process] = []
        addresses: dict[str, str] = {}
        try:
            port, http = free_port(), free_port()
            leaf = free_port() if tree else None
            config = self.config("nats-main", port, tls, leaf, None, http)
            main = Process(
                "nats main", ["nats-server", "-c", str(config)], self.run_dir / "nats-main.log"
            )
            processes.append(main)
            await wait_port(port, main)
            addresses["main"] = f"127.0.0.1:{port}"
            if tree:
                for child in ("child-a", "child-b"):
                    child_port = free_port()
                    config = self.config(f"nats-{child}", child_port, tls, None, leaf, free_port())
                    process = Process(
                        f"nats {child}",
                        ["nats-server", "-c", str(config)],
                        self.run_dir / f"nats-{child}.log",
                    )
                    processes.append(process)
                    await wait_port(child_port, process)
                    addresses[child] = f"127.0.0.1:{child_port}"
                await wait_log(main, "Leafnode connection created", count=2)
        except BaseException:
            for process in processes:
                process.stop()
            raise
        return Deployment(addresses["main"], addresses, processes)


class Townhall(System):
    """Townhall live servers, each bench/fanout_server.py in its own process."""

    name = "townhall"

    def launch(
        self, name: str, tls: bool, *, parent: str | None = None, children: bool = False
    ) -> tuple[Process, Path]:
        s = self.setup
        config = {
            "name": name,
            "tls": tls,
            "cert": str(s.cert_file),
            "key": str(s.key_file),
            "ca": str(s.ca_file),
            "event_id": EVENT_ID,
            "title": TITLE,
            "center_public_key": s.center_public_key_hex,
            "event_keys": [s.event_key_hex],
            "credentials": s.credentials,
            "role": "child" if parent else "main",
            "parent": parent,
            "link_secret": LINK_SECRETS.get(name),
            "children": {
                child: hashlib.sha256(secret.encode()).hexdigest()
                for child, secret in LINK_SECRETS.items()
            }
            if children
            else {},
        }
        path = self.run_dir / f"{name}.json"
        path.write_text(json.dumps(config))
        out = self.run_dir / f"{name}.out"
        process = Process(
            f"townhall {name}",
            [sys.executable, str(HERE / "fanout_server.py"), str(path)],
            self.run_dir / f"{name}.log",
            stdout_file=out,
        )
        return process, out

    @staticmethod
    async def read_status(process: Process, out: Path, key: str, within: float = 30) -> Any:
        """The newest value of ``key`` in the server's status lines, waiting for one."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
            for line in reversed(read_text(out).splitlines()):
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if key in message:
                    return message[key]
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{process.name}: no {key!r} in {within}s:\n{process.log_tail()}")

    async def start(self, tls: bool, tree: bool) -> Deployment:
        processes: list[Process] = []
        addresses: dict[str, str] = {}
        try:
            if tree and not tls:
                raise RuntimeError("the Townhall tree runs over TLS only (links are TLS)")
            main, out = self.launch("main", tls, children=tree)
            processes.append(main)
            port = await self.read_status(main, out, "port")
            addresses["main"] = f"127.0.0.1:{port}"
            if tree:
                outs = []
                for child in ("child-a", "child-b"):
                    process, child_out = self.launch(child, tls, parent=addresses["main"])
                    processes.append(process)
                    outs.append(child_out)
                    child_port = await self.read_status(process, child_out, "port")
                    addresses[child] = f"127.0.0.1:{child_port}"
                for process, child_out in zip(processes[1:], outs, strict=True):
                    deadline = time.monotonic() + 30
                    while await self.read_status(process, child_out, "upstream") != "up":
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"{process.name}: the link Up is not up")
                        await asyncio.sleep(0.1)
        except BaseException:
            for process in processes:
                process.stop()
            raise
        return Deployment(addresses["main"], addresses, processes)


SYSTEM_CLASSES: dict[str, type[System]] = {"townhall": Townhall, "redis": Redis, "nats": Nats}


def townhall_available() -> tuple[bool, str]:
    try:
        from townhall.live.server import LiveServer  # noqa: F401
    except ImportError as error:
        return False, f"townhall.live.server is not there yet ({error})"
    return True, ""


# --- the load generator processes ----------------------------------------------------------


class Gen:
    """One bench/fanout_loadgen.py process and its JSON-lines conversation."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str, log_file: Path) -> None:
        self.proc = proc
        self.name = name
        self.log_file = log_file

    @classmethod
    async def start(cls, name: str, spec: dict[str, Any], folder: Path) -> Gen:
        spec_file = folder / f"{name}.json"
        spec_file.write_text(json.dumps(spec))
        log_file = folder / f"{name}.log"
        with log_file.open("ab") as stderr:  # noqa: ASYNC230 - a local file, opened once
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(HERE / "fanout_loadgen.py"),
                str(spec_file),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
                limit=64 * 1024 * 1024,
            )
        return cls(proc, name, log_file)

    async def tell(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        await self.proc.stdin.drain()

    async def hear(self, within: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), within)
        except TimeoutError:
            raise RuntimeError(f"generator {self.name} said nothing for {within:.0f}s") from None
        if not line:
            tail = read_text(self.log_file)[-3000:]
            raise RuntimeError(f"generator {self.name} exited:\n{tail}")
        result: dict[str, Any] = json.loads(line)
        return result

    async def close(self) -> None:
        if self.proc.returncode is None:
            try:
                await self.tell({"cmd": "exit"})
                await asyncio.wait_for(self.proc.wait(), 10)
            except (TimeoutError, ConnectionError, BrokenPipeError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await self.proc.wait()


# --- one run -----------------------------------------------------------------------------


def listener_groups(workload: Workload, deployment: Deployment) -> list[tuple[str, str, bool]]:
    """(group, address, slow) for every listener of the workload."""
    out: list[tuple[str, str, bool]] = []
    if workload.tree:
        # Evenly over the three servers: each fans out to as many listeners, so the
        # difference between a child's listeners and the main's is what the hop adds.
        groups = ("main", "child-a", "child-b")
        for index in range(workload.listeners):
            group = groups[index % 3]
            out.append((group, deployment.group_addresses[group], False))
        return out
    slow_every = round(1 / workload.slow_fraction) if workload.slow_fraction else 0
    for index in range(workload.listeners):
        slow = bool(slow_every) and index % slow_every == slow_every - 1
        out.append(("slow" if slow else "listeners", deployment.group_addresses["main"], slow))
    return out


async def run_once(
    setup: Setup, system_name: str, workload: Workload, tls: bool, number: int
) -> dict[str, Any]:
    args = setup.args
    run_dir = setup.folder / f"{workload.name}-{'tls' if tls else 'plain'}-{system_name}-{number}"
    run_dir.mkdir()
    system = SYSTEM_CLASSES[system_name](setup, run_dir)
    deployment = await system.start(tls, workload.tree)
    gens: list[Gen] = []
    try:
        baseline_rss = sum(rss_bytes(pid) for pid in deployment.pids)
        base_spec = {
            "system": system_name,
            "tls": tls,
            "ca": str(setup.ca_file),
            "frame_bytes": setup.frame_bytes,
            "frames_per_second": args.frames_per_second,
            "loop": args.generator_loop,
            "join_timeout": args.join_timeout,
        }
        speakers = [
            {"address": deployment.speaker_address, "ticket": setup.sealed[i], "moderator": i == 0}
            for i in range(workload.speakers)
        ]
        listeners = [
            {
                "address": address,
                "group": group,
                "slow": slow,
                "ticket": setup.sealed[workload.speakers + i],
            }
            for i, (group, address, slow) in enumerate(listener_groups(workload, deployment))
        ]
        processes = max(1, args.generators)
        concurrency = max(1, args.join_concurrency // processes)
        if speakers:
            spec = dict(base_spec, speakers=speakers, listeners=[], join_concurrency=1)
            gens.append(await Gen.start("speakers", spec, run_dir))
        for index in range(processes):
            part = listeners[index::processes]
            if part:
                spec = dict(base_spec, speakers=[], listeners=part, join_concurrency=concurrency)
                gens.append(await Gen.start(f"listeners-{index}", spec, run_dir))
        # Speakers first: a townhall moderator opens the floor before anyone speaks.
        connected: dict[str, dict[str, Any]] = {}
        cpu_before_joins = sum(cpu_seconds(pid) for pid in deployment.pids)
        busy_before_joins = machine_busy()
        if speakers:
            await gens[0].tell({"cmd": "connect"})
            connected["speakers"] = await gens[0].hear(args.join_timeout + 30)
        listener_gens = [g for g in gens if g.name != "speakers"]
        for gen in listener_gens:
            await gen.tell({"cmd": "connect"})
        for gen in listener_gens:
            connected[gen.name] = await gen.hear(args.join_timeout + 30)
        cpu_after_joins = sum(cpu_seconds(pid) for pid in deployment.pids)
        busy_after_joins = machine_busy()
        failed = sum(c["failed"] for c in connected.values())
        errors: dict[str, int] = {}
        for c in connected.values():
            for key, value in c["errors"].items():
                errors[key] = errors.get(key, 0) + value
        joined_rss = sum(rss_bytes(pid) for pid in deployment.pids)
        cipher = next((c["cipher"] for c in connected.values() if c["cipher"]), "")
        connections = workload.participants - failed
        result: dict[str, Any] = {
            "system": system_name,
            "workload": workload.name,
            "transport": "tls" if tls else "plain",
            "run": number,
            "connections": connections,
            "failed_joins": failed,
            "errors": errors,
            "cipher": cipher,
            "servers": len(deployment.processes),
        }
        if workload.storm:
            started = min(c["join_started"] for c in connected.values())
            finished = max(c["join_finished"] for c in connected.values())
            join_seconds = sorted(s for c in connected.values() for s in c["join_seconds"])
            busy = busy_after_joins[0] - busy_before_joins[0]
            total = busy_after_joins[1] - busy_before_joins[1]
            result.update(
                joins=len(join_seconds),
                joins_per_second=len(join_seconds) / max(finished - started, 1e-9),
                join_p50_ms=1000 * percentile(join_seconds, 50),
                join_p99_ms=1000 * percentile(join_seconds, 99),
                server_cpu_ms_per_join=1000
                * (cpu_after_joins - cpu_before_joins)
                / max(1, len(join_seconds)),
                machine_cpu_percent=100 * busy / total * (os.cpu_count() or 1) if total else 0,
                memory_per_connection_kib=(joined_rss - baseline_rss) / max(1, connections) / 1024,
            )
            return result

        # The run: warm-up, then the measured window. With slow consumers the warm-up is
        # longer, so that their queues are full and the servers drop or buffer during it.
        warmup = max(args.warmup, args.slow_warmup) if workload.slow else args.warmup
        loop_start = time.monotonic() + 0.5
        window = (loop_start + warmup, loop_start + warmup + args.seconds)
        command = {
            "cmd": "run",
            "start": loop_start,
            "window": list(window),
            "stop": window[1],
            "grace": args.grace,
        }
        for gen in gens:
            await gen.tell(command)
        result["warmup"] = warmup
        await asyncio.sleep(max(0.0, window[0] - time.monotonic()))
        cpu0 = [cpu_seconds(pid) for pid in deployment.pids]
        gen_cpu0 = sum(cpu_seconds(g.proc.pid) for g in gens)
        busy0 = machine_busy()
        await asyncio.sleep(max(0.0, window[1] - time.monotonic()))
        cpu1 = [cpu_seconds(pid) for pid in deployment.pids]
        gen_cpu1 = sum(cpu_seconds(g.proc.pid) for g in gens)
        busy1 = machine_busy()
        window_rss = sum(rss_bytes(pid) for pid in deployment.pids)
        send_queues = kernel_send_queues(deployment.pids) if workload.slow else []
        seconds = window[1] - window[0]
        results = {
            gen.name: await gen.hear(args.grace + args.seconds + warmup + 60) for gen in gens
        }
        for r in results.values():
            for key, value in r["errors"].items():
                errors[key] = errors.get(key, 0) + value
        lost = sum(r["lost"] for r in results.values())
        alive = all(p.alive() for p in deployment.processes)
        sent = results["speakers"]["sent"] if "speakers" in results else []
        sent_window = results["speakers"]["sent_window"] if "speakers" in results else []
        frames_sent = sum(sent)
        groups: dict[str, dict[str, Any]] = {}
        per_listener: list[tuple[str, int]] = []
        for name, r in results.items():
            if name == "speakers":
                continue
            per_listener += [(g, n) for g, n in r["per_listener_frames"]]
            for group, g in r["groups"].items():
                into = groups.setdefault(
                    group, {"listeners": 0, "frames": 0, "window_frames": 0, "histogram": []}
                )
                into["listeners"] += g["listeners"]
                into["frames"] += g["frames"]
                into["window_frames"] += g["window_frames"]
                into["histogram"] = add_histograms(into["histogram"], g["histogram"])
        fast = [g for name, g in groups.items() if name != "slow"]
        fast_listeners = sum(g["listeners"] for g in fast)
        delivered = sum(g["frames"] for g in fast)
        expected = frames_sent * fast_listeners
        window_deliveries = sum(g["window_frames"] for g in groups.values())
        histogram: list[int] = []
        for g in fast:
            histogram = add_histograms(histogram, g["histogram"])
        server_cpu = sum(b - a for a, b in zip(cpu0, cpu1, strict=True))
        busy = busy1[0] - busy0[0]
        total = busy1[1] - busy0[1]
        result.update(
            alive=alive,
            lost_connections=lost,
            frames_sent=frames_sent,
            frames_sent_window=sum(sent_window),
            expected=expected,
            delivered=delivered,
            delivered_ratio=delivered / expected if expected else float("nan"),
            window_deliveries=window_deliveries,
            deliveries_per_second=window_deliveries / seconds,
            server_cpu_percent=100 * server_cpu / seconds,
            server_cpu_percent_each=[
                100 * (b - a) / seconds for a, b in zip(cpu0, cpu1, strict=True)
            ],
            cpu_us_per_delivery=1e6 * server_cpu / window_deliveries
            if window_deliveries
            else float("nan"),
            p50_ms=histogram_percentile(histogram, 50),
            p99_ms=histogram_percentile(histogram, 99),
            max_ms=histogram_percentile(histogram, 100),
            memory_per_connection_kib=(window_rss - baseline_rss) / max(1, connections) / 1024,
            memory_per_connection_joined_kib=(joined_rss - baseline_rss)
            / max(1, connections)
            / 1024,
            generator_cpu_percent=100 * (gen_cpu1 - gen_cpu0) / seconds,
            generator_lag_p99_ms=max(
                (r["lag_ms_p99"] for r in results.values() if not math.isnan(r["lag_ms_p99"])),
                default=float("nan"),
            ),
            machine_cpu_percent=100 * busy / total * (os.cpu_count() or 1) if total else 0,
            speaker_frames_heard=sum(r.get("speaker_frames_heard", 0) for r in results.values()),
            groups={
                name: {
                    "listeners": g["listeners"],
                    "frames": g["frames"],
                    "expected": frames_sent * g["listeners"],
                    "p50_ms": histogram_percentile(g["histogram"], 50),
                    "p99_ms": histogram_percentile(g["histogram"], 99),
                }
                for name, g in groups.items()
            },
        )
        if send_queues:
            result["kernel_send_queue_max_kib"] = max(send_queues) / 1024
            result["kernel_send_queue_total_mib"] = sum(send_queues) / 1024 / 1024
        if "slow" in groups:
            slow = groups["slow"]
            slow_expected = frames_sent * slow["listeners"]
            result["slow_dropped"] = slow_expected - slow["frames"]
            result["slow_expected"] = slow_expected
            result["slow_dropped_ratio"] = result["slow_dropped"] / max(1, slow_expected)
        if workload.tree:
            main_group = groups.get("main")
            children = [g for name, g in groups.items() if name.startswith("child")]
            child_histogram: list[int] = []
            for g in children:
                child_histogram = add_histograms(child_histogram, g["histogram"])
            if main_group:
                result["main_p50_ms"] = histogram_percentile(main_group["histogram"], 50)
                result["main_p99_ms"] = histogram_percentile(main_group["histogram"], 99)
                result["children_p50_ms"] = histogram_percentile(child_histogram, 50)
                result["children_p99_ms"] = histogram_percentile(child_histogram, 99)
                result["hop_p50_ms"] = result["children_p50_ms"] - result["main_p50_ms"]
                result["hop_p99_ms"] = result["children_p99_ms"] - result["main_p99_ms"]
        if not alive:
            result["errors"]["a server process exited"] = 1
        return result
    finally:
        for gen in gens:
            await gen.close()
        deployment.stop()
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)


def add_histograms(a: Sequence[int], b: Sequence[int]) -> list[int]:
    if len(a) < len(b):
        a, b = b, a
    out = list(a)
    for index, value in enumerate(b):
        out[index] += value
    return out


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(len(ordered) * q / 100) - 1))]


# --- the machine's own limits -----------------------------------------------------------------


def iperf3_limits(seconds: float) -> dict[str, Any]:
    if shutil.which("iperf3") is None:
        return {"error": "iperf3 is not installed"}
    port = free_port()
    server = subprocess.Popen(
        ["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(0.3)
        done = subprocess.run(
            ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-l", "200", "-t", str(seconds), "-J"],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
        )
        report = json.loads(done.stdout)
        end = report["end"]
        received = end["sum_received"]
        return {
            "write_bytes": 200,
            "gbit_per_second": received["bits_per_second"] / 1e9,
            "writes_per_second": received["bytes"] / 200 / received["seconds"],
            "sender_cpu_percent": end["cpu_utilization_percent"]["host_total"],
            "receiver_cpu_percent": end["cpu_utilization_percent"]["remote_total"],
        }
    except (subprocess.SubprocessError, ValueError, KeyError) as error:
        return {"error": f"iperf3: {error}"}
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


def openssl_limits(seconds: int) -> dict[str, Any]:
    if shutil.which("openssl") is None:
        return {"error": "openssl is not installed"}
    try:
        done = subprocess.run(
            ["openssl", "speed", "-mr", "-seconds", str(seconds), "-evp", "aes-128-gcm"],
            capture_output=True,
            text=True,
            timeout=seconds * 10 + 30,
        )
    except subprocess.SubprocessError as error:
        return {"error": f"openssl: {error}"}
    sizes: list[int] = []
    rates: list[float] = []
    for line in done.stdout.splitlines():
        if line.startswith("+H:"):
            sizes = [int(x) for x in line.split(":")[1:]]
        elif line.startswith("+F:"):
            rates = [float(x) for x in line.split(":")[3:]]
    if not sizes or len(sizes) != len(rates):
        return {"error": "openssl speed: output not understood"}
    return {
        "cipher": "aes-128-gcm",
        "bytes_per_second": dict(zip(sizes, rates, strict=True)),
        "version": subprocess.run(
            ["openssl", "version"], capture_output=True, text=True
        ).stdout.strip(),
    }


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(command: list[str]) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return "not installed"
        return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "?"

    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "redis": version(["redis-server", "--version"]),
        "nats": version(["nats-server", "--version"]),
    }


# --- figures ------------------------------------------------------------------------------

FIGURES = (
    "delivered_ratio",
    "server_cpu_percent",
    "cpu_us_per_delivery",
    "deliveries_per_second",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "memory_per_connection_kib",
    "generator_cpu_percent",
    "generator_lag_p99_ms",
    "machine_cpu_percent",
    "hop_p50_ms",
    "hop_p99_ms",
    "main_p50_ms",
    "main_p99_ms",
    "children_p50_ms",
    "children_p99_ms",
    "slow_dropped",
    "slow_dropped_ratio",
    "kernel_send_queue_max_kib",
    "kernel_send_queue_total_mib",
    "joins_per_second",
    "join_p50_ms",
    "join_p99_ms",
    "server_cpu_ms_per_join",
)


def median_of(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": len(runs)}
    for name in FIGURES:
        values = [r[name] for r in runs if name in r and not _nan(r[name])]
        if values:
            out[name] = statistics.median(values)
    slow_groups = [
        r["groups"]["listeners"]["p99_ms"] for r in runs if "slow" in r.get("groups", {})
    ]
    if slow_groups:
        out["others_p99_ms"] = statistics.median(slow_groups)
    out["failed_joins"] = max((r.get("failed_joins", 0) for r in runs), default=0)
    out["lost_connections"] = max((r.get("lost_connections", 0) for r in runs), default=0)
    errors: dict[str, int] = {}
    for r in runs:
        for key, value in r.get("errors", {}).items():
            errors[key] = errors.get(key, 0) + value
    out["errors"] = errors
    out["cipher"] = next((r["cipher"] for r in runs if r.get("cipher")), "")
    out["connections"] = max((r.get("connections", 0) for r in runs), default=0)
    return out


def _nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def fmt(value: Any, spec: str, width: int) -> str:
    if value is None or _nan(value):
        return "-".rjust(width)
    return format(value, spec).rjust(width)


def ratio_text(value: float | None, target: float | None) -> str:
    if value is None or _nan(value):
        return "-"
    if target is None:
        return f"{value:.2f}x"
    return f"{value:.2f}x (<= {target:g}: {'ok' if value <= target else 'MISSED'})"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def print_header(report: dict[str, Any]) -> None:
    m = report["machine"]
    cfg = report["config"]
    print(
        f"\n== Fan-out benchmark: Townhall live server vs redis-server and nats-server ==\n"
        f"machine: nproc={m['nproc']} {m['cpu']}; Python {m['python']}; "
        f"load average before {m['load_average_before']}, after {m.get('load_average_after')}\n"
        f"peers: {m['redis']}; {m['nats']}\n"
        f"load: {cfg['frame_bytes']}-byte audio frames, {cfg['frames_per_second']}/s per "
        f"speaker; {cfg['seconds']:g} s measured after {cfg['warmup']:g} s warm-up; median of "
        f"{cfg['runs']} runs, systems interleaved; generator: 1 speaker process + "
        f"{cfg['generators']} listener processes ({cfg['generator_loop']})"
    )
    print("workloads: " + "; ".join(f"{name}: {about}" for name, about in cfg["workloads"].items()))
    limits = report["limits"]
    ip = limits.get("iperf3", {})
    if "error" in ip:
        print(f"machine limit: {ip['error']}")
    elif ip:
        print(
            f"machine limit, iperf3 on loopback with 200-byte writes: "
            f"{ip['gbit_per_second']:.2f} Gbit/s = {ip['writes_per_second'] / 1e3:,.0f}k writes/s "
            f"(sender {ip['sender_cpu_percent']:.0f}%, receiver {ip['receiver_cpu_percent']:.0f}%)"
        )
    ossl = limits.get("openssl", {})
    if "error" in ossl:
        print(f"machine limit: {ossl['error']}")
    elif ossl:
        shown = ", ".join(
            f"{size} B {rate / 1e6:,.0f} MB/s ({rate / int(size) / 1e6:.2f}M blocks/s)"
            for size, rate in ossl["bytes_per_second"].items()
            if int(size) in (16, 256, 16384)
        )
        print(f"machine limit, openssl speed -evp aes-128-gcm, one core: {shown}")
    for note in report.get("notes", []):
        print(f"note: {note}")


def print_table(report: dict[str, Any]) -> None:
    print_header(report)
    results = report["results"]
    header = (
        f"{'workload':<9} {'tls':<5} {'system':<8} {'deliv.':>7} {'cpu%':>6} {'us/dlv':>7} "
        f"{'xredis':>6} {'dlv/s':>9} {'p50ms':>8} {'p99ms':>8} {'xredis':>6} {'KiB/c':>6} "
        f"{'gen%':>5} {'lag99':>6}"
    )
    print()
    print(header)
    print("-" * len(header))
    for row in results:
        if row["workload"] == "storm":
            continue
        ref = find(results, row["workload"], row["transport"], "redis")
        cells = [
            f"{row['workload']:<9} {row['transport']:<5} {row['system']:<8}",
            fmt(row.get("delivered_ratio"), ".4f", 7),
            fmt(row.get("server_cpu_percent"), ".1f", 6),
            fmt(row.get("cpu_us_per_delivery"), ".2f", 7),
            fmt(_ratio(row, ref, "cpu_us_per_delivery"), ".2f", 6),
            fmt(row.get("deliveries_per_second"), ",.0f", 9),
            fmt(row.get("p50_ms"), ".2f", 8),
            fmt(row.get("p99_ms"), ".2f", 8),
            fmt(_ratio(row, ref, "p99_ms"), ".2f", 6),
            fmt(row.get("memory_per_connection_kib"), ".1f", 6),
            fmt(row.get("generator_cpu_percent"), ".0f", 5),
            fmt(row.get("generator_lag_p99_ms"), ".1f", 6),
        ]
        print(" ".join(cells))
    print(
        "deliv. = delivered / expected frames; cpu% = the server process(es) during the window, "
        "100% = one core;\nus/dlv = server CPU-us per delivery; xredis = ratio to redis on the "
        "same workload and transport;\ndlv/s = deliveries a second; p50/p99 = latency from the "
        "speaker's send to the listener's read;\nKiB/c = server RSS growth per connection; "
        "gen% = load generator CPU; lag99 = the generator's own loop lag p99 (ms)"
    )
    tree = [r for r in results if r["workload"] == "tree"]
    if tree:
        print("\ntree (speaker on the main server; per hop = child listeners - main listeners):")
        for row in tree:
            print(
                f"  {row['transport']:<5} {row['system']:<8} main p50/p99 "
                f"{fmt(row.get('main_p50_ms'), '.2f', 6)}/{fmt(row.get('main_p99_ms'), '.2f', 6)}"
                f" ms, children {fmt(row.get('children_p50_ms'), '.2f', 6)}/"
                f"{fmt(row.get('children_p99_ms'), '.2f', 6)} ms; added per hop p50 "
                f"{fmt(row.get('hop_p50_ms'), '.2f', 6)} ms, p99 "
                f"{fmt(row.get('hop_p99_ms'), '.2f', 6)} ms"
            )
    slow = [r for r in results if r["workload"] == "slow"]
    if slow:
        print("\nslow consumers (5 % of the listeners stop reading; the others):")
        for row in slow:
            same = find(results, "10x500", row["transport"], row["system"])
            before = same.get("p99_ms") if same else None
            delivered = fmt(row.get("delivered_ratio"), ".4f", 6)
            dropped = fmt(row.get("slow_dropped_ratio"), ".1%", 6)
            print(
                f"  {row['transport']:<5} {row['system']:<8} others' p99 "
                f"{fmt(row.get('p99_ms'), '.2f', 7)} ms (10x500 with none slow: "
                f"{fmt(before, '.2f', 7)} ms), delivered {delivered}; dropped for the slow ones "
                f"{dropped} of their frames, slow ones disconnected "
                f"{row.get('lost_connections', 0)}; the server's kernel held up to "
                f"{fmt(row.get('kernel_send_queue_max_kib'), ',.0f', 5)} KiB for one"
            )
    storm = [r for r in results if r["workload"] == "storm"]
    if storm:
        print(
            f"\njoin storm ({report['config']['storm_joins']:,} TLS participants; joins/s from "
            "the first connect to the last joined):"
        )
        for row in storm:
            print(
                f"  {row['system']:<8} {fmt(row.get('joins_per_second'), ',.0f', 6)} joins/s; "
                f"join p50 {fmt(row.get('join_p50_ms'), '.1f', 6)} ms, p99 "
                f"{fmt(row.get('join_p99_ms'), '.1f', 6)} ms; server "
                f"{fmt(row.get('server_cpu_ms_per_join'), '.2f', 5)} CPU-ms a join; "
                f"{fmt(row.get('memory_per_connection_kib'), '.1f', 5)} KiB a connection"
            )
    print_targets(report)
    for row in results:
        if row.get("errors") or row.get("failed_joins"):
            shown = dict(list(row["errors"].items())[:4])
            print(
                f"  errors in {row['workload']} {row['transport']} {row['system']}: "
                f"failed joins {row.get('failed_joins', 0)}, {shown}"
            )


def _ratio(row: dict[str, Any], ref: dict[str, Any] | None, key: str) -> float | None:
    if not ref or row is ref or key not in row or key not in ref or not ref[key]:
        return None
    return float(row[key] / ref[key])


def find(
    results: Iterable[dict[str, Any]], workload: str, transport: str, system: str
) -> dict[str, Any] | None:
    for row in results:
        if (row["workload"], row["transport"], row["system"]) == (workload, transport, system):
            return row
    return None


def print_targets(report: dict[str, Any]) -> None:
    results = report["results"]
    listeners = report["config"]["shapes"].get("1x1000", [1, 1000])[1]
    lines: list[str] = []
    row = find(results, "1x1000", "tls", "townhall")
    redis_row = find(results, "1x1000", "tls", "redis")
    if row and "server_cpu_percent" in row:
        value = row["server_cpu_percent"]
        here = (
            f"; redis here {redis_row['server_cpu_percent']:.1f}%"
            if redis_row and "server_cpu_percent" in redis_row
            else ""
        )
        lines.append(
            f"{listeners:,}-listener audio event over TLS: {value:.1f}% of one core "
            f"(< {TARGET_TLS_1000_CPU:g}%: {verdict(value < TARGET_TLS_1000_CPU)}; redis needed "
            f"{REDIS_TLS_1000_CPU_REPORTED:g}% when the issue measured it{here})"
        )
    for row in results:
        if row["system"] != "townhall" or row["workload"] == "storm":
            continue
        ref = find(results, row["workload"], row["transport"], "redis")
        parts = []
        if "delivered_ratio" in row:
            d = row["delivered_ratio"]
            parts.append(
                f"delivered {d:.4f} (>= {TARGET_DELIVERED}: {verdict(d >= TARGET_DELIVERED)})"
            )
        cpu = _ratio(row, ref, "cpu_us_per_delivery")
        if cpu is not None:
            parts.append(f"CPU/delivery {ratio_text(cpu, TARGET_CPU_RATIO[row['transport']])}")
        p99 = _ratio(row, ref, "p99_ms")
        if p99 is not None:
            parts.append(f"p99 {ratio_text(p99, TARGET_P99_RATIO)}")
        if row["workload"] == "tree" and "hop_p99_ms" in row:
            hop = row["hop_p99_ms"]
            parts.append(
                f"added per hop p99 {hop:.2f} ms (<= {TARGET_HOP_P99_MS:g}: "
                f"{verdict(hop <= TARGET_HOP_P99_MS)})"
            )
        if parts:
            lines.append(f"{row['workload']} {row['transport']}: " + "; ".join(parts))
    if lines:
        print("\ntargets (Townhall; each ratio is to redis on the same workload and transport):")
        for line in lines:
            print(f"  {line}")


# --- main ---------------------------------------------------------------------------------


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    scale = args.scale
    workloads = [w.scaled(scale) for w in WORKLOADS if w.name in args.workloads]
    systems = [s for s in SYSTEMS if s in args.systems]
    notes: list[str] = []
    if "townhall" in systems:
        ok, why = townhall_available()
        if not ok:
            notes.append(f"Townhall skipped: {why}")
            systems.remove("townhall")
    for system, binary in (("redis", "redis-server"), ("nats", "nats-server")):
        if system in systems and shutil.which(binary) is None:
            notes.append(f"{system} skipped: {binary} is not installed (bench/run-fanout.sh)")
            systems.remove(system)
    machine_info = machine()
    folder = Path(tempfile.mkdtemp(prefix="townhall-fanout-"))
    results: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    try:
        participants = max((w.participants for w in workloads), default=1)
        log(f"issuing {participants} credentials and a certificate in {folder}")
        setup = make_setup(folder, participants, args)
        limits: dict[str, Any] = {}
        if not args.no_limits:
            log("machine limits: iperf3 (200-byte writes), openssl speed -evp aes-128-gcm")
            limits["iperf3"] = iperf3_limits(args.limit_seconds)
            limits["openssl"] = openssl_limits(max(1, int(args.limit_seconds // 3)))
        for workload in workloads:
            for transport in workload.transports:
                if transport not in args.transports:
                    continue
                runs: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
                for number in range(1, args.runs + 1):
                    for system in systems:  # interleaved: drift hits every system alike
                        label = f"{workload.name} {transport} {system} run {number}"
                        try:
                            result = await run_once(
                                setup, system, workload, transport == "tls", number
                            )
                        except Exception as error:  # noqa: BLE001 - one failure, not the table
                            log(f"{label}: FAILED: {error}")
                            raw.append({"label": label, "error": str(error)})
                            continue
                        raw.append(result)
                        runs[system].append(result)
                        log(f"{label}: {summary(result)}")
                for system in systems:
                    if runs[system]:
                        row = median_of(runs[system])
                        row.update(system=system, workload=workload.name, transport=transport)
                        results.append(row)
    finally:
        if args.keep:
            log(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    machine_info["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return {
        "machine": machine_info,
        "config": {
            "frame_bytes": args.frame_bytes,
            "frames_per_second": args.frames_per_second,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "runs": args.runs,
            "generators": args.generators,
            "generator_loop": args.generator_loop,
            "scale": scale,
            "workloads": {w.name: w.about for w in workloads},
            "shapes": {w.name: [w.speakers, w.listeners] for w in workloads},
            "storm_joins": next((w.listeners for w in workloads if w.storm), 0),
            "slow_warmup": args.slow_warmup,
        },
        "limits": limits,
        "notes": notes,
        "results": results,
        "runs": raw,
    }


def summary(result: dict[str, Any]) -> str:
    if "joins_per_second" in result:
        return (
            f"{result['joins_per_second']:.0f} joins/s, failed {result['failed_joins']}, "
            f"server {result['server_cpu_ms_per_join']:.2f} ms CPU per join"
        )
    return (
        f"delivered {result['delivered_ratio']:.4f}, server {result['server_cpu_percent']:.0f}% "
        f"{result['cpu_us_per_delivery']:.2f} us/delivery, p50 {result['p50_ms']:.2f} ms "
        f"p99 {result['p99_ms']:.2f} ms, gen {result['generator_cpu_percent']:.0f}% "
        f"lag99 {result['generator_lag_p99_ms']:.1f} ms"
        + (f", errors {result['errors']}" if result["errors"] else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1, help="seconds of load before measuring")
    parser.add_argument(
        "--slow-warmup",
        type=float,
        default=5,
        help="warm-up of the slow-consumer run, long enough to fill the slow ones' buffers",
    )
    parser.add_argument("--grace", type=float, default=1.5, help="seconds to wait for late frames")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument(
        "--quick", action="store_true", help="one run of 2 s per figure, a fifth of the listeners"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="scale the listener counts")
    parser.add_argument("--frame-bytes", type=int, default=180, help="audio frame size, 160-200")
    parser.add_argument("--frames-per-second", type=int, default=50)
    parser.add_argument(
        "--workloads",
        default=",".join(w.name for w in WORKLOADS),
        help="comma-separated, from: " + ", ".join(w.name for w in WORKLOADS),
    )
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--transports", default="plain,tls")
    parser.add_argument(
        "--generators", type=int, default=2, help="listener processes of the load generator"
    )
    parser.add_argument("--generator-loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument(
        "--join-concurrency", type=int, default=64, help="connections opening at once, in all"
    )
    parser.add_argument("--join-timeout", type=float, default=60)
    parser.add_argument("--limit-seconds", type=float, default=3, help="iperf3 / openssl time")
    parser.add_argument("--no-limits", action="store_true", help="skip iperf3 and openssl speed")
    parser.add_argument("--json", metavar="FILE", default="", help="write the figures to FILE")
    parser.add_argument("--keep", action="store_true", help="keep configs and logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.seconds, args.warmup, args.slow_warmup = 1, 2.0, 0.5, 1.0
        args.scale = min(args.scale, 0.2)
        args.limit_seconds = min(args.limit_seconds, 1)
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.systems = [s for s in args.systems.split(",") if s]
    args.transports = [t for t in args.transports.split(",") if t]
    if not 160 <= args.frame_bytes <= 200:
        log("note: --frame-bytes outside 160-200, the issue's audio frame size")
    if args.frame_bytes < 25:
        parser.error("--frame-bytes must hold the 24 bytes of media headers and some audio")

    def _terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    report = asyncio.run(run_all(args))
    report["seconds"] = round(time.monotonic() - started, 1)
    print_table(report)
    print(f"\n(the bench took {report['seconds']:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        log(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The join storm: N users fetch the event page and a ticket from the Center, then join a
tree of live servers and wait to hear the speaker, all at once (issue 14, item 2).

Everything runs on this machine over loopback, as separate processes: a fresh
data folder (SQLite), ``townhall center`` (its default web workers) trusting
loopback as its single sign-on proxy with ``auto_create_users`` on, ``townhall
controller``, a main live server and ``--children`` children (one tree, all in
the internal zone), a public event under way, and a moderator who streams
audio from the main server throughout (bench/fanout_loadgen.py). Then
``--generators`` processes of bench/storm_user.py play the users: event page,
join ticket, TLS connection to one of the ticket's servers, first audio frame
heard. The figures:

* the Center: tickets/s from the storm's start to the last ticket, p50/p99 of
  the event page and of the ticket request;
* the live servers: joins/s (first connection attempt to the last ``AuthOk``),
  the time from the storm's start until the last listener hears the speaker,
  who never connected or heard and why, and each server's memory per
  connected listener (VmRSS from /proc/<pid>/status with everyone connected,
  minus before the storm, over its listeners);
* the machine's load average before and after, since the machine is shared.

The users' accounts come from the SSO header (``X-Remote-User: userNNNNN``),
not passwords: a password sign-in costs a deliberate hash per user, and the
organisations Townhall targets sign in through their reverse proxy
(docs/sso.md). The bench raises its open file limit (RLIMIT_NOFILE) to fit
every connection; its children inherit it. Every wait is bounded, and the
bench stops everything it started (each process in its own group).

    .venv/bin/python bench/storm.py                     # 10,000 users, 2 children
    .venv/bin/python bench/storm.py --users 2000 --children 3 --seconds 60 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx

from center import (  # bench/center.py, beside this file
    cpu_seconds,
    free_port,
    townhall_command,
    tree_pids,
)

BENCH = Path(__file__).resolve().parent
TARGET_TICKETS_PER_SECOND = 500
TARGET_SECONDS = 60
TARGET_KIB_PER_LISTENER = 50
ORGANIZER = "organizer"
DEFAULT_CAPACITY = 1000  # the Manager's default for a registered server


def log(message: str) -> None:
    print(f"[storm {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (Linux /proc), 0 when gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in tree_pids(pid))


def raise_open_files(wanted: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (up to the hard limit); (old, new)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = soft if soft >= wanted else min(wanted, hard)
    if hard == resource.RLIM_INFINITY:
        target = max(soft, wanted)
    if target != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return soft, target


@dataclass
class Spy:
    label: str
    process: subprocess.Popen[bytes]
    output: Path


def start_spies(
    folder: str, center_pid: int, live_pid: int, controller_pid: int, seconds: float
) -> list[Spy]:
    """``py-spy record`` of each Center process, the main live server and the Controller
    during the storm."""
    if not folder:
        return []
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    workers = tree_pids(center_pid)[1:] or [center_pid]
    targets = [(f"center-{pid}", pid) for pid in workers]
    targets += [("live-main", live_pid), ("controller", controller_pid)]
    spies = []
    for label, pid in targets:
        output = out / f"{label}.txt"
        command = [str(py_spy), "record", "--pid", str(pid), "--rate", "50", "--nonblocking"]
        command += ["--duration", str(int(min(seconds, 30))), "--format", "raw", "-o", str(output)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        spies.append(Spy(label, process, output))
    return spies


def finish_spies(spies: list[Spy], top: int = 14) -> None:
    """Print each profile's top frames by self time and Townhall's by inclusive time."""
    from center import print_profile, stop_py_spy

    for spy in spies:
        stop_py_spy(spy.process)
        print_profile(spy.output, spy.label, top)


class Processes:
    """Named child processes, each in its own session; ``stop_all`` always ends them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: list[str], **popen: Any) -> subprocess.Popen[bytes]:
        log_file = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        popen.setdefault("stdout", log_file)
        process = subprocess.Popen(  # noqa: S603
            command,
            stderr=log_file,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            **popen,
        )
        log_file.close()
        self.running[name] = process
        return process

    def check(self) -> None:
        for name, process in self.running.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 25) -> str:
        path = self.folder / f"{name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.running.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


@dataclass
class System:
    data: Path
    config: Path
    center_url: str
    event_id: int
    servers: dict[str, int]  # name -> port
    speaker_ticket: str  # base64 sealed credential
    ca_file: Path


def prepare(data: Path, children: int, max_connections: int, capacity: int) -> System:
    """Settings, tables, the tree in the Manager, the event and the speaker's ticket."""
    import base64

    from townhall import inprocess, schema
    from townhall.center import events, live
    from townhall.center.accounts import create_user
    from townhall.center.events import Links
    from townhall.config import load_settings
    from townhall.controller.identity import issue_local_identity
    from townhall.manager import registry
    from townhall.pki import DevCA
    from townhall.store import make_engine, make_session_factory
    from townhall.store.conventions import now_utc
    from townhall.ticket import open_ticket
    from townhall.wire.names import Zone

    center_port, controller_port = free_port(), free_port()
    config = data / "townhall.toml"
    config.write_text(
        "[center]\n"
        f'listen = "127.0.0.1:{center_port}"\n'
        "[center.mail]\n"
        "poll_seconds = 60\n"
        "[center.sso]\n"
        'trusted_proxies = ["127.0.0.1/32"]\n'
        "auto_create_users = true\n"
        "[controller]\n"
        f'listen = "127.0.0.1:{controller_port}"\n'
        "tick_seconds = 1\n"
        "[live]\n"
        f"max_connections = {max_connections}\n"
    )
    settings = load_settings(data, config)
    engine = make_engine(settings.database_url)
    schema.migrate(engine)
    sessions = make_session_factory(engine)
    names = ["main", *(f"child-{i}" for i in range(1, children + 1))]
    ports = {name: free_port() for name in names}
    with sessions() as session:
        organizer = create_user(session, ORGANIZER, email="organizer@example.org", role="organizer")
        for name in names:
            registry.create_server(
                session,
                registry.ServerIn(
                    name=name,
                    host="127.0.0.1",
                    port=ports[name],
                    zone=Zone.INTERNAL,
                    capacity=capacity,
                ),
            )
        nodes = [registry.NodeIn(server=n, parent=None if n == "main" else "main") for n in names]
        registry.make_default(
            session, registry.create_tree(session, registry.TreeIn(name="storm", nodes=nodes))
        )
        base_url = settings.center.public_url
        event = events.create_event(
            session,
            organizer,
            events.EventIn(
                title="Join storm",
                starts_at=datetime.now(UTC).replace(second=0, microsecond=0),
                duration_minutes=180,
                kind="meeting",
                visibility="public",
            ),
            Links(base_url=base_url, join_link=lambda registration: base_url),
            settings.center.mail.sender,
            settings.center.default_timezone,
        )
        session.commit()
        data_ticket = live.issue_join_ticket(
            session,
            settings,
            event,
            organizer,
            live.join_role(session, event, organizer),
            trees=inprocess.ManagerTrees(),
            now=now_utc(),
        )
        session.commit()
        event_id = event.id
    engine.dispose()
    for name in names:
        issue_local_identity(settings, name, ["127.0.0.1"])
    sealed = open_ticket(data_ticket, center_public_key=None, now=int(time.time()))
    return System(
        data=data,
        config=config,
        center_url=f"http://127.0.0.1:{center_port}",
        event_id=event_id,
        servers=ports,
        speaker_ticket=base64.b64encode(sealed.sealed_credential).decode(),
        ca_file=DevCA.ensure(settings.ca_dir).cert_file,
    )


def wait_ready(system: System, processes: Processes, timeout: float = 90) -> None:
    """Until the Center answers and the event's tree reports every server ready."""
    deadline = time.monotonic() + timeout
    headers = {"X-Remote-User": ORGANIZER}
    state: object = "no answer"
    while time.monotonic() < deadline:
        processes.check()
        try:
            answer = httpx.get(
                f"{system.center_url}/api/v1/events/{system.event_id}", headers=headers, timeout=5
            )
            if answer.status_code == 200:
                state = answer.json()["live"]
                if isinstance(state, dict) and state.get("state") == "ready":
                    return
        except httpx.HTTPError as error:
            state = repr(error)
        time.sleep(0.5)
    raise RuntimeError(f"the event's tree never became ready: {state}")


class Child:
    """A generator process spoken to in JSON lines over its stdin and stdout."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.stdin = process.stdin
        self.stdout = process.stdout
        self.buffer = b""

    def say(self, message: dict[str, Any]) -> None:
        self.stdin.write((json.dumps(message) + "\n").encode())
        self.stdin.flush()

    def hear(self, timeout: float) -> dict[str, Any]:
        import select

        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"generator {self.process.pid}: no answer in {timeout:.0f} s")
            ready, _, _ = select.select([self.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.stdout.fileno(), 1 << 20)
                if not chunk:
                    raise RuntimeError(f"generator {self.process.pid} exited")
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return dict(json.loads(line))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def run(args: argparse.Namespace, out: TextIO) -> dict[str, Any]:
    wanted = args.users + 2000
    old_limit, new_limit = raise_open_files(wanted)
    load_before = os.getloadavg()
    data = Path(tempfile.mkdtemp(prefix="townhall-storm-"))
    processes = Processes(data)
    generators: list[Child] = []
    try:
        log(f"data in {data}; open files {old_limit} -> {new_limit}")
        capacity = args.capacity or max(
            DEFAULT_CAPACITY, math.ceil(1.25 * args.users / (args.children + 1))
        )
        log(f"each live server registered with a capacity of {capacity} participants")
        system = prepare(
            data, args.children, max_connections=max(10_000, args.users + 1000), capacity=capacity
        )
        command = townhall_command()
        common = ["--data", str(data), "--config", str(system.config)]
        center = processes.start("center", [*command, "center", *common])
        processes.start("controller", [*command, "controller", *common])
        live = {
            name: processes.start(name, [*command, "live", "--name", name, *common])
            for name in system.servers
        }
        wait_ready(system, processes)
        log(f"tree ready: {', '.join(system.servers)}")

        speaker_spec = data / "speaker.json"
        speaker_spec.write_text(
            json.dumps(
                {
                    "system": "townhall",
                    "frame_bytes": args.frame_bytes,
                    "frames_per_second": args.frames_per_second,
                    "tls": True,
                    "ca": str(system.ca_file),
                    "speakers": [
                        {
                            "address": f"127.0.0.1:{system.servers['main']}",
                            "ticket": system.speaker_ticket,
                            "moderator": True,
                        }
                    ],
                }
            )
        )
        speaker = Child(
            processes.start(
                "speaker",
                [sys.executable, str(BENCH / "fanout_loadgen.py"), str(speaker_spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        )
        speaker.say({"cmd": "connect"})
        joined = speaker.hear(30)
        if joined.get("speakers") != 1:
            raise RuntimeError(f"the speaker did not join: {joined}")
        now = time.monotonic()
        speaker.say(
            {"cmd": "run", "start": now, "window": [now, now], "stop": now + 3600, "grace": 0}
        )

        users = [f"user{i:05d}" for i in range(args.users)]
        for index in range(args.generators):
            spec = data / f"storm-{index}.json"
            spec.write_text(
                json.dumps(
                    {
                        "center": system.center_url.removeprefix("http://"),
                        "event_id": system.event_id,
                        "users": users[index :: args.generators],
                        "ca": str(system.ca_file),
                        "frame_bytes": args.frame_bytes,
                        "http_clients": args.http_clients,
                        "join_concurrency": args.join_concurrency,
                        "seconds": args.seconds,
                        "seed": index + 1,
                    }
                )
            )
            generators.append(
                Child(
                    processes.start(
                        f"storm-{index}",
                        [sys.executable, str(BENCH / "storm_user.py"), str(spec)],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                    )
                )
            )
        for generator in generators:
            generator.hear(60)  # "ready": imported and listening
        time.sleep(1.0)  # the speaker's frames flowing through the tree
        rss_before = {name: rss_kib(p.pid) for name, p in live.items()}
        cpu_before = {name: cpu_seconds(p.pid) for name, p in live.items()}
        cpu_before["center"] = tree_cpu_seconds(center.pid)
        cpu_before["controller"] = cpu_seconds(processes.running["controller"].pid)
        spies = start_spies(
            args.profile,
            center.pid,
            live["main"].pid,
            processes.running["controller"].pid,
            args.seconds,
        )
        load_start = os.getloadavg()
        t0 = time.monotonic() + 0.5
        log(f"storm: {args.users} users, {args.generators} generators, budget {args.seconds} s")
        for generator in generators:
            generator.say({"cmd": "storm", "t0": t0})
        results = [g.hear(args.seconds + 60) for g in generators]
        rss_after = {name: rss_kib(p.pid) for name, p in live.items()}
        cpu_after = {name: cpu_seconds(p.pid) for name, p in live.items()}
        cpu_after["center"] = tree_cpu_seconds(center.pid)
        cpu_after["controller"] = cpu_seconds(processes.running["controller"].pid)
        finish_spies(spies)
        alive = {name: p.poll() is None for name, p in [("center", center), *live.items()]}
        load_after = os.getloadavg()
        for generator in generators:
            generator.say({"cmd": "exit"})
        report = summarize(
            args,
            t0,
            results,
            rss_before,
            rss_after,
            {name: cpu_after[name] - cpu_before[name] for name in cpu_after},
        )
        report["alive_at_end"] = alive
        report["load"] = {
            "before": [round(x, 2) for x in load_before],
            "storm_start": [round(x, 2) for x in load_start],
            "after": [round(x, 2) for x in load_after],
        }
        report["open_files"] = [old_limit, new_limit]
        report["capacity"] = capacity
        report["nproc"] = os.cpu_count()
        return report
    finally:
        processes.stop_all()
        if args.keep:
            log(f"kept {data}")
        else:
            shutil.rmtree(data, ignore_errors=True)


def summarize(
    args: argparse.Namespace,
    t0: float,
    results: list[dict[str, Any]],
    rss_before: dict[str, int],
    rss_after: dict[str, int],
    cpu: dict[str, float],
) -> dict[str, Any]:
    records = [record for result in results for record in result["records"]]
    errors: Counter[str] = Counter()
    connected: Counter[str] = Counter()
    for result in results:
        errors.update(result["errors"])
        connected.update(result["connected_by_server"])
    tickets = [r["ticket"] for r in records if "ticket" in r]
    pages = [r["page"] for r in records if "page" in r]
    joined = [r for r in records if "joined" in r]
    heard = [r["heard"] for r in records if "heard" in r]
    last_ticket = max((end for _, end in tickets), default=t0)
    first_connect = min((r["connect"] for r in records if "connect" in r), default=t0)
    last_joined = max((r["joined"] for r in joined), default=first_connect)
    memory = {}
    for name in rss_before:
        listeners = connected.get(name, 0)
        delta = rss_after[name] - rss_before[name]
        memory[name] = {
            "listeners": listeners,
            "rss_before_kib": rss_before[name],
            "rss_after_kib": rss_after[name],
            "kib_per_listener": round(delta / listeners, 1) if listeners else None,
            "cpu_seconds": round(cpu[name], 1),
        }
    center_ms = 1000 * cpu["center"] / max(1, len(tickets))
    never_started = sum(result["not_started"] for result in results)
    if never_started:
        errors["no ticket asked before the deadline"] += never_started
    return {
        "users": args.users,
        "children": args.children,
        "budget_seconds": args.seconds,
        "tickets": len(tickets),
        "tickets_per_second": round(len(tickets) / max(1e-9, last_ticket - t0), 1),
        "center_cpu_seconds": round(cpu["center"], 1),
        "center_cpu_ms_per_user": round(center_ms, 2),
        "controller_cpu_seconds": round(cpu["controller"], 1),
        "ticket_ms": _millis([end - start for start, end in tickets]),
        "page_ms": _millis([end - start for start, end in pages]),
        "joined": len(joined),
        "joins_per_second": round(len(joined) / max(1e-9, last_joined - first_connect), 1),
        "join_ms": _millis([r["joined"] - r["connect"] for r in joined]),
        "join_attempts": sum(r.get("attempts", 0) for r in records),
        "heard": len(heard),
        "last_heard_seconds": round(max(heard) - t0, 2) if heard else None,
        "heard_seconds": {
            "p50": round(percentile([h - t0 for h in heard], 50), 2),
            "p99": round(percentile([h - t0 for h in heard], 99), 2),
        },
        "never_heard": args.users - len(heard),
        "reasons": dict(errors.most_common()),
        "memory": memory,
    }


def _millis(seconds: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(seconds, 50) * 1000, 1),
        "p99": round(percentile(seconds, 99) * 1000, 1),
    }


def print_table(report: dict[str, Any], out: TextIO) -> None:
    load = report["load"]
    users = report["users"]

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    last = report["last_heard_seconds"]
    print(
        f"Join storm: {users} users, a main live server and {report['children']} children, "
        f"capacity {report['capacity']} each, budget {report['budget_seconds']} s; "
        f"{report['nproc']} cores; open files "
        f"{report['open_files'][0]} -> {report['open_files'][1]}",
        file=out,
    )
    print(
        f"load average before {load['before']}, at the start {load['storm_start']}, "
        f"after {load['after']}",
        file=out,
    )
    print("", file=out)
    print("| part | figure |", file=out)
    print("|---|---|", file=out)
    rows = [
        ("tickets", f"{report['tickets']} of {users}"),
        ("tickets/s (Center)", f"{report['tickets_per_second']:,}"),
        ("ticket p50 / p99 ms", f"{report['ticket_ms']['p50']} / {report['ticket_ms']['p99']}"),
        (
            "Center CPU per user (page + ticket), all its processes",
            f"{report['center_cpu_ms_per_user']} ms ({report['center_cpu_seconds']} s in all)",
        ),
        ("Controller CPU during the storm", f"{report['controller_cpu_seconds']} s"),
        ("event page p50 / p99 ms", f"{report['page_ms']['p50']} / {report['page_ms']['p99']}"),
        ("joined (AuthOk)", f"{report['joined']} ({report['join_attempts']} attempts)"),
        ("joins/s", f"{report['joins_per_second']:,}"),
        ("join p50 / p99 ms", f"{report['join_ms']['p50']} / {report['join_ms']['p99']}"),
        ("heard the speaker", f"{report['heard']} of {users}"),
        (
            "heard after p50 / p99 / last s",
            f"{report['heard_seconds']['p50']} / {report['heard_seconds']['p99']} / {last}",
        ),
        ("never heard", str(report["never_heard"])),
    ]
    for name, value in rows:
        print(f"| {name} | {value} |", file=out)
    print("", file=out)
    print(
        "| live server | listeners | RSS before MiB | after MiB | KiB/listener | CPU s |", file=out
    )
    print("|---|---|---|---|---|---|", file=out)
    for name, figures in report["memory"].items():
        print(
            f"| {name} | {figures['listeners']} | {figures['rss_before_kib'] / 1024:.1f} | "
            f"{figures['rss_after_kib'] / 1024:.1f} | {figures['kib_per_listener']} | "
            f"{figures['cpu_seconds']} |",
            file=out,
        )
    if report["reasons"]:
        print("\nwhy some did not get through (counts; a retried join counts each try):", file=out)
        for reason, count in report["reasons"].items():
            print(f"  {count:6d}  {reason}", file=out)
    per_listener = [
        f["kib_per_listener"] for f in report["memory"].values() if f["kib_per_listener"]
    ]
    print("\ntargets:", file=out)
    print(
        f"  tickets/s >= {TARGET_TICKETS_PER_SECOND}: {report['tickets_per_second']} "
        f"{verdict(report['tickets_per_second'] >= TARGET_TICKETS_PER_SECOND)}",
        file=out,
    )
    print(
        f"  all {users} hearing within {TARGET_SECONDS} s: {report['heard']} heard, last at "
        f"{last} s {verdict(report['never_heard'] == 0 and last is not None and last <= 60)}",
        file=out,
    )
    worst = max(per_listener, default=None)
    print(
        f"  memory per listener < {TARGET_KIB_PER_LISTENER} KiB: worst {worst} "
        f"{verdict(worst is not None and worst < TARGET_KIB_PER_LISTENER)}",
        file=out,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--children", type=int, default=2, help="child live servers of the main")
    parser.add_argument(
        "--seconds",
        type=float,
        default=90,
        help="the storm's budget: who has not heard by then never did",
    )
    parser.add_argument(
        "--capacity",
        type=int,
        default=0,
        help="participants each live server is registered for (default: room for a quarter "
        "more than an even share of the users, at least the Manager's default of 1000)",
    )
    parser.add_argument("--generators", type=int, default=2, help="user processes")
    parser.add_argument(
        "--http-clients", type=int, default=16, help="keep-alive Center connections per process"
    )
    parser.add_argument(
        "--join-concurrency", type=int, default=48, help="joins under way at once per process"
    )
    parser.add_argument("--frame-bytes", type=int, default=180)
    parser.add_argument("--frames-per-second", type=int, default=50)
    parser.add_argument(
        "--profile",
        default="",
        metavar="DIR",
        help="record each Center process, the main live server and the Controller with py-spy "
        "during the storm's first 30 s into DIR and print hot spots (take figures from runs "
        "without it)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the data folder and logs")
    args = parser.parse_args(argv)
    if args.users < 1 or args.children < 0 or args.generators < 1 or args.seconds <= 0:
        parser.error("need at least one user and one generator, and a positive budget")

    def _terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    report = run(args, sys.stdout)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

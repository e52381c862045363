"""A ``townhall center`` of two web processes shares its port between them (``townhall.webport``).

Run as an operator starts it (a subprocess, settings from the environment).
Which process holds which connection is read with ``ss`` (iproute2), not asked
of the Center. Waits are bounded polls.
"""

from __future__ import annotations

import collections
import os
import re
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from tests.support import child_process, free_run

GUARD = 180.0  # seconds before a wait is declared hung (a loaded machine starts slowly)
CONNECTIONS = 40


def center_command(data: Path) -> list[str]:
    return [sys.executable, "-m", "townhall.cli", "center", "--data", str(data)]


def center_env(port: int) -> dict[str, str]:
    return {
        **os.environ,
        "TOWNHALL_CENTER__LISTEN": f"127.0.0.1:{port}",
        "TOWNHALL_CENTER__WORKERS": "2",
    }


def healthz_on(sock: socket.socket) -> bytes:
    """One keep-alive request on ``sock``, and the start of its answer."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: center\r\n\r\n")
    return sock.recv(4096)


def wait_until_both_listen(port: int, child: subprocess.Popen[bytes], log: Path) -> None:
    """Until two processes listen on the port (a web process listens once it is ready)."""
    deadline = time.monotonic() + GUARD
    while len(holders(port, "listening")) < 2:
        assert child.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"two processes never listened: {log.read_text()}"
        time.sleep(0.2)


def holders(port: int, state: str = "established") -> collections.Counter[int]:
    """How many of the port's sockets in ``state`` each process holds."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", state, f"( sport = :{port} )"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return collections.Counter(int(pid) for pid in re.findall(r"pid=(\d+)", out))


def test_new_connections_are_spread_over_both_web_processes(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "center.log"
    port = free_run(1)
    with child_process(center_command(data), log, env=center_env(port)) as child:
        wait_until_both_listen(port, child, log)
        # A burst of keep-alive connections, as a proxy's upstream pool or a benchmark
        # opens them; each answered once and kept open.
        with ExitStack() as stack:
            burst = [
                stack.enter_context(socket.create_connection(("127.0.0.1", port), 30))
                for _ in range(CONNECTIONS)
            ]
            for sock in burst:
                sock.settimeout(30)
                assert healthz_on(sock).startswith(b"HTTP/1.1 200")
            held = holders(port)
        # Two web processes (the supervisor accepts nothing); with one socket shared by both,
        # the first to wake took every waiting connection (32 of 32 seen in bench/center.py).
        workers = [pid for pid in held if pid != child.pid]
        assert len(workers) == 2, (held, log.read_text())
        assert all(held[pid] >= 5 for pid in workers), held
        assert sum(held[pid] for pid in workers) == CONNECTIONS


def test_a_taken_port_stops_the_center_with_a_clear_message(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "center.log"
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", free_run(1)))
        taken.listen()
        port = taken.getsockname()[1]
        with child_process(center_command(data), log, env=center_env(port)) as child:
            assert child.wait(timeout=GUARD) == 1
        # The listener that was there first kept the port: nothing was shared with it.
        assert f"cannot listen on 127.0.0.1:{port}" in log.read_text()
        probe = socket.create_connection(("127.0.0.1", port), 5)
        accepted, _ = taken.accept()
        accepted.close()
        probe.close()

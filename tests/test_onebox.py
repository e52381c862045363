"""``townhall up`` as a newcomer runs it: the whole system, then ``townhall join`` on the demo.

Both commands run as processes, as the README gives them; only the ports
differ from the defaults, so that the test does not collide with anything on
this machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import free_run


def townhall(*args: str) -> list[str]:
    return [sys.executable, "-m", "townhall.cli", *args]


def test_up_runs_everything_and_a_newcomer_joins_the_demo_event(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = free_run(5)  # the Center, the Controller and three live servers
    env = {
        **os.environ,
        "TOWNHALL_CENTER__LISTEN": f"127.0.0.1:{first}",
        "TOWNHALL_CONTROLLER__LISTEN": f"127.0.0.1:{first + 1}",
    }
    live_port = first + 2
    up = subprocess.Popen(  # noqa: S603
        townhall("up", "--data", str(data), "--live-port", str(live_port)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ticket = data / "demo.townhall"
        deadline = time.monotonic() + 60
        while not ticket.exists():
            assert up.poll() is None, up.stdout.read() if up.stdout else ""
            assert time.monotonic() < deadline, "no demo ticket"
            time.sleep(0.2)
        assert oct(ticket.stat().st_mode & 0o777) == "0o600"
        # Right after the start the tree may still be forming (the servers answer
        # event-not-live): a newcomer would run the command again, and so does the test.
        lines: list[dict[str, object]] = []
        for _ in range(30):
            joined = subprocess.run(  # noqa: S603
                townhall("join", str(ticket), "--say", "hello", "--json", "--seconds", "2"),
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            lines = [json.loads(line) for line in joined.stdout.splitlines() if line]
            if joined.returncode == 0:
                break
            time.sleep(1)
        assert joined.returncode == 0, joined.stderr
        kinds = [line["type"] for line in lines]
        assert kinds[0] == "joined" and lines[0]["moderator"] is True
        assert {"type": "chat", "sender": "admin", "text": "hello"}.items() <= next(
            line for line in lines if line["type"] == "chat"
        ).items()
        assert kinds[-1] == "left"
        logs = {path.stem for path in (data / "logs").glob("*.log")}
        assert logs == {"controller", "main", "child-a", "child-dmz", "recorder"}
        assert "recorder service" in (data / "logs" / "recorder.log").read_text()
    finally:
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=30)
    assert "Demo event" in output
    assert up.returncode == 0, output
    # Its children went with it: the live ports are free again.
    assert not any(_busy(live_port + offset) for offset in (0, 1, 2))


def _busy(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_up_says_which_child_stopped_and_where_its_log_is(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from townhall import onebox

    failing = [sys.executable, "-c", "print('port 1 is taken'); raise SystemExit(3)"]
    sleeping = [sys.executable, "-c", "import time; time.sleep(60)"]
    with onebox.running({"main": failing, "child-a": sleeping}, tmp_path) as (main, child):
        main.wait(timeout=30)
        deadline = time.monotonic() + 30
        while "main stopped" not in (said := capfd.readouterr().err):
            assert time.monotonic() < deadline, "up never said that main stopped"
            time.sleep(0.2)
        assert child.poll() is None
    assert f"main stopped (exit code 3); its log is {tmp_path / 'main.log'}" in said
    assert "port 1 is taken" in (tmp_path / "main.log").read_text()
    assert child.poll() is not None  # stopped with up
    assert "child-a stopped" not in capfd.readouterr().err

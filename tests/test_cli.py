"""The ``townhall`` command as an operator uses it: up, users, tokens."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

TOWNHALL = [sys.executable, "-m", "townhall.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(data: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TOWNHALL, *args, "--data", str(data)],
        input=stdin, capture_output=True, text=True, timeout=120, check=False,
    )


def test_users_and_tokens_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    added = run(data, "users", "add", "olga", "--email", "olga@example.org", "--role",
                "organizer", "--password-stdin", stdin="a long password\n")
    assert added.returncode == 0, added.stderr
    again = run(data, "users", "add", "olga", "--password-stdin", stdin="a long password\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    bad_role = run(data, "users", "add", "bob", "--role", "king", "--password-stdin", stdin="a long password\n")
    assert bad_role.returncode == 1
    listed = run(data, "users", "list")
    assert "olga\torganizer\tolga@example.org" in listed.stdout
    token = run(data, "tokens", "create", "olga")
    assert token.returncode == 0 and token.stdout.strip().startswith("th_")
    assert run(data, "tokens", "create", "nobody").returncode == 1


def test_up_starts_the_system_and_prints_how_to_sign_in(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    env = {**os.environ, "TOWNHALL_CENTER__LISTEN": f"127.0.0.1:{port}"}
    process = subprocess.Popen(
        [*TOWNHALL, "up", "--data", str(data)], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "Application startup complete" in line or process.poll() is not None:
                break
        output = "".join(lines)
        assert f"http://127.0.0.1:{port}/" in output
        password = re.search(r"Sign in as admin with password (\S+)", output)
        assert password, output
        assert (data / "admin-password.txt").read_text().strip() == password.group(1)
        assert (data / "pki" / "ca.pem").exists()
        assert (data / "townhall.toml").exists()
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as browser:
            browser.get("/login")
            signed_in = browser.post(
                "/login",
                data={
                    "username": "admin",
                    "password": password.group(1),
                    "next": "/events",
                    "csrf": browser.cookies["townhall_csrf"],
                },
            )
            assert signed_in.status_code == 303
            assert browser.get("/api/v1/me").json()["username"] == "admin"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)

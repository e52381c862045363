"""Test support: a real Center served by uvicorn on a free loopback port, and its users."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from townhall.center import accounts
from townhall.config import Settings
from townhall.schema import migrate
from townhall.store import make_engine
from townhall.webprocess import create_app


def make_settings(data: Path, database_url: str, **center: object) -> Settings:
    return Settings(data=data, center={"database_url": database_url, **center})


class RunningServer:
    """A uvicorn server in a thread, on a free loopback port; HTTPS when given a certificate."""

    def __init__(
        self, app: object, cert_file: Path | None = None, key_file: Path | None = None
    ) -> None:
        tls = {"ssl_certfile": str(cert_file), "ssl_keyfile": str(key_file)} if cert_file else {}
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            proxy_headers=False,
            log_level="warning",
            lifespan="on",
            access_log=False,
            **tls,  # type: ignore[arg-type]
        )
        self.scheme = "https" if cert_file else "http"
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"{self.scheme}://127.0.0.1:{port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@dataclass
class Center:
    url: str
    settings: Settings
    sessions: object

    def add_user(
        self,
        username: str,
        role: str = "member",
        password: str = "correct horse",
        email: str | None = None,
    ) -> None:
        with self.sessions() as session:  # type: ignore[operator]
            accounts.create_user(
                session,
                username,
                role=role,
                password=password,
                email=email or f"{username}@example.org",
            )
            session.commit()

    def token_for(self, username: str) -> str:
        with self.sessions() as session:  # type: ignore[operator]
            user = accounts.user_by_name(session, username)
            assert user is not None
            _, value = accounts.create_token(session, user, "test")
            session.commit()
            return value

    def client(self, username: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token_for(username)}"} if username else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=20, **kwargs)  # type: ignore[arg-type]


def start_center(settings: Settings, *, run_workers: bool = True) -> tuple[RunningServer, Center]:
    engine = make_engine(settings.database_url)
    migrate(engine)
    engine.dispose()
    app = create_app(settings, run_workers=run_workers)
    server = RunningServer(app)
    sessions = app.state.center.sessions
    return server, Center(url="", settings=settings, sessions=sessions)


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that nothing listened on a moment ago (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_run(count: int) -> int:
    """The first of ``count`` consecutive loopback ports that can be bound now.

    Picked below the kernel's ephemeral range: a port in that range can be taken
    at any moment by an outgoing connection or a bind to port 0 (CI once saw a
    live server's metrics port held that way between the pick and the bind), and
    ports below it are handed out only to those who ask for them by number.
    """
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    picker = random.Random()
    while True:
        first = picker.randrange(ephemeral_low // 3, ephemeral_low - count)
        if all(_bindable(first + n) for n in range(count)):
            return first


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@contextmanager
def child_process(
    command: list[str], log: Path, **options: object
) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` as a process group of its own, its output in ``log``; on exit SIGINT to
    the group, then SIGKILL after 30 s."""
    with open(log, "wb") as out:
        child = subprocess.Popen(  # noqa: S603
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **options,  # type: ignore[call-overload]
        )
    try:
        yield child
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGINT)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()

"""The spec's three networks as Linux network namespaces, with the firewall between them.

One namespace per machine, each joined by a veth pair to a bridge of its
network inside a router namespace; the router forwards between the three
bridges through an nftables ``forward`` chain that drops everything the port
table of docs/install.md does not allow. Addresses come from the
benchmarking range 198.18.0.0/15, and the router has no link and no route
out of the namespaces made here, so nothing leaves them.

``Topology.create()`` builds it all; ``Topology.delete()`` removes every
namespace (and with them every veth, bridge and rule), whatever state the
creation stopped in. ``HostLoop`` runs an asyncio loop in a thread that has
entered one machine's namespace, so that participants and HTTP clients in
the test's own process open their sockets from that machine. Needs root and
iproute2's ``ip`` and ``nft``; ``skip_reason()`` says why not when it cannot.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

NETWORKS = {"internal": "198.18.1", "dmz": "198.18.2", "internet": "198.18.3"}

# The ports of docs/install.md's table, fixed here because the machines are ours alone.
CENTER_PORT = 8080
CONTROLLER_PORT = 8443
MAIN_PORT = 9443
CHILD_PORT = 9443
DMZ_PORT = 443
PROXY_PORT = 443


@dataclass(frozen=True, slots=True)
class Machine:
    name: str
    network: str
    address: str


MACHINES = (
    Machine("center", "internal", "198.18.1.10"),  # Center + Manager, Controller
    Machine("main", "internal", "198.18.1.11"),  # the main live server
    Machine("child", "internal", "198.18.1.12"),  # an internal child live server
    Machine("staff", "internal", "198.18.1.20"),  # internal participants, the admin
    Machine("proxy", "dmz", "198.18.2.10"),  # the reverse proxy's address
    Machine("dmz", "dmz", "198.18.2.11"),  # the DMZ live server
    Machine("outside", "internet", "198.18.3.20"),  # external participants
)
ADDRESS = {machine.name: machine.address for machine in MACHINES}


def firewall_rules() -> str:
    """The router's nftables ruleset: docs/install.md's rules, nothing else forwarded."""
    internet = f"{NETWORKS['internet']}.0/24"
    a = ADDRESS
    return f"""
table inet townhall_firewall {{
  chain forward {{
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "br-internal" accept                                   # internal -> everything
    ip saddr {internet} ip daddr {a["proxy"]} tcp dport {PROXY_PORT} accept    # -> reverse proxy
    ip saddr {internet} ip daddr {a["dmz"]} tcp dport {DMZ_PORT} accept      # -> DMZ server
    ip saddr {a["dmz"]} ip daddr {a["main"]} tcp dport {MAIN_PORT} accept    # DMZ -> main server
    ip saddr {a["dmz"]} ip daddr {a["center"]} tcp dport {CONTROLLER_PORT} accept  # control link
    ip saddr {a["dmz"]} ip daddr {a["proxy"]} tcp dport {PROXY_PORT} accept   # DMZ -> Manager API
    ip saddr {a["proxy"]} ip daddr {a["center"]} tcp dport {CENTER_PORT} accept    # proxy -> Center
  }}
}}
"""


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the network-namespace deployments need root to make namespaces (CI runs as root)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return (
                f"the network-namespace deployments need {tool} (scripts/setup --test installs it)"
            )
    probe = f"thprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, timeout=20)  # noqa: S603, S607
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=20)  # noqa: S603, S607
    if made.returncode != 0:
        return f"ip netns is unavailable here: {made.stderr.decode(errors='replace').strip()}"
    return None


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, timeout=20)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.decode(errors='replace').strip()}")


@dataclass
class Topology:
    """The namespaces made, by machine name, and the router's."""

    tag: str
    namespaces: dict[str, str] = field(default_factory=dict)

    @property
    def router(self) -> str:
        return f"th{self.tag}-router"

    @classmethod
    def create(cls) -> Topology:
        topology = cls(secrets.token_hex(3))
        try:
            topology._build()
        except BaseException:
            topology.delete()
            raise
        return topology

    def _build(self) -> None:
        router = self.router
        _run("ip", "netns", "add", router)
        self.namespaces["router"] = router
        _run("ip", "-n", router, "link", "set", "lo", "up")
        for network, prefix in NETWORKS.items():
            bridge = f"br-{network}"
            _run("ip", "-n", router, "link", "add", bridge, "type", "bridge")
            _run("ip", "-n", router, "addr", "add", f"{prefix}.1/24", "dev", bridge)
            _run("ip", "-n", router, "link", "set", bridge, "up")
        for index, machine in enumerate(MACHINES):
            namespace = f"th{self.tag}-{machine.name}"
            _run("ip", "netns", "add", namespace)
            self.namespaces[machine.name] = namespace
            outer, inner = f"th{self.tag}o{index}", f"th{self.tag}i{index}"
            # Made inside the router, so deleting the router deletes the pair.
            _run("ip", "-n", router, "link", "add", outer, "type", "veth", "peer", "name", inner)
            _run("ip", "-n", router, "link", "set", inner, "netns", namespace)
            _run("ip", "-n", router, "link", "set", outer, "master", f"br-{machine.network}")
            _run("ip", "-n", router, "link", "set", outer, "up")
            _run("ip", "-n", namespace, "link", "set", "lo", "up")
            _run("ip", "-n", namespace, "addr", "add", f"{machine.address}/24", "dev", inner)
            _run("ip", "-n", namespace, "link", "set", inner, "up")
            gateway = f"{NETWORKS[machine.network]}.1"
            _run("ip", "-n", namespace, "route", "add", "default", "via", gateway)
        rules = firewall_rules()
        loaded = subprocess.run(  # noqa: S603
            ["ip", "netns", "exec", router, "nft", "-f", "-"],  # noqa: S607
            input=rules.encode(),
            capture_output=True,
            timeout=20,
        )
        if loaded.returncode != 0:
            raise RuntimeError(f"nft refused the rules: {loaded.stderr.decode(errors='replace')}")
        _run("ip", "netns", "exec", router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")

    def exec_prefix(self, machine: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[machine]]

    def delete(self) -> None:
        """Remove every namespace made (machines first, the router and its links last)."""
        for name, namespace in reversed(list(self.namespaces.items())):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=20)  # noqa: S603, S607
            del self.namespaces[name]


_CLONE_NEWNET = 0x40000000


def _enter(namespace: str) -> None:
    """Move the calling thread (only) into ``namespace``; threads it starts inherit it."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns into {namespace}: {os.strerror(error)}")
    finally:
        os.close(fd)


class HostLoop:
    """An asyncio loop in a thread inside one machine's namespace."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.loop = asyncio.new_event_loop()
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._main, args=(ready,), daemon=True)
        self._thread.start()
        ready.result(timeout=20)

    def _main(self, ready: Future[None]) -> None:
        try:
            _enter(self.namespace)
        except OSError as error:
            ready.set_exception(error)
            return
        asyncio.set_event_loop(self.loop)
        ready.set_result(None)
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        """Start ``coroutine`` on this machine's loop; its result comes later."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120) -> T:  # noqa: ASYNC109
        """Run ``coroutine`` on this machine's loop and wait for its result."""
        return self.submit(coroutine).result(timeout)

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run blocking ``function`` in a worker thread of this machine."""
        return self.run(asyncio.to_thread(function, *args))

    def do(self, function: Callable[[], T]) -> T:
        """Run quick ``function`` on the loop itself (for objects living in this loop)."""

        async def inside() -> T:
            return function()

        return self.run(inside())

    def close(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=20)


def reaches(host: HostLoop, address: str, port: int, timeout: float = 2.0) -> Future[bool]:  # noqa: ASYNC109
    """Whether a TCP SYN from ``host`` gets past the firewall to ``address:port`` (later).

    A connection, or a refusal (a reset from the machine, nothing listening), means
    the firewall let it through; silence until ``timeout`` means it was dropped.
    """

    def attempt() -> bool:
        try:
            with socket.create_connection((address, port), timeout=timeout):
                return True
        except ConnectionRefusedError:
            return True
        except (TimeoutError, OSError):
            return False

    return host.submit(asyncio.to_thread(attempt))


def wait_listening(
    host: HostLoop,
    address: str,
    port: int,
    what: str,
    alive: Callable[[], bool],
    log: Path,
    attempts: int = 200,
) -> None:
    """Wait until ``address:port`` accepts connections from ``host``."""

    def attempt() -> bool:
        try:
            with socket.create_connection((address, port), timeout=1):
                return True
        except OSError:
            return False

    for _ in range(attempts):
        if host.call(attempt):
            return
        if not alive():
            break
        host.run(asyncio.sleep(0.1))
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise RuntimeError(f"{what} never listened on {address}:{port}:\n{tail}")


def argv_in(topology: Topology, machine: str, argv: Sequence[str]) -> list[str]:
    return [*topology.exec_prefix(machine), *argv]

"""One pass of the live server's writes to N TLS connections: CPU per delivery, by loop.

What ``fanout.py`` cannot separate from the kernel's and the machine's noise:
the user-space cost of the write a listener gets once per pass. N real
``TLSSession``s (handshaken through memory with a development CA's
certificate) each have an asyncio transport over one end of a socket pair;
a pass writes one 180-byte frame to each, by one of three loops:

* ``transport``: each connection's ``TLSSession.encrypt``, then
  ``transport.write``: what the server did before ``fanout.send_each``, and
  still does for a browser's WebSocket;
* ``python``: ``fanout.send_each_python``;
* ``compiled``: ``townhall.live._fanout.send_each`` (if built).

The peers' ends are read empty between passes, outside the measurement. It
prints the user and system CPU-µs per delivery of the writing thread
(``RUSAGE_THREAD``), the loops interleaved round by round. For a count that
does not depend on the machine's load, run one loop under callgrind at two
pass counts and take the difference (bench/README.md):

    valgrind --tool=callgrind .venv/bin/python bench/fanout_pass.py --only compiled --passes 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

from townhall.live import fanout
from townhall.live.fanout import Writer
from townhall.live.tls import TLSSession, server_ssl_context, upstream_ssl_context
from townhall.pki import DevCA

LOOPS = ("transport", "python", "compiled")


class _Quiet(asyncio.Protocol):
    pass


def _sessions(folder: Path) -> Callable[[], TLSSession]:
    ca = DevCA.ensure(folder / "pki")
    issued = ca.issue("bench", ["127.0.0.1"])
    server_context = server_ssl_context(issued.cert_file, issued.key_file)
    client_context = upstream_ssl_context(ca.cert_file)

    def handshaken() -> TLSSession:
        ours = TLSSession(server_context, server_side=True)
        theirs = TLSSession(client_context, server_side=False, server_hostname="127.0.0.1")
        flight = theirs.handshake(b"")
        while not (ours.secure and theirs.secure):
            flight = ours.handshake(flight) if not ours.secure else ours.pending()
            flight = theirs.handshake(flight) if not theirs.secure else theirs.decrypt(flight)[0]
        return ours

    return handshaken


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime, usage.ru_stime


async def run(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    handshaken = _sessions(Path(tempfile.mkdtemp(prefix="townhall-fanout-pass-")))
    sessions: list[TLSSession] = []
    transports: list[asyncio.Transport] = []
    writers: list[Writer | None] = []
    peers: list[socket.socket] = []
    for _ in range(args.connections):
        ours, theirs = socket.socketpair()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        theirs.setblocking(False)
        transport, _ = await loop.connect_accepted_socket(_Quiet, ours)
        transport.set_write_buffer_limits(high=0)  # as the live server's
        session = handshaken()
        write, read = session.record_writer()
        sessions.append(session)
        transports.append(transport)
        writers.append((write, read, ours.fileno()))
        peers.append(theirs)
    frame = os.urandom(args.frame_bytes)

    def transport_loop() -> None:
        for session, transport in zip(sessions, transports, strict=True):
            transport.write(session.encrypt(frame))

    def send_each_loop(send_each: fanout.SendEach) -> Callable[[], None]:
        def one_pass() -> None:
            if send_each(writers, [frame] * len(writers)):
                raise SystemExit("a socket did not take a whole write: raise SO_SNDBUF")

        return one_pass

    passes: dict[str, Callable[[], None]] = {
        "transport": transport_loop,
        "python": send_each_loop(fanout.send_each_python),
    }
    if fanout.COMPILED:
        passes["compiled"] = send_each_loop(fanout.send_each)

    def read_peers() -> None:
        for peer in peers:
            try:
                while peer.recv(1 << 20):
                    pass
            except BlockingIOError:
                pass

    if args.only:
        for _ in range(args.passes):
            passes[args.only]()
            read_peers()
        return

    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in passes}
    for _ in range(args.rounds):
        for name, one_pass in passes.items():
            user = system = 0.0
            for _ in range(args.passes):
                user_before, system_before = _cpu()
                one_pass()
                user_after, system_after = _cpu()
                user += user_after - user_before
                system += system_after - system_before
                read_peers()
            deliveries = args.passes * args.connections
            figures[name].append((user * 1e6 / deliveries, system * 1e6 / deliveries))
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"{args.connections} TLS connections, {args.frame_bytes}-byte frames, "
        f"{args.passes} passes x {args.rounds} rounds; load average {load}"
    )
    print(f"{'loop':<10} {'user us/dlv':>12} {'sys us/dlv':>11}   per round (user)")
    for name, rounds in figures.items():
        median_user = sorted(user for user, _ in rounds)[len(rounds) // 2]
        median_system = sorted(system for _, system in rounds)[len(rounds) // 2]
        each = " ".join(f"{user:.2f}" for user, _ in rounds)
        print(f"{name:<10} {median_user:>12.2f} {median_system:>11.2f}   {each}")
    if not fanout.COMPILED:
        print("(townhall.live._fanout is not built here: no compiled row)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=200, help="passes per loop and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the loops interleaved")
    parser.add_argument("--frame-bytes", type=int, default=180)
    parser.add_argument("--only", choices=LOOPS, help="run one loop, measure nothing (callgrind)")
    args = parser.parse_args(argv)
    if args.only == "compiled" and not fanout.COMPILED:
        parser.error("townhall.live._fanout is not built here")
    if args.connections < 1 or args.passes < 1 or args.rounds < 1:
        parser.error("--connections, --passes and --rounds must be at least 1")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()

"""The web port shared by several web processes, each with a listening socket of its own.

uvicorn's ``--workers`` hands every process one and the same listening socket:
whichever process wakes first accepts every connection then waiting, so a
burst of keep-alive connections (a reverse proxy's upstream pool, a
benchmark's clients, a join storm) can land on one process while the others
idle; counted with ``ss`` during ``bench/center.py``: 32 and 0, 22 and 10, 20
and 12 of 32 connections over two processes. Here each process binds its own
socket to the port with ``SO_REUSEPORT``, and the kernel picks a process for
each new connection by a hash of its addresses, so connections spread evenly
on average whatever the timing. ``PortShare`` stands in for the socket in the
list uvicorn's supervisor passes to each process: the supervisor spawns them
and pickles the list, and each process unpickles a fresh socket of its own.
The supervisor itself holds the port bound (not listening, so it is given no
connections) to fail at once when the port is taken and to keep it while
processes are replaced. The price: a process that dies takes the connections
still waiting in its own socket's queue with it (they are reset and the
client retries), where with one shared socket another process would have
accepted them.
"""

from __future__ import annotations

import socket


def _bound(host: str, port: int, *, share: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if share:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def own_socket(host: str, port: int) -> socket.socket:
    """The calling process's socket on the shared port (uvicorn makes it listen)."""
    return _bound(host, port, share=True)


class PortShare:
    """The port, reserved by the supervisor; pickled into each web process as a socket of
    its own (``own_socket``)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        # First without SO_REUSEPORT: a port another program listens on, or another
        # Center run on the same port by mistake, is refused here instead of shared.
        _bound(host, port, share=False).close()
        self._reservation = own_socket(host, port)

    def __reduce__(self) -> tuple[object, tuple[str, int]]:
        return own_socket, (self.host, self.port)

    def close(self) -> None:
        self._reservation.close()

"""The live server's pass of writes: every connection's bytes encrypted and sent in one call.

Once a pass the shell has one combined write per listener (``Outbox.drain_each``);
``send_each`` encrypts each through its connection's TLS session and sends it
with one system call, straight to the socket, and hands back only what could
not go whole: the rest of a write the socket's buffer did not take, which
the shell gives to the asyncio transport (it buffers, retries and reports a
dead socket as always), an encryption's exception, or a connection that has
no writer (a browser's WebSocket, which frames its bytes first). Writing to
the socket beside the transport is safe only while the transport holds
nothing unsent: the shell sets its write buffer's high-water mark to zero,
so that anything it buffers pauses the connection, and writes only to
connections that are not paused.

The loop is the server's hottest: a delivery is one call of each of the
TLS session's two methods (``TLSSession.record_writer``) and one
``send(2)``. ``townhall.live._fanout`` is that loop compiled
(``src/townhall/live/_fanout.c``, built by ``pip install`` when a C compiler
is there, issue 14); without it the same loop runs in Python
(``send_each_python``), with the same results.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Final

__all__ = ["COMPILED", "Leftover", "SendEach", "Writer", "send_each", "send_each_python"]

Writer = tuple[Callable[[bytes], int] | None, Callable[[], bytes] | None, int]
"""``(write, read, fd)``: ``write(plaintext)`` answers how much it took, ``read()`` the
records to send (both None: the bytes go as they are); ``fd`` the non-blocking socket."""

Leftover = tuple[int, bytes | BaseException | None]
"""``(index, what)``: what ``send_each`` hands back for the connection at ``index``."""


def send_each_python(writers: Sequence[Writer | None], datas: Sequence[bytes]) -> list[Leftover]:
    """``send_each`` in Python: write ``datas[i]`` through ``writers[i]``; hand back ``(i,
    what)`` for what did not go whole: the wire bytes left, the encryption's exception, or
    None where the writer is None. Empty datas are skipped."""
    if len(writers) != len(datas):
        raise ValueError("send_each: as many datas as writers")
    leftovers: list[Leftover] = []
    for index, data in enumerate(datas):
        if not data:
            continue
        writer = writers[index]
        if writer is None:
            leftovers.append((index, None))
            continue
        write, read, fd = writer
        wire = data
        if write is not None:
            try:
                taken = write(data)
                while taken < len(data):  # not with memory BIOs, but never lose a byte
                    if (more := write(data[taken:])) <= 0:
                        raise RuntimeError("TLS write took no bytes")
                    taken += more
                if read is None:
                    raise TypeError("a writer that encrypts needs a read()")
                wire = read()
            except Exception as exc:
                leftovers.append((index, exc))
                continue
        try:
            sent = os.write(fd, wire)
        except OSError:  # full (EAGAIN), or dead: the transport will meet it and report it
            sent = 0
        if sent < len(wire):
            leftovers.append((index, wire[sent:] if sent else wire))
    return leftovers


SendEach = Callable[[list[Writer | None], list[bytes]], list[Leftover]]
"""``send_each``'s type: the compiled loop takes lists only."""

send_each: SendEach
try:
    from townhall.live._fanout import send_each
except ImportError:  # no C compiler where Townhall was installed: the Python loop
    send_each = send_each_python

COMPILED: Final = send_each is not send_each_python
"""Whether ``send_each`` is the compiled loop."""

"""What keeps a live server standing in a connection flood: file descriptors and quiet logs.

``LiveServer`` bounds its connections (all of them, and the unauthenticated
ones per address); these helpers make that bound real and the flood cheap to
log. ``raise_file_limit`` lifts the process's ``RLIMIT_NOFILE`` soft limit to
what the bounds need (within the hard limit), so that ``accept`` never fails
first. ``QuietLog`` lets a line through at most once per interval, counting
what it held back, and ``quiet_accept_errors`` puts asyncio's "socket.accept()
out of system resource" (one traceback per failed accept, tens of MB a
minute in a flood) behind one. docs/live.md, "Connection floods".
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from typing import Any, Final

__all__ = ["FILE_RESERVE", "QuietLog", "quiet_accept_errors", "raise_file_limit"]

FILE_RESERVE: Final = 256  # descriptors beyond connections: logs, the database, links, TLS files
ACCEPT_ERROR: Final = "socket.accept() out of system resource"

log = logging.getLogger(__name__)


def raise_file_limit(need: int) -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to ``need`` if it is lower (at most to the hard
    limit); the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return need if soft == resource.RLIM_INFINITY else soft
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as error:
            log.warning("could not raise the open file limit to %d: %s", target, error)
    return soft


class QuietLog:
    """Emit through ``emit`` at most once per ``interval`` seconds of ``clock``; the next
    line that gets through says how many were held back."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self.held = 0

    def __call__(self, emit: Callable[[int], None]) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            self.held += 1
            return
        self._last = now
        held, self.held = self.held, 0
        emit(held)


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, interval: float = 60.0) -> None:
    """Let asyncio's accept-failure report through ``loop``'s handler once per ``interval``.

    Other reports go to the handler that was there (or the default) as before.
    Idempotent: a second live server on the same loop changes nothing.
    """
    previous = loop.get_exception_handler()
    if getattr(previous, "quiet_accept_errors", False):
        return
    quiet = QuietLog(interval, loop.time)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == ACCEPT_ERROR:

            def emit(held: int) -> None:
                log.error(
                    "%s: %s (%d more like it not logged); the open file limit is too low "
                    "for the connections allowed",
                    ACCEPT_ERROR,
                    context.get("exception"),
                    held,
                )

            quiet(emit)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.quiet_accept_errors = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)

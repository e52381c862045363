"""The two errors of the live protocol, named for who is at fault (h11's split).

``LocalProtocolError``: our own code asked for something the protocol forbids
(a message out of turn, a field out of range); nothing was sent and the
connection is unchanged. ``RemoteProtocolError``: the peer sent bytes the
protocol forbids; the connection is finished, and the one thing left to do is
to send ``Bye.for_error(exc)`` and close. This module knows nothing else of
the protocol. See docs/protocol.md, "Errors".
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base of both: catch it to log either kind of protocol failure."""


class LocalProtocolError(ProtocolError):
    """Our side asked for something the protocol forbids; nothing was sent."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids; the connection is over.

    ``field`` names the message field at fault when one field is (None when the
    payload as a whole is malformed), so that callers and tests rely on what
    the protocol promises rather than on a decoder library's wording.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

"""Who may connect: participants by their sealed credential, child servers by their link ticket.

Pure checks, no state: ``check_participant`` opens a sealed credential with
``townhall.ticket`` and holds it against the Controller's lists; ``member_name``
turns a credential into the member's name (its identity in the event) and
``display_name`` into what people are shown of it; ``link_ticket`` and
``check_link`` are the interim credential of a server link (a name and a
secret the Manager enrolls; a mutual-TLS identity can replace it). What is
connected, removed or banned right now is the room's business, not this
module's. docs/live.md, "Admission", explains the choices.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from townhall.ticket import Credential, TicketError, sealed_issued_at, verify_sealed_credential
from townhall.wire import AuthFailure
from townhall.wire.messages import DISPLAY_NAME_MAX
from townhall.wire.names import NOT_IN_LABELS, is_server_name

__all__ = [
    "LINK_TICKET_MAGIC",
    "Refusal",
    "check_link",
    "check_participant",
    "display_name",
    "link_ticket",
    "member_name",
]

LINK_TICKET_MAGIC: Final = b"THL1"
_NAME_MAX: Final = 64
_NOT_NAME = re.compile(f"[{NOT_IN_LABELS}]")
_SECRET = re.compile(r"[A-Za-z0-9_-]{16,128}")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a connection is refused: the AuthFailed to send."""

    reason: AuthFailure
    message: str


_TICKET_FAILURES: Final[Mapping[str, AuthFailure]] = {
    "wrong_event": AuthFailure.WRONG_EVENT,
    "expired": AuthFailure.EXPIRED,
    "not_yet_valid": AuthFailure.EXPIRED,
}


def check_participant(
    sealed: bytes,
    *,
    center_public_key: Ed25519PublicKey,
    event_id: int,
    event_keys: Collection[bytes],
    credentials: Mapping[str, str],
    revoked: Collection[str],
    now: float,
    leeway: int,
    listed_before: float = 0.0,
) -> Credential | Refusal:
    """The credential inside ``sealed`` if it may join, else why not.

    Refuses a bad signature, another event, an expired (or not yet valid)
    ticket, a credential not on the Controller's list (or whose secret does
    not match it), and a revoked one. A credential issued at or after
    ``listed_before`` (Unix seconds) that is not on the list is let in: the
    list was read before the Center made it, so a user who joins right after
    getting a ticket is not turned away until the Controller's next pass,
    which lists it (or revokes it, and the room then closes the member).
    """
    try:
        credential = verify_sealed_credential(
            sealed,
            center_public_key=center_public_key,
            event_id=event_id,
            event_keys=event_keys,
            now=int(now),
            leeway=leeway,
        )
    except TicketError as error:
        return Refusal(_TICKET_FAILURES.get(error.code, AuthFailure.BAD_TICKET), error.message)
    expected = credentials.get(credential.credential_id)
    if expected is None:
        if not listed_before or sealed_issued_at(sealed) < listed_before:
            return Refusal(AuthFailure.BAD_TICKET, "this credential is not on the event's list")
    elif not hmac.compare_digest(expected, credential.secret_sha256):
        return Refusal(AuthFailure.BAD_TICKET, "this credential is not on the event's list")
    if credential.credential_id in revoked:
        return Refusal(AuthFailure.NOT_ALLOWED, "this credential has been revoked")
    return credential


def member_name(credential: Credential) -> str:
    """The member's name in the roster, chat and floor commands: its username.

    Usernames are unique in the Center, so names are unique across the tree
    without any server asking another. One a wire name cannot hold (over 64
    characters, control or bidirectional characters) is shortened or cleaned
    and given a digest of the original, so two usernames never meet in one name.
    """
    username = credential.username
    cleaned = _NOT_NAME.sub("_", username).strip()
    if cleaned == username and 0 < len(cleaned) <= _NAME_MAX:
        return cleaned
    digest = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned[: _NAME_MAX - 9].strip() or 'user'}~{digest}"


def display_name(credential: Credential) -> str:
    """What the roster and chat show for the member: the display name the Center put in
    its credential (what a guest typed, a user's full name), or "" to show its name.

    The ticket refuses control characters but not the bidirectional overrides a
    wire name refuses (they would let a name display as someone else's), so those
    are dropped here; the result is at most ``DISPLAY_NAME_MAX`` characters.
    """
    cleaned = _NOT_NAME.sub("", credential.display_name).strip()
    return cleaned[:DISPLAY_NAME_MAX].strip()


def link_ticket(server_name: str, secret: str) -> bytes:
    """What a child presents in ``Auth`` on its link Up.

    Format::

        magic   4  b"THL1"
        name    n  the child's server name, ASCII
        0x00    1
        secret  m  its link secret, ASCII (the parent holds its SHA-256 only)
    """
    if not is_server_name(server_name) or not _SECRET.fullmatch(secret):
        raise ValueError("a server name and a 16-128 character URL-safe secret")
    return LINK_TICKET_MAGIC + server_name.encode() + b"\x00" + secret.encode()


def check_link(ticket: bytes, children: Mapping[str, str]) -> str | Refusal:
    """The child server's name if ``ticket`` is one of ``children``'s, else why not.

    A participant's sealed credential presented here is refused: a participant
    connection can never act as a server link.
    """
    if not ticket.startswith(LINK_TICKET_MAGIC):
        return Refusal(AuthFailure.NOT_ALLOWED, "a server link needs a server's link ticket")
    name_bytes, _, secret_bytes = ticket[len(LINK_TICKET_MAGIC) :].partition(b"\x00")
    try:
        name, secret = name_bytes.decode("ascii"), secret_bytes.decode("ascii")
    except UnicodeDecodeError:
        return Refusal(AuthFailure.BAD_TICKET, "the link ticket is not ASCII")
    expected = children.get(name)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    if expected is None or not hmac.compare_digest(expected, digest):
        return Refusal(AuthFailure.NOT_ALLOWED, "not a child server of this event here")
    return name

"""The Controller's link secrets at rest: sealed with a key that is not in the database.

A child presents its link secret Up, and its parent admits it by the secret's
SHA-256; the Controller keeps the secrets themselves (``tables.Assignment``)
so that after a restart it sends the very same assignments. The Controller
must read them back, so a digest alone would not do: they are sealed with
AES-256-GCM under a key kept in ``<data>/controller/link-secrets.key`` (0600),
with the row's event and server as associated data, so that whoever reads the
database (a backup, another process on it) cannot link to an event's parent,
and a sealed value moved to another row does not open. Losing the key only
makes the Controller hand out new secrets (children link again).
``docs/security.md`` lists the secrets and where they live.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from townhall.config import Settings

KEY_FILE = Path("controller") / "link-secrets.key"
_PREFIX = "v1."
_NONCE_BYTES = 12


class LinkSecretError(Exception):
    """A stored link secret cannot be opened (another key, or not this row's)."""


def _row(event_id: int, server: str) -> bytes:
    return f"townhall link secret\0{event_id}\0{server}".encode()


class LinkSecretBox:
    """Seals and opens link secrets for one Controller's key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a link secret key is 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def load_or_create(cls, path: Path) -> LinkSecretBox:
        """The key at ``path``, made (0600, in a 0700 folder) the first time."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls(base64.b64decode(path.read_bytes().strip(), validate=True))
        key = AESGCM.generate_key(bit_length=256)
        with os.fdopen(fd, "wb") as file:
            file.write(base64.b64encode(key) + b"\n")
        return cls(key)

    @classmethod
    def for_settings(cls, settings: Settings) -> LinkSecretBox:
        return cls.load_or_create(settings.data / KEY_FILE)

    def seal(self, secret: str, event_id: int, server: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), _row(event_id, server))
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, stored: str, event_id: int, server: str) -> str:
        if not stored.startswith(_PREFIX):
            raise LinkSecretError("not a sealed link secret")
        body = stored[len(_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = self._aead.decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _row(event_id, server)
            )
        except (binascii.Error, ValueError, InvalidTag) as error:
            raise LinkSecretError(
                f"the link secret of {server} in event {event_id} does not open with this key"
            ) from error
        return plain.decode()

"""The sign-in service's view of the directory: simple bind and equality searches, via ldap3.

The reverse-proxy sign-in service (``townhall proxy-auth``) finds a user's
entry by one attribute, reads a few attributes and the groups naming it, and
binds as that entry with the password typed in. The protocol itself (BER,
StartTLS, message ids, the directory's answers) is ldap3's: a kept, pure
Python client, so no parser of our own reads what a directory sends on the
sign-in path. This module only decides policy around it:

- TLS (``ldaps://`` or StartTLS) verifies the directory's certificate and name;
  a StartTLS the directory refuses is an error, never a fall-back to clear text.
- Referrals are never chased: a referral could send the user's password to
  another server. Search references are ignored; a referral result is an error.
- Every connect and read has a time limit; searches ask for at most a few
  attributes, never dereference aliases, and carry a size and time limit.
- Filters are built from escaped values (RFC 4515), so user input is data and
  cannot change their shape; an empty password is refused before asking (it
  would be an "unauthenticated bind", which directories accept for any DN).
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

RESULT_SUCCESS = 0
RESULT_SIZE_LIMIT_EXCEEDED = 4
RESULT_REFERRAL = 10
RESULT_NO_SUCH_OBJECT = 32
RESULT_INVALID_CREDENTIALS = 49
SEARCH_TIME_LIMIT = 10


class LdapError(Exception):
    """The directory could not be asked (connection, TLS, referral or a failed operation)."""


@dataclass(frozen=True, slots=True)
class Entry:
    dn: str
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def first(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> tuple[str, ...]:
        for key, values in self.attributes.items():
            if key.lower() == name.lower():
                return values
        return ()


@dataclass(frozen=True, slots=True)
class LdapServer:
    """Where the directory is: ``ldap://host[:port]`` or ``ldaps://host[:port]``."""

    url: str
    starttls: bool = False
    ca_file: str = ""
    timeout: float = 10.0

    def address(self) -> tuple[str, int, bool]:
        parts = urlsplit(self.url)
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            raise ValueError(f"not an ldap:// or ldaps:// URL: {self.url!r}")
        secure = parts.scheme == "ldaps"
        return parts.hostname, parts.port or (636 if secure else 389), secure

    def tls(self) -> ldap3.Tls:
        host, _, _ = self.address()
        return ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=self.ca_file or None,
            sni=host,
        )


def equality_filter(pairs: Sequence[tuple[str, str]]) -> str:
    """``(&(a=v)(b=w)...)`` with every value escaped (RFC 4515 section 3)."""
    items = [f"({attribute}={escape_filter_chars(value)})" for attribute, value in pairs]
    if len(items) == 1:
        return items[0]
    return "(&" + "".join(items) + ")"


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


class LdapConnection:
    """One connection to the directory; use as a context manager."""

    def __init__(self, server: LdapServer) -> None:
        host, port, secure = server.address()
        use_tls = secure or server.starttls
        self._connection = ldap3.Connection(
            ldap3.Server(
                host,
                port=port,
                use_ssl=secure,
                tls=server.tls() if use_tls else None,
                get_info=ldap3.NONE,
                connect_timeout=server.timeout,
            ),
            auto_bind=ldap3.AUTO_BIND_NONE,
            client_strategy=ldap3.SYNC,
            read_only=True,
            auto_referrals=False,
            receive_timeout=max(1, math.ceil(server.timeout)),  # ldap3 packs it as an int
            raise_exceptions=False,
        )
        try:
            self._connection.open()
        except (LDAPException, OSError) as error:
            raise LdapError(f"cannot reach the directory at {host}:{port}: {error}") from error
        if server.starttls and not secure:
            try:
                started = self._connection.start_tls()
            except (LDAPException, OSError) as error:
                self.close()
                raise LdapError(f"TLS with the directory failed: {error}") from error
            if not started:
                self.close()
                raise LdapError(f"StartTLS refused: {self._describe()}")

    def __enter__(self) -> LdapConnection:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._connection.unbind()
        except (LDAPException, OSError):
            pass

    def _describe(self) -> str:
        result = self._connection.result or {}
        return f"result {result.get('result')}: {result.get('description')} {result.get('message')}"

    def _code(self) -> int:
        result = self._connection.result or {}
        code = result.get("result")
        return code if isinstance(code, int) else -1

    def bind(self, dn: str, password: str) -> bool:
        """True for a good password, False for invalid credentials; LdapError otherwise."""
        if not password:
            return False
        self._connection.user = dn
        self._connection.password = password
        self._connection.authentication = ldap3.SIMPLE
        try:
            if self._connection.bind():
                return True
        except (LDAPException, OSError) as error:
            raise LdapError(f"the directory connection failed: {error}") from error
        if self._code() == RESULT_INVALID_CREDENTIALS:
            return False
        if self._code() == RESULT_REFERRAL:
            raise LdapError("the directory answered the bind with a referral, never followed")
        raise LdapError(f"bind failed with {self._describe()}")

    def search(
        self,
        base: str,
        pairs: Sequence[tuple[str, str]],
        attributes: Sequence[str],
        *,
        size_limit: int = 0,
    ) -> list[Entry]:
        try:
            self._connection.search(
                base,
                equality_filter(pairs),
                search_scope=ldap3.SUBTREE,
                dereference_aliases=ldap3.DEREF_NEVER,
                attributes=list(attributes),
                size_limit=size_limit,
                time_limit=SEARCH_TIME_LIMIT,
            )
        except (LDAPException, OSError) as error:
            raise LdapError(f"the directory connection failed: {error}") from error
        entries = [
            Entry(
                dn=_text(item.get("dn", "")),
                attributes={
                    _text(name): tuple(_text(value) for value in values)
                    for name, values in item.get("raw_attributes", {}).items()
                },
            )
            for item in self._connection.response or []
            if item.get("type") == "searchResEntry"  # references (searchResRef) are not chased
        ]
        code = self._code()
        if code in (RESULT_SUCCESS, RESULT_NO_SUCH_OBJECT):
            return entries
        if code == RESULT_SIZE_LIMIT_EXCEEDED and entries:  # what came is enough to decide
            return entries
        if code == RESULT_REFERRAL:
            raise LdapError(
                f"the directory referred the search of {base!r} elsewhere: not followed"
            )
        raise LdapError(f"search failed with {self._describe()}")

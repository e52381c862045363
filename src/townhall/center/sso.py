"""Single sign-on by a reverse proxy: raw request headers and the peer address in, an identity out.

The organisation's reverse proxy authenticates users and names them to the
Center, either in a bare header (``X-Remote-User``) or in a signed JWT
assertion (Pomerium, Cloudflare Access, Google IAP). This module decides
whether to believe it: only from ``trusted_proxies``, only as a single clean
copy with no underscore twin, and for assertions only with a good signature,
issuer, audience and expiry. It must not know HTTP frameworks, the database or
accounts (``auth`` turns an ``SsoIdentity`` into a user and an ``SsoRefused``
into a 400), nor the wall clock (``now`` is passed in). Header values are
identities, assertions and bearer cookies: they are never logged nor echoed.
``docs/sso.md`` explains the setup and its rules.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import jwt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from townhall.config import Role, SsoSettings

log = logging.getLogger("townhall.center.sso")

MAX_VALUE_CHARS = 256
MAX_GROUPS_CHARS = 8192
MAX_ASSERTION_CHARS = 16384
MAX_COOKIE_HEADER_BYTES = 8192
MAX_COOKIE_VALUE_BYTES = 4096

# The same alphabet and length as accounts.USERNAME_PATTERN, so that an SSO
# name can always become an account.
_USERNAME = re.compile(r"[A-Za-z0-9._@+-]{1,128}")
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# RFC 6265 §4.1.1 cookie-octets, loosely: printable ASCII without space or ';'.
_COOKIE_VALUE = re.compile(r"[\x21-\x3a\x3c-\x7e]+")
_ROLE_RANK: dict[str, int] = {"member": 1, "organizer": 2, "admin": 3}

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)

# Asymmetric algorithms only: with "none" or HS* anyone who sees one assertion
# (or the shared secret) could mint others.
_EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
ALLOWED_ALGORITHMS = frozenset({*_EC_CURVES, *_RSA_ALGORITHMS, "EdDSA"})


@dataclass(frozen=True, slots=True)
class SsoIdentity:
    """Who the proxy says is asking; ``role`` is None when no group maps to one."""

    username: str
    email: str | None
    display_name: str | None
    groups: tuple[str, ...]
    role: Role | None


class SsoRefused(Exception):
    """The trusted proxy sent something unbelievable: refuse the request with HTTP 400."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class _Key:
    key: PublicKey
    kid: str | None
    # Set when the JWK pins its algorithm ("alg"); the token must then use it.
    alg: str | None


@dataclass(frozen=True, slots=True)
class _Slot:
    """One configured header: its exact lower-case name and its '_'/'-' folded form."""

    setting: str
    exact: bytes
    folded: bytes

    @classmethod
    def of(cls, setting: str, name: str) -> _Slot:
        exact = name.strip().lower().encode("latin-1")
        return cls(setting, exact, exact.replace(b"_", b"-"))

    @classmethod
    def optional(cls, setting: str, name: str) -> _Slot | None:
        return cls.of(setting, name) if name.strip() else None


@dataclass(slots=True)
class _Seen:
    values: list[bytes]
    twins: list[bytes]


class SsoVerifier:
    """Identity from a trusted reverse proxy; keys for assertions are loaded once, here."""

    def __init__(self, settings: SsoSettings) -> None:
        self._settings = settings
        self._name = _Slot.of("header", settings.header)
        self._assertion = _Slot.optional("assertion_header", settings.assertion_header)
        self._email = _Slot.optional("email_header", settings.email_header)
        self._display = _Slot.optional("name_header", settings.name_header)
        self._groups = _Slot.optional("groups_header", settings.groups_header)
        self._slots = tuple(
            slot
            for slot in (self._name, self._assertion, self._email, self._display, self._groups)
            if slot is not None
        )
        for i, slot in enumerate(self._slots):
            if not slot.exact:
                raise ValueError(f"[center.sso] {slot.setting} must name a header")
            for other in self._slots[:i]:
                if other.folded == slot.folded:
                    raise ValueError(
                        f"[center.sso] {other.setting} and {slot.setting} name the same header"
                    )
        self._algorithms: tuple[str, ...] = ()
        self._keys: tuple[_Key, ...] = ()
        if self._assertion is not None:
            self._algorithms, self._keys = _load_assertion_keys(settings)

    def identify(
        self, peer: str | None, headers: Sequence[tuple[bytes, bytes]], now: float
    ) -> SsoIdentity | None:
        """The identity the proxy vouches for, or None for a signed-out or untrusted request.

        Raises SsoRefused when a trusted proxy sends a repeated, joined, twinned
        or malformed identity header, or an assertion that does not verify.
        """
        settings = self._settings
        if not settings.enabled:
            return None
        seen = self._scan(headers)
        if not settings.trusts(peer):
            carried = self._carried(seen)
            if carried is not None:
                log.warning(
                    "ignored SSO header %r from %s, which is not a trusted proxy",
                    carried.decode("latin-1"),
                    peer or "an unknown peer",
                )
            return None
        for slot in self._slots:
            self._single(slot, seen)
        if self._assertion is not None:
            token = self._value(self._assertion, seen)
            return None if token is None else self._from_assertion(token, now)
        raw_name = self._value(self._name, seen)
        if raw_name is None:
            return None
        header = self._settings.header
        username = _text(raw_name, header, MAX_VALUE_CHARS, no_comma=True)
        if username is None:
            raise SsoRefused("sso_header_invalid", f"the {header} header is empty")
        if not _USERNAME.fullmatch(username):
            raise SsoRefused(
                "sso_header_invalid",
                f"the {header} header does not hold a user name "
                "(up to 128 letters, digits and ._@+-)",
            )
        email = self._optional(self._email, seen, MAX_VALUE_CHARS, no_comma=True)
        display_name = self._optional(self._display, seen, MAX_VALUE_CHARS, no_comma=False)
        groups_text = self._optional(self._groups, seen, MAX_GROUPS_CHARS, no_comma=False)
        groups = _split_groups(groups_text) if groups_text else ()
        return SsoIdentity(username, email, display_name, groups, self._role(groups))

    def captured_cookies(
        self, peer: str | None, headers: Sequence[tuple[bytes, bytes]]
    ) -> dict[str, str]:
        """The proxy's session cookies named in ``capture_cookies``, from a trusted proxy only.

        They are bearer secrets: callers must not log or show them either.
        """
        wanted = frozenset(self._settings.capture_cookies)
        if not wanted or not self._settings.trusts(peer):
            return {}
        raws = [value for name, value in headers if name.lower() == b"cookie"]
        if sum(len(raw) for raw in raws) > MAX_COOKIE_HEADER_BYTES:
            return {}
        found: dict[str, str] = {}
        for raw in raws:
            for part in raw.decode("latin-1").split(";"):
                name, sep, value = part.partition("=")
                name, value = name.strip(), value.strip()
                if not sep or name not in wanted or name in found:
                    continue
                if len(value) > MAX_COOKIE_VALUE_BYTES or not _COOKIE_VALUE.fullmatch(value):
                    continue
                found[name] = value
        return found

    # --- headers -------------------------------------------------------------------------

    def _scan(self, headers: Sequence[tuple[bytes, bytes]]) -> dict[bytes, _Seen]:
        by_folded = {slot.folded: slot for slot in self._slots}
        seen: dict[bytes, _Seen] = {}
        for raw_name, value in headers:
            name = raw_name.lower()
            slot = by_folded.get(name.replace(b"_", b"-"))
            if slot is None:
                continue
            entry = seen.setdefault(slot.exact, _Seen([], []))
            if name == slot.exact:
                entry.values.append(value)
            else:
                entry.twins.append(name)
        return seen

    def _carried(self, seen: dict[bytes, _Seen]) -> bytes | None:
        """The name of an identity header (or a twin of it) that the request carries."""
        for slot in (self._name, self._assertion):
            entry = seen.get(slot.exact) if slot is not None else None
            if slot is not None and entry is not None:
                return slot.exact if entry.values else entry.twins[0]
        return None

    def _single(self, slot: _Slot, seen: dict[bytes, _Seen]) -> None:
        entry = seen.get(slot.exact)
        if entry is None:
            return
        header = slot.exact.decode("latin-1")
        if entry.twins:
            # Some servers map X_Remote_User and X-Remote-User to one CGI variable,
            # so a proxy that strips only the hyphenated form lets a client through.
            raise SsoRefused(
                "sso_header_twin",
                f"the request carries an underscore twin of the {header} header",
            )
        if len(entry.values) > 1:
            raise SsoRefused("sso_header_repeated", f"the {header} header occurs more than once")

    def _value(self, slot: _Slot, seen: dict[bytes, _Seen]) -> bytes | None:
        entry = seen.get(slot.exact)
        return entry.values[0] if entry is not None and entry.values else None

    def _optional(
        self, slot: _Slot | None, seen: dict[bytes, _Seen], limit: int, *, no_comma: bool
    ) -> str | None:
        if slot is None:
            return None
        raw = self._value(slot, seen)
        if raw is None:
            return None
        return _text(raw, slot.exact.decode("latin-1"), limit, no_comma=no_comma)

    def _role(self, groups: tuple[str, ...]) -> Role | None:
        best: Role | None = None
        for group in groups:
            role = self._settings.group_roles.get(group)
            if role is not None and (best is None or _ROLE_RANK[role] > _ROLE_RANK[best]):
                best = role
        return best

    # --- assertions ----------------------------------------------------------------------

    def _from_assertion(self, raw: bytes, now: float) -> SsoIdentity:
        token = raw.decode("latin-1").strip(" \t")
        if len(token) > MAX_ASSERTION_CHARS or not _JWT_SHAPE.fullmatch(token):
            _invalid("the assertion is not a well-formed JWT")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            _invalid("the assertion's JOSE header cannot be read")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            _invalid(
                "the assertion is signed with an algorithm that is not allowed "
                f"(allowed: {', '.join(self._algorithms)})"
            )
        key = self._pick_key(header.get("kid"), alg)
        settings = self._settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=settings.assertion_audience or None,
                issuer=settings.assertion_issuer or None,
                options={
                    # Times are checked below against the caller's ``now``.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": bool(settings.assertion_audience),
                    "verify_iss": bool(settings.assertion_issuer),
                    "require": ["exp"],
                },
            )
        except jwt.InvalidSignatureError:
            _invalid("the assertion has a bad signature")
        except jwt.InvalidAudienceError:
            _invalid("the assertion is for the wrong audience")
        except jwt.InvalidIssuerError:
            _invalid("the assertion comes from the wrong issuer")
        except jwt.MissingRequiredClaimError as missing:
            _invalid(f"the assertion lacks the {missing.claim} claim")
        except (jwt.PyJWTError, ValueError, TypeError):
            _invalid("the assertion cannot be decoded")
        self._check_times(claims, now)
        return self._identity_from_claims(claims)

    def _pick_key(self, kid: object, alg: str) -> PublicKey:
        keys = self._keys
        matching = [key for key in keys if kid is not None and key.kid == kid]
        if matching:
            chosen = matching[0]
        elif len(keys) == 1 and (kid is None or keys[0].kid is None):
            chosen = keys[0]
        elif kid is None:
            _invalid("the assertion names no key id (kid) and several keys are configured")
        else:
            _invalid("no configured key matches the assertion's key id (kid)")
        if chosen.alg is not None and chosen.alg != alg:
            _invalid("the assertion's algorithm is not the one its key is meant for")
        if not _fits(alg, chosen.key):
            _invalid("the assertion's algorithm does not match the configured key")
        return chosen.key

    def _check_times(self, claims: Mapping[str, Any], now: float) -> None:
        leeway = self._settings.assertion_leeway_seconds
        times: dict[str, float] = {}
        for claim in ("exp", "nbf", "iat"):
            value = claims.get(claim)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                _invalid(f"the assertion's {claim} claim is not a number")
            times[claim] = float(value)
        if now > times["exp"] + leeway:
            _invalid("the assertion has expired")
        if "nbf" in times and now + leeway < times["nbf"]:
            _invalid("the assertion is not valid yet")
        if "iat" in times and now + leeway < times["iat"]:
            _invalid("the assertion was issued in the future")

    def _identity_from_claims(self, claims: Mapping[str, Any]) -> SsoIdentity:
        claim = self._settings.assertion_username_claim
        value = claims.get(claim)
        if value is None:
            _invalid(f"the assertion lacks the {claim} claim")
        if not isinstance(value, str) or not _USERNAME.fullmatch(value.strip()):
            _invalid(
                f"the assertion's {claim} claim is not a user name "
                "(up to 128 letters, digits and ._@+-)"
            )
        username = value.strip()
        email = _claim_text(claims, "email")
        display_name = _claim_text(claims, "name")
        raw_groups = claims.get("groups")
        groups: tuple[str, ...]
        if raw_groups is None:
            groups = ()
        elif isinstance(raw_groups, str):
            groups = _split_groups(raw_groups)
        elif isinstance(raw_groups, list) and all(isinstance(g, str) for g in raw_groups):
            groups = tuple(dict.fromkeys(g.strip() for g in raw_groups if g.strip()))
        else:
            _invalid("the assertion's groups claim is neither a string nor a list of strings")
        if any(_has_control(group) for group in groups):
            _invalid("the assertion's groups claim contains control characters")
        return SsoIdentity(username, email, display_name, groups, self._role(groups))


# --- helpers -------------------------------------------------------------------------------


def _invalid(message: str) -> NoReturn:
    raise SsoRefused("sso_assertion_invalid", message)


def _has_control(value: str) -> bool:
    return any(unicodedata.category(char) == "Cc" for char in value)


def _text(raw: bytes, header: str, limit: int, *, no_comma: bool) -> str | None:
    """A header value checked for size and control characters; None when blank."""
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        value = raw.decode("latin-1")
    value = value.strip(" \t")
    if not value:
        return None
    if len(value) > limit:
        raise SsoRefused(
            "sso_header_invalid", f"the {header} header is longer than {limit} characters"
        )
    if _has_control(value):
        raise SsoRefused("sso_header_invalid", f"the {header} header contains control characters")
    if no_comma and "," in value:
        # A comma means two values joined, as a proxy or server does with repeats.
        raise SsoRefused("sso_header_comma", f"the {header} header holds more than one value")
    return value


def _claim_text(claims: Mapping[str, Any], claim: str) -> str | None:
    value = claims.get(claim)
    if value is None:
        return None
    if not isinstance(value, str):
        _invalid(f"the assertion's {claim} claim is not a string")
    value = value.strip()
    if len(value) > MAX_VALUE_CHARS or _has_control(value):
        _invalid(f"the assertion's {claim} claim is too long or contains control characters")
    return value or None


def _split_groups(value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(g.strip() for g in re.split(r"[,;]", value) if g.strip()))


def _fits(alg: str, key: PublicKey) -> bool:
    if alg in _RSA_ALGORITHMS:
        return isinstance(key, rsa.RSAPublicKey)
    if alg in _EC_CURVES:
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == _EC_CURVES[alg]
    if alg == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return False


def _checked_key(key: object, where: str) -> PublicKey:
    if not isinstance(key, PublicKey):
        raise ValueError(f"{where} is not an RSA, EC or Ed25519/Ed448 public key")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        raise ValueError(f"{where} is an RSA key of {key.key_size} bits; 2048 at least")
    return key


def _load_assertion_keys(settings: SsoSettings) -> tuple[tuple[str, ...], tuple[_Key, ...]]:
    algorithms = tuple(settings.assertion_algorithms)
    refused = [alg for alg in algorithms if alg not in ALLOWED_ALGORITHMS]
    if refused or not algorithms:
        raise ValueError(
            f"[center.sso] assertion_algorithms: {', '.join(refused) or 'none given'}; "
            f"only asymmetric ones are allowed ({', '.join(sorted(ALLOWED_ALGORITHMS))})"
        )
    pem_file, jwks_file = settings.assertion_public_key_file, settings.assertion_jwks_file
    if pem_file and jwks_file:
        raise ValueError(
            "[center.sso] set assertion_public_key_file or assertion_jwks_file, not both"
        )
    if pem_file:
        keys: tuple[_Key, ...] = (_load_pem(pem_file),)
    elif jwks_file:
        keys = _load_jwks(jwks_file)
    else:
        raise ValueError(
            "[center.sso] assertion_header is set but neither assertion_public_key_file "
            "nor assertion_jwks_file names the proxy's key"
        )
    for key in keys:
        if not any(_fits(alg, key.key) and key.alg in (None, alg) for alg in algorithms):
            raise ValueError(
                f"[center.sso] a key in {pem_file or jwks_file} fits none of "
                f"assertion_algorithms ({', '.join(algorithms)})"
            )
    return algorithms, keys


def _read(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"[center.sso] {setting} {path}: {error.strerror or error}") from error


def _load_pem(path: str) -> _Key:
    where = f"[center.sso] assertion_public_key_file {path}"
    data = _read(path, "assertion_public_key_file")
    if b"PRIVATE KEY-----" in data:
        raise ValueError(f"{where} holds a private key; give the Center the public half only")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key: object = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as error:
        raise ValueError(f"{where} is not a PEM public key or certificate") from error
    return _Key(_checked_key(key, where), None, None)


def _load_jwks(path: str) -> tuple[_Key, ...]:
    where = f"[center.sso] assertion_jwks_file {path}"
    data = _read(path, "assertion_jwks_file")
    try:
        document = json.loads(data)
    except ValueError as error:
        raise ValueError(f"{where} is not JSON: {error}") from error
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f'{where} is not a JWK set (no "keys" list)')
    keys: list[_Key] = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: key {number} is not a JSON object")
        if entry.get("use", "sig") != "sig" or entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue  # encryption keys and symmetric secrets never verify assertions
        alg = entry.get("alg")
        if alg is not None and alg not in ALLOWED_ALGORITHMS:
            raise ValueError(f"{where}: key {number} is for {alg}, which is not allowed")
        kid = entry.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise ValueError(f"{where}: key {number} has a kid that is not a string")
        try:
            jwk = jwt.PyJWK(entry)
        except (jwt.PyJWTError, KeyError, ValueError, TypeError) as error:
            raise ValueError(f"{where}: key {number} cannot be read ({error})") from error
        keys.append(_Key(_checked_key(jwk.key, f"{where}: key {number}"), kid, alg))
    if not keys:
        raise ValueError(f"{where} holds no signature-verification keys")
    return tuple(keys)

"""The SSO verifier on raw ASGI headers: trusted peers, spoofing defences, signed assertions.

Keys are generated here with ``cryptography`` and written to ``tmp_path``;
time is a number passed in, stepped by hand.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from townhall.center.sso import SsoIdentity, SsoRefused, SsoVerifier
from townhall.config import SsoSettings

PROXY = "10.0.0.5"
STRANGER = "192.0.2.9"
NOW = 1_900_000_000.0
ISSUER = "https://auth.example.org"
AUDIENCE = "townhall.example.org"

Headers = list[tuple[bytes, bytes]]


def asgi(*pairs: tuple[str, str]) -> Headers:
    """Headers as an ASGI server hands them over: lower-case names, latin-1 bytes."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


def verifier(**sso: Any) -> SsoVerifier:
    sso.setdefault("trusted_proxies", (f"{PROXY}/32",))
    return SsoVerifier(SsoSettings(**sso))


# --- bare name header ------------------------------------------------------------------


def test_a_trusted_proxy_names_the_user() -> None:
    identity = verifier().identify(PROXY, asgi(("X-Remote-User", "olga")), NOW)
    assert identity == SsoIdentity("olga", None, None, (), None)


def test_a_username_may_be_an_email_and_loses_surrounding_spaces() -> None:
    identity = verifier().identify(PROXY, asgi(("X-Remote-User", "  nora+ops@example.org ")), NOW)
    assert identity is not None
    assert identity.username == "nora+ops@example.org"


def test_a_trusted_network_covers_every_proxy_in_it() -> None:
    sso = verifier(trusted_proxies=("10.0.0.0/24", "::1/128"))
    assert sso.identify("10.0.0.77", asgi(("X-Remote-User", "olga")), NOW) is not None
    assert sso.identify("::1", asgi(("X-Remote-User", "olga")), NOW) is not None


def test_a_configured_header_name_is_matched_whatever_its_case() -> None:
    sso = verifier(header="X-Forwarded-User")
    identity = sso.identify(PROXY, [(b"X-Forwarded-User", b"olga")], NOW)
    assert identity is not None and identity.username == "olga"
    assert sso.identify(PROXY, asgi(("X-Remote-User", "olga")), NOW) is None


def test_a_request_from_the_proxy_without_the_header_is_signed_out() -> None:
    assert verifier().identify(PROXY, asgi(("Accept", "text/html")), NOW) is None


def test_the_header_from_an_untrusted_peer_is_ignored_and_logged_without_its_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="townhall.center.sso"):
        identity = verifier().identify(STRANGER, asgi(("X-Remote-User", "mallory-admin")), NOW)
    assert identity is None
    messages = [r.getMessage() for r in caplog.records if r.name == "townhall.center.sso"]
    assert len(messages) == 1
    assert STRANGER in messages[0] and "x-remote-user" in messages[0]
    assert "mallory-admin" not in caplog.text


def test_an_underscore_twin_from_an_untrusted_peer_is_ignored_and_logged_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="townhall.center.sso"):
        assert verifier().identify(STRANGER, asgi(("X_Remote_User", "mallory")), NOW) is None
    assert "x_remote_user" in caplog.text and STRANGER in caplog.text
    assert "mallory" not in caplog.text


def test_a_peer_without_an_address_is_never_trusted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="townhall.center.sso"):
        assert verifier().identify(None, asgi(("X-Remote-User", "olga")), NOW) is None
    assert "olga" not in caplog.text


def test_an_untrusted_request_without_the_header_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="townhall.center.sso"):
        assert verifier().identify(STRANGER, asgi(("Accept", "*/*")), NOW) is None
    assert not caplog.records


def test_the_header_is_ignored_from_everyone_when_no_proxy_is_trusted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sso = SsoVerifier(SsoSettings())
    spoofed = asgi(("X-Remote-User", "olga"), ("X-Remote-User", "ada"), ("X_Remote_User", "x"))
    with caplog.at_level(logging.DEBUG, logger="townhall.center.sso"):
        assert sso.identify(PROXY, spoofed, NOW) is None
        assert sso.identify("127.0.0.1", spoofed, NOW) is None
    assert not caplog.records


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ([("X-Remote-User", "olga"), ("X-Remote-User", "ada")], "sso_header_repeated"),
        ([("X-Remote-User", "olga"), ("X-Remote-User", "olga")], "sso_header_repeated"),
        ([("X-Remote-User", "olga, ada")], "sso_header_comma"),
        ([("X-Remote-User", "olga"), ("x_remote_user", "ada")], "sso_header_twin"),
        ([("X-Remote-User", "olga"), ("X_Remote-User", "ada")], "sso_header_twin"),
        ([("X_Remote_User", "ada")], "sso_header_twin"),
        ([("X-Remote-User", "olga\x00")], "sso_header_invalid"),
        ([("X-Remote-User", "ol\x1bga")], "sso_header_invalid"),
        ([("X-Remote-User", "olga\x85")], "sso_header_invalid"),
        ([("X-Remote-User", "o" * 257)], "sso_header_invalid"),
        ([("X-Remote-User", "o" * 129)], "sso_header_invalid"),
        ([("X-Remote-User", "   ")], "sso_header_invalid"),
        ([("X-Remote-User", "olga ada")], "sso_header_invalid"),
        ([("X-Remote-User", "DOMAIN\\olga")], "sso_header_invalid"),
        ([("X-Remote-User", "ólga")], "sso_header_invalid"),
        (
            [("X-Remote-User", "olga"), ("X-Remote-Email", "a@x.org"), ("X-Remote-Email", "b")],
            "sso_header_repeated",
        ),
        ([("X-Remote-User", "olga"), ("X-Remote-Email", "a@x.org, b@x.org")], "sso_header_comma"),
        ([("X-Remote-User", "olga"), ("X_Remote_Groups", "it-admins")], "sso_header_twin"),
        ([("X-Remote-User", "olga"), ("X-Remote-Name", "Olga\nAdmin")], "sso_header_invalid"),
        ([("X-Remote-User", "olga"), ("X-Remote-Name", "O" * 257)], "sso_header_invalid"),
    ],
    ids=[
        "repeated",
        "repeated-same-value",
        "comma",
        "twin-lower",
        "twin-mixed",
        "twin-alone",
        "nul",
        "escape",
        "c1-control",
        "longer-than-256",
        "longer-than-an-account-name",
        "blank",
        "space-inside",
        "backslash",
        "non-ascii",
        "repeated-email",
        "comma-in-email",
        "groups-twin",
        "newline-in-name",
        "long-name",
    ],
)
def test_spoofed_or_malformed_identity_headers_from_the_proxy_are_refused(
    headers: list[tuple[str, str]], code: str
) -> None:
    sso = verifier(
        email_header="X-Remote-Email", name_header="X-Remote-Name", groups_header="X-Remote-Groups"
    )
    with pytest.raises(SsoRefused) as refused:
        sso.identify(PROXY, asgi(*headers), NOW)
    assert refused.value.code == code
    assert "ada" not in refused.value.message and "olga" not in refused.value.message


def test_email_name_and_groups_headers_fill_the_identity() -> None:
    sso = verifier(
        email_header="X-Remote-Email", name_header="X-Remote-Name", groups_header="X-Remote-Groups"
    )
    headers = [
        (b"x-remote-user", b"nora"),
        (b"x-remote-email", b"nora@example.org"),
        (b"x-remote-name", "Lindqvist, Nóra".encode()),
        (b"x-remote-groups", b" everyone; staff ,, everyone ;"),
    ]
    assert sso.identify(PROXY, headers, NOW) == SsoIdentity(
        "nora", "nora@example.org", "Lindqvist, Nóra", ("everyone", "staff"), None
    )


def test_a_display_name_that_is_not_utf8_is_read_as_latin1() -> None:
    sso = verifier(name_header="X-Remote-Name")
    headers = [(b"x-remote-user", b"nora"), (b"x-remote-name", "Nóra".encode("latin-1"))]
    identity = sso.identify(PROXY, headers, NOW)
    assert identity is not None and identity.display_name == "Nóra"


def test_unconfigured_attribute_headers_are_ignored() -> None:
    headers = asgi(
        ("X-Remote-User", "nora"), ("X-Remote-Email", "a@x.org"), ("X-Remote-Email", "b")
    )
    identity = verifier().identify(PROXY, headers, NOW)
    assert identity == SsoIdentity("nora", None, None, (), None)


@pytest.mark.parametrize(
    ("groups", "role"),
    [
        ("everyone", "member"),
        ("everyone, staff-organizers", "organizer"),
        ("it-admins;staff-organizers;everyone", "admin"),
        ("staff-organizers, it-admins", "admin"),
        ("contractors, IT-ADMINS", None),
        ("", None),
    ],
)
def test_groups_map_to_the_highest_ranked_role(groups: str, role: str | None) -> None:
    sso = verifier(
        groups_header="X-Remote-Groups",
        group_roles={"everyone": "member", "staff-organizers": "organizer", "it-admins": "admin"},
    )
    headers = asgi(("X-Remote-User", "nora"), ("X-Remote-Groups", groups))
    identity = sso.identify(PROXY, headers, NOW)
    assert identity is not None and identity.role == role


def test_two_settings_naming_one_header_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="name the same header"):
        verifier(email_header="X_Remote_User")


# --- signed assertions -----------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    alg: str
    key: Any  # a cryptography private key

    @classmethod
    def new(cls, alg: str) -> Signer:
        if alg == "ES256":
            return cls(alg, ec.generate_private_key(ec.SECP256R1()))
        if alg == "RS256":
            return cls(alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return cls(alg, ed25519.Ed25519PrivateKey.generate())

    def pem(self) -> bytes:
        return self.key.public_key().public_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self, kid: str) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        entry: dict[str, Any] = algorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {**entry, "kid": kid, "use": "sig"}

    def sign(self, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        body: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "1234",
            "email": "pat@example.org",
            "exp": int(NOW) + 300,
            "iat": int(NOW),
        }
        body.update(claims)
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, self.key, algorithm=self.alg, headers=headers)


ALGORITHMS = ["ES256", "RS256", "EdDSA"]


@pytest.fixture(params=ALGORITHMS)
def signer(request: pytest.FixtureRequest) -> Signer:
    return Signer.new(request.param)


def pem_verifier(tmp_path: Path, signer: Signer, **sso: Any) -> SsoVerifier:
    key_file = tmp_path / "proxy.pem"
    key_file.write_bytes(signer.pem())
    settings: dict[str, Any] = {
        "assertion_header": "X-Pomerium-Jwt-Assertion",
        "assertion_public_key_file": str(key_file),
        "assertion_issuer": ISSUER,
        "assertion_audience": AUDIENCE,
        "groups_header": "X-Remote-Groups",
        "group_roles": {"it-admins": "admin", "staff": "organizer"},
    }
    settings.update(sso)
    return verifier(**settings)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def with_assertion(token: str, *extra: tuple[str, str]) -> Headers:
    return asgi(("X-Pomerium-Jwt-Assertion", token), *extra)


def refusal(sso: SsoVerifier, token: str, now: float = NOW) -> SsoRefused:
    with pytest.raises(SsoRefused) as refused:
        sso.identify(PROXY, with_assertion(token), now)
    assert refused.value.code == "sso_assertion_invalid"
    assert token not in refused.value.message
    return refused.value


def test_a_good_assertion_names_the_user(tmp_path: Path, signer: Signer) -> None:
    sso = pem_verifier(tmp_path, signer)
    token = signer.sign(name="Pat Doe", groups=["staff", "it-admins"])
    assert sso.identify(PROXY, with_assertion(token), NOW) == SsoIdentity(
        "pat@example.org", "pat@example.org", "Pat Doe", ("staff", "it-admins"), "admin"
    )


def test_the_username_claim_is_a_setting(tmp_path: Path, signer: Signer) -> None:
    sso = pem_verifier(tmp_path, signer, assertion_username_claim="preferred_username")
    identity = sso.identify(PROXY, with_assertion(signer.sign(preferred_username="pat")), NOW)
    assert identity is not None and identity.username == "pat"


def test_an_assertion_signed_by_another_key_is_refused(tmp_path: Path, signer: Signer) -> None:
    sso = pem_verifier(tmp_path, signer)
    forger = Signer.new(signer.alg)
    assert "bad signature" in refusal(sso, forger.sign()).message


def test_an_assertion_expires_with_the_clock_passed_in(tmp_path: Path, signer: Signer) -> None:
    sso = pem_verifier(tmp_path, signer, assertion_leeway_seconds=30)
    token = signer.sign()
    assert sso.identify(PROXY, with_assertion(token), NOW + 300 + 30) is not None
    assert "expired" in refusal(sso, token, now=NOW + 300 + 31).message


def test_an_assertion_not_valid_yet_is_refused(tmp_path: Path, signer: Signer) -> None:
    sso = pem_verifier(tmp_path, signer, assertion_leeway_seconds=0)
    assert "not valid yet" in refusal(sso, signer.sign(nbf=int(NOW) + 60)).message
    assert "future" in refusal(sso, signer.sign(iat=int(NOW) + 60)).message


def test_an_assertion_for_another_audience_is_refused(tmp_path: Path, signer: Signer) -> None:
    sso = pem_verifier(tmp_path, signer)
    assert "audience" in refusal(sso, signer.sign(aud="other-app")).message
    assert "aud" in refusal(sso, signer.sign(aud=None)).message


def test_an_assertion_from_another_issuer_is_refused(tmp_path: Path, signer: Signer) -> None:
    sso = pem_verifier(tmp_path, signer)
    assert "issuer" in refusal(sso, signer.sign(iss="https://evil.example")).message


def test_issuer_and_audience_are_not_checked_when_not_configured(
    tmp_path: Path, signer: Signer
) -> None:
    sso = pem_verifier(tmp_path, signer, assertion_issuer="", assertion_audience="")
    token = signer.sign(iss="https://anyone.example", aud="anything")
    assert sso.identify(PROXY, with_assertion(token), NOW) is not None


def test_an_assertion_without_an_expiry_is_refused(tmp_path: Path, signer: Signer) -> None:
    sso = pem_verifier(tmp_path, signer)
    assert "exp" in refusal(sso, signer.sign(exp=None)).message


def test_an_assertion_without_the_username_claim_is_refused(tmp_path: Path, signer: Signer) -> None:
    sso = pem_verifier(tmp_path, signer)
    assert "email" in refusal(sso, signer.sign(email=None)).message


def test_an_assertion_whose_username_is_not_a_name_is_refused(
    tmp_path: Path, signer: Signer
) -> None:
    sso = pem_verifier(tmp_path, signer)
    refusal(sso, signer.sign(email="pat doe@example.org"))
    refusal(sso, signer.sign(email=["pat@example.org"]))


def test_an_unsigned_assertion_is_refused(tmp_path: Path, signer: Signer) -> None:
    sso = pem_verifier(tmp_path, signer)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "email": "pat@example.org", "exp": int(NOW) + 60}
    token = f"{b64url(json.dumps({'alg': 'none'}).encode())}.{b64url(json.dumps(claims).encode())}."
    assert "algorithm" in refusal(sso, token).message


def test_an_hmac_assertion_keyed_with_the_public_key_is_refused(
    tmp_path: Path, signer: Signer
) -> None:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "email": "pat@example.org", "exp": int(NOW) + 60}
    body = b64url(json.dumps(claims).encode())
    mac = hmac.new(signer.pem(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    sso = pem_verifier(tmp_path, signer)
    assert "algorithm" in refusal(sso, f"{header}.{body}.{b64url(mac)}").message


def test_an_assertion_in_another_allowed_algorithm_than_the_key_is_refused(
    tmp_path: Path,
) -> None:
    ec_signer, rsa_signer = Signer.new("ES256"), Signer.new("RS256")
    sso = pem_verifier(tmp_path, ec_signer)
    assert "match" in refusal(sso, rsa_signer.sign()).message


@pytest.mark.parametrize("token", ["", "garbage", "a.b", "a.b.c.d", "x" * 20000, "ab.cd.ef"])
def test_a_malformed_assertion_is_refused(tmp_path: Path, token: str) -> None:
    sso = pem_verifier(tmp_path, Signer.new("ES256"))
    with pytest.raises(SsoRefused) as refused:
        sso.identify(PROXY, with_assertion(token), NOW)
    assert refused.value.code == "sso_assertion_invalid"


def test_a_bare_name_header_is_ignored_in_assertion_mode(tmp_path: Path, signer: Signer) -> None:
    sso = pem_verifier(tmp_path, signer)
    assert sso.identify(PROXY, asgi(("X-Remote-User", "pat")), NOW) is None
    identity = sso.identify(PROXY, with_assertion(signer.sign(), ("X-Remote-User", "root")), NOW)
    assert identity is not None and identity.username == "pat@example.org"


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ([("X-Remote-User", "a"), ("X-Remote-User", "b")], "sso_header_repeated"),
        ([("X_Remote_User", "root")], "sso_header_twin"),
        ([("X-Pomerium-Jwt-Assertion", "x.y.z")], "sso_header_repeated"),
        ([("X_Pomerium_Jwt_Assertion", "x.y.z")], "sso_header_twin"),
    ],
    ids=["name-repeated", "name-twin", "assertion-repeated", "assertion-twin"],
)
def test_twins_and_repeats_are_refused_in_assertion_mode(
    tmp_path: Path, signer: Signer, extra: list[tuple[str, str]], code: str
) -> None:
    sso = pem_verifier(tmp_path, signer)
    with pytest.raises(SsoRefused) as refused:
        sso.identify(PROXY, with_assertion(signer.sign(), *extra), NOW)
    assert refused.value.code == code


def test_an_assertion_from_an_untrusted_peer_is_ignored_and_not_logged(
    tmp_path: Path, signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    sso = pem_verifier(tmp_path, signer)
    token = signer.sign()
    with caplog.at_level(logging.WARNING, logger="townhall.center.sso"):
        assert sso.identify(STRANGER, with_assertion(token), NOW) is None
    assert "x-pomerium-jwt-assertion" in caplog.text and STRANGER in caplog.text
    assert token not in caplog.text


def jwks_verifier(tmp_path: Path, entries: list[dict[str, Any]], **sso: Any) -> SsoVerifier:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": entries}))
    return verifier(
        assertion_header="Cf-Access-Jwt-Assertion",
        assertion_jwks_file=str(jwks_file),
        assertion_audience=AUDIENCE,
        **sso,
    )


def test_a_jwks_key_is_chosen_by_kid(tmp_path: Path) -> None:
    old, new = Signer.new("RS256"), Signer.new("ES256")
    sso = jwks_verifier(tmp_path, [old.jwk("2024"), new.jwk("2025")])
    for signer, kid in ((old, "2024"), (new, "2025")):
        token = signer.sign({"kid": kid}, email=f"{kid}@example.org")
        identity = sso.identify(PROXY, asgi(("Cf-Access-Jwt-Assertion", token)), NOW)
        assert identity is not None and identity.username == f"{kid}@example.org"
    swapped = old.sign({"kid": "2025"})
    with pytest.raises(SsoRefused, match="match"):
        sso.identify(PROXY, asgi(("Cf-Access-Jwt-Assertion", swapped)), NOW)


@pytest.mark.parametrize(
    ("headers", "fault"), [({"kid": "1999"}, "key id"), (None, "several keys")]
)
def test_a_jwks_assertion_with_an_unknown_or_no_kid_is_refused(
    tmp_path: Path, headers: dict[str, Any] | None, fault: str
) -> None:
    one, two = Signer.new("ES256"), Signer.new("EdDSA")
    sso = jwks_verifier(tmp_path, [one.jwk("a"), two.jwk("b")])
    with pytest.raises(SsoRefused, match=fault):
        sso.identify(PROXY, asgi(("Cf-Access-Jwt-Assertion", one.sign(headers))), NOW)


def test_the_only_jwks_key_verifies_an_assertion_without_kid(tmp_path: Path) -> None:
    only = Signer.new("EdDSA")
    sso = jwks_verifier(tmp_path, [only.jwk("k1"), {"kty": "oct", "k": "c2VjcmV0"}])
    identity = sso.identify(PROXY, asgi(("Cf-Access-Jwt-Assertion", only.sign())), NOW)
    assert identity is not None and identity.username == "pat@example.org"


def test_a_jwk_pinned_to_one_algorithm_refuses_another(tmp_path: Path) -> None:
    signer = Signer.new("RS256")
    pinned = [{**signer.jwk("r"), "alg": "PS256"}]
    with pytest.raises(ValueError, match="fits none"):
        jwks_verifier(tmp_path, pinned)
    sso = jwks_verifier(tmp_path, pinned, assertion_algorithms=("RS256", "PS256"))
    with pytest.raises(SsoRefused, match="meant for"):
        sso.identify(PROXY, asgi(("Cf-Access-Jwt-Assertion", signer.sign())), NOW)


def test_group_claims_map_to_a_role(tmp_path: Path) -> None:
    signer = Signer.new("ES256")
    sso = jwks_verifier(
        tmp_path, [signer.jwk("k")], group_roles={"staff": "organizer", "ops": "member"}
    )
    token = signer.sign(groups="ops;staff")
    identity = sso.identify(PROXY, asgi(("Cf-Access-Jwt-Assertion", token)), NOW)
    assert identity is not None and identity.groups == ("ops", "staff")
    assert identity.role == "organizer"


# --- configuration errors ----------------------------------------------------------------


def test_a_bad_key_file_is_a_clear_error_at_construction(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    private = tmp_path / "private.pem"
    private.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    mode = {"assertion_header": "X-Assertion"}
    with pytest.raises(ValueError, match="not a PEM public key"):
        verifier(**mode, assertion_public_key_file=str(garbage))
    with pytest.raises(ValueError, match="private key"):
        verifier(**mode, assertion_public_key_file=str(private))
    with pytest.raises(ValueError, match="missing.pem"):
        verifier(**mode, assertion_public_key_file=str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="neither"):
        verifier(**mode)


def test_a_bad_jwks_file_is_a_clear_error_at_construction(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    mode = {"assertion_header": "X-Assertion", "assertion_jwks_file": str(jwks)}
    for content, fault in [
        ("{not json", "not JSON"),
        ('{"keys": {}}', "not a JWK set"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "no signature-verification keys"),
        ('{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA"}]}', "cannot be read"),
    ]:
        jwks.write_text(content)
        with pytest.raises(ValueError, match=fault):
            verifier(**mode)


def test_symmetric_or_none_algorithms_cannot_be_configured(tmp_path: Path) -> None:
    key_file = tmp_path / "proxy.pem"
    key_file.write_bytes(Signer.new("ES256").pem())
    for algorithms in (("ES256", "HS256"), ("none",), ()):
        with pytest.raises(ValueError, match="assertion_algorithms"):
            verifier(
                assertion_header="X-Assertion",
                assertion_public_key_file=str(key_file),
                assertion_algorithms=algorithms,
            )


def test_a_key_that_fits_no_configured_algorithm_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "proxy.pem"
    key_file.write_bytes(Signer.new("EdDSA").pem())
    with pytest.raises(ValueError, match="fits none"):
        verifier(
            assertion_header="X-Assertion",
            assertion_public_key_file=str(key_file),
            assertion_algorithms=("ES256", "RS256"),
        )


# --- captured cookies ---------------------------------------------------------------------


def cookie_verifier() -> SsoVerifier:
    return verifier(capture_cookies=("mod_auth_form_session", "_oauth2_proxy"))


def test_named_cookies_are_captured_from_the_trusted_proxy() -> None:
    headers = asgi(
        ("Cookie", "theme=dark; mod_auth_form_session=abc%3D%3D; townhall_session=s3cr3t"),
        ("Cookie", "_oauth2_proxy=eyJ0.x-y_z=; mod_auth_form_session=second"),
    )
    assert cookie_verifier().captured_cookies(PROXY, headers) == {
        "mod_auth_form_session": "abc%3D%3D",
        "_oauth2_proxy": "eyJ0.x-y_z=",
    }


def test_cookies_from_an_untrusted_peer_are_not_captured() -> None:
    headers = asgi(("Cookie", "mod_auth_form_session=abc"))
    assert cookie_verifier().captured_cookies(STRANGER, headers) == {}
    assert cookie_verifier().captured_cookies(None, headers) == {}


def test_nothing_is_captured_when_sso_is_off_or_no_cookie_is_named() -> None:
    headers = asgi(("Cookie", "mod_auth_form_session=abc"))
    off = SsoVerifier(SsoSettings(capture_cookies=("mod_auth_form_session",)))
    assert off.captured_cookies(PROXY, headers) == {}
    assert verifier().captured_cookies(PROXY, headers) == {}


def test_oversized_cookies_are_not_captured() -> None:
    sso = cookie_verifier()
    big_value = asgi(("Cookie", "mod_auth_form_session=" + "a" * 4097 + "; _oauth2_proxy=ok"))
    assert sso.captured_cookies(PROXY, big_value) == {"_oauth2_proxy": "ok"}
    big_header = asgi(("Cookie", "_oauth2_proxy=ok"), ("Cookie", "junk=" + "b" * 8200))
    assert sso.captured_cookies(PROXY, big_header) == {}


def test_cookie_values_with_spaces_or_controls_are_not_captured() -> None:
    headers = asgi(("Cookie", "mod_auth_form_session=a b; _oauth2_proxy=\x01x"))
    assert cookie_verifier().captured_cookies(PROXY, headers) == {}

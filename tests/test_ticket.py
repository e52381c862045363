"""Join tickets: issued by the Center, opened by the participant, checked by a live server.

The layouts these tests take apart by hand are the documented ``Format::``
blocks of ``townhall.ticket`` (docs/tickets.md).
"""

from __future__ import annotations

import ast
import base64
import datetime as dt
import json
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import townhall.ticket
from townhall.ticket import (
    DEFAULT_LEEWAY,
    MAX_COOKIES,
    MAX_LIFETIME,
    MAX_SERVERS,
    MAX_TICKET_BYTES,
    Credential,
    Role,
    ServerEntry,
    TicketContents,
    TicketError,
    Zone,
    event_key_id,
    generate_event_key,
    issue_ticket,
    load_signing_key,
    open_ticket,
    save_signing_key,
    spki_sha256,
    verify_sealed_credential,
)

NOW = 1_770_000_000
CENTER_KEY = Ed25519PrivateKey.generate()
CENTER = CENTER_KEY.public_key()
ATTACKER_KEY = Ed25519PrivateKey.generate()
EVENT_A, EVENT_B = 7, 8
KEY_A, KEY_B = generate_event_key(), generate_event_key()
SECRET_COOKIE = "s3cr3t-proxy-session-value"


def make_certificate(name: str) -> tuple[str, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        cert.public_bytes(serialization.Encoding.DER),
    )


CA_PEM, CA_DER = make_certificate("Townhall test CA")
MAIN_PEM, MAIN_DER = make_certificate("live-main")
SERVERS = (
    ServerEntry("main", "live.example.org", 9443, Zone.INTERNAL, (spki_sha256(MAIN_PEM),)),
    ServerEntry("dmz", "203.0.113.9", 443, Zone.DMZ),
    ServerEntry("v6", "2001:db8::7", 443, Zone.DMZ),
)
MIKE = Credential.new(username="mike", display_name="Mike Müller", role=Role.PARTICIPANT)


def ticket(
    *,
    event_id: int = EVENT_A,
    event_key: bytes = KEY_A,
    credential: Credential = MIKE,
    now: int = NOW,
    **overrides: Any,
) -> bytes:
    arguments: dict[str, Any] = {
        "title": "Quarterly town hall",
        "center_url": "https://center.example.org/",
        "servers": SERVERS,
        "ca_pem": CA_PEM,
        "cookies": {"_oauth2_proxy": SECRET_COOKIE, "theme": '"dark"'},
    }
    arguments.update(overrides)
    return issue_ticket(
        signing_key=CENTER_KEY,
        event_key=event_key,
        event_id=event_id,
        credential=credential,
        now=now,
        **arguments,
    )


def split(data: bytes) -> tuple[bytes, bytes, dict[str, Any], bytes]:
    """Take a ticket file apart along its Format:: block."""
    return data[:4], data[4:36], json.loads(data[36:-64]), data[-64:]


def signed_by(key: Ed25519PrivateKey, body: dict[str, Any] | bytes) -> bytes:
    """A ticket file for ``body``, carrying and signed with ``key``."""
    if isinstance(body, dict):
        body = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    signed = b"THT1" + raw + body
    return signed + key.sign(signed)


def server_check(
    sealed: bytes, *, event_id: int = EVENT_A, keys: tuple[bytes, ...] = (KEY_A,), now: int = NOW
) -> Credential:
    return verify_sealed_credential(
        sealed, center_public_key=CENTER, event_id=event_id, event_keys=keys, now=now
    )


def refused(code: str, call: Callable[[], object]) -> TicketError:
    with pytest.raises(TicketError) as caught:
        call()
    assert caught.value.code == code, caught.value
    return caught.value


# --- round trip --------------------------------------------------------------


def test_a_ticket_goes_from_center_to_participant_to_live_server() -> None:
    data = ticket(lifetime=900)
    contents = open_ticket(data, center_public_key=CENTER, now=NOW + 60)

    assert contents.event_id == EVENT_A
    assert contents.title == "Quarterly town hall"
    assert contents.center_url == "https://center.example.org/"
    assert (contents.issued_at, contents.not_after) == (NOW, NOW + 900)
    assert (contents.username, contents.display_name, contents.role) == (
        "mike",
        "Mike Müller",
        Role.PARTICIPANT,
    )
    assert contents.servers == SERVERS
    assert contents.ca_pem == CA_PEM
    assert dict(contents.cookies) == {"_oauth2_proxy": SECRET_COOKIE, "theme": '"dark"'}
    assert contents.center_key == data[4:36]

    credential = server_check(contents.sealed_credential, now=NOW + 60)
    assert credential == MIKE
    assert credential.secret_sha256 == MIKE.secret_sha256


def test_the_file_is_magic_center_key_canonical_json_and_signature() -> None:
    data = ticket()
    magic, key, body, signature = split(data)
    assert magic == b"THT1"
    assert key == CENTER.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert set(body) == {
        "event_id",
        "title",
        "center_url",
        "issued_at",
        "not_after",
        "username",
        "display_name",
        "role",
        "servers",
        "ca_pem",
        "cookies",
        "sealed_credential",
    }
    assert body["servers"][0] == {
        "name": "main",
        "host": "live.example.org",
        "port": 9443,
        "zone": "internal",
        "spki_sha256": [spki_sha256(MAIN_PEM)],
    }
    CENTER.verify(signature, data[:-64])


def test_the_sealed_credential_layout_is_header_ciphertext_and_signature() -> None:
    sealed = open_ticket(ticket(), center_public_key=CENTER, now=NOW).sealed_credential
    magic, event_id, issued_at, not_after, key_id, _nonce = struct.unpack_from(
        ">4sQQQ8s12s", sealed
    )
    assert (magic, event_id, issued_at) == (b"THS1", EVENT_A, NOW)
    assert not_after == NOW + townhall.ticket.DEFAULT_LIFETIME
    assert key_id.hex() == event_key_id(KEY_A)
    CENTER.verify(sealed[-64:], sealed[:-64])


def test_the_participant_cannot_read_the_credential_secret_or_id() -> None:
    data = ticket()
    sealed = open_ticket(data, center_public_key=CENTER, now=NOW).sealed_credential
    for secret in (MIKE.secret, MIKE.credential_id):
        assert secret.encode() not in data
        assert secret.encode() not in sealed
        assert secret.encode() not in base64.b64decode(split(data)[2]["sealed_credential"])


def test_every_issued_ticket_has_a_fresh_nonce() -> None:
    first, second = (
        open_ticket(ticket(), center_public_key=CENTER, now=NOW).sealed_credential for _ in range(2)
    )
    assert first[40:52] != second[40:52]


# --- who signed it --------------------------------------------------------------


def test_a_ticket_signed_by_another_key_is_refused_by_a_client_that_knows_the_center() -> None:
    forged = signed_by(ATTACKER_KEY, split(ticket())[2])
    refused("bad_signature", lambda: open_ticket(forged, center_public_key=CENTER, now=NOW))


def test_without_a_known_center_key_the_carried_key_still_catches_corruption() -> None:
    data = bytearray(ticket())
    data[60] ^= 0x01
    refused("bad_signature", lambda: open_ticket(bytes(data), center_public_key=None, now=NOW))


def test_a_user_who_edits_the_role_and_re_signs_gains_nothing() -> None:
    body = split(ticket())[2]
    body["role"] = "moderator"
    forged = signed_by(ATTACKER_KEY, body)

    refused("bad_signature", lambda: open_ticket(forged, center_public_key=CENTER, now=NOW))
    # Self-signed, the edit fails on the sealed credential, still signed by the Center.
    refused("bad_signature", lambda: open_ticket(forged, center_public_key=None, now=NOW))
    # And what the live server reads is the sealed role, whatever the client part says.
    sealed = base64.b64decode(body["sealed_credential"])
    assert server_check(sealed).role is Role.PARTICIPANT


def test_a_sealed_credential_with_an_edited_header_is_refused() -> None:
    sealed = bytearray(open_ticket(ticket(), center_public_key=CENTER, now=NOW).sealed_credential)
    sealed[4:12] = EVENT_B.to_bytes(8, "big")
    refused("bad_signature", lambda: server_check(bytes(sealed), event_id=EVENT_B, keys=(KEY_B,)))


def test_a_sealed_credential_signed_by_another_key_is_refused_by_the_server() -> None:
    other = ticket()
    sealed = open_ticket(other, center_public_key=CENTER, now=NOW).sealed_credential
    forged = sealed[:-64] + ATTACKER_KEY.sign(sealed[:-64])
    refused("bad_signature", lambda: server_check(forged))


# --- events -------------------------------------------------------------------


def test_a_credential_for_one_event_is_refused_by_another_events_server() -> None:
    sealed = open_ticket(ticket(), center_public_key=CENTER, now=NOW).sealed_credential
    refused("wrong_event", lambda: server_check(sealed, event_id=EVENT_B, keys=(KEY_B,)))
    refused("wrong_event", lambda: server_check(sealed, event_id=EVENT_A, keys=(KEY_B,)))


def test_a_server_holding_several_event_keys_opens_credentials_sealed_by_any() -> None:
    sealed = open_ticket(ticket(), center_public_key=CENTER, now=NOW).sealed_credential
    assert server_check(sealed, keys=(KEY_B, KEY_A)) == MIKE


def test_pasting_a_sealed_credential_between_two_genuine_tickets_is_refused() -> None:
    olga = Credential.new(username="olga", display_name="Olga", role=Role.MODERATOR)
    ticket_a = ticket(credential=olga)
    ticket_b = ticket(event_id=EVENT_B, event_key=KEY_B)
    body_b = split(ticket_b)[2]
    body_b["sealed_credential"] = split(ticket_a)[2]["sealed_credential"]

    # Pasted into B's file, the Center's signature no longer holds.
    pasted = (
        ticket_b[:36]
        + json.dumps(body_b, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        + ticket_b[-64:]
    )
    refused("bad_signature", lambda: open_ticket(pasted, center_public_key=CENTER, now=NOW))
    # Re-signed with the Center's own key (a Center bug), the client still sees the mismatch.
    resigned = signed_by(CENTER_KEY, body_b)
    refused("malformed", lambda: open_ticket(resigned, center_public_key=CENTER, now=NOW))
    # And B's server refuses A's moderator credential whatever file carried it.
    sealed_a = base64.b64decode(body_b["sealed_credential"])
    refused("wrong_event", lambda: server_check(sealed_a, event_id=EVENT_B, keys=(KEY_B,)))


def test_the_event_key_binds_the_credential_to_its_event_even_under_a_shared_key() -> None:
    """The associated data alone refuses a replay, were the Center to give two events one key."""
    sealed = open_ticket(ticket(), center_public_key=CENTER, now=NOW).sealed_credential
    header = bytearray(sealed[:52])
    header[4:12] = EVENT_B.to_bytes(8, "big")
    moved = bytes(header) + sealed[52:-64]
    moved += CENTER_KEY.sign(moved)
    refused("bad_credential", lambda: server_check(moved, event_id=EVENT_B, keys=(KEY_A,)))


def test_a_credential_that_does_not_open_under_the_event_key_is_a_bad_credential() -> None:
    sealed = open_ticket(ticket(), center_public_key=CENTER, now=NOW).sealed_credential
    body = bytearray(sealed[:-64])
    body[60] ^= 0xFF
    resealed = bytes(body) + CENTER_KEY.sign(bytes(body))
    refused("bad_credential", lambda: server_check(resealed))


def test_a_sealed_credential_that_opens_but_holds_garbage_is_malformed() -> None:
    header = struct.pack(
        ">4sQQQ8s12s",
        b"THS1",
        EVENT_A,
        NOW,
        NOW + 600,
        bytes.fromhex(event_key_id(KEY_A)),
        b"\x00" * 12,
    )
    body = header + AESGCM(KEY_A).encrypt(b"\x00" * 12, b'{"id":"x"}', header)
    refused("malformed", lambda: server_check(body + CENTER_KEY.sign(body)))


# --- time ------------------------------------------------------------------------


def test_an_expired_ticket_is_refused_by_participant_and_server() -> None:
    data = ticket(lifetime=600)
    sealed = open_ticket(data, center_public_key=CENTER, now=NOW).sealed_credential
    last_good = NOW + 600 + DEFAULT_LEEWAY - 1
    open_ticket(data, center_public_key=CENTER, now=last_good)
    server_check(sealed, now=last_good)
    refused("expired", lambda: open_ticket(data, center_public_key=CENTER, now=last_good + 1))
    refused("expired", lambda: server_check(sealed, now=last_good + 1))


def test_a_ticket_from_the_future_is_not_yet_valid() -> None:
    data = ticket()
    sealed = open_ticket(data, center_public_key=CENTER, now=NOW).sealed_credential
    early = NOW - DEFAULT_LEEWAY - 1
    refused("not_yet_valid", lambda: open_ticket(data, center_public_key=CENTER, now=early))
    refused("not_yet_valid", lambda: server_check(sealed, now=early))
    server_check(sealed, now=early + 1)


def test_leeway_is_a_setting_of_the_reader() -> None:
    data = ticket(lifetime=600)
    late = NOW + 600 + 200
    refused("expired", lambda: open_ticket(data, center_public_key=CENTER, now=late))
    assert open_ticket(data, center_public_key=CENTER, now=late, leeway=300).event_id == EVENT_A


# --- bounds and strict decoding -----------------------------------------------


def test_an_oversized_file_is_refused_before_anything_else() -> None:
    data = ticket()
    huge = data[:-64] + b" " * MAX_TICKET_BYTES + data[-64:]
    refused("malformed", lambda: open_ticket(huge, center_public_key=CENTER, now=NOW))
    refused("malformed", lambda: server_check(b"THS1" + b"\x00" * 4096))


def test_another_version_is_named_as_such() -> None:
    data = ticket()
    refused(
        "unsupported_version",
        lambda: open_ticket(b"THT2" + data[4:], center_public_key=CENTER, now=NOW),
    )
    refused("unsupported_version", lambda: server_check(b"THS9" + b"\x00" * 200))
    refused(
        "malformed",
        lambda: open_ticket(b"PK\x03\x04" + data[4:], center_public_key=CENTER, now=NOW),
    )


def _mutations() -> list[tuple[str, Callable[[dict[str, Any]], object]]]:
    def too_many_servers(body: dict[str, Any]) -> None:
        body["servers"] = [dict(body["servers"][0], name=f"s{i}") for i in range(MAX_SERVERS + 1)]

    def too_many_cookies(body: dict[str, Any]) -> None:
        body["cookies"] = {f"c{i}": "v" for i in range(MAX_COOKIES + 1)}

    return [
        ("unknown field", lambda b: b.update(extra=1)),
        ("missing field", lambda b: b.pop("ca_pem")),
        ("bool for an integer", lambda b: b.update(event_id=True)),
        ("string for an integer", lambda b: b.update(issued_at=str(NOW))),
        (
            "lifetime beyond the cap",
            lambda b: b.update(not_after=b["issued_at"] + MAX_LIFETIME + 1),
        ),
        ("expiry before issue", lambda b: b.update(not_after=b["issued_at"])),
        ("unknown role", lambda b: b.update(role="admin")),
        ("unknown zone", lambda b: b["servers"][0].update(zone="cloud")),
        ("port out of range", lambda b: b["servers"][0].update(port=70000)),
        ("host with a path", lambda b: b["servers"][0].update(host="evil.example/x")),
        ("short pin", lambda b: b["servers"][0].update(spki_sha256=["AAAA"])),
        ("duplicate server names", lambda b: b["servers"].append(b["servers"][0])),
        ("no servers", lambda b: b.update(servers=[])),
        ("too many servers", too_many_servers),
        ("too many cookies", too_many_cookies),
        ("cookie with CRLF", lambda b: b["cookies"].update(x="a\r\nSet-Cookie: y")),
        ("cookie name with space", lambda b: b["cookies"].update({"a b": "v"})),
        ("huge cookie", lambda b: b["cookies"].update(big="v" * 5000)),
        ("control character in title", lambda b: b.update(title="town\x00hall")),
        ("javascript center", lambda b: b.update(center_url="javascript:alert(1)")),
        (
            "ca that is no certificate",
            lambda b: b.update(
                ca_pem="-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"
            ),
        ),
        ("sealed credential not base64", lambda b: b.update(sealed_credential="!!")),
        ("list at the top", lambda b: b.clear()),
    ]


@pytest.mark.parametrize("mutate", [m for _, m in _mutations()], ids=[n for n, _ in _mutations()])
def test_a_validly_self_signed_ticket_with_a_bad_field_is_malformed(
    mutate: Callable[[dict[str, Any]], object],
) -> None:
    body = split(ticket())[2]
    mutate(body)
    forged = signed_by(ATTACKER_KEY, body if body else b"[]")
    refused("malformed", lambda: open_ticket(forged, center_public_key=None, now=NOW))


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":1,"a":2}',
        b'{"event_id":1.5}',
        b'{"event_id":NaN}',
        b"[" * 20000 + b"]" * 20000,
        b"\xff\xfe",
        b'{"title":"\\ud800"}',
    ],
    ids=["duplicate key", "float", "NaN", "deep nesting", "not UTF-8", "lone surrogate"],
)
def test_json_that_is_not_strict_canonical_json_is_malformed(body: bytes) -> None:
    forged = signed_by(ATTACKER_KEY, body)
    refused("malformed", lambda: open_ticket(forged, center_public_key=None, now=NOW))


def test_a_ticket_with_the_same_fields_in_another_byte_form_is_malformed() -> None:
    body = json.dumps(split(ticket())[2], indent=1).encode()
    forged = signed_by(CENTER_KEY, body)
    refused("malformed", lambda: open_ticket(forged, center_public_key=CENTER, now=NOW))


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"servers": SERVERS[:1] * 2}, "unique"),
        ({"servers": tuple(ServerEntry(f"s{i}", "h", 1, Zone.DMZ) for i in range(33))}, "servers"),
        ({"servers": ()}, "servers"),
        ({"cookies": {f"c{i}": "v" for i in range(17)}}, "cookies"),
        ({"cookies": {"sid": "v\r\nX: 1"}}, "cookie sid"),
        ({"cookies": {"sid": "v" * 4097}}, "cookie sid"),
        ({"servers": (ServerEntry("a", "h", 1, "cloud"),)}, "zone"),  # type: ignore[arg-type]
        ({"servers": (ServerEntry("a", "h", 1, Zone.DMZ, ("nope",)),)}, "pin"),
        ({"title": ""}, "title"),
        ({"center_url": "ftp://x"}, "center_url"),
        ({"ca_pem": "not a pem"}, "ca_pem"),
        ({"lifetime": MAX_LIFETIME + 1}, "lifetime"),
        ({"lifetime": 0}, "lifetime"),
        ({"event_id": 0}, "event_id"),
        ({"event_key": b"short"}, "event key"),
    ],
)
def test_the_issuer_refuses_what_no_ticket_may_hold(overrides: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words) as caught:
        ticket(**overrides)
    assert "v\r\n" not in str(caught.value) and "vvvv" not in str(caught.value)


# --- fuzzing -----------------------------------------------------------------------

GENUINE = ticket()
GENUINE_SEALED = open_ticket(GENUINE, center_public_key=CENTER, now=NOW).sealed_credential


def _all_readers(data: bytes) -> None:
    for key in (CENTER, None):
        try:
            open_ticket(data, center_public_key=key, now=NOW)
        except TicketError:
            pass
    try:
        server_check(data)
    except TicketError:
        pass


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from([GENUINE, GENUINE_SEALED]),
    flips=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(1, 255)), min_size=1, max_size=4
    ),
)
def test_flipping_any_bytes_is_refused_as_a_ticket_error(
    base: bytes, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(base)
    for position, mask in flips:
        data[position % len(data)] ^= mask
    assume(data != base)  # two flips of one byte may cancel
    for key in (CENTER, None):
        with pytest.raises(TicketError) as caught:
            open_ticket(bytes(data), center_public_key=key, now=NOW)
        assert caught.value.code in {"malformed", "bad_signature", "unsupported_version"}
    with pytest.raises(TicketError):
        server_check(bytes(data))


@settings(max_examples=200, deadline=None)
@given(base=st.sampled_from([GENUINE, GENUINE_SEALED]), cut=st.integers(min_value=0))
def test_truncating_anywhere_is_refused_as_a_ticket_error(base: bytes, cut: int) -> None:
    data = base[: cut % len(base)]
    with pytest.raises(TicketError):
        open_ticket(data, center_public_key=None, now=NOW)
    with pytest.raises(TicketError):
        server_check(data)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=600)
    | st.binary(max_size=100).map(lambda b: b"THT1" + b)
    | st.binary(max_size=300).map(lambda b: b"THS1" + b)
)
def test_random_bytes_raise_nothing_but_ticket_error(data: bytes) -> None:
    _all_readers(data)


cookie_text = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='",;\\'),
    max_size=40,
)


@settings(max_examples=100, deadline=None)
@given(
    title=st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=300),
    display_name=st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=200),
    role=st.sampled_from(Role),
    cookies=st.dictionaries(
        st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True), cookie_text, max_size=MAX_COOKIES
    ),
    lifetime=st.integers(1, MAX_LIFETIME),
)
def test_whatever_the_center_issues_the_participant_and_server_read_back(
    title: str, display_name: str, role: Role, cookies: dict[str, str], lifetime: int
) -> None:
    credential = Credential.new(username="u", display_name=display_name, role=role)
    data = ticket(title=title, credential=credential, cookies=cookies, lifetime=lifetime)
    contents = open_ticket(data, center_public_key=CENTER, now=NOW)
    assert (contents.title, contents.display_name, contents.role) == (title, display_name, role)
    assert dict(contents.cookies) == cookies
    assert server_check(contents.sealed_credential) == credential


# --- secrets out of logs -------------------------------------------------------------


def test_repr_hides_cookie_values_and_the_credential_but_the_client_can_read_cookies() -> None:
    contents = open_ticket(ticket(), center_public_key=CENTER, now=NOW)
    text = repr(contents) + str(contents)
    assert SECRET_COOKIE not in text
    assert "_oauth2_proxy" in text
    assert base64.b64encode(contents.sealed_credential).decode()[:16] not in text
    assert contents.cookies["_oauth2_proxy"] == SECRET_COOKIE
    assert MIKE.secret not in repr(MIKE) and MIKE.secret not in str([MIKE])


def test_the_cookies_of_opened_contents_cannot_be_changed() -> None:
    contents = open_ticket(ticket(), center_public_key=CENTER, now=NOW)
    with pytest.raises(TypeError):
        contents.cookies["theme"] = "x"  # type: ignore[index]
    assert isinstance(contents, TicketContents)


def test_an_error_message_never_quotes_a_cookie_value() -> None:
    body = split(ticket())[2]
    body["cookies"]["sid"] = SECRET_COOKIE + "\n"
    error = refused(
        "malformed",
        lambda: open_ticket(signed_by(ATTACKER_KEY, body), center_public_key=None, now=NOW),
    )
    assert SECRET_COOKIE not in str(error)
    assert error.message in str(error) and str(error).startswith("malformed: ")


# --- certificates and keys --------------------------------------------------------------


def test_a_pin_is_the_same_from_pem_and_der_and_differs_between_servers() -> None:
    assert spki_sha256(MAIN_PEM) == spki_sha256(MAIN_DER) == spki_sha256(MAIN_PEM.encode())
    assert spki_sha256(MAIN_PEM) != spki_sha256(CA_PEM)
    assert len(base64.b64decode(spki_sha256(CA_DER))) == 32


def test_an_ipv6_server_address_is_bracketed() -> None:
    assert [server.address for server in SERVERS] == [
        "live.example.org:9443",
        "203.0.113.9:443",
        "[2001:db8::7]:443",
    ]


def test_event_key_ids_are_stable_and_distinct() -> None:
    assert event_key_id(KEY_A) == event_key_id(bytes(KEY_A))
    assert event_key_id(KEY_A) != event_key_id(KEY_B)
    assert len(event_key_id(KEY_A)) == 16
    with pytest.raises(ValueError):
        event_key_id(b"short")


def test_the_signing_key_is_saved_with_mode_0600_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "ticket-signing.pem"
    path.write_text("old")
    path.chmod(0o644)
    save_signing_key(CENTER_KEY, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_signing_key(path)
    assert loaded.public_key() == CENTER
    assert [p.name for p in tmp_path.iterdir()] == ["ticket-signing.pem"]


def test_a_key_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match="Ed25519"):
        load_signing_key(path)


def test_the_module_reads_no_clock_and_opens_no_socket() -> None:
    source = Path(townhall.ticket.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"time", "datetime", "socket", "ssl", "asyncio", "random"}

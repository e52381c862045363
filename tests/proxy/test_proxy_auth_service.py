"""The sign-in service's parts: its LDAP codec, its directory check against slapd, its rules.

The codec is checked against bytes written out from RFC 4511's ASN.1, the
password check against the rig's real slapd (good, wrong and empty passwords,
names that are not plain user names), and the return-path rule on the
shapes that would make the sign-in page an open redirect.
"""

from __future__ import annotations

import pytest

from tests.proxy.proxy_support import PASSWORDS, SUFFIX, Rig
from townhall.proxyauth.ldap import (
    LdapConnection,
    LdapError,
    LdapServer,
    decode_message,
    encode_bind,
    encode_search,
    equality_filter,
    message_size,
    tlv,
)
from townhall.proxyauth.service import ProxyAuthConfig, SessionStore, check_password, safe_target


def test_a_bind_request_is_encoded_as_rfc_4511_says() -> None:
    assert encode_bind(1, "cn=a", "pw") == bytes.fromhex(
        "3012020101600d0201030404" + "636e3d61" + "8002" + "7077"
    )


def test_a_search_request_carries_the_filter_as_data() -> None:
    # A user name full of filter syntax stays one equality assertion's value.
    ber = encode_search(2, "dc=x", equality_filter([("uid", "*)(uid=*")]), ["mail"])
    assert b"*)(uid=*" in ber
    assert ber.count(b"\xa3") == 1


def test_responses_and_entries_decode() -> None:
    entry = tlv(
        0x30,
        tlv(0x02, b"\x03")
        + tlv(
            0x64,
            tlv(0x04, b"uid=olga")
            + tlv(0x30, tlv(0x30, tlv(0x04, b"mail") + tlv(0x31, tlv(0x04, b"o@example.org")))),
        ),
    )
    message = decode_message(entry)
    assert message.message_id == 3
    assert message.entry is not None
    assert message.entry.dn == "uid=olga"
    assert message.entry.first("MAIL") == "o@example.org"
    done = tlv(0x30, tlv(0x02, b"\x03") + tlv(0x65, tlv(0x0A, b"\x31") + tlv(0x04, b"") * 2))
    assert decode_message(done).result is not None
    assert decode_message(done).result.code == 49
    assert message_size(done[:1]) is None
    with pytest.raises(LdapError):
        decode_message(done[:-1])
    with pytest.raises(LdapError):
        message_size(b"\x04\x00")


@pytest.fixture
def config(rig: Rig) -> ProxyAuthConfig:
    return ProxyAuthConfig(
        ldap=LdapServer(rig.ldap_url),
        base_dn=f"ou=people,{SUFFIX}",
        group_base_dn=f"ou=groups,{SUFFIX}",
    )


def test_a_good_password_gives_the_directory_identity(config: ProxyAuthConfig) -> None:
    identity = check_password(config, "OLGA", PASSWORDS["olga"])
    assert identity is not None
    assert identity.username == "olga"  # the directory's spelling, not what was typed
    assert (identity.email, identity.display_name) == ("olga@example.org", "Olga Organizer")
    assert identity.groups == ("staff-organizers",)


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("olga", "wrong"),
        ("olga", ""),  # an unauthenticated bind would "succeed": never asked
        ("olga", PASSWORDS["mike"]),
        ("nobody-here", "x"),
        ("*", PASSWORDS["olga"]),
        ("olga)(uid=*", PASSWORDS["olga"]),
        ("", PASSWORDS["olga"]),
    ],
)
def test_anything_else_is_refused(config: ProxyAuthConfig, username: str, password: str) -> None:
    assert check_password(config, username, password) is None


def test_an_unreachable_directory_is_an_error_not_a_wrong_password(rig: Rig) -> None:
    config = ProxyAuthConfig(ldap=LdapServer("ldap://127.0.0.1:1", timeout=2), base_dn=SUFFIX)
    with pytest.raises(LdapError):
        check_password(config, "olga", PASSWORDS["olga"])


def test_a_connection_binds_and_searches(rig: Rig) -> None:
    with LdapConnection(LdapServer(rig.ldap_url)) as connection:
        entries = connection.search(
            f"ou=people,{SUFFIX}", [("objectClass", "inetOrgPerson")], ["uid"]
        )
        assert sorted(e.first("uid") or "" for e in entries) == ["mike", "nora", "olga"]
        assert connection.bind(f"uid=mike,ou=people,{SUFFIX}", PASSWORDS["mike"])
        assert not connection.bind(f"uid=mike,ou=people,{SUFFIX}", "nope")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/events/7?x=1&y=2", "/events/7?x=1&y=2"),
        ("/", "/"),
        ("//evil.example/", None),
        ("/\\evil.example/", None),
        ("https://evil.example/", None),
        ("evil.example", None),
        ("/sso/login", None),
        ("/sso", None),
        ("/ssox", "/ssox"),
        ("/a\r\nSet-Cookie: x=1", None),
        ("", None),
    ],
)
def test_only_paths_of_this_site_are_return_targets(value: str, expected: str | None) -> None:
    assert safe_target(value, "/sso") == expected


def test_sessions_expire_and_close() -> None:
    from townhall.proxyauth.service import Identity

    store = SessionStore(60)
    who = Identity("olga", "", "", ())
    token = store.open(who, now=1000)
    assert store.find(token, now=1059) == who
    assert store.find(token, now=1060) is None
    again = store.open(who, now=2000)
    store.close(again)
    assert store.find(again, now=2001) is None

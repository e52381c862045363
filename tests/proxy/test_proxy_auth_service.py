"""The sign-in service's parts: its directory check against slapd, its rules.

The directory is asked through ldap3 against the rig's real slapd (good,
wrong and empty passwords, names that are not plain user names, filter
syntax in a user name; StartTLS verified against the rig's CA and name, and
refused otherwise; referrals not followed), and the
return-path rule on the shapes that would make the sign-in page an open
redirect.
"""

from __future__ import annotations

import pytest

from tests.proxy.proxy_support import LDAP_OTHER_NAME, PASSWORDS, SUFFIX, Rig
from townhall.proxyauth.ldap import LdapConnection, LdapError, LdapServer, equality_filter
from townhall.proxyauth.service import (
    Identity,
    ProxyAuthConfig,
    SessionStore,
    check_password,
    safe_target,
)


def test_a_filter_keeps_a_user_name_full_of_filter_syntax_as_one_value() -> None:
    assert equality_filter([("uid", "*)(uid=*")]) == r"(uid=\2a\29\28uid=\2a)"
    assert equality_filter([("objectClass", "person"), ("uid", "a\\b")]) == (
        r"(&(objectClass=person)(uid=a\5cb))"
    )


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


def test_starttls_verifies_the_directory_and_then_checks_the_password(rig: Rig) -> None:
    config = ProxyAuthConfig(
        ldap=LdapServer(rig.ldap_url, starttls=True, ca_file=rig.ca_file),
        base_dn=f"ou=people,{SUFFIX}",
    )
    identity = check_password(config, "olga", PASSWORDS["olga"])
    assert identity is not None and identity.username == "olga"
    assert check_password(config, "olga", "wrong") is None


@pytest.mark.parametrize("case", ["unknown CA", "other name"])
def test_a_directory_tls_cannot_vouch_for_gets_no_password(rig: Rig, case: str) -> None:
    # A directory whose certificate is not from the configured CA, or does not
    # name the host asked for: an error, and the password is never sent (not
    # even in clear after a failed StartTLS).
    url = rig.ldap_url
    ca_file = rig.ca_file
    if case == "unknown CA":
        ca_file = ""  # the system's CAs, which never signed the rig's certificate
    else:
        url = url.replace("127.0.0.1", LDAP_OTHER_NAME)
    config = ProxyAuthConfig(
        ldap=LdapServer(url, starttls=True, ca_file=ca_file, timeout=5),
        base_dn=f"ou=people,{SUFFIX}",
    )
    with pytest.raises(LdapError, match="TLS"):
        check_password(config, "olga", PASSWORDS["olga"])


def test_ldaps_to_a_clear_text_port_is_an_error(rig: Rig) -> None:
    url = rig.ldap_url.replace("ldap://", "ldaps://")
    config = ProxyAuthConfig(ldap=LdapServer(url, timeout=5), base_dn=f"ou=people,{SUFFIX}")
    with pytest.raises(LdapError):
        check_password(config, "olga", PASSWORDS["olga"])


def test_a_referral_is_never_followed(rig: Rig) -> None:
    # slapd refers searches outside its suffix to another server (the rig's
    # "referral" line): the service refuses rather than carry on elsewhere.
    config = ProxyAuthConfig(ldap=LdapServer(rig.ldap_url), base_dn="ou=people,dc=elsewhere,dc=org")
    with pytest.raises(LdapError, match="referred"):
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
    store = SessionStore(60)
    who = Identity("olga", "", "", ())
    token = store.open(who, now=1000)
    assert store.find(token, now=1059) == who
    assert store.find(token, now=1060) is None
    again = store.open(who, now=2000)
    store.close(again)
    assert store.find(again, now=2001) is None

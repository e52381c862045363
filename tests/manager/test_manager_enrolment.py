"""Enrolment end to end: the CLI's one-time secret, a real CSR, the certificate in real TLS."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.manager.manager_support import (
    API,
    csr_for,
    enrol,
    enrolment_secret,
    make_tree,
    register,
    townhall,
)
from tests.support import Center
from townhall.manager import registry
from townhall.manager.tables import Server


def mutual_tls_handshake(
    tmp_path: Path, cert_pem: str, key: ec.EllipticCurvePrivateKey, ca_pem: str, host: str
) -> bytes:
    """Serve with the certificate and connect with it as the client too (server links)."""
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert_file.write_text(cert_pem)
    ca_file.write_text(ca_pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_file))
    server_context.verify_mode = ssl.CERT_REQUIRED
    server_context.load_cert_chain(cert_file, key_file)
    client_context = ssl.create_default_context(cafile=str(ca_file))
    client_context.load_cert_chain(cert_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received: list[bytes] = []

    def serve() -> None:
        connection, _ = listener.accept()
        with server_context.wrap_socket(connection, server_side=True) as tls:
            peer = tls.getpeercert()
            assert peer is not None
            received.append(tls.recv(5))

    thread = threading.Thread(target=serve)
    thread.start()
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with client_context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(b"hello")
    thread.join(timeout=10)
    listener.close()
    return b"".join(received)


def test_a_server_enrols_with_its_one_time_secret_and_its_certificate_works_in_tls(
    center: Center, tmp_path: Path
) -> None:
    secret = enrolment_secret(
        center, "live-1", "--address", "127.0.0.1:9443", "--zone", "dmz", "--capacity", "250"
    )
    listed = townhall(center, "manager", "servers")
    assert listed.returncode == 0, listed.stderr
    assert "live-1\t127.0.0.1:9443\tdmz\t250\tpending" in listed.stdout

    refused = enrol(center, "live-1", secret.replace(secret[-4:], "AAAA"))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "enrolment_refused"
    unknown = enrol(center, "live-9", secret)
    assert unknown.status_code == 403 and unknown.json()["error"]["code"] == "enrolment_refused"

    key = ec.generate_private_key(ec.SECP256R1())
    enrolled = enrol(center, "live-1", secret, key)
    assert enrolled.status_code == 200, enrolled.text
    assert enrolled.headers["cache-control"] == "no-store"
    body = enrolled.json()
    assert body["pull_token"].startswith("thp_")

    ca = x509.load_pem_x509_certificate(body["ca_pem"].encode())
    assert (
        ca.public_bytes(serialization.Encoding.PEM)
        == (center.settings.data / "pki" / "ca.pem").read_bytes()
    )
    cert = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    cert.verify_directly_issued_by(ca)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    # Name and address come from the Manager's registry, never from the request.
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "live-1"
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(names) == [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert (
        mutual_tls_handshake(tmp_path, body["certificate_pem"], key, body["ca_pem"], "127.0.0.1")
        == b"hello"
    )

    # The secret was for one use.
    again = enrol(center, "live-1", secret)
    assert again.status_code == 403 and again.json()["error"]["code"] == "enrolment_refused"

    with center.client("ada") as ada:
        server = ada.get(f"{API}/servers").json()[0]
        assert server["enrolment"] == "enrolled"
        assert server["certificate_fingerprint"] == cert.fingerprint(hashes.SHA256()).hex()
        assert server["enrolment_expires_at"] is None
    listed = townhall(center, "manager", "servers")
    assert "live-1\t127.0.0.1:9443\tdmz\t250\tenrolled" in listed.stdout


def test_an_enrolled_server_pulls_its_configuration_with_its_pull_token(center: Center) -> None:
    with center.client("ada") as ada:
        register(ada, "main", host="main.example.org", port=9443)
        register(ada, "hall")
        secret = enrolment_secret(center, "hall")
        token = enrol(center, "hall", secret).json()["pull_token"]
        make_tree(ada, "campus", [("main", None), ("hall", "main")])
        ada.post(f"{API}/trees/{ada.get(f'{API}/trees').json()[0]['id']}/default")
        make_tree(ada, "solo", [("hall", None)])

    pulled = httpx.get(
        f"{center.url}{API}/self", headers={"Authorization": f"Bearer {token}"}, timeout=20
    )
    assert pulled.status_code == 200, pulled.text
    config = pulled.json()
    assert config["name"] == "hall" and config["port"] == 9443 and config["zone"] == "internal"
    assert config["controller"] == "127.0.0.1:8443"
    assert config["lead_minutes"] == 15
    assert config["certificate_fingerprint"]
    assert config["trees"] == [
        {
            "tree_id": config["trees"][0]["tree_id"],
            "tree": "campus",
            "is_default": True,
            "main": "main",
            "parent": "main",
            "depth": 1,
            "children": [],
        },
        {
            "tree_id": config["trees"][1]["tree_id"],
            "tree": "solo",
            "is_default": False,
            "main": "hall",
            "parent": None,
            "depth": 0,
            "children": [],
        },
    ]

    for headers in ({}, {"Authorization": "Bearer thp_" + "x" * 43}, {"Authorization": token}):
        refused = httpx.get(f"{center.url}{API}/self", headers=headers, timeout=20)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] in (
            "pull_token_required",
            "bad_pull_token",
            "bad_authorization",
        )
    # A pull token is no user token: it opens none of the admin routes.
    as_admin = httpx.get(
        f"{center.url}{API}/servers", headers={"Authorization": f"Bearer {token}"}, timeout=20
    )
    assert as_admin.status_code == 401


def test_enrolling_again_replaces_the_certificate_and_the_pull_token(center: Center) -> None:
    first = enrolment_secret(center, "live-1", "--address", "live1.example.org:443")
    old = enrol(center, "live-1", first).json()
    # A new secret leaves the current credentials working until it is used.
    second = enrolment_secret(center, "live-1", "--capacity", "40")
    assert second != first
    assert enrol(center, "live-1", first).status_code == 403
    self_url = f"{center.url}{API}/self"
    old_auth = {"Authorization": f"Bearer {old['pull_token']}"}
    assert httpx.get(self_url, headers=old_auth, timeout=20).json()["capacity"] == 40
    new = enrol(center, "live-1", second).json()
    assert httpx.get(self_url, headers=old_auth, timeout=20).status_code == 401
    new_auth = {"Authorization": f"Bearer {new['pull_token']}"}
    assert httpx.get(self_url, headers=new_auth, timeout=20).status_code == 200
    cert = x509.load_pem_x509_certificate(new["certificate_pem"].encode())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(names) == [x509.DNSName("live1.example.org")]


def test_an_expired_secret_is_refused(center: Center) -> None:
    # 0.0003 hours is about a second: the knob is a setting, as any would be.
    secret = enrolment_secret(
        center, "live-1", "--address", "127.0.0.1:9443", TOWNHALL_MANAGER__ENROL_HOURS="0.0003"
    )
    time.sleep(1.5)
    expired = enrol(center, "live-1", secret)
    assert expired.status_code == 403, expired.text
    assert expired.json()["error"]["code"] == "enrolment_expired"
    with center.client("ada") as ada:
        assert ada.get(f"{API}/servers").json()[0]["enrolment"] == "expired"


def test_weak_or_broken_certificate_requests_are_refused_and_keep_the_secret(
    center: Center,
) -> None:
    secret = enrolment_secret(center, "live-1", "--address", "127.0.0.1:9443")
    url = f"{center.url}{API}/enroll"

    def attempt(csr_pem: str) -> httpx.Response:
        return httpx.post(
            url, json={"name": "live-1", "secret": secret, "csr_pem": csr_pem}, timeout=20
        )

    weak_rsa = csr_for(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    other_curve = csr_for(ec.generate_private_key(ec.SECP521R1()))
    good = csr_for(ec.generate_private_key(ec.SECP384R1()))
    der = bytearray(x509.load_pem_x509_csr(good.encode()).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte of the signature
    forged = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
    ca_pem = (center.settings.data / "pki" / "ca.pem").read_text()  # a PEM, but no request

    for csr_pem, code in (
        (weak_rsa, "weak_key"),
        (other_curve, "weak_key"),
        (forged, "invalid_csr"),
        (ca_pem, "invalid_csr"),
        (
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "invalid_csr",
        ),
        ("not a pem at all", "invalid_csr"),
        ("caf\u00e9", "invalid_csr"),
    ):
        refused = attempt(csr_pem)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == code, refused.text

    rsa_ok = attempt(csr_for(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    assert rsa_ok.status_code == 200, rsa_ok.text


def test_the_enrol_command_explains_what_is_wrong(center: Center) -> None:
    unknown = townhall(center, "manager", "enroll", "nobody")
    assert unknown.returncode == 1 and "--address" in unknown.stderr
    for options in (
        ["--address", "no-port"],
        ["--address", "2001:db8::1:9443"],
        ["--address", "host:99999"],
        ["--address", "127.0.0.1:9443", "--zone", "public"],
        ["--address", "127.0.0.1:9443", "--capacity", "0"],
    ):
        done = townhall(center, "manager", "enroll", "live-1", *options)
        assert done.returncode == 2, (options, done.stdout, done.stderr)
        assert done.stdout == ""
    bad_name = townhall(center, "manager", "enroll", "no/slashes", "--address", "127.0.0.1:1")
    assert bad_name.returncode == 2
    v6 = enrolment_secret(center, "live-6", "--address", "[2001:db8::1]:9443")
    assert v6
    listed = townhall(center, "manager", "servers")
    assert listed.stdout.splitlines() == ["live-6\t[2001:db8::1]:9443\tinternal\t1000\tpending"]


def test_a_server_name_no_ticket_could_carry_is_refused_at_registration_and_enrolment(
    center: Center,
) -> None:
    # The ticket, the certificate and the live server take one rule (townhall.wire.names):
    # the Manager used to accept these, and the server then could never be joined.
    with center.client("ada") as ada:
        for name in ("-edge", "_edge", ".edge"):
            body = {"name": name, "host": "127.0.0.1", "port": 9443}
            response = ada.post(f"{API}/servers", json=body)
            assert response.status_code == 422, (name, response.text)
        assert register(ada, "edge-1.b_2")["name"] == "edge-1.b_2"
        assert "starting with a letter or digit" in response.text

    # A server an older Manager registered under such a name gets no enrolment secret.
    with center.sessions() as session:  # type: ignore[operator]
        old = Server(name="-old", host="127.0.0.1", port=9446, zone="internal", capacity=10)
        session.add(old)
        session.flush()
        with pytest.raises(registry.ManagerError, match="cannot be enrolled") as refusal:
            registry.start_enrolment(session, old, 1)
        assert (refusal.value.status, refusal.value.code) == (422, "invalid_server_name")
        assert old.enrol_digest is None

"""Certificates of the Controller and of live servers, and live servers' enrolment.

A live server's identity is a folder, ``<data>/live/<name>/``: ``key.pem``
(its private key, mode 0600, never sent anywhere), ``cert.pem`` (issued by
the Manager's CA for its name and registered host) and ``ca.pem`` (that CA,
which it trusts for the Controller and its parents); after an enrolment also
``pull-token`` (0600) and ``manager-url``, with which it pulls its
configuration (``GET /manager/api/v1/self``). It gets there either by
enrolling through the Manager's API with a one-time secret (``enrol``), or,
on one machine, straight from the development CA (``issue_local_identity``).
The Controller's own certificate lives in ``<data>/controller/``
(``controller_certificate``). This module knows the Manager only by its HTTP
API and the CA only through ``townhall.pki``. docs/controller.md, "Identities".
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from townhall.config import Settings, parse_listen
from townhall.controller.agent import agent_ssl_context
from townhall.controller.service import server_ssl_context
from townhall.pki import DevCA, is_controller_certificate

__all__ = [
    "EnrolError",
    "LiveIdentity",
    "controller_certificate",
    "controller_ssl_context",
    "enrol",
    "issue_local_identity",
    "live_identity",
    "pull_self",
]

NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CONTROLLER_NAME: Final = "townhall-controller"
ENROL_PATH: Final = "/manager/api/v1/enroll"
SELF_PATH: Final = "/manager/api/v1/self"


class EnrolError(Exception):
    """Enrolment or a configuration pull failed; the message says why, for a person."""


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def _new_key() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key, pem


def _csr(key: ec.EllipticCurvePrivateKey, name: str) -> bytes:
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True, slots=True)
class LiveIdentity:
    """A live server's identity folder (see the module docstring)."""

    folder: Path

    @property
    def key_file(self) -> Path:
        return self.folder / "key.pem"

    @property
    def cert_file(self) -> Path:
        return self.folder / "cert.pem"

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def token_file(self) -> Path:
        return self.folder / "pull-token"

    @property
    def manager_file(self) -> Path:
        return self.folder / "manager-url"

    def exists(self) -> bool:
        return self.key_file.exists() and self.cert_file.exists() and self.ca_file.exists()

    @property
    def name(self) -> str:
        """The common name of the certificate: the server's registered name."""
        certificate = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else ""

    def link_ssl(self) -> ssl.SSLContext:
        """For the control link: the Controller verified by the CA, our certificate shown."""
        return agent_ssl_context(str(self.ca_file), str(self.cert_file), str(self.key_file))

    def store(
        self,
        key_pem: bytes,
        cert_pem: bytes,
        ca_pem: bytes,
        pull_token: str | None = None,
        manager: str | None = None,
    ) -> None:
        """Write the folder: the key and the pull token readable by this user only."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_private(self.key_file, key_pem)
        self.cert_file.write_bytes(cert_pem)
        self.ca_file.write_bytes(ca_pem)
        if pull_token is not None:
            _write_private(self.token_file, pull_token.encode() + b"\n")
        if manager is not None:
            self.manager_file.write_text(manager + "\n")


def live_identity(settings: Settings, name: str) -> LiveIdentity:
    """The identity folder of the live server ``name`` in the data folder."""
    if not NAME.fullmatch(name):
        raise ValueError("a server name is 1 to 64 letters, digits, dots, dashes or underscores")
    return LiveIdentity(settings.data / "live" / name)


def issue_local_identity(settings: Settings, name: str, hosts: list[str]) -> LiveIdentity:
    """The identity of ``name`` issued straight from the development CA (one machine).

    Made once and kept: a second call returns what is there. ``hosts`` are the
    names and addresses the certificate is valid for (the server's host).
    """
    identity = live_identity(settings, name)
    if identity.exists():
        return identity
    ca = DevCA.ensure(settings.ca_dir)
    key, key_pem = _new_key()
    cert_pem = ca.sign_csr(_csr(key, name), name, hosts, client=True)
    identity.store(key_pem, cert_pem, ca.cert_file.read_bytes())
    return identity


def _manager_base(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise EnrolError(f"the Manager's URL starts with https:// or http://, not {url[:80]!r}")
    return url.removesuffix("/manager/api/v1").removesuffix("/manager")


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return response.text[:300] or response.reason_phrase


def enrol(
    settings: Settings,
    name: str,
    secret: str,
    manager: str,
    *,
    client: httpx.Client | None = None,
) -> LiveIdentity:
    """Trade the one-time ``secret`` for a certificate: a new key, its request, the answer.

    ``manager`` is the URL of the web process (the Center's, which serves the
    Manager's API). The key is made here and never leaves this machine; the
    identity folder is written only once the Manager has answered.
    """
    identity = live_identity(settings, name)
    base = _manager_base(manager)
    key, key_pem = _new_key()
    body = {"name": name, "secret": secret.strip(), "csr_pem": _csr(key, name).decode()}
    own = client is None
    http = client or httpx.Client(timeout=30)
    try:
        response = http.post(base + ENROL_PATH, json=body)
    except httpx.HTTPError as error:
        raise EnrolError(f"could not reach the Manager at {base}: {error}") from error
    finally:
        if own:
            http.close()
    if response.status_code != 200:
        raise EnrolError(f"the Manager refused: {_error_text(response)}")
    try:
        answer = response.json()
        cert_pem = str(answer["certificate_pem"]).encode()
        ca_pem = str(answer["ca_pem"]).encode()
        token = str(answer["pull_token"])
        x509.load_pem_x509_certificate(cert_pem)
        x509.load_pem_x509_certificate(ca_pem)
    except (ValueError, KeyError, TypeError) as error:
        raise EnrolError(f"the Manager's answer is not an enrolment: {error}") from error
    identity.store(key_pem, cert_pem, ca_pem, pull_token=token, manager=base)
    return identity


def pull_self(identity: LiveIdentity, *, client: httpx.Client | None = None) -> dict[str, Any]:
    """The server's configuration from the Manager (``GET /self``), with its pull token."""
    if not identity.token_file.exists() or not identity.manager_file.exists():
        raise EnrolError("this identity was not enrolled through a Manager: no pull token")
    base = identity.manager_file.read_text().strip()
    token = identity.token_file.read_text().strip()
    own = client is None
    http = client or httpx.Client(timeout=30)
    try:
        response = http.get(base + SELF_PATH, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as error:
        raise EnrolError(f"could not reach the Manager at {base}: {error}") from error
    finally:
        if own:
            http.close()
    if response.status_code != 200:
        raise EnrolError(f"the Manager refused the pull: {_error_text(response)}")
    try:
        answer = response.json()
    except ValueError as error:
        raise EnrolError("the Manager's answer is not JSON") from error
    if not isinstance(answer, dict):
        raise EnrolError("the Manager's answer is not a configuration")
    return answer


def _controller_hosts(listen: str) -> list[str]:
    host, _ = parse_listen(listen)
    try:
        unspecified = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        unspecified = host == ""
    if unspecified:
        return sorted({socket.getfqdn(), "localhost", "127.0.0.1", "::1"})
    return [host]


def controller_certificate(settings: Settings) -> tuple[Path, Path, Path]:
    """The Controller's (certificate, key, CA) files, in ``<data>/controller/``.

    ``cert.pem``, ``key.pem`` (0600) and ``ca.pem``, the CA whose client
    certificates it accepts. When they are not all there, they are issued
    from the CA of ``manager.ca_dir`` (made if missing: one machine), for the
    host of ``controller.listen`` (on a wildcard address: this machine's name
    and loopback), with the usage that says "Controller" (``pki.CONTROLLER_USAGE``:
live servers refuse any other certificate as the Controller); one this CA
issued before that usage existed is issued again. On a machine of its own,
put the three files there, the certificate carrying that usage.
    """
    folder = settings.data / "controller"
    cert_file, key_file, ca_file = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    if cert_file.exists() and key_file.exists() and ca_file.exists():
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
        der = certificate.public_bytes(serialization.Encoding.DER)
        if is_controller_certificate(der) or not _issued_here(settings, ca_file):
            return cert_file, key_file, ca_file
        # issued by this CA before certificates said "Controller": issue it again
    ca = DevCA.ensure(settings.ca_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key, key_pem = _new_key()
    hosts = _controller_hosts(settings.controller.listen)
    cert_pem = ca.sign_csr(
        _csr(key, CONTROLLER_NAME), CONTROLLER_NAME, hosts, client=False, controller=True
    )
    _write_private(key_file, key_pem)
    cert_file.write_bytes(cert_pem)
    ca_file.write_bytes(ca.cert_file.read_bytes())
    return cert_file, key_file, ca_file


def _issued_here(settings: Settings, ca_file: Path) -> bool:
    """Whether ``ca_file`` is the CA of ``manager.ca_dir`` and its key is there to sign."""
    ca = DevCA(settings.ca_dir)
    return (
        ca.key_file.exists()
        and ca.cert_file.exists()
        and ca.cert_file.read_bytes() == ca_file.read_bytes()
    )


def controller_ssl_context(settings: Settings) -> ssl.SSLContext:
    """The Controller's listening TLS context, from ``controller_certificate``."""
    cert_file, key_file, ca_file = controller_certificate(settings)
    return server_ssl_context(str(cert_file), str(key_file), str(ca_file))

"""The development certificate authority that ``townhall up`` makes for one machine.

It issues the TLS certificates of the Controller and the live servers when no
organisation CA is configured, and signs the certificate requests of servers
that enrol through the Manager (``sign_csr``; docs/manager.md). Keys it makes
are ECDSA P-256, written with mode 0600.
Production installs use the organisation's own CA instead (docs/install.md).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CONTROLLER_USAGE = x509.ObjectIdentifier(
    "2.25.88637542026391543198539160240097662160"
)
"""The extended key usage that says "this is the Controller" (an X.667 UUID OID of
our own). Only the Controller's certificate carries it (``sign_csr(controller=True)``);
live servers accept a control link only from a certificate that does, so another
certificate of the same CA (a live server's, say) naming the Controller's host is
not the Controller."""


def is_controller_certificate(der: bytes) -> bool:
    """Whether a certificate (DER) carries ``CONTROLLER_USAGE``."""
    try:
        certificate = x509.load_der_x509_certificate(der)
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except (ValueError, x509.ExtensionNotFound):
        return False
    return CONTROLLER_USAGE in usage.value


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class DevCA:
    folder: Path

    @property
    def cert_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def key_file(self) -> Path:
        return self.folder / "ca-key.pem"

    @classmethod
    def ensure(cls, folder: Path) -> DevCA:
        """Load the CA in ``folder``, making it first if it is not there."""
        ca = cls(folder)
        if ca.cert_file.exists() and ca.key_file.exists():
            return ca
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Townhall development CA")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        _write_private(ca.key_file, _key_pem(key))
        ca.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return ca

    def issue(self, name: str, hosts: list[str], *, client: bool = False) -> IssuedCertificate:
        """Issue (or reuse) a certificate for ``name`` valid for ``hosts`` (DNS names or IPs)."""
        cert_file = self.folder / f"{name}.pem"
        key_file = self.folder / f"{name}-key.pem"
        if cert_file.exists() and key_file.exists():
            return IssuedCertificate(cert_file, key_file)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._certificate(key.public_key(), name, hosts, client=client)
        _write_private(key_file, _key_pem(key))
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return IssuedCertificate(cert_file, key_file)

    def sign_csr(
        self,
        csr_pem: bytes,
        name: str,
        hosts: list[str],
        *,
        client: bool = True,
        controller: bool = False,
    ) -> bytes:
        """Certify the key of a signing request for ``name`` and ``hosts``; PEM out.

        Only the request's key is used, once its signature proves the requester
        holds it: subject, names and usages come from the arguments, never from
        the request. Raises ``ValueError`` for a malformed or unsigned request.
        """
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ValueError("the signing request's signature does not verify")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise ValueError("the signing request's key must be EC or RSA")
        cert = self._certificate(public_key, name, hosts, client=client, controller=controller)
        return cert.public_bytes(serialization.Encoding.PEM)

    def _certificate(
        self,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        name: str,
        hosts: list[str],
        *,
        client: bool,
        controller: bool = False,
    ) -> x509.Certificate:
        ca_key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        alt_names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                alt_names.append(x509.DNSName(host))
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        )
        if controller:
            usages.append(CONTROLLER_USAGE)
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        )

"""Helpers for the Manager's tests: the API as an admin drives it, the CLI, certificate requests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.support import Center

API = "/manager/api/v1"
PASSWORD = "correct horse"


def register(
    client: httpx.Client,
    name: str,
    host: str = "127.0.0.1",
    port: int = 9443,
    zone: str = "internal",
    capacity: int = 500,
) -> dict[str, Any]:
    response = client.post(
        f"{API}/servers",
        json={"name": name, "host": host, "port": port, "zone": zone, "capacity": capacity},
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def make_tree(
    client: httpx.Client, name: str, nodes: list[tuple[str, str | None]]
) -> dict[str, Any]:
    body = {"name": name, "nodes": [{"server": s, "parent": p} for s, p in nodes]}
    response = client.post(f"{API}/trees", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@contextmanager
def signed_in(center: Center, username: str) -> Iterator[httpx.Client]:
    """A browser signed in through the portal's form (the pages then need its CSRF cookie)."""
    with httpx.Client(base_url=center.url, follow_redirects=False, timeout=20) as client:
        client.get("/login")
        response = client.post(
            "/login",
            data={
                "username": username,
                "password": PASSWORD,
                "next": "/events",
                "csrf": client.cookies["townhall_csrf"],
            },
        )
        assert response.status_code == 303, response.text
        yield client


def schedule_event(center: Center, organizer: str = "olga") -> int:
    with center.client(organizer) as client:
        response = client.post(
            "/api/v1/events",
            json={
                "title": "All hands",
                "starts_at": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
                "duration_minutes": 60,
            },
        )
        assert response.status_code == 201, response.text
        return int(response.json()["id"])


def townhall(center: Center, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the ``townhall`` command on the test Center's data folder and database."""
    environment = {
        **os.environ,
        "TOWNHALL_CENTER__DATABASE_URL": center.settings.database_url,
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "townhall.cli", *args, "--data", str(center.settings.data)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environment,
    )


def enrolment_secret(center: Center, name: str, *options: str, **env: str) -> str:
    done = townhall(center, "manager", "enroll", name, *options, **env)
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    assert secret.startswith("the_") and "\n" not in secret
    return secret


def csr_for(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, common_name: str = "anything"
) -> str:
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("claimed.example.org")]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


def enrol(
    center: Center, name: str, secret: str, key: ec.EllipticCurvePrivateKey | None = None
) -> httpx.Response:
    key = key or ec.generate_private_key(ec.SECP256R1())
    body = {"name": name, "secret": secret, "csr_pem": csr_for(key)}
    return httpx.post(f"{center.url}{API}/enroll", json=body, timeout=20)

"""An S3-compatible object store for tests: moto's S3 server as a process on loopback.

moto's server (``moto_server`` from PyPI) speaks the S3 REST API over real
HTTP and checks nothing of the signatures it gets; it is a stand-in, named
as one in every test that uses it: no real S3-compatible server can be
installed on this machine (MinIO and Garage are packaged neither for Debian
nor for PyPI, Ceph's RADOS Gateway needs a whole Ceph cluster, and Zenko's
server fetches its parts from GitHub). Our side of the wire is the real
thing: boto3 with signed requests over a socket.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import httpx

from townhall.config import StorageSettings

BUCKET = "townhall-recordings"
ACCESS_KEY = "townhall"
SECRET_KEY = "not-a-secret-of-anyone"  # noqa: S105 - moto's server takes any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_s3(log: Path) -> Iterator[str]:
    """moto's S3 server on a free loopback port with ``BUCKET`` made; its URL."""
    port = free_port()
    with open(log, "wb") as out:
        server = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                httpx.get(endpoint, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "moto's server never answered"
                time.sleep(0.2)
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        ).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


def storage(endpoint: str, **changed: str) -> StorageSettings:
    """S3 storage settings for the store at ``endpoint`` (``changed``: other values)."""
    fields = {
        "kind": "s3",
        "endpoint_url": endpoint,
        "bucket": BUCKET,
        "prefix": "townhall/recordings/",
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
    }
    return StorageSettings.model_validate(fields | changed)

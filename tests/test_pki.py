"""The development CA issues certificates that verify in a real TLS handshake."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from pathlib import Path

from townhall.pki import DevCA


def test_an_issued_server_certificate_passes_a_tls_handshake(tmp_path: Path) -> None:
    ca = DevCA.ensure(tmp_path / "pki")
    issued = ca.issue("live-main", ["127.0.0.1", "localhost"])
    assert stat.S_IMODE(ca.key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(issued.key_file.stat().st_mode) == 0o600

    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(issued.cert_file, issued.key_file)
    client_context = ssl.create_default_context(cafile=str(ca.cert_file))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received: list[bytes] = []

    def serve() -> None:
        connection, _ = listener.accept()
        with server_context.wrap_socket(connection, server_side=True) as tls:
            received.append(tls.recv(5))

    thread = threading.Thread(target=serve)
    thread.start()
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with client_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"hello")
    thread.join(timeout=10)
    listener.close()
    assert received == [b"hello"]


def test_the_ca_is_made_once_and_then_reused(tmp_path: Path) -> None:
    first = DevCA.ensure(tmp_path / "pki").cert_file.read_bytes()
    assert DevCA.ensure(tmp_path / "pki").cert_file.read_bytes() == first

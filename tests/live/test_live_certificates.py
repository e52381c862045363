"""Certificates browsers accept: a public name's certificate beside the identity, and the
development CA trusted by a real Chromium for ``townhall up``'s live servers."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
from pathlib import Path

import pytest

from tests.live.live_support import Center
from tests.live.server_support import HOST, Pki, joined, sealed
from tests.live.websocket_support import CENTER_ORIGIN, WebSocketClient
from townhall.config import Settings
from townhall.controller.identity import issue_local_identity
from townhall.live import ServerRole
from townhall.live.server import LiveServer
from townhall.live.tls import server_ssl_context, upstream_ssl_context, with_public_certificate
from townhall.onebox import LOCAL_CERT_HOSTS
from townhall.pki import DevCA

PUBLIC_NAME = "live.example.test"


async def peer_certificate(port: int, context: ssl.SSLContext, server_hostname: str) -> str:
    """The common name of the certificate the live port presented (verified by ``context``)."""
    _, writer = await asyncio.open_connection(
        HOST, port, ssl=context, server_hostname=server_hostname
    )
    try:
        certificate = writer.get_extra_info("peercert")
        return dict(item[0] for item in certificate["subject"])["commonName"]
    finally:
        writer.close()


async def test_a_browser_asking_for_the_public_name_gets_its_certificate(
    tmp_path: Path, issuer: Center
) -> None:
    pki = Pki(tmp_path)
    public_ca = DevCA.ensure(tmp_path / "public-ca")  # stands for the organisation's or a public CA
    public = public_ca.issue("public", [PUBLIC_NAME])
    identity = pki.ca.issue("main", [HOST], client=True)
    server_ssl = with_public_certificate(
        server_ssl_context(identity.cert_file, identity.key_file, pki.ca.cert_file),
        public.cert_file,
        public.key_file,
    )
    server = LiveServer(
        name="main",
        host=HOST,
        port=0,
        server_ssl=server_ssl,
        upstream_ssl=pki.upstream_ssl("main"),
        browser_origins=[CENTER_ORIGIN],
    )
    await server.start()
    try:
        server.assign(issuer.assignment(ServerRole.MAIN), issuer.signing_key.public_key())
        browser = upstream_ssl_context(public_ca.cert_file)
        browser.set_alpn_protocols(["h2", "http/1.1"])
        assert await peer_certificate(server.port, browser, PUBLIC_NAME) == "public"
        # by address (no SNI), as the Controller and child servers dial: the identity
        assert await peer_certificate(server.port, pki.client_ssl(), HOST) == "main"

        # a browser joins under the public name; a native participant by address, as before
        ana = await joined(server.port, pki.client_ssl(), "ana", sealed(issuer, "ana"))
        loop = asyncio.get_running_loop()
        bo = WebSocketClient("bo", sealed(issuer, "bo"))
        await loop.create_connection(
            lambda: bo, HOST, server.port, ssl=browser, server_hostname=PUBLIC_NAME
        )
        await bo.wait_for(lambda: bo.joined, "bo joined under the public name")
        await ana.wait_for(lambda: "bo" in ana.roster, "bo in ana's roster")
    finally:
        await server.close()


def test_a_public_certificate_must_name_a_host(tmp_path: Path) -> None:
    ca = DevCA.ensure(tmp_path / "ca")
    nameless = ca.issue("nameless", ["10.0.0.1"])
    context = server_ssl_context(nameless.cert_file, nameless.key_file)
    with pytest.raises(ValueError, match="names no DNS host"):
        with_public_certificate(context, nameless.cert_file, nameless.key_file)


CHROMIUM = shutil.which("chromium")
CERTUTIL = shutil.which("certutil")


@pytest.mark.skipif(not (CHROMIUM and CERTUTIL), reason="needs chromium and libnss3-tools")
async def test_chromium_trusting_the_development_ca_accepts_the_live_port(
    tmp_path: Path, issuer: Center
) -> None:
    """What docs/install.md tells a trial user to do, done: the CA in an NSS database."""
    assert CHROMIUM is not None and CERTUTIL is not None
    settings = Settings(data=tmp_path / "data")
    identity = issue_local_identity(settings, "main", list(LOCAL_CERT_HOSTS))
    home = tmp_path / "home"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    for command in (
        [CERTUTIL, "-d", f"sql:{nssdb}", "-N", "--empty-password"],
        [CERTUTIL, "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "townhall-dev"]
        + ["-i", str(identity.ca_file)],
    ):
        process = await asyncio.create_subprocess_exec(*command)
        assert await process.wait() == 0
    server = LiveServer(
        name="main",
        host=HOST,
        port=0,
        server_ssl=server_ssl_context(identity.cert_file, identity.key_file, identity.ca_file),
        upstream_ssl=upstream_ssl_context(identity.ca_file, identity.cert_file, identity.key_file),
    )
    await server.start()
    try:
        for host in LOCAL_CERT_HOSTS:
            process = await asyncio.create_subprocess_exec(
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--dump-dom",
                f"https://{host}:{server.port}/healthz",
                env={**os.environ, "HOME": str(home)},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            page, errors = await asyncio.wait_for(process.communicate(), 60)
            assert b"townhall live server" in page, (host, errors.decode()[-800:])
    finally:
        await server.close()

"""Certificates browsers accept: a public name's certificate beside the identity, and the
development CA trusted by a real Chromium for ``townhall up``'s live servers."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import urllib.parse
from pathlib import Path

import pytest

from tests.live.live_support import Center
from tests.live.server_support import HOST, Pki, joined, running, sealed
from tests.live.websocket_support import CENTER_ORIGIN, WebSocketClient
from townhall.config import Settings
from townhall.controller.identity import issue_local_identity
from townhall.live import ServerRole
from townhall.live.server import LiveServer
from townhall.live.tls import server_ssl_context, upstream_ssl_context, with_public_certificate
from townhall.onebox import LOCAL_CERT_HOSTS
from townhall.pki import DevCA
from townhall.wire import Auth, Hello, Role, encode_message

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
        server_ssl_context(identity.cert_file, identity.key_file),
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


def trust_in_nss(home: Path, ca_file: Path) -> list[list[str]]:
    """The ``certutil`` commands docs/install.md gives, for an NSS database under ``home``."""
    assert CERTUTIL is not None
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    return [
        [CERTUTIL, "-d", f"sql:{nssdb}", "-N", "--empty-password"],
        [
            CERTUTIL,
            "-d",
            f"sql:{nssdb}",
            "-A",
            "-t",
            "C,,",
            "-n",
            "townhall-dev",
            "-i",
            str(ca_file),
        ],
    ]


@pytest.mark.skipif(not (CHROMIUM and CERTUTIL), reason="needs chromium and libnss3-tools")
async def test_chromium_trusting_the_development_ca_accepts_the_live_port(
    tmp_path: Path, issuer: Center
) -> None:
    """What docs/install.md tells a trial user to do, done: the CA in an NSS database."""
    assert CHROMIUM is not None and CERTUTIL is not None
    settings = Settings(data=tmp_path / "data")
    identity = issue_local_identity(settings, "main", list(LOCAL_CERT_HOSTS))
    home = tmp_path / "home"
    for command in trust_in_nss(home, identity.ca_file):
        process = await asyncio.create_subprocess_exec(*command)
        assert await process.wait() == 0
    server = LiveServer(
        name="main",
        host=HOST,
        port=0,
        server_ssl=server_ssl_context(identity.cert_file, identity.key_file),
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


@pytest.mark.skipif(not (CHROMIUM and CERTUTIL), reason="needs chromium and libnss3-tools")
async def test_chromium_joins_over_the_websocket_from_the_centers_origin(
    tmp_path: Path, issuer: Center
) -> None:
    """A page of the allowed origin opens wss://…/live and plays Hello, Auth: AuthOk."""
    assert CHROMIUM is not None
    pki = Pki(tmp_path)
    home = tmp_path / "home"
    for command in trust_in_nss(home, pki.ca.cert_file):
        process = await asyncio.create_subprocess_exec(*command)
        assert await process.wait() == 0
    reports: asyncio.Queue[str] = asyncio.Queue()
    page: dict[str, bytes] = {}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The Center's stand-in: the page, and ``/report?…`` where the page says what it saw."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        target = head.split(b" ")[1].decode()
        body = b""
        if target.startswith("/report?"):
            await reports.put(urllib.parse.unquote(target.partition("?")[2]))
        else:
            body = page["html"]
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\nconnection: close\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    center = await asyncio.start_server(serve, HOST, 0)
    origin = f"http://{HOST}:{center.sockets[0].getsockname()[1]}"
    async with running(pki, "main", browser_origins=[origin]) as server:
        server.assign(issuer.assignment(ServerRole.MAIN), issuer.signing_key.public_key())
        hello = list(encode_message(Hello(role=Role.PARTICIPANT, version=1, client="page")).data)
        auth = list(encode_message(Auth(ticket=sealed(issuer, "ana"))).data)
        page["html"] = f"""<!doctype html><script>
const seen = [];
const report = (text) => fetch("/report?" + encodeURIComponent(text));
const ws = new WebSocket("wss://{HOST}:{server.port}/live");
ws.binaryType = "arraybuffer";
ws.onopen = () => ws.send(new Uint8Array({hello}));
ws.onmessage = (event) => {{
  const frame = new Uint8Array(event.data);
  seen.push(frame[1] + ":" + frame[2]);
  if (frame[1] === 0 && frame[2] === 2) ws.send(new Uint8Array({auth}));
  if (frame[1] === 0 && frame[2] === 4) report("joined " + seen.join(" "));
}};
ws.onclose = (event) => report("closed " + event.code + " " + seen.join(" "));
</script>""".encode()
        browser = await asyncio.create_subprocess_exec(
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            origin + "/",
            env={**os.environ, "HOME": str(home)},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            said = await asyncio.wait_for(reports.get(), 60)
            assert said == "joined 0:2 0:4", said  # Welcome, then AuthOk
            assert server.load()[0] == 1
        finally:
            browser.terminate()
            await browser.wait()
            center.close()

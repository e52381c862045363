"""TLS for the live protocol: contexts (TLS 1.2 or newer, ALPN ``townhall/1``), a lean session.

A live server's listening port takes ``server_ssl_context`` (its certificate;
it asks for none: child servers prove themselves with link tickets, and a
browser cannot answer a certificate request on a WebSocket), and its link
Up, like any client of the protocol,
``upstream_ssl_context`` (the CA that signs the servers it connects to, and
its own certificate for mutual TLS). The link Up offers ALPN ``townhall/1``
only; the listening port also ``http/1.1`` (browsers' WebSocket), and the
shell refuses a connection that agreed on neither (``TLSSession.alpn``).
``TLSSession`` runs TLS over a plain transport with memory BIOs: the live
server's own lean replacement for asyncio's SSL transport on its hot path.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Final

from cryptography import x509

from townhall.wire import ALPN

__all__ = [
    "ALPN",
    "HTTP_ALPN",
    "TLSSession",
    "certificate_names",
    "server_ssl_context",
    "upstream_ssl_context",
    "with_public_certificate",
]

HTTP_ALPN: Final = "http/1.1"
"""The live port's second protocol: HTTP/1.1 with a WebSocket upgrade, for browsers
(``townhall.live.websocket``). Never ``h2``: a browser that offers it gets HTTP/1.1."""


StrPath = str | Path


def server_ssl_context(cert_file: StrPath, key_file: StrPath) -> ssl.SSLContext:
    """The listening side: our certificate, and no request for the client's.

    Chromium fails a WebSocket whose server sends a CertificateRequest, even
    an optional one (it has no way to ask the user there), so the live port
    asks none; nothing checked one anyway: participants present credentials
    and child servers link tickets, in ``Auth``.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols([ALPN, HTTP_ALPN])  # ours first: a server's preference wins
    return context


def with_public_certificate(
    context: ssl.SSLContext, cert_file: StrPath, key_file: StrPath
) -> ssl.SSLContext:
    """``context`` (the server's identity) presenting instead, to a client whose SNI is one
    of the DNS names of ``cert_file``, that certificate: the one for its public name,
    from the organisation's CA or a public one, that browsers trust.

    Browsers always send SNI for a name; the Controller, child servers and
    anyone dialling an address (no SNI) or an internal name keep getting the
    identity certificate, which they verify against the Manager's CA.
    """
    names = certificate_names(cert_file)
    if not names:
        raise ValueError(f"{cert_file} names no DNS host: a public certificate must")
    public = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    public.minimum_version = context.minimum_version
    public.options = context.options
    public.load_cert_chain(cert_file, key_file)
    public.set_alpn_protocols([ALPN, HTTP_ALPN])

    def choose(tls: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        if server_name is not None and _names_match(names, server_name):
            tls.context = public

    context.sni_callback = choose
    return context


def certificate_names(cert_file: StrPath) -> tuple[str, ...]:
    """The DNS names (lower case, ``*.`` wildcards kept) a PEM certificate is valid for."""
    certificate = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(name.lower() for name in san.value.get_values_for_type(x509.DNSName))


def _names_match(names: tuple[str, ...], host: str) -> bool:
    host = host.lower().rstrip(".")
    for name in names:
        if name == host:
            return True
        if name.startswith("*.") and host.count(".") >= 2:
            if host.partition(".")[2] == name[2:]:
                return True
    return False


def upstream_ssl_context(
    ca_file: StrPath, cert_file: StrPath | None = None, key_file: StrPath | None = None
) -> ssl.SSLContext:
    """The connecting side: the server's certificate must chain to ``ca_file`` and name
    the host dialled; ``cert_file``/``key_file`` are presented for mutual TLS."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.load_verify_locations(cafile=ca_file)
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols([ALPN])
    return context


class TLSSession:
    """TLS over a plain transport with memory BIOs: what asyncio's SSL transport does, leaner.

    The live server writes one combined record batch per connection per loop
    pass; through asyncio's SSL transport each write crosses some ten Python
    frames, here two C calls (``encrypt``). The shell feeds what it reads to
    ``handshake`` until ``secure``, then to ``decrypt``; it writes what these
    return. ``ssl.SSLError`` (``CertificateError`` included) means the peer
    failed: abort the transport.
    """

    __slots__ = ("_in", "_out", "secure", "ssl")

    def __init__(
        self, context: ssl.SSLContext, *, server_side: bool, server_hostname: str | None = None
    ) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.ssl = context.wrap_bio(
            self._in, self._out, server_side=server_side, server_hostname=server_hostname
        )
        self.secure = False

    def handshake(self, data: bytes) -> bytes:
        """Feed handshake bytes (none to start a client's); the bytes to send."""
        if data:
            self._in.write(data)
        try:
            self.ssl.do_handshake()
        except ssl.SSLWantReadError:
            return self._out.read()
        self.secure = True
        return self._out.read()

    def decrypt(self, data: bytes) -> tuple[bytes, bool]:
        """Feed bytes read; the plaintext, and whether the peer closed TLS (close_notify).

        Anything TLS itself must answer (a key update, say) waits in ``pending()``.
        """
        if data:
            self._in.write(data)
        chunks: list[bytes] = []
        closed = False
        try:
            while chunk := self.ssl.read(_READ_SIZE):
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            closed = True
        if not chunks:
            return b"", closed
        return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), closed

    def encrypt(self, data: bytes) -> bytes:
        """The records that carry ``data``."""
        written = self.ssl.write(data)
        if written < len(data):  # not with memory BIOs, but never lose a byte
            view = memoryview(data)[written:]
            while view:
                view = view[self.ssl.write(view) :]
        return self._out.read()

    def record_writer(self) -> tuple[Callable[[bytes], int], Callable[[], bytes]]:
        """``encrypt`` as its two calls, for ``fanout.send_each``: ``write(plaintext)``
        (``SSLObject.write``, a thin wrapper of ``_ssl``'s) answers how much it took,
        ``read()`` (the outgoing memory BIO's, C) the records to send."""
        return self.ssl.write, self._out.read

    def pending(self) -> bytes:
        return self._out.read() if self._out.pending else b""

    def close_notify(self) -> bytes:
        """The close_notify alert to send before closing the transport (b"" if none)."""
        if not self.secure:
            return b""
        try:
            self.ssl.unwrap()
        except (ssl.SSLError, ValueError):
            pass  # unwrap waits for the peer's alert: ours is written all the same
        return self._out.read()

    def alpn_ok(self) -> bool:
        return self.alpn() == ALPN

    def alpn(self) -> str | None:
        """The protocol ALPN agreed on (None: none, or the handshake is not done)."""
        return self.ssl.selected_alpn_protocol() if self.secure else None


_READ_SIZE: Final = 256 * 1024

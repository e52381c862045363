"""The reverse proxy's sign-in service (``townhall proxy-auth``) for nginx's ``auth_request``.

Apache httpd checks passwords against LDAP itself (``mod_authnz_ldap``);
nginx asks a service. This package is that service, small on purpose: a
directory check over ldap3 (``ldap``) and a Starlette app keeping sessions in
memory (``service``). ``register`` adds the ``proxy-auth`` command to the
``townhall`` CLI; ``python -m townhall.proxyauth`` runs it on its own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from townhall.config import parse_listen


def serve(
    listen: Annotated[
        str, typer.Option("--listen", help="host:port; keep it on loopback")
    ] = "127.0.0.1:9091",
    ldap_url: Annotated[
        str, typer.Option("--ldap-url", help="ldaps://host[:port] or ldap://host[:port]")
    ] = "ldap://127.0.0.1",
    base_dn: Annotated[
        str, typer.Option("--base-dn", help="where users are searched")
    ] = "dc=example,dc=org",
    user_attribute: Annotated[
        str, typer.Option("--user-attribute", help="the attribute users sign in with")
    ] = "uid",
    user_object_class: Annotated[
        str, typer.Option("--user-object-class", help="empty: any entry")
    ] = "inetOrgPerson",
    bind_dn: Annotated[
        str, typer.Option("--bind-dn", help="service account for searches (empty: anonymous)")
    ] = "",
    bind_password_file: Annotated[
        Path | None, typer.Option("--bind-password-file", help="file holding its password")
    ] = None,
    group_base_dn: Annotated[
        str, typer.Option("--group-base-dn", help="where groups naming users are (empty: none)")
    ] = "",
    starttls: Annotated[bool, typer.Option("--starttls", help="StartTLS on ldap://")] = False,
    ldap_ca_file: Annotated[
        str, typer.Option("--ldap-ca-file", help="CA certificates for the directory's TLS")
    ] = "",
    cookie_name: Annotated[str, typer.Option("--cookie-name")] = "townhall_proxy",
    session_hours: Annotated[float, typer.Option("--session-hours", min=0.01, max=720)] = 8,
    insecure_cookie: Annotated[
        bool, typer.Option("--insecure-cookie", help="send the cookie over plain HTTP too")
    ] = False,
    failure_delay: Annotated[
        float, typer.Option("--failure-delay", min=0, max=30, help="seconds after a failure")
    ] = 1.0,
) -> None:
    """Run the sign-in service that nginx's auth_request asks (see docs/reverse-proxy.md)."""
    import uvicorn

    from townhall.proxyauth.ldap import LdapServer
    from townhall.proxyauth.service import ProxyAuth, ProxyAuthConfig

    bind_password = ""
    if bind_password_file is not None:
        bind_password = bind_password_file.read_text().strip()
    config = ProxyAuthConfig(
        ldap=LdapServer(ldap_url, starttls=starttls, ca_file=ldap_ca_file),
        base_dn=base_dn,
        user_attribute=user_attribute,
        user_object_class=user_object_class,
        bind_dn=bind_dn,
        bind_password=bind_password,
        group_base_dn=group_base_dn,
        cookie_name=cookie_name,
        cookie_secure=not insecure_cookie,
        session_seconds=int(session_hours * 3600),
        failure_delay=failure_delay,
    )
    try:
        config.ldap.address()
    except ValueError as error:
        typer.echo(f"townhall: {error}", err=True)
        raise typer.Exit(2) from error
    host, port = parse_listen(listen)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        ProxyAuth(config).app,
        host=host,
        port=port,
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_level="warning",
    )


def register(app: typer.Typer) -> None:
    """Add ``townhall proxy-auth`` to the CLI."""
    app.command("proxy-auth")(serve)


def main() -> None:
    standalone = typer.Typer(add_completion=False)
    standalone.command()(serve)
    standalone()

"""The one ``townhall`` command, with a sub-command group per component.

Every command takes ``--data DIR`` (default ``$TOWNHALL_DATA``, else
``./townhall-data``) and ``--config FILE`` (default ``<data>/townhall.toml``)
and reads its settings through ``townhall.config``. ``townhall up`` sets up
and runs the whole system on one machine with embedded defaults.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, cast

import typer
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI
from sqlalchemy import select

from townhall import inprocess, onebox, schema
from townhall.center import live
from townhall.center.accounts import (
    AccountError,
    CenterSecret,
    create_token,
    create_user,
    hash_password,
    user_by_name,
)
from townhall.center.tables import Event, User
from townhall.client.command import register as register_participant
from townhall.config import Settings, default_data_dir, load_settings, parse_listen
from townhall.controller.command import register as register_controller
from townhall.controller.identity import issue_local_identity
from townhall.datafolder import PRIVATE_UMASK, DataFolderError
from townhall.desktop.commands import register as register_desktop
from townhall.live.backoff import Backoff
from townhall.logformat import uvicorn_log_config
from townhall.manager import registry
from townhall.metrics import serving_in_thread
from townhall.objectstore import ObjectStore
from townhall.pki import DevCA
from townhall.proxyauth import register as register_proxy_auth
from townhall.recording.command import register as register_recorder
from townhall.recording.service import RecorderService, ServiceSettings
from townhall.store import make_engine, make_session_factory
from townhall.store.conventions import now_utc
from townhall.web.metrics import MULTIPROCESS_VARIABLE, WebMetrics
from townhall.webport import PortShare
from townhall.webprocess import create_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Townhall: live online events.")
users_app = typer.Typer(no_args_is_help=True, help="Local accounts of the Center.")
tokens_app = typer.Typer(no_args_is_help=True, help="API tokens.")
manager_app = typer.Typer(no_args_is_help=True, help="The Manager: live servers and enrolment.")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(manager_app, name="manager")

DataOption = Annotated[
    Path | None,
    typer.Option("--data", help="data folder [default: $TOWNHALL_DATA or ./townhall-data]"),
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="settings file [default: <data>/townhall.toml]")
]

STARTER_CONFIG = """\
# Townhall settings. Every key is documented in docs/settings.md; environment
# variables TOWNHALL_<SECTION>__<KEY> override what is written here, e.g.
# TOWNHALL_CENTER__LISTEN=127.0.0.1:18080.

[center]
# listen = "127.0.0.1:8080"
# base_url = "https://townhall.example.org"      # as users reach it through the proxy
# database_url = "postgresql+psycopg://townhall@/townhall"

[center.sso]
# trusted_proxies = ["127.0.0.2/32"]              # empty: header SSO is off
# header = "X-Remote-User"

[center.mail]
# smtp_url = "smtp://mail.example.org:587"       # empty: mail goes to <data>/outbox

[manager]
# enrol_hours = 24                               # life of a `townhall manager enroll` secret
# ca_dir = ""                                    # empty: the development CA in <data>/pki

[controller]
# listen = "127.0.0.1:8443"                      # handed to enrolled live servers
"""


def settings_for(data: Path | None, config: Path | None) -> Settings:
    try:
        return load_settings(data or default_data_dir(), config)
    except DataFolderError as error:
        typer.echo(f"townhall: {error}", err=True)
        raise typer.Exit(2) from error
    except (FileNotFoundError, ValueError) as error:
        typer.echo(f"townhall: bad settings: {error}", err=True)
        raise typer.Exit(2) from error


def _migrate(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    try:
        schema.migrate(engine)
    finally:
        engine.dispose()


def _sessions(settings: Settings):  # type: ignore[no-untyped-def]

    return make_session_factory(make_engine(settings.database_url))


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@app.command()
def migrate(data: DataOption = None, config: ConfigOption = None) -> None:
    """Create or upgrade the database tables."""
    settings = settings_for(data, config)
    _migrate(settings)
    typer.echo(f"database is up to date: {_safe_url(settings.database_url)}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@users_app.command("add")
def users_add(
    name: str,
    email: Annotated[str | None, typer.Option(help="email address")] = None,
    role: Annotated[str, typer.Option(help="admin, organizer or member")] = "member",
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
    no_password: Annotated[bool, typer.Option(help="SSO-only account")] = False,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Add a local account."""

    settings = settings_for(data, config)
    _migrate(settings)
    password = None if no_password else _read_password(password_stdin)
    with _sessions(settings)() as session:
        try:
            create_user(session, name, email=email, role=role, password=password)
        except AccountError as error:
            typer.echo(f"townhall: {error.message}", err=True)
            raise typer.Exit(1) from error
        session.commit()
    typer.echo(f"added {role} {name}")


@users_app.command("passwd")
def users_passwd(
    name: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Set a local account's password."""

    settings = settings_for(data, config)
    password = _read_password(password_stdin)
    if len(password) < 8:
        typer.echo("townhall: a password needs at least 8 characters", err=True)
        raise typer.Exit(1)
    with _sessions(settings)() as session:
        user = user_by_name(session, name)
        if user is None:
            typer.echo(f"townhall: no user {name}", err=True)
            raise typer.Exit(1)
        user.password_hash = hash_password(password)
        session.commit()
    typer.echo(f"password of {name} changed")


@users_app.command("list")
def users_list(data: DataOption = None, config: ConfigOption = None) -> None:
    """List accounts."""

    settings = settings_for(data, config)
    with _sessions(settings)() as session:
        for user in session.scalars(select(User).order_by(User.username)):
            typer.echo(f"{user.username}\t{user.role}\t{user.email or '-'}\t{user.source}")


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="the user the token acts as")],
    label: Annotated[str, typer.Option("--label", help="what the token is for")] = "cli",
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Create an API token for a user and print it (it is shown only once)."""

    settings = settings_for(data, config)
    with _sessions(settings)() as session:
        user = user_by_name(session, name)
        if user is None:
            typer.echo(f"townhall: no user {name}", err=True)
            raise typer.Exit(1)
        try:
            _, value = create_token(session, user, label)
        except AccountError as error:
            typer.echo(f"townhall: {error.message}", err=True)
            raise typer.Exit(1) from error
        session.commit()
    typer.echo(value)


@manager_app.command("enroll")
def manager_enroll(
    name: Annotated[str, typer.Argument(help="the live server's name")],
    address: Annotated[
        str | None, typer.Option("--address", help="host:port, to register the server")
    ] = None,
    zone: Annotated[str | None, typer.Option("--zone", help="internal or dmz")] = None,
    capacity: Annotated[
        int | None, typer.Option("--capacity", help="participants it carries")
    ] = None,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Print a one-time enrolment secret for a live server (registering it if asked).

    The secret is valid for manager.enrol_hours and shown only once; a new one
    replaces any earlier secret. The server trades it, with a certificate
    request, for its certificate and pull token at POST /manager/api/v1/enroll.
    """
    from pydantic import ValidationError

    settings = settings_for(data, config)
    _migrate(settings)
    DevCA.ensure(settings.ca_dir)
    try:
        fields: dict[str, object] = {}
        if address is not None:
            fields["host"], fields["port"] = registry.parse_address(address)
        if zone is not None:
            fields["zone"] = zone
        if capacity is not None:
            fields["capacity"] = capacity
        with _sessions(settings)() as session:
            server = registry.server_by_name(session, name)
            if server is None:
                if address is None:
                    typer.echo(
                        f"townhall: no server {name}; register it with --address host:port "
                        "[--zone internal|dmz] [--capacity N]",
                        err=True,
                    )
                    raise typer.Exit(1)
                server = registry.create_server(
                    session, registry.ServerIn.model_validate({"name": name, **fields})
                )
                typer.echo(f"registered {server.name} at {address} ({server.zone})", err=True)
            elif fields:
                registry.update_server(session, server, registry.ServerPatch.model_validate(fields))
            secret, expires = registry.start_enrolment(
                session, server, settings.manager.enrol_hours
            )
            session.commit()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in error.errors()
        )
        typer.echo(f"townhall: {problems}", err=True)
        raise typer.Exit(2) from error
    except (ValueError, registry.ManagerError) as error:
        typer.echo(f"townhall: {getattr(error, 'message', error)}", err=True)
        raise typer.Exit(2) from error
    typer.echo(
        f"one-time enrolment secret for {name}, valid until {expires:%Y-%m-%d %H:%M} UTC "
        "(shown once):",
        err=True,
    )
    typer.echo(secret)


@manager_app.command("servers")
def manager_servers(data: DataOption = None, config: ConfigOption = None) -> None:
    """List the registered live servers: name, address, zone, capacity, enrolment."""

    settings = settings_for(data, config)
    _migrate(settings)
    with _sessions(settings)() as session:
        for server in registry.list_servers(session):
            host = f"[{server.host}]" if ":" in server.host else server.host
            state = registry.enrolment_state(server)
            typer.echo(
                f"{server.name}\t{host}:{server.port}\t{server.zone}\t{server.capacity}\t{state}"
            )


WORKER_HEALTHCHECK_SECONDS = 60


def _serve_center(settings: Settings, config: Path | None) -> None:
    import uvicorn

    host, port = parse_listen(settings.center.listen)
    # proxy_headers stays off: the peer address is what tells a trusted proxy
    # from anyone else (center.sso.trusted_proxies), so X-Forwarded-For must not rewrite it.
    options = {
        "host": host,
        "port": port,
        "proxy_headers": False,
        "server_header": False,
        "log_level": "info",
        "access_log": settings.center.access_log,
    }
    log_config = uvicorn_log_config(settings.log.format)
    if log_config is not None:
        options["log_config"] = log_config
    if settings.center.workers == 1:
        web = create_app(settings)
        with _metrics_door(settings, lambda: web):
            uvicorn.run(web, **options)  # type: ignore[arg-type]
        return
    # Several processes: each builds its own app from the same data folder and settings,
    # so the shared secret must exist before they race to create it.
    CenterSecret.load_or_create(settings.data / "secret.key")
    # Each process counts its own requests; a scrape adds up every process's files
    # (web/metrics.py). Last run's files would count again: start from an empty folder.
    metrics_dir = settings.data / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(mode=0o700)
    os.environ[MULTIPROCESS_VARIABLE] = str(metrics_dir.resolve())
    os.environ["TOWNHALL_DATA"] = str(settings.data.resolve())
    if config is not None:
        os.environ["TOWNHALL_CONFIG"] = str(config.resolve())
    # This process only supervises the workers; its own app (no background workers,
    # no requests) is what reads the summed metrics for center.metrics_listen.
    with _metrics_door(settings, lambda: create_app(settings, run_workers=False)):
        _run_workers(settings, options)


def _run_workers(settings: Settings, options: dict[str, object]) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        "townhall.webprocess:app_from_environment",
        factory=True,
        workers=settings.center.workers,
        # A worker that does not answer the supervisor's ping in time is killed and
        # replaced; uvicorn's 5 s is less than a new worker's imports take on a loaded
        # machine (seen at load 17 on 2 cores: workers replaced forever, none serving).
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        **options,  # type: ignore[arg-type]
    )
    # uvicorn.run would give every worker one shared socket; each gets its own (webport).
    try:
        port = PortShare(config.host, config.port)
    except OSError as error:
        typer.echo(f"cannot listen on {config.host}:{config.port}: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo(f"Center listening on http://{config.host}:{config.port}", err=True)
    try:
        # The supervisor pickles the list into each worker, where PortShare becomes a socket.
        Multiprocess(config, sockets=[cast(socket.socket, port)]).run()
    except KeyboardInterrupt:
        pass
    finally:
        port.close()


@contextlib.contextmanager
def _metrics_door(settings: Settings, web: Callable[[], FastAPI]) -> Iterator[None]:
    """The Center's metrics on ``center.metrics_listen``, if set, while the block runs: the
    same numbers as its token-guarded ``/metrics`` (summed over the web workers)."""
    listen = settings.center.metrics_listen
    if not listen:
        yield
        return
    metrics: WebMetrics = web().state.metrics
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(serving_in_thread(listen, metrics.scrape_registry()))
        except OSError as error:
            # As the Controller and the live servers do: a busy port costs the metrics,
            # never the portal.
            typer.echo(f"no metrics: cannot listen on {listen}: {error}", err=True)
            yield
            return
        typer.echo(f"Center metrics on http://{server.host}:{server.port}/metrics", err=True)
        yield


@app.command()
def center(data: DataOption = None, config: ConfigOption = None) -> None:
    """Run the web process: the Center's portal and API."""
    settings = settings_for(data, config)
    _migrate(settings)
    _serve_center(settings, config)


@app.command("center-key")
def center_key(data: DataOption = None, config: ConfigOption = None) -> None:
    """Print the Center's public key (base64), for controller.center_public_key on the
    Controller's machine."""
    settings = settings_for(data, config)
    raw = live.center_public_key(settings).public_bytes(Encoding.Raw, PublicFormat.Raw)
    typer.echo(base64.b64encode(raw).decode())


@app.command()
def recorder(data: DataOption = None, config: ConfigOption = None) -> None:
    """Record every event whose recording is on, while its tree is up (the recorder service).

    Runs beside the Center, on its data folder and database; writes into
    <data>/recordings, where the Center serves the recordings. SIGTERM or
    SIGINT stops every recording and closes its files (docs/recording.md).
    """
    settings = settings_for(data, config)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    asyncio.run(_run_recorder(settings))


async def _run_recorder(settings: Settings) -> None:
    options = settings.recorder
    service_settings = ServiceSettings(
        poll_seconds=options.poll_seconds,
        max_recordings=options.max_recordings,
        restart=Backoff(initial=1.0, maximum=options.restart_max_seconds),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        with inprocess.recorder_sources(settings) as sources:
            store = ObjectStore(settings.storage) if settings.storage.kind == "s3" else None
            service = RecorderService(sources, settings.data, service_settings, store=store)
            await service.run(stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):
                loop.remove_signal_handler(sig)


def _ensure_admin(settings: Settings) -> tuple[str, str | None]:
    with _sessions(settings)() as session:
        admin = session.scalar(select(User).where(User.role == "admin").limit(1))
        if admin is not None:
            return admin.username, None
        password = secrets.token_urlsafe(12)
        create_user(session, "admin", email="admin@localhost", role="admin", password=password)
        session.commit()
    secret_file = settings.data / "admin-password.txt"
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(password + "\n")
    return "admin", password


@app.command()
def up(
    data: DataOption = None,
    config: ConfigOption = None,
    live_port: Annotated[
        int,
        typer.Option(
            "--live-port",
            min=1,
            max=65533,
            help="port of the main live server; its two children take the next two "
            "(used when the servers are first registered)",
        ),
    ] = onebox.DEFAULT_LIVE_PORT,
    metrics_port: Annotated[
        int,
        typer.Option(
            "--metrics-port",
            min=1,
            max=65532,
            help="port of the Controller's Prometheus metrics on 127.0.0.1; the live "
            "servers' take the next three (unless set in controller/live.metrics_listen)",
        ),
    ] = onebox.DEFAULT_METRICS_PORT,
) -> None:
    """Set up and run the whole system on this machine with embedded defaults."""

    settings = settings_for(data, config)
    settings.data.mkdir(parents=True, exist_ok=True, mode=0o700)
    token_where = "center.metrics_token"  # noqa: S105 - the setting's name
    if not settings.center.metrics_token:
        # Read again by every web process from the environment, above the settings file.
        os.environ["TOWNHALL_CENTER__METRICS_TOKEN"] = onebox.metrics_token(settings.data)
        settings = settings_for(data, config)
        token_where = str(settings.data / onebox.METRICS_TOKEN)
    starter = settings.data / "townhall.toml"
    if config is None and not starter.exists():
        starter.write_text(STARTER_CONFIG)
    ca = DevCA.ensure(settings.ca_dir)
    _migrate(settings)
    admin, password = _ensure_admin(settings)
    url = settings.center.public_url
    typer.echo(f"Townhall is starting; data in {settings.data.resolve()}")
    typer.echo(f"  Center portal   {url}/")
    typer.echo(f"  REST API        {url}/api/v1  (OpenAPI: {url}/api/v1/openapi.json)")
    typer.echo(f"  Manager         {url}/manager  (API: {url}/manager/api/v1)")
    if not settings.center.mail.smtp_url:
        typer.echo(f"  Mail outbox     {url}/admin/outbox  (files in {settings.outbox_dir})")
    typer.echo(f"  Development CA  {ca.cert_file}")
    if password:
        typer.echo(f"  Sign in as {admin} with password {password}")
        typer.echo(f"  (also kept in {settings.data / 'admin-password.txt'}, mode 0600)")
    else:
        typer.echo(
            f"  Sign in as {admin}; its password was printed at first start and kept in "
            f"{settings.data / 'admin-password.txt'} (reset: townhall users passwd {admin})"
        )
    demo_ticket, addresses = _prepare_live(settings, admin, live_port)
    typer.echo(f"  Controller      {settings.controller.listen}")
    for server in onebox.LOCAL_SERVERS:
        where = f"zone {server.zone}" + (f", child of {server.parent}" if server.parent else "")
        typer.echo(f"  Live server     {server.name} on {addresses[server.name]} ({where})")
    metrics = onebox.metrics_addresses(settings, metrics_port)
    typer.echo(f"  Metrics         {url}/metrics (bearer token in {token_where})")
    for name, address in metrics.items():
        typer.echo(f"                  {name}: http://{address}/metrics")
    typer.echo(f"  Logs            {settings.data / 'logs'}")
    typer.echo(f"  Demo event      join it: townhall join {demo_ticket} --say hello")
    typer.echo(f"  Recorder        events with recording on go to {settings.data / 'recordings'}")
    children = {
        "controller": onebox.live_command(
            settings, config, "controller", "--metrics-listen", metrics["controller"]
        )
    }
    for server in onebox.LOCAL_SERVERS:
        children[server.name] = onebox.live_command(
            settings,
            config,
            "live",
            "--name",
            server.name,
            "--metrics-listen",
            metrics[server.name],
        )
    children["recorder"] = onebox.live_command(settings, config, "recorder")
    with onebox.running(children, settings.data / "logs"):
        _serve_center(settings, config)


def _prepare_live(settings: Settings, admin: str, live_port: int) -> tuple[Path, dict[str, str]]:
    """The one-machine tree, the servers' identities, the demo event and its ticket;
    the ticket's path and each server's registered address."""

    with _sessions(settings)() as session:
        onebox.ensure_live_servers(session, first_port=live_port)
        addresses = {}
        for server in onebox.LOCAL_SERVERS:
            registered = registry.server_by_name(session, server.name)
            assert registered is not None
            addresses[server.name] = f"{registered.host}:{registered.port}"
        event_id = onebox.ensure_demo_event(session, settings, admin)
        session.commit()
        event = session.get(Event, event_id)
        user = session.scalar(select(User).where(User.username == admin))
        assert event is not None and user is not None
        data = live.issue_join_ticket(
            session,
            settings,
            event,
            user,
            live.join_role(session, event, user),
            trees=inprocess.ManagerTrees(),
            now=now_utc(),
        )
        session.commit()
    for server in onebox.LOCAL_SERVERS:
        issue_local_identity(settings, server.name, list(onebox.LOCAL_CERT_HOSTS))
    path = settings.data / onebox.DEMO_TICKET
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    return path, addresses


def _register_components() -> None:
    register_controller(app, inprocess.controller_wiring())
    register_participant(app)
    register_recorder(app)
    register_desktop(app)
    register_proxy_auth(app)


_register_components()


def main() -> None:
    # Every file any townhall process creates is its user's alone: the SQLite
    # database and its -wal/-shm/journal files (SQLite makes those itself),
    # keys, the CA, logs, the outbox, tickets. One umask here covers them all,
    # whoever writes them (our code, SQLite, uvicorn, a library), and the
    # processes started from here (web workers, `up`'s servers) inherit it;
    # a chmod after each write would miss files made later, such as the WAL.
    os.umask(PRIVATE_UMASK)
    app()


if __name__ == "__main__":
    main()

"""The ``townhall controller`` and ``townhall live`` commands.

``register(app)`` adds both to the ``townhall`` Typer app. ``controller`` runs
``service.ControllerService`` with the settings of ``--data``/``--config``;
``live`` runs one live server (``townhall.live.server.LiveServer``) with its
``agent.ControllerAgent``, from the identity in ``<data>/live/<name>/``
(``identity``), enrolling it first when given a one-time secret. The
coroutines ``run_controller`` and ``run_live`` do the work, so that tests and
``townhall up`` can run them in a loop of their own. docs/controller.md,
"Running it".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from townhall.config import Settings, default_data_dir, load_settings, parse_listen
from townhall.controller.agent import ControllerAgent
from townhall.controller.identity import (
    EnrolError,
    LiveIdentity,
    controller_ssl_context,
    enrol,
    live_identity,
    pull_self,
)
from townhall.controller.service import ControllerService, address_of

__all__ = ["LivePlan", "register", "run_controller", "run_live"]

log = logging.getLogger("townhall.controller")

DataOption = Annotated[
    Path | None,
    typer.Option("--data", help="data folder [default: $TOWNHALL_DATA or ./townhall-data]"),
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="settings file [default: <data>/townhall.toml]")
]


def _settings(data: Path | None, config: Path | None) -> Settings:
    try:
        return load_settings(data or default_data_dir(), config)
    except (FileNotFoundError, ValueError) as error:
        typer.echo(f"townhall: bad settings: {error}", err=True)
        raise typer.Exit(2) from error


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"townhall: {message}", err=True)
    return typer.Exit(code)


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` until it ends, Ctrl-C or SIGTERM; either signal is a clean stop."""

    async def guarded() -> None:
        task = asyncio.current_task()
        if task is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await main

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(guarded())


def _logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")


# -- the Controller ----------------------------------------------------------------------------


async def run_controller(
    settings: Settings,
    *,
    port: int | None = None,
    started: Callable[[ControllerService], Awaitable[None] | None] | None = None,
) -> None:
    """Run the Controller until cancelled (the database is migrated already)."""
    from townhall.center.live import center_public_key
    from townhall.store import make_engine, make_session_factory

    engine = make_engine(settings.database_url)
    try:
        service = ControllerService(
            settings,
            sessions=make_session_factory(engine),
            ssl_context=controller_ssl_context(settings),
            center_key=center_public_key(settings),
            port=port,
        )
        await service.start()
        try:
            if started is not None:
                result = started(service)
                if result is not None:
                    await result
            await asyncio.Event().wait()
        finally:
            await service.close()
    finally:
        engine.dispose()


def controller(data: DataOption = None, config: ConfigOption = None) -> None:
    """Run the Controller: live servers keep their control link to it; it forms event trees."""
    from townhall.schema import migrate
    from townhall.store import make_engine

    settings = _settings(data, config)
    _logging()
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    typer.echo(f"Controller on {settings.controller.listen} (TLS, client certificates)", err=True)
    _run(run_controller(settings))


# -- a live server ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LivePlan:
    """Where a live server listens, where its Controller is, what it carries."""

    name: str
    listen: str
    controller: str
    capacity: int


def plan_live(
    settings: Settings,
    identity: LiveIdentity,
    name: str,
    *,
    listen: str | None,
    controller_address: str | None,
) -> LivePlan:
    """Fill in what the command line left out: from the Manager (enrolled servers pull
    ``/self``), else from the local database (one machine), else the settings."""
    config: dict[str, Any] = {}
    if listen is None or controller_address is None:
        if identity.token_file.exists():
            config = pull_self(identity)
        else:
            config = _registered_locally(settings, name)
    if listen is None:
        if "host" not in config:
            raise EnrolError(f"{name} is not registered here: give --listen host:port")
        listen = address_of(str(config["host"]), int(config["port"]))
    controller_address = (
        controller_address or str(config.get("controller") or "") or settings.controller.listen
    )
    return LivePlan(name, listen, controller_address, int(config.get("capacity") or 0))


def _registered_locally(settings: Settings, name: str) -> dict[str, Any]:
    from sqlalchemy.exc import SQLAlchemyError

    from townhall.manager import registry
    from townhall.store import make_engine, make_session_factory

    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            server = registry.server_by_name(session, name)
            if server is None:
                return {}
            return {"host": server.host, "port": server.port, "capacity": server.capacity}
    except SQLAlchemyError:
        return {}
    finally:
        engine.dispose()


async def run_live(
    identity: LiveIdentity,
    plan: LivePlan,
    *,
    report_seconds: float = 5.0,
    started: Callable[[Any, ControllerAgent], Awaitable[None] | None] | None = None,
    server_options: dict[str, Any] | None = None,
    public_certificate: tuple[Path, Path] | None = None,
) -> None:
    """Run the live server and its agent until cancelled; ``public_certificate`` (cert,
    key) is presented to clients that ask for its names (SNI), as browsers do."""
    from townhall.live.server import LiveServer
    from townhall.live.tls import server_ssl_context, upstream_ssl_context, with_public_certificate

    host, port = parse_listen(plan.listen)
    agents: list[ControllerAgent] = []

    def status_changed() -> None:
        if agents:
            agents[0].status_changed()

    server_ssl = server_ssl_context(identity.cert_file, identity.key_file)
    if public_certificate is not None:
        server_ssl = with_public_certificate(server_ssl, *public_certificate)
    server = LiveServer(
        name=plan.name,
        host=host,
        port=port,
        server_ssl=server_ssl,
        upstream_ssl=upstream_ssl_context(identity.ca_file, identity.cert_file, identity.key_file),
        capacity=plan.capacity,
        on_status_change=status_changed,
        **(server_options or {}),
    )
    await server.start()
    try:
        agent = ControllerAgent(
            plan.controller, identity.link_ssl(), server, report_seconds=report_seconds
        )
        agents.append(agent)
        if started is not None:
            result = started(server, agent)
            if result is not None:
                await result
        await agent.run()
    finally:
        await server.close()


def live(
    name: Annotated[str, typer.Option("--name", help="the server's registered name")],
    listen: Annotated[
        str | None,
        typer.Option("--listen", help="host:port to listen on [default: its registered address]"),
    ] = None,
    controller_address: Annotated[
        str | None,
        typer.Option("--controller", help="the Controller's host:port [default: from the Manager]"),
    ] = None,
    enroll_secret: Annotated[
        str | None,
        typer.Option("--enroll-secret", help="one-time secret from `townhall manager enroll`"),
    ] = None,
    manager: Annotated[
        str | None,
        typer.Option("--manager", help="the Manager's (web process') URL, to enrol with"),
    ] = None,
    enroll_only: Annotated[
        bool, typer.Option("--enroll-only", help="enrol, then exit without serving")
    ] = False,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Run a live server: its TLS port for participants and child servers, and its
    control link to the Controller."""
    settings = _settings(data, config)
    try:
        identity = live_identity(settings, name)
    except ValueError as error:
        raise _fail(str(error), 2) from error
    if enroll_secret is not None:
        if manager is None:
            raise _fail("--enroll-secret needs --manager URL (the Center's address)", 2)
        try:
            enrol(settings, name, enroll_secret, manager)
        except EnrolError as error:
            raise _fail(str(error)) from error
        typer.echo(f"enrolled {name}; its identity is in {identity.folder}", err=True)
    elif enroll_only:
        raise _fail("--enroll-only needs --enroll-secret and --manager", 2)
    if enroll_only:
        return
    if not identity.exists():
        raise _fail(
            f"no identity for {name} in {identity.folder}: enrol it once with "
            "--enroll-secret SECRET --manager URL (the secret from `townhall manager enroll`)"
        )
    try:
        plan = plan_live(
            settings, identity, name, listen=listen, controller_address=controller_address
        )
        parse_listen(plan.listen)
        parse_listen(plan.controller)
    except (EnrolError, ValueError) as error:
        raise _fail(str(error)) from error
    _logging()
    typer.echo(f"live server {name} on {plan.listen}, Controller at {plan.controller}", err=True)
    origins = settings.live.origins(settings.center)
    public = settings.live.public_certificates.get(name)
    _run(
        run_live(
            identity,
            plan,
            report_seconds=settings.controller.report_seconds,
            server_options={
                "browser_origins": origins,
                "max_connections": settings.live.max_connections,
                "max_pending_per_address": settings.live.max_pending_per_address,
            },
            public_certificate=None
            if public is None
            else (Path(public.cert_file), Path(public.key_file)),
        )
    )


def register(app: typer.Typer) -> None:
    """Add ``controller`` and ``live`` to the ``townhall`` command."""
    app.command("controller")(controller)
    app.command("live")(live)

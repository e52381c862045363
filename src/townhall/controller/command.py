"""The ``townhall controller`` and ``townhall live`` commands.

``register(app, wiring)`` adds both to the ``townhall`` Typer app; the
composition root (``townhall.cli``) hands in the ``Wiring``: how to migrate
the database, the Center's and the Manager's side of the contract
(``sources.ControllerSources``) and the Center's public key, so that nothing
here imports the Center or the Manager. ``controller`` runs
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
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

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
from townhall.controller.metrics import ControllerCollector
from townhall.controller.service import ControllerService, address_of
from townhall.controller.sources import ControllerSources, SourceRefused, SourceUnavailable
from townhall.live.metrics import LiveCollector
from townhall.live.server import LiveServer
from townhall.live.tls import server_ssl_context, upstream_ssl_context, with_public_certificate
from townhall.logformat import configure_logging
from townhall.metrics import MetricsServer
from townhall.store import make_engine, make_session_factory
from townhall.wire import Settings as WireSettings

__all__ = ["LivePlan", "Wiring", "register", "run_controller", "run_live"]

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


def _logging(settings: Settings) -> None:
    configure_logging(settings.log.format)


@contextlib.asynccontextmanager
async def metrics_door(listen: str, collector: Collector) -> AsyncIterator[MetricsServer | None]:
    """Serve ``collector`` at ``listen`` while the context lasts; nothing when it is empty.

    An address that cannot be bound is logged and the component runs without metrics:
    a busy port must not keep a live server, and its events, from running."""
    if not listen:
        yield None
        return
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    door = MetricsServer(listen, registry)
    try:
        await door.start()
    except OSError as error:
        log.error("no metrics: cannot listen on %s: %s", listen, error)
        yield None
        return
    try:
        yield door
    finally:
        await door.close()


# -- the Controller ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wiring:
    """What the composition root hands the two commands."""

    migrate: Callable[[Settings], None]  # create or upgrade every component's tables
    # The Center's and the Manager's side, open while the context lasts.
    sources: Callable[[Settings], AbstractContextManager[ControllerSources]]
    # The Center's public key: the controller.center_public_key setting, else the
    # Center on this machine.
    center_key: Callable[[Settings], Ed25519PublicKey]


async def run_controller(
    settings: Settings,
    *,
    sources: ControllerSources,
    center_key: Ed25519PublicKey,
    port: int | None = None,
    started: Callable[[ControllerService], Awaitable[None] | None] | None = None,
    metrics_listen: str = "",
) -> None:
    """Run the Controller until cancelled (the database is migrated already); its metrics
    on ``metrics_listen`` when given."""
    engine = make_engine(settings.database_url)
    try:
        service = ControllerService(
            settings,
            sessions=make_session_factory(engine),
            sources=sources,
            ssl_context=controller_ssl_context(settings),
            center_key=center_key,
            port=port,
        )
        await service.start()
        try:
            async with metrics_door(metrics_listen, ControllerCollector(service)):
                if started is not None:
                    result = started(service)
                    if result is not None:
                        await result
                await asyncio.Event().wait()
        finally:
            await service.close()
    finally:
        engine.dispose()


def _controller_command(wiring: Wiring) -> Callable[..., None]:
    def controller(
        metrics_listen: Annotated[
            str | None,
            typer.Option(
                "--metrics-listen",
                help="host:port of its Prometheus metrics [default: controller.metrics_listen]",
            ),
        ] = None,
        data: DataOption = None,
        config: ConfigOption = None,
    ) -> None:
        """Run the Controller: live servers keep their control link to it; it forms event
        trees."""
        settings = _settings(data, config)
        metrics = _metrics_listen(metrics_listen, settings.controller.metrics_listen)
        _logging(settings)
        wiring.migrate(settings)
        try:
            center_key = wiring.center_key(settings)
        except (OSError, ValueError) as error:
            raise _fail(f"no public key of the Center: {error}", 2) from error
        typer.echo(
            f"Controller on {settings.controller.listen} (TLS, client certificates)", err=True
        )

        async def main() -> None:
            with wiring.sources(settings) as sources:
                await run_controller(
                    settings, sources=sources, center_key=center_key, metrics_listen=metrics
                )

        _run(main())

    return controller


def _metrics_listen(given: str | None, setting: str) -> str:
    """The metrics address from the command line, else the setting; exits if it is bad."""
    listen = setting if given is None else given
    if listen:
        try:
            parse_listen(listen)
        except ValueError as error:
            raise _fail(str(error), 2) from error
    return listen


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
    sources: Callable[[Settings], AbstractContextManager[ControllerSources]] | None = None,
) -> LivePlan:
    """Fill in what the command line left out: from the Manager (enrolled servers pull
    ``/self``), else from ``sources`` (the Manager on this machine), else the settings."""
    config: dict[str, Any] = {}
    if listen is None or controller_address is None:
        if identity.token_file.exists():
            config = pull_self(identity)
        elif sources is not None:
            config = _registered_locally(settings, name, sources)
    if listen is None:
        if "host" not in config:
            raise EnrolError(f"{name} is not registered here: give --listen host:port")
        listen = address_of(str(config["host"]), int(config["port"]))
    controller_address = (
        controller_address or str(config.get("controller") or "") or settings.controller.listen
    )
    return LivePlan(name, listen, controller_address, int(config.get("capacity") or 0))


def _registered_locally(
    settings: Settings,
    name: str,
    sources: Callable[[Settings], AbstractContextManager[ControllerSources]],
) -> dict[str, Any]:
    try:
        with sources(settings) as opened:
            server = opened.registered_server(name)
    except (SourceUnavailable, SourceRefused):
        return {}
    if server is None:
        return {}
    return {"host": server.host, "port": server.port, "capacity": server.capacity}


async def run_live(
    identity: LiveIdentity,
    plan: LivePlan,
    *,
    report_seconds: float = 5.0,
    started: Callable[[Any, ControllerAgent], Awaitable[None] | None] | None = None,
    server_options: dict[str, Any] | None = None,
    public_certificate: tuple[Path, Path] | None = None,
    metrics_listen: str = "",
) -> None:
    """Run the live server and its agent until cancelled; ``public_certificate`` (cert,
    key) is presented to clients that ask for its names (SNI), as browsers do; its
    metrics are served on ``metrics_listen`` when given."""
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
        async with metrics_door(metrics_listen, LiveCollector(server)):
            if started is not None:
                result = started(server, agent)
                if result is not None:
                    await result
            await agent.run()
    finally:
        await server.close()


def _live_command(wiring: Wiring) -> Callable[..., None]:
    def live(
        name: Annotated[str, typer.Option("--name", help="the server's registered name")],
        listen: Annotated[
            str | None,
            typer.Option(
                "--listen", help="host:port to listen on [default: its registered address]"
            ),
        ] = None,
        controller_address: Annotated[
            str | None,
            typer.Option(
                "--controller", help="the Controller's host:port [default: from the Manager]"
            ),
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
        metrics_listen: Annotated[
            str | None,
            typer.Option(
                "--metrics-listen",
                help="host:port of its Prometheus metrics [default: live.metrics_listen]",
            ),
        ] = None,
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
                settings,
                identity,
                name,
                listen=listen,
                controller_address=controller_address,
                sources=wiring.sources,
            )
            parse_listen(plan.listen)
            parse_listen(plan.controller)
        except (EnrolError, ValueError) as error:
            raise _fail(str(error)) from error
        metrics = _metrics_listen(metrics_listen, settings.live.metrics_listen.get(name, ""))
        _logging(settings)
        typer.echo(
            f"live server {name} on {plan.listen}, Controller at {plan.controller}", err=True
        )
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
                    "outbox_limits": {"max_media_age": settings.live.max_media_age_ms / 1000},
                    "room_defaults": {
                        "max_media_age": settings.live.max_media_age_ms / 1000,
                        "roster_limit": settings.live.roster_limit,
                    },
                    "participant_send_buffer": settings.live.participant_send_buffer_bytes,
                    "wire_settings": WireSettings(
                        ping_interval=settings.live.ping_seconds,
                        idle_timeout=settings.live.idle_timeout_seconds,
                        link_rtt_interval=settings.live.link_rtt_seconds,
                    ),
                },
                public_certificate=None
                if public is None
                else (Path(public.cert_file), Path(public.key_file)),
                metrics_listen=metrics,
            )
        )

    return live


def register(app: typer.Typer, wiring: Wiring) -> None:
    """Add ``controller`` and ``live`` to the ``townhall`` command."""
    app.command("controller")(_controller_command(wiring))
    app.command("live")(_live_command(wiring))

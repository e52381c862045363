"""The one settings model: a TOML file plus ``TOWNHALL_<SECTION>__<KEY>`` variables.

Every listen address, the database URL and every security knob lives here, as
a frozen pydantic model passed into the components that need it; nothing reads
the environment anywhere else. Precedence, highest first: values passed in
code, environment variables, the TOML file (``<data>/townhall.toml`` unless
``--config`` names another), the defaults below. ``docs/settings.md`` lists
every key with what it risks.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from townhall.datafolder import open_data_folder

Role = Literal["admin", "organizer", "member"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SsoSettings(_Section):
    """Single sign-on by a reverse proxy that names the user in a header."""

    header: str = "X-Remote-User"
    # Empty turns header SSO off: the header is then ignored from everyone.
    trusted_proxies: tuple[str, ...] = ()
    email_header: str = ""
    name_header: str = ""
    groups_header: str = ""
    group_roles: dict[str, Role] = Field(default_factory=dict)
    auto_create_users: bool = False
    # True only when the proxy takes the email from its own directory (LDAP, the IdP's
    # verified address): then it opens that address's invitations. docs/sso.md.
    trust_email: bool = False
    capture_cookies: tuple[str, ...] = ()
    # Signed-assertion mode (Pomerium, Cloudflare Access, Google IAP style).
    assertion_header: str = ""
    assertion_public_key_file: str = ""
    assertion_jwks_file: str = ""
    assertion_issuer: str = ""
    assertion_audience: str = ""
    assertion_algorithms: tuple[str, ...] = ("ES256", "RS256", "EdDSA")
    assertion_username_claim: str = "email"
    assertion_leeway_seconds: int = Field(default=30, ge=0, le=600)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for network in value:
            ipaddress.ip_network(network, strict=False)
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.trusted_proxies)

    def trusts(self, peer: str | None) -> bool:
        if not peer or not self.trusted_proxies:
            return False
        return _peer_in(peer, self.trusted_proxies)


# Asked two or three times per request with the same few peers: parsing the
# address and every network each time was 3-7 % of a request's CPU.
@functools.lru_cache(maxsize=4096)
def _peer_in(peer: str, networks: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in _parsed_networks(networks))


@functools.lru_cache(maxsize=16)
def _parsed_networks(
    networks: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(network, strict=False) for network in networks)


class MailSettings(_Section):
    """Outgoing mail: a real SMTP server, or the outbox folder when none is set."""

    smtp_url: str = ""
    sender: str = "Townhall <townhall@localhost>"
    timeout_seconds: float = Field(default=30, gt=0, le=600)
    max_attempts: int = Field(default=8, ge=1, le=100)
    retry_base_seconds: float = Field(default=30, gt=0, le=86400)
    poll_seconds: float = Field(default=2, gt=0, le=3600)

    @field_validator("smtp_url")
    @classmethod
    def _smtp_scheme(cls, value: str) -> str:
        if value and not value.startswith(("smtp://", "smtps://")):
            raise ValueError("smtp_url must start with smtp:// or smtps://")
        return value


MAX_DEFAULT_WORKERS = 8


def default_workers(cores: int | None) -> int:
    """``center.workers`` when unset: one web process per core, at most 8 (each holds a pool
    of database connections; more processes than that want a measured choice)."""
    return max(1, min(cores or 1, MAX_DEFAULT_WORKERS))


class CenterSettings(_Section):
    listen: str = "127.0.0.1:8080"
    # The URL users reach the Center at (through the reverse proxy, if any).
    base_url: str = ""
    database_url: str = ""
    default_timezone: str = "UTC"
    session_minutes: int = Field(default=720, ge=5, le=60 * 24 * 90)
    max_body_bytes: int = Field(default=1_000_000, ge=1024, le=100_000_000)
    # The reverse proxy normally logs every request; a second log costs the Center ~10 %.
    access_log: bool = False
    # Processes serving the web routes: one per core (up to 8), since one process is bound
    # to one core by the GIL (bench/center.py: 2 on 2 cores serve 2-2.4x one's requests).
    workers: int = Field(default_factory=lambda: default_workers(os.cpu_count()), ge=1, le=64)
    # Threads per web process running the sync routes and dependencies (anyio's default
    # is 40); unset: by database (web_threads).
    threads: int | None = Field(default=None, ge=1, le=200)
    dialin_numbers: tuple[str, ...] = ("+1 555 0100",)
    # Bearer token Prometheus sends to scrape GET /metrics on the Center's listener;
    # empty: /metrics answers 404 (docs/metrics.md).
    metrics_token: str = Field(default="", repr=False)
    # host:port where the process running the web workers serves their summed metrics
    # (plain HTTP, no token: keep it on loopback or a monitoring network); empty: off.
    metrics_listen: str = ""
    # Password sign-in throttling (center/throttle.py): failures of one account from one
    # address before any wait, of one address before any wait, the first wait and the cap.
    sign_in_free_failures: int = Field(default=5, ge=1, le=1000)
    sign_in_address_free_failures: int = Field(default=20, ge=1, le=100_000)
    sign_in_backoff_seconds: float = Field(default=1.0, gt=0, le=3600)
    sign_in_backoff_cap_seconds: float = Field(default=900.0, gt=0, le=86_400)
    # Anonymous guests of public events (center/live.py): tickets one client address may
    # get per event within the window, and anonymous tickets one event gives out at most.
    guest_tickets_per_address: int = Field(default=20, ge=1, le=100_000)
    guest_ticket_window_minutes: int = Field(default=60, ge=1, le=24 * 60)
    guest_tickets_per_event: int = Field(default=20_000, ge=1, le=100_000)
    sso: SsoSettings = Field(default_factory=SsoSettings)
    mail: MailSettings = Field(default_factory=MailSettings)

    @field_validator("listen")
    @classmethod
    def _listen_is_host_port(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_listen_is_host_port(cls, value: str) -> str:
        if value:
            parse_listen(value)
        return value

    @property
    def public_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        host, port = parse_listen(self.listen)
        return f"http://{host}:{port}"


class ManagerSettings(_Section):
    """The Manager: the registry of live servers and trees, and their enrolment."""

    # How long a one-time enrolment secret from ``townhall manager enroll`` stays valid.
    enrol_hours: float = Field(default=24, gt=0, le=24 * 30)
    # The CA that signs enrolled servers' certificates; empty: ``<data>/pki``.
    ca_dir: str = ""


class ControllerSettings(_Section):
    """The Controller: its address (handed by the Manager to enrolled servers) and pace."""

    listen: str = "127.0.0.1:8443"
    # How long before an event's start its server tree is formed.
    lead_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # How long after an event's scheduled end its tree is torn down.
    grace_minutes: int = Field(default=15, ge=0, le=24 * 60)
    # How often the Controller reads the due events, trees and credentials.
    tick_seconds: float = Field(default=2, ge=0.05, le=300)
    # How often a live server reports its events when nothing changed.
    report_seconds: float = Field(default=5, ge=0.05, le=600)
    # Pings on an idle control link; a link silent for three times this is dropped.
    keepalive_seconds: float = Field(default=10, ge=0.05, le=600)
    # The Center's Ed25519 public key (base64 of its 32 bytes; `townhall center-key`
    # prints it), which live servers check tickets with. Empty: the Center is on this
    # machine and the command reads it from the Center (docs/controller.md).
    center_public_key: str = ""
    # host:port of the Controller's Prometheus metrics (plain HTTP, no token: keep it on
    # loopback or a monitoring network); empty: off.
    metrics_listen: str = ""

    @field_validator("listen")
    @classmethod
    def _listen_is_host_port(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_listen_is_host_port(cls, value: str) -> str:
        if value:
            parse_listen(value)
        return value

    @field_validator("center_public_key")
    @classmethod
    def _center_key_is_32_bytes(cls, value: str) -> str:
        value = value.strip()
        if value and len(_key_bytes(value)) != 32:
            raise ValueError("the Center's public key is base64 of 32 bytes")
        return value

    def center_key_bytes(self) -> bytes | None:
        """The raw public key from ``center_public_key``, or None when it is not set."""
        return _key_bytes(self.center_public_key) if self.center_public_key else None


class RecorderSettings(_Section):
    """The recorder service (``townhall recorder``): records every event whose recording
    is on while its tree is up, into ``<data>/recordings`` (docs/recording.md)."""

    # How often it asks the Center which events to record.
    poll_seconds: float = Field(default=2, ge=0.05, le=300)
    # Events recorded at once by one service; the others wait (and the log says so).
    max_recordings: int = Field(default=4, ge=1, le=64)
    # The longest wait before a failed recorder is started again (backoff from 1 s).
    restart_max_seconds: float = Field(default=60, ge=1, le=3600)


class StorageSettings(_Section):
    """Where finished recordings are kept (docs/recording.md, "Storage").

    ``folder`` (the default): ``<data>/recordings``, written by the recorder service
    and served by the Center on the same machine. ``s3``: a bucket of an S3-compatible
    object store (MinIO, Ceph's RADOS Gateway, AWS S3 ...), for a Center on several
    machines: the recorder service still writes each part into ``<data>/recordings``
    as it goes, then uploads the finished part (and, after a crash, what it left)
    and deletes its local copy; the Center streams the objects to viewers, ranges
    included, so the store itself need not be reachable from users' networks.
    """

    kind: Literal["folder", "s3"] = "folder"
    # The store's address: https://s3.example.org (http:// only for a store on loopback
    # or a private network: the keys sign each request, but the bytes travel in clear).
    endpoint_url: str = ""
    bucket: str = ""
    # Prepended to every object name: "recordings/" gives recordings/<event id>/<file>.
    prefix: str = "recordings/"
    region: str = "us-east-1"
    access_key_id: str = ""
    # Keep it out of the settings file: TOWNHALL_STORAGE__SECRET_ACCESS_KEY.
    secret_access_key: str = Field(default="", repr=False)
    # A PEM bundle of the CAs that sign the store's certificate (empty: the system's).
    ca_file: str = ""

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_is_http_url(cls, value: str) -> str:
        if value and not (
            value.startswith(("https://", "http://")) and len(value) <= 500 and " " not in value
        ):
            raise ValueError("endpoint_url is an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("bucket")
    @classmethod
    def _bucket_is_a_bucket_name(cls, value: str) -> str:
        if value and not _BUCKET.fullmatch(value):
            raise ValueError("a bucket name is 3 to 63 lowercase letters, digits, dots, hyphens")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix_is_a_folder(cls, value: str) -> str:
        if value and (len(value) > 200 or not value.endswith("/") or value.startswith("/")):
            raise ValueError("prefix is empty or a path ending in / (recordings/)")
        return value

    @model_validator(mode="after")
    def _s3_is_complete(self) -> StorageSettings:
        if self.kind == "s3":
            missing = [
                name
                for name in ("endpoint_url", "bucket", "access_key_id", "secret_access_key")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"storage kind s3 needs {', '.join(missing)}")
        return self


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _key_bytes(value: str) -> bytes:
    try:
        return base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except ValueError as error:
        raise ValueError("the Center's public key is base64 of 32 bytes") from error


class PublicCertificate(_Section):
    """A live server's certificate for its public name (the one browsers reach it at)."""

    cert_file: str
    key_file: str


class LiveSettings(_Section):
    """What live servers started from these settings share: who may open their
    browsers' WebSocket (docs/protocol.md, "WebSocket"), and each one's certificate for
    its public name (docs/install.md, "Certificates browsers accept")."""

    # Page origins (or URLs) whose pages may open the WebSocket of the live port;
    # empty: the Center's public URL alone.
    browser_origins: tuple[str, ...] = ()

    @field_validator("browser_origins")
    @classmethod
    def _origins_are_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if not origin.startswith(("https://", "http://")):
                raise ValueError(f"a browser origin starts with https:// or http://: {origin!r}")
        return value

    # By live server name: the certificate its port presents to clients whose SNI is
    # one of that certificate's DNS names; everyone else gets its identity certificate.
    public_certificates: dict[str, PublicCertificate] = Field(default_factory=dict)
    # Connections a live server holds at once (the open file limit is raised to fit),
    # and those from one address still before authentication.
    max_connections: int = Field(default=10_000, ge=16, le=1_000_000)
    max_pending_per_address: int = Field(default=256, ge=1, le=100_000)
    # Media queued for a listener longer than this is dropped for that listener (counted),
    # not sent late: a listener behind hears the present (live/outbox.py); and audio read
    # half of this after its stream's best case is dropped on arrival, for everyone
    # (live/lateness.py). Never chat or control.
    max_media_age_ms: int = Field(default=300, ge=20, le=60_000)
    # An event of more members than this shows its participants the stage (moderators,
    # raised hands, the floor, stream owners), themselves and a count, not everyone: each
    # arrival sent to every participant would cost a town hall the square of its size.
    # Moderators always see everyone (live/stage.py).
    roster_limit: int = Field(default=250, ge=1, le=100_000)
    # A participant connection's kernel send buffer and transport write buffer: what is
    # past the Outbox is sent however late it is, so keep it short (0: the system's).
    participant_send_buffer_bytes: int = Field(default=32 * 1024, ge=0, le=16 * 1024 * 1024)
    # Keepalive of every live connection, participants and links between servers: a
    # Ping after this many idle seconds, and a connection silent for idle_timeout_seconds
    # is dropped. A link to the parent cut by a firewall (no reset, no FIN) is noticed,
    # and reconnected, only after idle_timeout_seconds.
    ping_seconds: float = Field(default=15, gt=0, le=600)
    idle_timeout_seconds: float = Field(default=45, gt=0, le=3600)
    # A timed Ping on every link between servers this often, busy or not: each end's
    # metrics show the round trip to the other (townhall_live_link_rtt_seconds). A peer's
    # Pings beyond 16 at once and then 2 a second go unanswered, hence at least 0.5.
    link_rtt_seconds: float = Field(default=5, ge=0.5, le=600)
    # By live server name: host:port of its Prometheus metrics (plain HTTP, no token:
    # keep it on loopback or a monitoring network); a server not named here has none.
    metrics_listen: dict[str, str] = Field(default_factory=dict)

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_addresses(cls, value: dict[str, str]) -> dict[str, str]:
        for address in value.values():
            parse_listen(address)
        return value

    @model_validator(mode="after")
    def _ping_before_idle(self) -> LiveSettings:
        if self.ping_seconds >= self.idle_timeout_seconds:
            raise ValueError("live.ping_seconds must be below live.idle_timeout_seconds")
        return self

    def origins(self, center: CenterSettings) -> tuple[str, ...]:
        return self.browser_origins or (center.public_url,)


class LogSettings(_Section):
    """How the Controller, the live servers and the Center's web processes log."""

    # "text": one readable line per record; "json": one JSON object per line, for a log
    # collector (docs/metrics.md, "Logs").
    format: Literal["text", "json"] = "text"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TOWNHALL_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    data: Path = Path("townhall-data")
    center: CenterSettings = Field(default_factory=CenterSettings)
    manager: ManagerSettings = Field(default_factory=ManagerSettings)
    controller: ControllerSettings = Field(default_factory=ControllerSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)
    recorder: RecorderSettings = Field(default_factory=RecorderSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @property
    def ca_dir(self) -> Path:
        return Path(self.manager.ca_dir) if self.manager.ca_dir else self.data / "pki"

    @property
    def database_url(self) -> str:
        return self.center.database_url or f"sqlite:///{self.data.resolve() / 'townhall.db'}"

    @property
    def web_threads(self) -> int:
        """``center.threads``, or when unset: 4 on SQLite, whose work is CPU in this process
        where more threads only take turns at the GIL; 3 on a database server, whose round
        trips leave the GIL free for other requests, as long as the statements are few and
        quick: with the hot reads' generic plans, 3 served the catalog 20 % more than 6, at
        two thirds of the p99 (bench/README.md, all measured)."""
        if self.center.threads is not None:
            return self.center.threads
        return 4 if self.database_url.startswith("sqlite") else 3

    @property
    def outbox_dir(self) -> Path:
        return self.data / "outbox"


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address must be host:port, got {value!r}")
    return host.strip("[]"), int(port)


def default_data_dir() -> Path:
    return Path(os.environ.get("TOWNHALL_DATA") or "townhall-data")


def load_settings(data: Path | None = None, config_file: Path | None = None) -> Settings:
    """Read settings for the data folder ``data`` (see the module docstring).

    The folder is made private here if it is new, and refused
    (``datafolder.DataFolderError``) if another user could write to it: every
    command gets its settings through this function.
    """
    data = data or default_data_dir()
    open_data_folder(data)
    toml_file = config_file or data / "townhall.toml"
    if config_file is not None and not config_file.exists():
        raise FileNotFoundError(f"config file {config_file} does not exist")

    class _FromFile(Settings):
        @classmethod
        def settings_customise_sources(  # type: ignore[override]
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            **_: Any,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file))

    return _FromFile(data=data)

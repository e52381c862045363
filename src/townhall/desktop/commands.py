"""``townhall events`` and ``townhall client``: scheduling and Centers from the desktop.

``events create|list|cancel`` are the spec's Outlook add-in on the command
line: they use the Center's REST API, through the organisation's reverse
proxy when there is one (``CenterSession`` signs in at it and keeps its
cookie). ``client register|list|events|forget|install-handler`` are the
Communications Gateway: the user's list of Centers, the upcoming events
across them, and the desktop handler for join tickets and ``townhall:``
links. Output is plain text, one record a line, tab-separated where a
script may read it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from townhall.desktop.handler import install_handler
from townhall.desktop.session import (
    CenterSession,
    PasswordSource,
    stdin_password,
    terminal_password,
)
from townhall.desktop.store import CenterEntry, DesktopError, Store, normalize_url

events_app = typer.Typer(
    no_args_is_help=True, help="Schedule events on a Center (through its proxy, if it has one)."
)
client_app = typer.Typer(
    no_args_is_help=True, help="Your Centers, their upcoming events, the join handler."
)

CenterOption = Annotated[
    str | None,
    typer.Option("--center", help="the Center's URL [default: the one registered Center]"),
]
TokenOption = Annotated[
    str,
    typer.Option("--token", help="an API token: no sign-in at the proxy", envvar="TOWNHALL_TOKEN"),
]
UserOption = Annotated[str, typer.Option("--user", help="your user name at the proxy")]
PasswordStdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="read the proxy password from standard input")
]
CaFileOption = Annotated[
    str, typer.Option("--ca-file", help="CA certificates for the Center's TLS (a private CA)")
]

T = TypeVar("T")


def _run(action: Callable[[], T]) -> T:
    try:
        return action()
    except DesktopError as error:
        typer.echo(f"townhall: {error}", err=True)
        raise typer.Exit(1) from error


def _password(password_stdin: bool) -> PasswordSource:
    return stdin_password() if password_stdin else terminal_password


def _center_url(store: Store, center: str | None) -> str:
    if center:
        return normalize_url(center)
    registered = store.centers()
    if len(registered) == 1:
        return registered[0].url
    if not registered:
        raise DesktopError(
            "name the Center with --center URL (or register one: townhall client register URL)"
        )
    names = ", ".join(entry.url for entry in registered)
    raise DesktopError(f"several Centers are registered ({names}): choose one with --center")


def _session(
    store: Store,
    center: str | None,
    token: str,
    user: str,
    password_stdin: bool,
    ca_file: str,
) -> CenterSession:
    return CenterSession(
        _center_url(store, center),
        store=store,
        token=token,
        username=user,
        ca_file=ca_file,
        password=_password(password_stdin),
    )


def local_time(value: str) -> str:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.astimezone().strftime("%Y-%m-%d %H:%M %Z")


def parse_start(value: str, timezone: str) -> datetime:
    """A start time with an offset; a time without one is read in ``timezone`` (or local time)."""
    text = value.strip().replace(" ", "T", 1)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise DesktopError(
            f"--start {value!r}: write it like 2031-03-01T10:00, 2031-03-01 10:00 "
            "or 2031-03-01T10:00+01:00"
        ) from error
    if moment.tzinfo is None:
        if timezone:
            try:
                moment = moment.replace(tzinfo=ZoneInfo(timezone))
            except (ZoneInfoNotFoundError, ValueError) as error:
                raise DesktopError(f"unknown time zone {timezone!r}") from error
        else:
            moment = moment.astimezone()  # the machine's local time
    return moment


_DURATION = re.compile(r"(?:(?P<h>\d{1,2})(?:h|:))?(?P<m>\d{1,4})?m?")


def parse_duration(value: str) -> int:
    """Minutes from ``90``, ``90m``, ``1h``, ``1h30``, ``1h30m`` or ``1:30``."""
    text = value.strip().lower()
    match = _DURATION.fullmatch(text)
    if not text or match is None or not (match.group("h") or match.group("m")):
        raise DesktopError(f"--duration {value!r}: give minutes (90) or hours (1h30m)")
    minutes = int(match.group("h") or 0) * 60 + int(match.group("m") or 0)
    if not 1 <= minutes <= 24 * 60:
        raise DesktopError("--duration must be between 1 minute and 24 hours")
    return minutes


def _event_line(event: dict[str, Any]) -> str:
    return "\t".join(
        [str(event["id"]), local_time(event["starts_at"]), event["status"], event["title"]]
    )


# --- townhall events ------------------------------------------------------------------------


@events_app.command("create")
def events_create(
    title: Annotated[str, typer.Option("--title", help="the event's title")],
    start: Annotated[str, typer.Option("--start", help="e.g. 2031-03-01T10:00 (local time)")],
    duration: Annotated[str, typer.Option("--duration", help="minutes, or e.g. 1h30m")] = "60",
    invite: Annotated[
        list[str] | None, typer.Option("--invite", help="an invitee's email (repeatable)")
    ] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    timezone: Annotated[
        str, typer.Option("--timezone", help="IANA zone of --start and of the event")
    ] = "",
    kind: Annotated[str, typer.Option("--kind", help="meeting, lecture or webinar")] = "meeting",
    visibility: Annotated[str, typer.Option("--visibility", help="private or public")] = "private",
    center: CenterOption = None,
    token: TokenOption = "",
    user: UserOption = "",
    password_stdin: PasswordStdinOption = False,
    ca_file: CaFileOption = "",
) -> None:
    """Schedule an event and send the invitations (the Center mails them)."""

    def create() -> dict[str, Any]:
        body: dict[str, Any] = {
            "title": title,
            "starts_at": parse_start(start, timezone).isoformat(),
            "duration_minutes": parse_duration(duration),
            "kind": kind,
            "visibility": visibility,
            "invitees": list(invite or []),
        }
        if description:
            body["description"] = description
        if timezone:
            body["timezone"] = timezone
        with _session(Store(), center, token, user, password_stdin, ca_file) as session:
            created: dict[str, Any] = session.api("POST", "/events", json=body)
            created["_url"] = f"{session.url}/events/{created['id']}"
            return created

    event = _run(create)
    typer.echo(f"created event {event['id']}: {event['title']}, {local_time(event['starts_at'])}")
    invitees = event.get("invitees") or []
    if invitees:
        typer.echo(f"invited {len(invitees)}: {', '.join(invitees)}")
    typer.echo(event["_url"])


@events_app.command("list")
def events_list(
    when: Annotated[str, typer.Option("--when", help="upcoming, past or all")] = "upcoming",
    search: Annotated[str, typer.Option("--search", help="words in the title or text")] = "",
    center: CenterOption = None,
    token: TokenOption = "",
    user: UserOption = "",
    password_stdin: PasswordStdinOption = False,
    ca_file: CaFileOption = "",
) -> None:
    """List the events you can see: id, start (local time), status, title."""
    if when not in ("upcoming", "past", "all"):
        typer.echo("townhall: --when is upcoming, past or all", err=True)
        raise typer.Exit(2)

    def fetch() -> list[dict[str, Any]]:
        params = {"when": when, "limit": "200"}
        if search:
            params["q"] = search
        with _session(Store(), center, token, user, password_stdin, ca_file) as session:
            page = session.api("GET", "/events", params=params)
            return list(page["items"])

    for event in _run(fetch):
        typer.echo(_event_line(event))


@events_app.command("cancel")
def events_cancel(
    event_id: Annotated[int, typer.Argument(help="the event's id", min=1)],
    center: CenterOption = None,
    token: TokenOption = "",
    user: UserOption = "",
    password_stdin: PasswordStdinOption = False,
    ca_file: CaFileOption = "",
) -> None:
    """Cancel an event you organize (invitees get a cancellation)."""

    def cancel() -> dict[str, Any]:
        with _session(Store(), center, token, user, password_stdin, ca_file) as session:
            result: dict[str, Any] = session.api("DELETE", f"/events/{event_id}")
            return result

    event = _run(cancel)
    typer.echo(f"cancelled event {event['id']}: {event['title']}")


# --- townhall client ------------------------------------------------------------------------


@client_app.command("register")
def client_register(
    url: Annotated[str, typer.Argument(help="the Center's URL, e.g. https://townhall.example.org")],
    token: TokenOption = "",
    user: UserOption = "",
    password_stdin: PasswordStdinOption = False,
    ca_file: CaFileOption = "",
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="sign in now and show who you are")
    ] = True,
) -> None:
    """Add a Center to your list (signing in at its proxy if it asks)."""
    store = Store()

    def register() -> str:
        base = normalize_url(url)
        known = store.center(base) or CenterEntry(base)
        entry = CenterEntry(
            url=base,
            username=user or known.username,
            token=token or known.token,
            ca_file=ca_file or known.ca_file,
        )
        if not check:
            store.save_center(entry)
            return f"registered {base}"
        with CenterSession(
            base,
            store=store,
            token=entry.token,
            username=entry.username,
            ca_file=entry.ca_file,
            password=_password(password_stdin),
        ) as session:
            me = session.api("GET", "/me")
            store.save_center(CenterEntry(base, me["username"], entry.token, entry.ca_file))
        return f"registered {base}: signed in as {me['username']} (via {me['signed_in_via']})"

    typer.echo(_run(register))


@client_app.command("list")
def client_list() -> None:
    """Your Centers: URL, user, and how you are signed in (token, proxy session, none)."""
    store = Store()
    for entry in _run(store.centers):
        if entry.token:
            state = "API token"
        else:
            expiry = store.cookie_expiry(entry.url)
            if expiry is False:
                state = "not signed in"
            elif expiry is None:
                state = "proxy session"
            else:
                until = datetime.fromtimestamp(float(expiry), UTC).astimezone()
                state = f"proxy session until {until:%Y-%m-%d %H:%M %Z}"
        typer.echo(f"{entry.url}\t{entry.username or '-'}\t{state}")


@client_app.command("events")
def client_events(
    days: Annotated[int, typer.Option("--days", min=1, max=3660, help="how far ahead")] = 60,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """Upcoming events across your Centers: start (local time), Center, id, title."""
    store = Store()
    centers = _run(store.centers)
    if not centers:
        typer.echo("townhall: no Center registered (townhall client register URL)", err=True)
        raise typer.Exit(1)
    password = _password(password_stdin)
    horizon = (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows: list[tuple[str, str, str]] = []
    failed = False
    for entry in centers:
        try:
            with CenterSession(
                entry.url,
                store=store,
                token=entry.token,
                username=entry.username,
                ca_file=entry.ca_file,
                password=password,
            ) as session:
                page = session.api(
                    "GET", "/events", params={"when": "upcoming", "to": horizon, "limit": "200"}
                )
        except DesktopError as error:
            typer.echo(f"townhall: {error}", err=True)
            failed = True
            continue
        for event in page["items"]:
            line = "\t".join(
                [local_time(event["starts_at"]), entry.url, str(event["id"]), event["title"]]
            )
            rows.append((event["starts_at"], entry.url, line))
    for _, _, line in sorted(rows):
        typer.echo(line)
    if failed:
        raise typer.Exit(1)


@client_app.command("forget")
def client_forget(url: Annotated[str, typer.Argument(help="the Center's URL")]) -> None:
    """Remove a Center from your list, with its token and proxy session."""
    store = Store()
    if not _run(lambda: store.remove_center(url)):
        typer.echo(f"townhall: {url} is not registered", err=True)
        raise typer.Exit(1)
    typer.echo(f"forgot {normalize_url(url)}")


@client_app.command("install-handler")
def client_install_handler(
    command: Annotated[
        str, typer.Option("--command", help="the townhall program to run [default: this one]")
    ] = "",
) -> None:
    """Open .townhall files and townhall: links with `townhall join` (this user only)."""
    installed = install_handler(command or None)
    typer.echo(f"desktop entry   {installed.desktop_entry}")
    typer.echo(f"mime type       {installed.mime_package}")
    typer.echo(f"defaults        {installed.mimeapps}")
    typer.echo(f"runs            {installed.command} join <file or link>")


def register(app: typer.Typer) -> None:
    """Add ``townhall events`` and ``townhall client`` to the CLI."""
    app.add_typer(events_app, name="events")
    app.add_typer(client_app, name="client")

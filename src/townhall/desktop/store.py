"""What the desktop commands remember, in the user's config folder, readable by the user only.

``$XDG_CONFIG_HOME/townhall/`` (default ``~/.config/townhall/``, mode 0700)
holds ``centers.json`` (the Centers the user registered: URL, user name, API
token, CA file) and ``proxy-cookies.json`` (the reverse proxy's session
cookies per Center, each until it expires). Both are bearer secrets: they are
written mode 0600 by an atomic rename, and never printed. This is the
Communications Gateway's list of Centers from the spec, and the place where
the Outlook add-in's sign-in at the proxy is kept between commands.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from http.cookiejar import Cookie, CookieJar
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

CENTERS_FILE = "centers.json"
COOKIES_FILE = "proxy-cookies.json"


class DesktopError(Exception):
    """A problem the user can act on; the commands print it and exit with status 1."""


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "townhall"


def data_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or ""
    return Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"


def normalize_url(url: str) -> str:
    """A Center's base URL: https or http, host, optional path, no query, no trailing slash."""
    text = url.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise DesktopError(f"not a Center URL (https://host[:port][/path]): {url!r}")
    if parts.username or parts.password:
        raise DesktopError("put no user name or password in the Center's URL")
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path.rstrip("/"), "", ""))


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}"


def write_private(path: Path, data: dict[str, Any]) -> None:
    """Write JSON readable by the user only, replacing the file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2, sort_keys=True)
            file.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise DesktopError(f"cannot read {path}: {error}") from error
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True, slots=True)
class CenterEntry:
    url: str
    username: str = ""
    token: str = ""
    ca_file: str = ""


@dataclass(frozen=True, slots=True)
class StoredCookie:
    name: str
    value: str
    domain: str
    path: str
    secure: bool
    expires: int | None

    def live(self, now: float) -> bool:
        return self.expires is None or self.expires > now


@dataclass
class Store:
    """The config folder; every method reads and writes the files afresh."""

    root: Path = field(default_factory=config_dir)

    # --- Centers ---------------------------------------------------------------------------

    def centers(self) -> list[CenterEntry]:
        entries = _read(self.root / CENTERS_FILE).get("centers", [])
        result = []
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("url"), str):
                result.append(
                    CenterEntry(
                        url=entry["url"],
                        username=str(entry.get("username", "")),
                        token=str(entry.get("token", "")),
                        ca_file=str(entry.get("ca_file", "")),
                    )
                )
        return result

    def center(self, url: str) -> CenterEntry | None:
        wanted = normalize_url(url)
        return next((entry for entry in self.centers() if entry.url == wanted), None)

    def save_center(self, entry: CenterEntry) -> None:
        others = [e for e in self.centers() if e.url != entry.url]
        write_private(self.root / CENTERS_FILE, {"centers": [asdict(e) for e in [*others, entry]]})

    def remove_center(self, url: str) -> bool:
        wanted = normalize_url(url)
        entries = self.centers()
        kept = [e for e in entries if e.url != wanted]
        write_private(self.root / CENTERS_FILE, {"centers": [asdict(e) for e in kept]})
        self.forget_cookies(wanted)
        return len(kept) != len(entries)

    # --- the proxy's cookies ---------------------------------------------------------------

    def cookies(self, url: str, now: float | None = None) -> list[StoredCookie]:
        moment = time.time() if now is None else now
        stored = _read(self.root / COOKIES_FILE).get(origin_of(url), [])
        found = []
        for item in stored if isinstance(stored, list) else []:
            try:
                cookie = StoredCookie(
                    name=str(item["name"]),
                    value=str(item["value"]),
                    domain=str(item["domain"]),
                    path=str(item.get("path", "/")),
                    secure=bool(item.get("secure", False)),
                    expires=int(item["expires"]) if item.get("expires") is not None else None,
                )
            except (KeyError, TypeError, ValueError):
                continue
            if cookie.live(moment):
                found.append(cookie)
        return found

    def save_cookies(self, url: str, cookies: Iterable[StoredCookie]) -> None:
        path = self.root / COOKIES_FILE
        data = _read(path)
        now = time.time()
        live = [asdict(c) for c in cookies if c.live(now)]
        if live:
            data[origin_of(url)] = live
        else:
            data.pop(origin_of(url), None)
        write_private(path, data)

    def forget_cookies(self, url: str) -> None:
        path = self.root / COOKIES_FILE
        data = _read(path)
        if data.pop(origin_of(url), None) is not None:
            write_private(path, data)

    def cookie_expiry(self, url: str) -> int | None | bool:
        """When the stored sign-in ends: a time, None for "when the proxy says", False if none."""
        cookies = self.cookies(url)
        if not cookies:
            return False
        times = [c.expires for c in cookies if c.expires is not None]
        return min(times) if times else None


def load_into(jar: CookieJar, cookies: Iterable[StoredCookie]) -> None:
    for stored in cookies:
        jar.set_cookie(
            Cookie(
                version=0,
                name=stored.name,
                value=stored.value,
                port=None,
                port_specified=False,
                domain=stored.domain,
                domain_specified=stored.domain.startswith("."),
                domain_initial_dot=stored.domain.startswith("."),
                path=stored.path,
                path_specified=True,
                secure=stored.secure,
                expires=stored.expires,
                discard=stored.expires is None,
                comment=None,
                comment_url=None,
                rest={},
            )
        )


def dump_from(jar: CookieJar, url: str) -> list[StoredCookie]:
    host = urlsplit(url).hostname or ""
    # http.cookiejar names a dotless host "host.local" (RFC 2965's effective host name).
    effective = host if "." in host else host + ".local"
    found = []
    for cookie in jar:
        domain = cookie.domain.lstrip(".")
        if cookie.value is None or not (
            effective == domain or effective.endswith("." + domain) or host == domain
        ):
            continue
        found.append(
            StoredCookie(
                name=cookie.name,
                value=cookie.value,
                domain=cookie.domain,
                path=cookie.path,
                secure=bool(cookie.secure),
                expires=int(cookie.expires) if cookie.expires is not None else None,
            )
        )
    return found

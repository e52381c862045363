"""``townhall client install-handler``: ``.townhall`` files and ``townhall:`` links open Townhall.

Following the freedesktop.org specifications, for the current user only: a
desktop entry (``$XDG_DATA_HOME/applications/townhall-join.desktop``) that
runs ``townhall join %u``, a shared-mime-info package declaring
``application/vnd.townhall.ticket`` (``*.townhall``, or a file starting with
the ticket magic ``THT1``), and both made the default in
``$XDG_CONFIG_HOME/mimeapps.list``. The desktop's caches are refreshed when
their tools are installed; nothing outside the user's folders is touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from townhall.desktop.store import data_home

DESKTOP_FILE = "townhall-join.desktop"
TICKET_TYPE = "application/vnd.townhall.ticket"
SCHEME_TYPE = "x-scheme-handler/townhall"

MIME_PACKAGE = """<?xml version="1.0" encoding="UTF-8"?>
<mime-info xmlns="http://www.freedesktop.org/standards/shared-mime-info">
  <mime-type type="application/vnd.townhall.ticket">
    <comment>Townhall join ticket</comment>
    <glob pattern="*.townhall"/>
    <magic priority="60">
      <match type="string" offset="0" value="THT1"/>
    </magic>
  </mime-type>
</mime-info>
"""


@dataclass(frozen=True, slots=True)
class Installed:
    desktop_entry: Path
    mime_package: Path
    mimeapps: Path
    command: str


def _config_home() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    return Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"


def default_command() -> str:
    """The townhall program this process runs as, by absolute path if it can be found."""
    found = shutil.which("townhall")
    if found:
        return str(Path(found).resolve())
    argv0 = Path(sys.argv[0])
    if argv0.name == "townhall" and argv0.exists():
        return str(argv0.resolve())
    return "townhall"


def _quote_exec(argument: str) -> str:
    """An Exec= argument, quoted as the Desktop Entry Specification says."""
    argument = argument.replace("%", "%%")  # field codes start with %
    if argument and not any(c in argument for c in " \t\n\"'\\><~|&;$*?#()`"):
        return argument
    escaped = argument.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
    escaped = escaped.replace("$", "\\$")
    # The spec's second level: a literal backslash in a string value is written "\\".
    return '"' + escaped.replace("\\", "\\\\") + '"'


def desktop_entry(command: str) -> str:
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Version=1.5\n"
        "Name=Townhall\n"
        "GenericName=Live event participant\n"
        "Comment=Join a Townhall event from a ticket file or a townhall: link\n"
        f"Exec={_quote_exec(command)} join %u\n"
        "Terminal=true\n"
        "NoDisplay=true\n"
        "Categories=Network;AudioVideo;\n"
        f"MimeType={TICKET_TYPE};{SCHEME_TYPE};\n"
    )


def _set_defaults(path: Path, types: tuple[str, ...]) -> None:
    """Make the desktop entry the default for ``types``, keeping every other line."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    section = "[Default Applications]"
    wanted = {t: f"{t}={DESKTOP_FILE};" for t in types}
    out: list[str] = []
    in_section = False
    seen_section = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            if in_section:
                out.extend(wanted.values())
                wanted = {}
            in_section = stripped == section
            seen_section = seen_section or in_section
            out.append(line)
            continue
        key = stripped.split("=", 1)[0].strip()
        if in_section and key in types:
            continue  # replaced below
        out.append(line)
    if in_section:
        out.extend(wanted.values())
    elif not seen_section:
        if out and out[-1].strip():
            out.append("")
        out.append(section)
        out.extend(wanted.values())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def _refresh(tool: str, folder: Path) -> None:
    found = shutil.which(tool)
    if found is None:
        return
    try:
        subprocess.run(  # noqa: S603 - a fixed tool on the user's own folder
            [found, str(folder)], check=False, capture_output=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        pass


def install_handler(command: str | None = None) -> Installed:
    program = command or default_command()
    data = data_home()
    applications = data / "applications"
    packages = data / "mime" / "packages"
    applications.mkdir(parents=True, exist_ok=True)
    packages.mkdir(parents=True, exist_ok=True)
    entry = applications / DESKTOP_FILE
    entry.write_text(desktop_entry(program), encoding="utf-8")
    package = packages / "townhall.xml"
    package.write_text(MIME_PACKAGE, encoding="utf-8")
    mimeapps = _config_home() / "mimeapps.list"
    _set_defaults(mimeapps, (TICKET_TYPE, SCHEME_TYPE))
    _refresh("update-mime-database", data / "mime")
    _refresh("update-desktop-database", applications)
    return Installed(entry, package, mimeapps, program)

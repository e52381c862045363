"""``townhall client install-handler`` and the forms ``townhall join`` accepts, without a network.

The handler is installed under a temporary HOME and read back as a desktop
would: the entry's Exec line and MIME types, the shared-mime-info package,
and the defaults in mimeapps.list (other lines kept). Links are parsed into
(Center, event id); a ticket file is read as it is.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from townhall.desktop import DesktopError, register, resolve_join_target
from townhall.desktop.handler import SCHEME_TYPE, TICKET_TYPE, desktop_entry
from townhall.desktop.join import link_target

app = typer.Typer()
register(app)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    return tmp_path


def test_install_handler_writes_entry_mime_type_and_defaults(home: Path) -> None:
    mimeapps = home / ".config" / "mimeapps.list"
    mimeapps.parent.mkdir(parents=True)
    mimeapps.write_text(
        "[Default Applications]\ntext/html=firefox.desktop;\n"
        f"{SCHEME_TYPE}=old.desktop;\n\n[Added Associations]\nimage/png=gimp.desktop;\n"
    )
    result = CliRunner().invoke(
        app, ["client", "install-handler", "--command", "/opt/town hall/bin/townhall"]
    )
    assert result.exit_code == 0, result.output
    entry = (home / ".local/share/applications/townhall-join.desktop").read_text()
    assert 'Exec="/opt/town hall/bin/townhall" join %u\n' in entry
    assert f"MimeType={TICKET_TYPE};{SCHEME_TYPE};\n" in entry
    package = (home / ".local/share/mime/packages/townhall.xml").read_text()
    assert '<glob pattern="*.townhall"/>' in package
    assert 'value="THT1"' in package
    defaults = mimeapps.read_text()
    assert "text/html=firefox.desktop;" in defaults
    assert "image/png=gimp.desktop;" in defaults
    assert f"{SCHEME_TYPE}=townhall-join.desktop;" in defaults
    assert f"{TICKET_TYPE}=townhall-join.desktop;" in defaults
    assert "old.desktop" not in defaults
    # Installing again changes nothing.
    CliRunner().invoke(
        app, ["client", "install-handler", "--command", "/opt/town hall/bin/townhall"]
    )
    assert mimeapps.read_text() == defaults


def test_install_handler_follows_xdg_folders(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "conf"))
    result = CliRunner().invoke(app, ["client", "install-handler", "--command", "townhall"])
    assert result.exit_code == 0, result.output
    assert (home / "data/applications/townhall-join.desktop").exists()
    assert (home / "conf/mimeapps.list").read_text().startswith("[Default Applications]\n")


def test_exec_quoting_follows_the_desktop_entry_spec() -> None:
    assert "Exec=townhall join %u\n" in desktop_entry("townhall")
    assert 'Exec="/a b/c\\\\\\\\d\\\\"e" join %u' in desktop_entry('/a b/c\\d"e')
    assert "Exec=/x%%y join %u" in desktop_entry("/x%y")


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("https://townhall.example.org/events/7", ("https://townhall.example.org", 7)),
        ("https://host:8443/portal/events/12/join", ("https://host:8443/portal", 12)),
        ("townhall://host/events/3", ("https://host", 3)),
        ("townhall:https://host/events/4", ("https://host", 4)),
        ("townhall:https%3A%2F%2Fhost%2Fevents%2F5", ("https://host", 5)),
    ],
)
def test_links_name_a_center_and_an_event(link: str, expected: tuple[str, int]) -> None:
    assert link_target(link) == expected


@pytest.mark.parametrize(
    "link",
    ["https://host/j/1.abc", "townhall:nothing", "ftp://host/events/1", "https://host/events/0"],
)
def test_other_links_are_refused_with_a_reason(link: str) -> None:
    with pytest.raises(DesktopError):
        link_target(link)


def test_a_ticket_file_is_read_as_it_is(tmp_path: Path) -> None:
    ticket = tmp_path / "event-7.townhall"
    ticket.write_bytes(b"THT1" + bytes(range(256)))
    assert resolve_join_target(str(ticket)) == ticket.read_bytes()
    with pytest.raises(DesktopError, match="cannot read"):
        resolve_join_target(str(tmp_path / "missing.townhall"))

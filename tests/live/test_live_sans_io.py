"""townhall.live's core stays pure: no I/O, no clock, no randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import townhall.live

PACKAGE = Path(townhall.live.__file__).parent
CORE = {
    "__init__",
    "admission",
    "backoff",
    "chatlog",
    "dispatch",
    "events",
    "floor",
    "outbox",
    "room",
    "routing",
    "websocket",
}

# As for townhall.wire: the network, the file system, threads, clocks, entropy.
FORBIDDEN = {
    "asyncio",
    "ssl",
    "socket",
    "time",
    "random",
    "secrets",
    "selectors",
    "select",
    "threading",
    "multiprocessing",
    "subprocess",
    "os",
    "io",
    "pathlib",
    "datetime",
    "uuid",
    "importlib",
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            names.add("__import__")
    return names


def test_the_core_modules_are_all_there() -> None:
    assert {path.stem for path in PACKAGE.glob("*.py")} >= CORE


def test_no_core_module_imports_io_clocks_or_randomness() -> None:
    offenders = {
        f"{path.name}: {name}"
        for path in sorted(PACKAGE.glob("*.py"))
        if path.stem in CORE
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN or name == "__import__"
    }
    assert offenders == set()


def test_the_core_imports_of_townhall_only_wire_ticket_and_itself() -> None:
    outside = {
        f"{path.name}: {name}"
        for path in sorted(PACKAGE.glob("*.py"))
        if path.stem in CORE
        for name in imported_modules(path)
        if name.startswith(".")
        or (
            name.split(".")[0] == "townhall"
            and not name.startswith(("townhall.wire", "townhall.live", "townhall.ticket"))
        )
    }
    assert outside == set()

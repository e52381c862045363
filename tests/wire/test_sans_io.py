"""townhall.wire stays pure: no I/O, no clock, no randomness, nothing else of ours."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import townhall.wire

PACKAGE = Path(townhall.wire.__file__).parent

# The brief's five, and their near relatives: other ways to reach the network,
# the file system, threads, a clock or entropy.
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
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            names.add("__import__")
    return names


def test_the_package_has_modules_to_check() -> None:
    assert {path.stem for path in PACKAGE.glob("*.py")} >= {
        "__init__",
        "connection",
        "errors",
        "frames",
        "messages",
        "states",
    }


def test_no_module_of_the_wire_package_imports_io_clocks_or_randomness() -> None:
    offenders = {
        f"{path.name}: {name}"
        for path in sorted(PACKAGE.glob("*.py"))
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN or name == "__import__"
    }
    assert offenders == set()


def test_the_wire_package_imports_nothing_else_of_townhall_and_no_relative_paths() -> None:
    outside = {
        f"{path.name}: {name}"
        for path in sorted(PACKAGE.glob("*.py"))
        for name in imported_modules(path)
        if name.startswith(".")
        or (name.split(".")[0] == "townhall" and not name.startswith("townhall.wire"))
    }
    assert outside == set()


def test_the_only_third_party_import_is_msgspec() -> None:
    third_party = {
        name.split(".")[0]
        for path in PACKAGE.glob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] not in sys.stdlib_module_names
        and name.split(".")[0] not in {"townhall", "__future__"}
    }
    assert third_party == {"msgspec"}

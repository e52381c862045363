"""Imports point one way: the rules of docs/architecture.md, read from the source itself.

Every module under ``src/townhall`` is parsed (never imported) and each import
it makes, at any depth, is checked against the rules below: which component
may import which, which modules must stay sans-IO (no network, file system,
threads, clock or entropy), and that no component imports another inside a
function body, where a reader would not look for it. A failure names the
file and the import.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import townhall

SOURCE = Path(townhall.__file__).parent

# The composition root: it builds each component and hands them to each other.
COMPOSITION_ROOT = frozenset({"cli", "onebox", "schema", "inprocess"})

# The network, the file system, threads, clocks, entropy: what a sans-IO core never imports.
IO_MODULES = frozenset(
    {
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
)
WIRE_MODULES = frozenset(
    {"__init__", "connection", "errors", "frames", "messages", "names", "states"}
)
LIVE_CORE_MODULES = frozenset(
    {
        "__init__", "admission", "backoff", "chatlog", "dispatch", "events", "floor", "lateness",
        "linkrtt", "outbox", "polls", "questions", "room", "routing", "stage", "websocket",
    }
)


@dataclass(frozen=True, slots=True)
class Import:
    source: Path  # the importing file
    module: str  # the dotted module imported, resolved when relative ("__import__" for calls)
    in_function: bool

    @property
    def importer(self) -> str:
        """The importing component: ``center``, ``cli``, ``live`` ..."""
        return component_of(self.source)

    @property
    def imported(self) -> str | None:
        """The imported component of ours, or None for the standard library and others."""
        parts = self.module.split(".")
        if parts[0] != "townhall":
            return None
        return parts[1] if len(parts) > 1 else "townhall"

    def __str__(self) -> str:
        where = " (in a function)" if self.in_function else ""
        return f"{self.source.relative_to(SOURCE)}: {self.module}{where}"


def component_of(path: Path) -> str:
    parts = path.relative_to(SOURCE).parts
    return parts[0] if len(parts) > 1 else path.stem


def dotted_name(path: Path) -> list[str]:
    parts = ["townhall", *path.relative_to(SOURCE).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def imports_of(path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = dotted_name(path) if path.name == "__init__.py" else dotted_name(path)[:-1]

    def visit(node: ast.AST, in_function: bool) -> Iterator[Import]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, alias.name, in_function)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module == "townhall":  # from townhall import ticket: the names are the modules
                for alias in node.names:
                    yield Import(path, f"townhall.{alias.name}", in_function)
            else:
                yield Import(path, module, in_function)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            yield Import(path, "__import__", in_function)
        inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            yield from visit(child, inside)

    yield from visit(tree, False)


@functools.cache
def all_imports() -> tuple[Import, ...]:
    return tuple(found for path in sorted(SOURCE.rglob("*.py")) for found in imports_of(path))


def in_package(name: str, stems: frozenset[str]) -> list[Path]:
    return [path for path in sorted((SOURCE / name).glob("*.py")) if path.stem in stems]


# -- which component may import which ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """``importers`` never import ``forbidden`` (a component name, or every one but ``allowed``)."""

    why: str
    importers: frozenset[str]
    forbidden: frozenset[str] = frozenset()
    allowed: frozenset[str] | None = None  # when set: only these (and themselves)

    def broken_by(self, found: Import) -> bool:
        imported = found.imported
        if found.importer not in self.importers or imported is None:
            return False
        if imported == found.importer:
            return False
        if self.allowed is not None:
            return imported not in self.allowed
        return imported in self.forbidden


EVERY_COMPONENT = frozenset(component_of(path) for path in SOURCE.rglob("*.py"))

RULES = [
    Rule(
        "the Center and the Manager never import each other",
        frozenset({"center"}),
        frozenset({"manager"}),
    ),
    Rule(
        "the Manager and the Center never import each other",
        frozenset({"manager"}),
        frozenset({"center"}),
    ),
    Rule(
        "only the composition root imports the Controller",
        EVERY_COMPONENT - COMPOSITION_ROOT - {"controller"},
        frozenset({"controller"}),
    ),
    Rule(
        "the Controller meets the Center and the Manager through controller.sources",
        frozenset({"controller"}),
        frozenset({"center", "manager", "schema", "inprocess", "onebox", "cli"}),
    ),
    Rule("wire depends on nothing else of ours", frozenset({"wire"}), allowed=frozenset()),
    Rule("store depends on nothing else of ours", frozenset({"store"}), allowed=frozenset()),
    Rule(
        "the ticket, the settings, the data folder and the CA need nothing of ours but wire",
        frozenset({"ticket", "config", "pki", "datafolder"}),
        allowed=frozenset({"wire", "datafolder"}),
    ),
    Rule(
        "the recorder is a participant: client, ticket, wire (and live.backoff), and the store",
        frozenset({"recording"}),
        allowed=frozenset({"client", "ticket", "wire", "live", "objectstore"}),
    ),
    Rule(
        "the object store needs nothing of ours but its settings",
        frozenset({"objectstore"}),
        allowed=frozenset({"config"}),
    ),
]



@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.why)
def test_no_package_imports_one_it_must_not(rule: Rule) -> None:
    broken = {str(found) for found in all_imports() if rule.broken_by(found)}
    assert broken == set()


def test_no_component_imports_another_inside_a_function_body() -> None:
    hidden = {
        str(found)
        for found in all_imports()
        if found.in_function and found.imported not in (None, found.importer)
    }
    assert hidden == set()


# -- the sans-IO cores -----------------------------------------------------------------------------


SANS_IO_CORES = {
    "wire": in_package("wire", WIRE_MODULES),
    "live": in_package("live", LIVE_CORE_MODULES),
    "recording": in_package("recording", frozenset({"mixer"})),
}


def test_the_core_modules_are_all_there() -> None:
    assert {p.stem for p in SANS_IO_CORES["wire"]} == WIRE_MODULES
    assert {p.stem for p in SANS_IO_CORES["live"]} == LIVE_CORE_MODULES


@pytest.mark.parametrize("core", sorted(SANS_IO_CORES))
def test_no_sans_io_core_imports_io_clocks_or_randomness(core: str) -> None:
    offenders = {
        str(found)
        for path in SANS_IO_CORES[core]
        for found in imports_of(path)
        if found.module.split(".")[0] in IO_MODULES or found.module == "__import__"
    }
    assert offenders == set()


def test_the_live_core_imports_of_ours_only_wire_ticket_and_itself() -> None:
    outside = {
        str(found)
        for path in SANS_IO_CORES["live"]
        for found in imports_of(path)
        if found.imported not in (None, "wire", "ticket", "live")
    }
    assert outside == set()


def test_the_only_third_party_import_of_wire_is_msgspec() -> None:
    third_party = {
        found.module.split(".")[0]
        for path in SANS_IO_CORES["wire"]
        for found in imports_of(path)
        if found.module.split(".")[0] not in sys.stdlib_module_names
        and found.module.split(".")[0] not in {"townhall", "__future__"}
    }
    assert third_party == {"msgspec"}

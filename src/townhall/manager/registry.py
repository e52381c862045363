"""The Manager's rules: servers, trees, event trees, enrolment and pull tokens.

Pure functions over a SQLAlchemy ``Session``: input arrives as the pydantic
models below (from the API's JSON, the pages' forms or the CLI), is validated
there, and the functions apply it to the Manager's tables without committing,
so the caller decides the transaction. They raise ``ManagerError`` with the
HTTP status to answer. Nothing here knows the Center's tables: an event is an
integer id the Center hands in (``choose_tree`` and ``event_tree_id`` are the
in-process contract the Center's event page uses). ``docs/manager.md`` explains
trees and enrolment.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from townhall.manager.tables import EventTree, Server, Tree, TreeNode
from townhall.pki import DevCA
from townhall.store.conventions import now_utc
from townhall.web.errors import WebError
from townhall.wire.names import SERVER_NAME_MAX, SERVER_NAME_RULE, Zone, is_server_name

MAX_ID = 2**31 - 1
MAX_NODES = 1000
MAX_CAPACITY = 100_000
MAX_CSR_BYTES = 8192
MAX_SECRET_LENGTH = 200
DEFAULT_CAPACITY = 1000
ZONES = tuple(zone.value for zone in Zone)
# Prefixes make leaked secrets easy to scan for, and tell a server's pull token
# from a user's API token (th_) before any lookup.
ENROL_PREFIX = "the_"
PULL_PREFIX = "thp_"
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_EC_CURVES = (ec.SECP256R1, ec.SECP384R1)
_RSA_BITS = (2048, 16384)


class ManagerError(WebError, ValueError):
    """A request the Manager's rules refuse (``WebError``: status, code, message)."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --- input ----------------------------------------------------------------------------


def check_name(value: str) -> str:
    """A server name: the one rule tickets, certificates and the live servers share, so
    that the Manager never registers a server no ticket could name."""
    if not is_server_name(value):
        raise ValueError(SERVER_NAME_RULE)
    return value


def check_host(value: str) -> str:
    """A DNS name or an IP address (IPv6 with or without brackets), as stored."""
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if address is not None:
        if address.is_unspecified or address.is_multicast:
            raise ValueError(f"{value} is not an address a server can be reached at")
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise ValueError("a scoped IPv6 address (with %zone) is only valid on one host")
        return address.compressed
    name = value.lower()
    if name.endswith("."):
        name = name[:-1]
    labels = name.split(".")
    if (
        not name
        or len(name) > 253
        or not all(_LABEL.fullmatch(label) for label in labels)
        # An all-numeric last label would be a mistyped address, not a name (RFC 3696 §2).
        or labels[-1].isdigit()
    ):
        raise ValueError(f"not a host name or IP address: {value[:80]!r}")
    return name


def parse_address(value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` into a checked host and port."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        raise ValueError(f"an address is host:port with a port 1-65535, got {value[:80]!r}")
    if ":" in host and not host.startswith("["):
        raise ValueError("write an IPv6 address in brackets: [2001:db8::1]:9443")
    return check_host(host), int(port)


Name = Annotated[str, Field(max_length=SERVER_NAME_MAX), AfterValidator(check_name)]
Host = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(check_host)]
Port = Annotated[int, Field(ge=1, le=65535)]
Capacity = Annotated[int, Field(ge=1, le=MAX_CAPACITY)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class ServerIn(BaseModel):
    """A live server as an administrator registers it."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    host: Host
    port: Port
    zone: Zone = Zone.INTERNAL
    capacity: Capacity = DEFAULT_CAPACITY


class ServerPatch(BaseModel):
    """A change to a server: only the keys present are changed (the name is fixed)."""

    model_config = ConfigDict(extra="forbid")

    host: Host | None = None
    port: Port | None = None
    zone: Zone | None = None
    capacity: Capacity | None = None


class NodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    server: Name
    parent: Name | None = None


class TreeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    nodes: list[NodeIn] = Field(default_factory=list, max_length=MAX_NODES)


class TreeReplace(BaseModel):
    """A tree's whole node list, and optionally a new name."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    nodes: list[NodeIn] = Field(max_length=MAX_NODES)


class EventTreeIn(BaseModel):
    """The tree an event uses; ``null`` goes back to the default tree."""

    model_config = ConfigDict(extra="forbid")

    tree_id: Id | None


class EnrolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    secret: str = Field(min_length=1, max_length=MAX_SECRET_LENGTH)
    csr_pem: str = Field(min_length=1, max_length=MAX_CSR_BYTES)


# --- servers --------------------------------------------------------------------------


def list_servers(session: Session) -> list[Server]:
    return list(session.scalars(select(Server).order_by(Server.name)))


def server_by_name(session: Session, name: str) -> Server | None:
    return session.scalar(select(Server).where(Server.name == name))


def get_server(session: Session, server_id: int) -> Server:
    server = session.get(Server, server_id)
    if server is None:
        raise ManagerError(404, "server_not_found", f"no server {server_id}")
    return server


def create_server(session: Session, data: ServerIn) -> Server:
    if server_by_name(session, data.name) is not None:
        raise ManagerError(409, "server_name_taken", f"a server {data.name} already exists")
    server = Server(
        name=data.name,
        host=data.host,
        port=data.port,
        zone=data.zone.value,
        capacity=data.capacity,
    )
    session.add(server)
    _flush(session, "server_name_taken", f"a server {data.name} already exists")
    return server


def update_server(session: Session, server: Server, patch: ServerPatch) -> Server:
    # JSON mode: a zone is stored as its plain string, not as the enum.
    for key, value in patch.model_dump(mode="json", exclude_unset=True).items():
        if value is None:
            raise ManagerError(422, "invalid_input", f"{key}: may not be null")
        setattr(server, key, value)
    session.flush()
    return server


def delete_server(session: Session, server: Server) -> None:
    trees = trees_of(session, server)
    if trees:
        names = ", ".join(tree.name for tree, _ in trees)
        raise ManagerError(
            409, "server_in_use", f"{server.name} is part of the trees {names}: take it out first"
        )
    session.delete(server)
    session.flush()


def trees_of(session: Session, server: Server) -> list[tuple[Tree, TreeNode]]:
    rows = session.execute(
        select(Tree, TreeNode)
        .join(TreeNode, TreeNode.tree_id == Tree.id)
        .where(TreeNode.server_id == server.id)
        .order_by(Tree.name)
    )
    return [(tree, node) for tree, node in rows]


def enrolment_state(server: Server, now: datetime | None = None) -> str:
    """``enrolled``, ``pending`` (a secret is out), ``expired`` or ``new``; pending wins."""
    now = now or now_utc()
    if server.enrol_digest is not None and server.enrol_expires_at is not None:
        if server.enrol_expires_at > now:
            return "pending"
        if server.enrolled_at is None:
            return "expired"
    return "enrolled" if server.enrolled_at is not None else "new"


# --- trees ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    """A server's place in a resolved tree: its parent's name and its depth (main: 0)."""

    server: Server
    parent: str | None
    depth: int
    children: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Resolved:
    tree: Tree
    nodes: tuple[Node, ...]  # the main first, then level by level, by name

    @property
    def main(self) -> Node | None:
        return self.nodes[0] if self.nodes else None


def list_trees(session: Session) -> list[Tree]:
    return list(session.scalars(select(Tree).order_by(Tree.name)))


def get_tree(session: Session, tree_id: int) -> Tree:
    tree = session.get(Tree, tree_id)
    if tree is None:
        raise ManagerError(404, "tree_not_found", f"no tree {tree_id}")
    return tree


def default_tree(session: Session) -> Tree | None:
    return session.scalar(select(Tree).where(Tree.is_default.is_(True)))


def _tree_order(
    places: dict[int, tuple[int | None, str]],
) -> list[tuple[int, int | None, int, list[int]]]:
    """A tree's servers (id: parent id, name) as (id, parent id, depth, child ids): the
    main first, then level by level, siblings by name (the order tickets list them in)."""
    children: dict[int | None, list[int]] = {}
    for server_id, (parent_id, _) in places.items():
        children.setdefault(parent_id, []).append(server_id)
    for ids in children.values():
        ids.sort(key=lambda server_id: places[server_id][1])
    ordered: list[tuple[int, int | None, int, list[int]]] = []
    queue: deque[tuple[int, int | None, int]] = deque((i, None, 0) for i in children.get(None, []))
    while queue:
        server_id, parent_id, depth = queue.popleft()
        below = children.get(server_id, [])
        ordered.append((server_id, parent_id, depth, below))
        queue.extend((child, server_id, depth + 1) for child in below)
    return ordered


def resolve(session: Session, tree: Tree) -> Resolved:
    rows = session.execute(
        select(TreeNode, Server)
        .join(Server, Server.id == TreeNode.server_id)
        .where(TreeNode.tree_id == tree.id)
    )
    by_id = {server.id: (node, server) for node, server in rows}
    places = {i: (node.parent_server_id, server.name) for i, (node, server) in by_id.items()}
    return Resolved(
        tree,
        tuple(
            Node(
                by_id[server_id][1],
                by_id[parent_id][1].name if parent_id is not None else None,
                depth,
                tuple(by_id[child][1].name for child in below),
            )
            for server_id, parent_id, depth, below in _tree_order(places)
        ),
    )


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """Where participants reach a server of a tree (what a join ticket lists)."""

    name: str
    host: str
    port: int
    zone: str


# ``event_tree`` as one statement of plain rows, built once: the tree the event chose, else
# the default, with its servers (a tree without servers: one row of NULLs after its name).
# Of the tables, not the mapped classes, whose attributes would take it through the ORM's
# execution (85 us more a statement; bench/README.md, eleventh pass): every ticket asks.
_TREES, _NODES = cast("Table", Tree.__table__), cast("Table", TreeNode.__table__)
_SERVERS, _EVENT_TREES = cast("Table", Server.__table__), cast("Table", EventTree.__table__)
_EVENT_TREE_SERVERS = (
    select(
        _TREES.c.name.label("tree_name"),
        _NODES.c.server_id,
        _NODES.c.parent_server_id,
        _SERVERS.c.name,
        _SERVERS.c.host,
        _SERVERS.c.port,
        _SERVERS.c.zone,
    )
    .select_from(_TREES)
    .outerjoin(_NODES, _NODES.c.tree_id == _TREES.c.id)
    .outerjoin(_SERVERS, _SERVERS.c.id == _NODES.c.server_id)
    .where(
        _TREES.c.id
        == func.coalesce(
            select(_EVENT_TREES.c.tree_id)
            .where(_EVENT_TREES.c.event_id == bindparam("event_id"))
            .scalar_subquery(),
            select(_TREES.c.id).where(_TREES.c.is_default.is_(True)).scalar_subquery(),
        )
    )
)


def event_tree_servers(session: Session, event_id: int) -> tuple[str, list[ServerAddress]]:
    """The name and servers, in tree order, of the event's tree (``event_tree``'s), in
    one statement: a join ticket asks for them. ManagerError 404 as ``event_tree``."""
    rows = session.execute(_EVENT_TREE_SERVERS, {"event_id": event_id}).all()
    if not rows:
        raise ManagerError(
            404, "no_tree", f"event {event_id} has no tree and there is no default tree"
        )
    by_id = {row.server_id: row for row in rows if row.server_id is not None}
    places = {i: (row.parent_server_id, row.name) for i, row in by_id.items()}
    return rows[0].tree_name, [
        ServerAddress(name=row.name, host=row.host, port=row.port, zone=row.zone)
        for row in (by_id[server_id] for server_id, *_ in _tree_order(places))
    ]


def _checked_nodes(session: Session, nodes: list[NodeIn]) -> list[tuple[Server, Server | None]]:
    """The node list checked as a whole, as (server, parent) pairs, parents first."""
    parent_of: dict[str, str | None] = {}
    for node in nodes:
        if node.server in parent_of:
            raise ManagerError(
                422, "duplicate_server", f"{node.server} appears twice: a server is in a tree once"
            )
        parent_of[node.server] = node.parent
    if not nodes:
        return []
    servers = {s.name: s for s in session.scalars(select(Server).where(Server.name.in_(parent_of)))}
    unknown = sorted(set(parent_of) - set(servers))
    if unknown:
        raise ManagerError(422, "unknown_server", f"no server {', '.join(unknown[:10])}")
    mains = [name for name, parent in parent_of.items() if parent is None]
    if len(mains) > 1:
        raise ManagerError(
            422, "two_mains", f"a tree has one main server (no parent), not {', '.join(mains[:10])}"
        )
    for name, parent in parent_of.items():
        if parent is not None and parent not in parent_of:
            raise ManagerError(
                422,
                "foreign_parent",
                f"the parent of {name}, {parent}, is not in this tree: add it first",
            )
    if not mains:
        raise ManagerError(
            422, "no_main", "one server must be the main server (no parent); these form a cycle"
        )
    below: dict[str, list[str]] = {}
    for name, parent in parent_of.items():
        if parent is not None:
            below.setdefault(parent, []).append(name)
    ordered: list[str] = []
    queue = deque(mains)
    while queue:
        name = queue.popleft()
        ordered.append(name)
        queue.extend(sorted(below.get(name, [])))
    if len(ordered) != len(parent_of):
        stuck = sorted(set(parent_of) - set(ordered))
        raise ManagerError(
            422,
            "cycle",
            f"{', '.join(stuck[:10])} form a cycle: every server must lead up to the main",
        )
    return [
        (servers[name], servers[parent] if (parent := parent_of[name]) is not None else None)
        for name in ordered
    ]


def _set_nodes(session: Session, tree: Tree, pairs: list[tuple[Server, Server | None]]) -> None:
    session.execute(delete(TreeNode).where(TreeNode.tree_id == tree.id))
    # Parents first: the database checks each parent is already a node of the tree.
    for server, parent in pairs:
        session.add(
            TreeNode(
                tree_id=tree.id,
                server_id=server.id,
                parent_server_id=parent.id if parent is not None else None,
            )
        )
    session.flush()


def _name_free(session: Session, name: str, tree: Tree | None = None) -> None:
    other = session.scalar(select(Tree).where(Tree.name == name))
    if other is not None and other is not tree:
        raise ManagerError(409, "tree_name_taken", f"a tree {name} already exists")


def create_tree(session: Session, data: TreeIn) -> Tree:
    _name_free(session, data.name)
    pairs = _checked_nodes(session, data.nodes)
    tree = Tree(name=data.name, is_default=False)
    session.add(tree)
    _flush(session, "tree_name_taken", f"a tree {data.name} already exists")
    _set_nodes(session, tree, pairs)
    return tree


def replace_tree(session: Session, tree: Tree, data: TreeReplace) -> Tree:
    if data.name is not None and data.name != tree.name:
        _name_free(session, data.name, tree)
        tree.name = data.name
    pairs = _checked_nodes(session, data.nodes)
    _flush(session, "tree_name_taken", f"a tree {tree.name} already exists")
    _set_nodes(session, tree, pairs)
    return tree


def delete_tree(session: Session, tree: Tree) -> None:
    """Delete a tree; events that had chosen it go back to the default tree."""
    session.delete(tree)
    session.flush()


def make_default(session: Session, tree: Tree) -> Tree:
    session.execute(
        update(Tree).where(Tree.is_default.is_(True), Tree.id != tree.id).values(is_default=False)
    )
    tree.is_default = True
    _flush(session, "default_changed", "another default was set at the same time; retry")
    return tree


# --- events -------------------------------------------------------------------------------


def event_tree_id(session: Session, event_id: int) -> int | None:
    """The tree an event chose, or None when it uses the default tree."""
    return session.scalar(select(EventTree.tree_id).where(EventTree.event_id == event_id))


def choose_tree(session: Session, event_id: int, tree_id: int | None) -> Tree | None:
    """Give the event ``tree_id``, or the default tree again with ``None``.

    The caller has checked that the event exists and who may change it: the
    Manager knows events only by id.
    """
    if not 1 <= event_id <= MAX_ID:
        raise ManagerError(422, "invalid_input", "event_id: out of range")
    tree = get_tree(session, tree_id) if tree_id is not None else None
    existing = session.get(EventTree, event_id)
    if tree is None:
        if existing is not None:
            session.delete(existing)
    elif existing is None:
        session.add(EventTree(event_id=event_id, tree_id=tree.id))
    else:
        existing.tree_id = tree.id
        existing.chosen_at = now_utc()
    _flush(session, "tree_changed", "the event's tree was changed at the same time; retry")
    return tree


def event_tree(session: Session, event_id: int) -> tuple[Resolved, bool]:
    """The event's resolved tree and whether it was chosen (else it is the default)."""
    chosen = event_tree_id(session, event_id)
    tree = session.get(Tree, chosen) if chosen is not None else default_tree(session)
    if tree is None:
        raise ManagerError(
            404, "no_tree", f"event {event_id} has no tree and there is no default tree"
        )
    return resolve(session, tree), chosen is not None


# --- enrolment and pull tokens -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enrolment:
    certificate_pem: str
    ca_pem: str
    pull_token: str


def start_enrolment(session: Session, server: Server, hours: float) -> tuple[str, datetime]:
    """A new one-time secret for ``server`` (any earlier one stops working); shown once.

    A server registered before the name rule was shared (``-edge`` was once
    accepted) is refused: no ticket, certificate or live server takes its name.
    """
    if not is_server_name(server.name):
        raise ManagerError(
            422,
            "invalid_server_name",
            f"{server.name[:80]!r} cannot be enrolled: a server name is {SERVER_NAME_RULE}; "
            "register the server again under such a name",
        )
    secret = ENROL_PREFIX + secrets.token_urlsafe(32)
    expires = now_utc() + timedelta(hours=hours)
    server.enrol_digest = digest(secret)
    server.enrol_expires_at = expires
    session.flush()
    return secret, expires


def _checked_csr(csr_pem: str) -> bytes:
    try:
        data = csr_pem.encode("ascii")
        csr = x509.load_pem_x509_csr(data)
        key = csr.public_key()
        signed = csr.is_signature_valid
    except (ValueError, TypeError, UnicodeError) as error:
        raise ManagerError(
            422, "invalid_csr", "csr_pem is not a PEM certificate request"
        ) from error
    except Exception as error:  # noqa: BLE001 - cryptography's UnsupportedAlgorithm and kin
        raise ManagerError(422, "invalid_csr", f"the request cannot be read: {error}") from error
    if not signed:
        raise ManagerError(422, "invalid_csr", "the request's signature does not verify")
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _EC_CURVES):
            raise ManagerError(422, "weak_key", "EC keys must be on P-256 or P-384")
    elif isinstance(key, rsa.RSAPublicKey):
        if not _RSA_BITS[0] <= key.key_size <= _RSA_BITS[1]:
            raise ManagerError(422, "weak_key", "RSA keys must have 2048 to 16384 bits")
    else:
        raise ManagerError(422, "weak_key", "the key must be EC P-256, P-384 or RSA >= 2048 bits")
    return data


def enrol(session: Session, ca: DevCA, data: EnrolIn) -> Enrolment:
    """Check the one-time secret, certify the request's key, hand out a pull token.

    The secret is consumed only when everything succeeds, and by a conditional
    update, so of two racing uses (even in two Manager processes) one wins.
    """
    server = server_by_name(session, data.name)
    expected = server.enrol_digest if server is not None else None
    # Compare against something even for an unknown name, so timing names nothing.
    matches = hmac.compare_digest(digest(data.secret), expected or digest(secrets.token_hex(16)))
    if server is None or expected is None or not matches:
        raise ManagerError(
            403, "enrolment_refused", "unknown server, or a wrong or already used secret"
        )
    now = now_utc()
    if server.enrol_expires_at is None or server.enrol_expires_at <= now:
        raise ManagerError(
            403,
            "enrolment_expired",
            f"the secret has expired: run `townhall manager enroll {server.name}` again",
        )
    csr = _checked_csr(data.csr_pem)
    certificate = ca.sign_csr(csr, server.name, [server.host], client=True)
    fingerprint = x509.load_pem_x509_certificate(certificate).fingerprint(hashes.SHA256()).hex()
    token = PULL_PREFIX + secrets.token_urlsafe(32)
    consumed = session.execute(
        update(Server)
        .where(Server.id == server.id, Server.enrol_digest == expected)
        .values(
            enrol_digest=None,
            enrol_expires_at=None,
            enrolled_at=now,
            pull_token_digest=digest(token),
            cert_fingerprint=fingerprint,
        )
        .execution_options(synchronize_session=False)
    )
    if consumed.rowcount != 1:  # type: ignore[attr-defined]
        raise ManagerError(403, "enrolment_refused", "this secret was used at the same time")
    session.expire(server)
    return Enrolment(
        certificate_pem=certificate.decode(),
        ca_pem=ca.cert_file.read_text(),
        pull_token=token,
    )


def server_for_pull_token(session: Session, token: str) -> Server | None:
    if not token.startswith(PULL_PREFIX) or len(token) > MAX_SECRET_LENGTH:
        return None
    return session.scalar(select(Server).where(Server.pull_token_digest == digest(token)))


def placements(session: Session, server: Server) -> list[tuple[Resolved, Node]]:
    """Every tree the server is in, resolved, with its node there."""
    placed = []
    for tree, _ in trees_of(session, server):
        resolved = resolve(session, tree)
        for node in resolved.nodes:
            if node.server.id == server.id:
                placed.append((resolved, node))
    return placed


def _flush(session: Session, code: str, message: str) -> None:
    """Flush, turning a uniqueness race with another process into a 409."""
    try:
        session.flush()
    except IntegrityError as error:
        session.rollback()
        raise ManagerError(409, code, message) from error

"""The Manager's JSON API under ``/manager/api/v1``: servers, trees, event trees, enrolment.

Three kinds of caller: administrators (identified as by the Center's API:
proxy SSO, API token or portal session), live servers with the pull token
they got at enrolment, and a server enrolling with its one-time secret.
Errors are the web shell's ``{"error": {"code", "message"}}`` with a 4xx
status (``townhall.web.errors``; ``ManagerError`` is one of that family).
Administrators are identified by the shell (``web.deps.api_viewer``). Path values are
bounded here and bodies by the models in ``registry``, so bad input never
becomes a 5xx. ``docs/manager.md`` lists the routes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from townhall.manager import registry
from townhall.manager.registry import (
    MAX_ID,
    EnrolIn,
    EventTreeIn,
    ManagerError,
    ServerIn,
    ServerPatch,
    TreeIn,
    TreeReplace,
)
from townhall.manager.tables import Server, Tree
from townhall.pki import DevCA
from townhall.store.conventions import utc
from townhall.web.deps import DB, api_viewer
from townhall.web.errors import ERRORS, WebError
from townhall.web.shell import Person, Viewer, shell_of

ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]

router = APIRouter(prefix="/manager/api/v1", tags=["manager"])


# --- who is asking ------------------------------------------------------------------------


def _bearer(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise WebError(401, "bad_authorization", "only Bearer tokens are accepted")
    return value.strip()


def _admin(request: Request, session: Session) -> Viewer[Person]:
    viewer = api_viewer(request, session)
    if viewer.user is None or viewer.user.role != "admin":
        raise WebError(403, "not_admin", "only administrators manage servers and trees")
    return viewer


def admin(request: Request, session: DB) -> Viewer[Person]:
    return _admin(request, session)


def _pulling_server(request: Request, session: Session) -> Server | None:
    """The enrolled server a pull token names; None when the caller sent no pull token."""
    value = _bearer(request)
    if value is None or not value.startswith(registry.PULL_PREFIX):
        return None
    server = registry.server_for_pull_token(session, value)
    if server is None:
        raise ManagerError(
            401, "bad_pull_token", "the pull token is unknown, or a later enrolment replaced it"
        )
    return server


def pulling_server(request: Request, session: DB) -> Server:
    server = _pulling_server(request, session)
    if server is None:
        raise ManagerError(
            401, "pull_token_required", "send Authorization: Bearer <pull token from enrolment>"
        )
    return server


Admin = Annotated[Viewer[Person], Depends(admin)]
Puller = Annotated[Server, Depends(pulling_server)]


# --- response models ------------------------------------------------------------------------


class ServerOut(BaseModel):
    id: int
    name: str
    host: str
    port: int
    zone: str
    capacity: int
    created_at: datetime
    enrolment: str = Field(description="new, pending (a secret is out), expired or enrolled")
    enrolment_expires_at: datetime | None
    enrolled_at: datetime | None
    certificate_fingerprint: str | None = Field(description="SHA-256 of the certificate, hex")
    trees: list[str]


class NodeOut(BaseModel):
    server: str
    host: str
    port: int
    zone: str
    capacity: int
    parent: str | None
    depth: int


class TreeOut(BaseModel):
    id: int
    name: str
    is_default: bool
    main: str | None
    nodes: list[NodeOut] = Field(description="the main first, then level by level")
    created_at: datetime


class EventTreeOut(BaseModel):
    event_id: int
    chosen: bool = Field(description="false when the event uses the default tree")
    tree_id: int
    tree: str
    is_default: bool
    main: str | None
    nodes: list[NodeOut]


class PlacementOut(BaseModel):
    tree_id: int
    tree: str
    is_default: bool
    main: str
    parent: str | None
    depth: int
    children: list[str]


class SelfOut(BaseModel):
    name: str
    host: str
    port: int
    zone: str
    capacity: int
    certificate_fingerprint: str | None
    controller: str = Field(description="host:port of the Controller to keep a link to")
    lead_minutes: int = Field(description="how long before an event's start trees form")
    trees: list[PlacementOut]


class EnrolOut(BaseModel):
    certificate_pem: str
    ca_pem: str
    pull_token: str = Field(description="shown once; only its digest is kept")


def _server_out(session: Session, server: Server) -> ServerOut:
    return ServerOut(
        id=server.id,
        name=server.name,
        host=server.host,
        port=server.port,
        zone=server.zone,
        capacity=server.capacity,
        created_at=utc(server.created_at),
        enrolment=registry.enrolment_state(server),
        enrolment_expires_at=utc(server.enrol_expires_at) if server.enrol_expires_at else None,
        enrolled_at=utc(server.enrolled_at) if server.enrolled_at else None,
        certificate_fingerprint=server.cert_fingerprint,
        trees=[tree.name for tree, _ in registry.trees_of(session, server)],
    )


def _nodes_out(resolved: registry.Resolved) -> list[NodeOut]:
    return [
        NodeOut(
            server=node.server.name,
            host=node.server.host,
            port=node.server.port,
            zone=node.server.zone,
            capacity=node.server.capacity,
            parent=node.parent,
            depth=node.depth,
        )
        for node in resolved.nodes
    ]


def _tree_out(session: Session, tree: Tree) -> TreeOut:
    resolved = registry.resolve(session, tree)
    return TreeOut(
        id=tree.id,
        name=tree.name,
        is_default=tree.is_default,
        main=resolved.main.server.name if resolved.main else None,
        nodes=_nodes_out(resolved),
        created_at=utc(tree.created_at),
    )


def _event_tree_out(session: Session, event_id: int) -> EventTreeOut:
    resolved, chosen = registry.event_tree(session, event_id)
    return EventTreeOut(
        event_id=event_id,
        chosen=chosen,
        tree_id=resolved.tree.id,
        tree=resolved.tree.name,
        is_default=resolved.tree.is_default,
        main=resolved.main.server.name if resolved.main else None,
        nodes=_nodes_out(resolved),
    )


# --- servers -------------------------------------------------------------------------------


@router.get("/servers", response_model=list[ServerOut], responses=ERRORS)
def list_servers(session: DB, _: Admin) -> list[ServerOut]:
    return [_server_out(session, s) for s in registry.list_servers(session)]


@router.post("/servers", status_code=201, response_model=ServerOut, responses=ERRORS)
def create_server(session: DB, _: Admin, body: ServerIn) -> ServerOut:
    server = registry.create_server(session, body)
    session.commit()
    return _server_out(session, server)


@router.get("/servers/{server_id}", response_model=ServerOut, responses=ERRORS)
def get_server(session: DB, _: Admin, server_id: ItemId) -> ServerOut:
    return _server_out(session, registry.get_server(session, server_id))


@router.patch("/servers/{server_id}", response_model=ServerOut, responses=ERRORS)
def update_server(session: DB, _: Admin, server_id: ItemId, body: ServerPatch) -> ServerOut:
    server = registry.update_server(session, registry.get_server(session, server_id), body)
    session.commit()
    return _server_out(session, server)


@router.delete("/servers/{server_id}", status_code=204, responses=ERRORS)
def delete_server(session: DB, _: Admin, server_id: ItemId) -> Response:
    """Forget a server and its credentials; refused while a tree holds it."""
    registry.delete_server(session, registry.get_server(session, server_id))
    session.commit()
    return Response(status_code=204)


# --- trees ------------------------------------------------------------------------------------


@router.get("/trees", response_model=list[TreeOut], responses=ERRORS)
def list_trees(session: DB, _: Admin) -> list[TreeOut]:
    return [_tree_out(session, t) for t in registry.list_trees(session)]


@router.post("/trees", status_code=201, response_model=TreeOut, responses=ERRORS)
def create_tree(session: DB, _: Admin, body: TreeIn) -> TreeOut:
    tree = registry.create_tree(session, body)
    session.commit()
    return _tree_out(session, tree)


@router.get("/trees/{tree_id}", response_model=TreeOut, responses=ERRORS)
def get_tree(session: DB, _: Admin, tree_id: ItemId) -> TreeOut:
    return _tree_out(session, registry.get_tree(session, tree_id))


@router.put("/trees/{tree_id}", response_model=TreeOut, responses=ERRORS)
def replace_tree(session: DB, _: Admin, tree_id: ItemId, body: TreeReplace) -> TreeOut:
    """Replace the whole node list (checked as a whole), and the name if one is given."""
    tree = registry.replace_tree(session, registry.get_tree(session, tree_id), body)
    session.commit()
    return _tree_out(session, tree)


@router.delete("/trees/{tree_id}", status_code=204, responses=ERRORS)
def delete_tree(session: DB, _: Admin, tree_id: ItemId) -> Response:
    """Delete a tree; events that had chosen it use the default tree again."""
    registry.delete_tree(session, registry.get_tree(session, tree_id))
    session.commit()
    return Response(status_code=204)


@router.post("/trees/{tree_id}/default", response_model=TreeOut, responses=ERRORS)
def make_default(session: DB, _: Admin, tree_id: ItemId) -> TreeOut:
    tree = registry.make_default(session, registry.get_tree(session, tree_id))
    session.commit()
    return _tree_out(session, tree)


# --- event trees --------------------------------------------------------------------------------


@router.get("/events/{event_id}/tree", response_model=EventTreeOut, responses=ERRORS)
def event_tree(request: Request, session: DB, event_id: ItemId) -> EventTreeOut:
    """The event's tree (its choice, else the default), for admins and the tree's servers."""
    server = _pulling_server(request, session)
    if server is None:
        _admin(request, session)
    answer = _event_tree_out(session, event_id)
    if server is not None and server.name not in {node.server for node in answer.nodes}:
        raise ManagerError(403, "not_in_tree", "this server is not in the event's tree")
    return answer


@router.put("/events/{event_id}/tree", response_model=EventTreeOut, responses=ERRORS)
def choose_tree(session: DB, _: Admin, event_id: ItemId, body: EventTreeIn) -> EventTreeOut:
    """Give the event a tree (``null``: the default again). The Manager does not know
    whether the Center has such an event; event managers choose on the Center's page."""
    registry.choose_tree(session, event_id, body.tree_id)
    session.commit()
    return _event_tree_out(session, event_id)


# --- live servers ---------------------------------------------------------------------------------


@router.post("/enroll", response_model=EnrolOut, responses=ERRORS)
def enroll(request: Request, response: Response, session: DB, body: EnrolIn) -> EnrolOut:
    """Trade the one-time secret and a certificate request for credentials."""
    settings = shell_of(request).settings
    enrolment = registry.enrol(session, DevCA.ensure(settings.ca_dir), body)
    session.commit()
    response.headers["cache-control"] = "no-store"
    return EnrolOut(
        certificate_pem=enrolment.certificate_pem,
        ca_pem=enrolment.ca_pem,
        pull_token=enrolment.pull_token,
    )


@router.get("/self", response_model=SelfOut, responses=ERRORS)
def self_config(request: Request, session: DB, server: Puller) -> SelfOut:
    """The configuration an enrolled server pulls: itself, its trees, the Controller."""
    settings = shell_of(request).settings
    return SelfOut(
        name=server.name,
        host=server.host,
        port=server.port,
        zone=server.zone,
        capacity=server.capacity,
        certificate_fingerprint=server.cert_fingerprint,
        controller=settings.controller.listen,
        lead_minutes=settings.controller.lead_minutes,
        trees=[
            PlacementOut(
                tree_id=resolved.tree.id,
                tree=resolved.tree.name,
                is_default=resolved.tree.is_default,
                main=resolved.main.server.name if resolved.main else node.server.name,
                parent=node.parent,
                depth=node.depth,
                children=list(node.children),
            )
            for resolved, node in registry.placements(session, server)
        ],
    )

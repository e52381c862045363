"""The Manager's admin pages under ``/manager``: servers, trees, the default tree.

Server-rendered in the site's frame like the Center's portal: the templates
in ``templates/`` extend the web shell's ``base.html`` and are rendered by
``townhall.web.render.Pages`` (same sign-in, CSRF token, security headers).
Only administrators see these pages (``AdminPage``, ``AdminPost``: the web
shell's ``SignedIn`` dependency, which checks a post's CSRF token first).
Every rule lives in ``registry``, shared with the JSON API; this module turns
forms into its models and results into pages. Enrolment secrets are made by
``townhall manager enroll`` on the command line, never shown here.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from townhall.manager import registry
from townhall.manager.api import ItemId
from townhall.manager.registry import ManagerError, NodeIn, ServerIn, ServerPatch, TreeReplace
from townhall.manager.tables import Server, Tree
from townhall.web.deps import DB, Done, SignedIn
from townhall.web.errors import redirect
from townhall.web.render import Pages
from townhall.web.shell import Person

HERE = FilePath(__file__).parent
PAGES = Pages(HERE / "templates")
# Form values for "not in this tree" and "main server": server names cannot contain ':'.
OUT = ":out"
MAIN = ":main"
MAX_FORM_ROWS = registry.MAX_NODES
NOTICES = {
    "server_added": "The server is registered. Enrol it with: townhall manager enroll NAME",
    "server_saved": "The server is saved.",
    "server_deleted": "The server is deleted.",
    "tree_added": "The tree is created: place its servers below.",
    "tree_saved": "The tree is saved.",
    "tree_deleted": "The tree is deleted; events that used it use the default tree.",
    "default_set": "This is now the default tree.",
}
STATES = {
    "new": "not enrolled",
    "pending": "secret issued, waiting",
    "expired": "secret expired",
    "enrolled": "enrolled",
}

router = APIRouter(prefix="/manager", include_in_schema=False)


NOT_ADMIN = "only administrators manage servers and trees"
# An administrator asking a page, or posting one of its forms (CSRF checked first).
AdminPage = Annotated[Person, Depends(SignedIn(admin=NOT_ADMIN))]
AdminPost = Annotated[Person, Depends(SignedIn(form=True, admin=NOT_ADMIN))]


def render(request: Request, name: str, context: dict[str, Any], *, status: int = 200) -> Response:
    return PAGES.render(request, name, context, status=status)


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors()[:20]:
        location = ".".join(str(part) for part in item.get("loc", ()))
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        problems.append(f"{location or 'form'}: {message}")
    return problems


# --- servers ---------------------------------------------------------------------------------


class ServerForm(BaseModel):
    name: str = ""
    host: str = ""
    port: str = ""
    zone: str = "internal"
    capacity: str = str(registry.DEFAULT_CAPACITY)


def _servers_page(
    request: Request,
    session: Session,
    *,
    form: ServerForm | None = None,
    notice: str = "",
    errors: list[str] | None = None,
    status: int = 200,
) -> Response:
    servers = registry.list_servers(session)
    context = {
        "servers": [(s, STATES[registry.enrolment_state(s)]) for s in servers],
        "form": form or ServerForm(),
        "zones": registry.ZONES,
        "notice": notice,
        "errors": errors or [],
    }
    return render(request, "manager_servers.html", context, status=status)


def _number(value: str, field: str) -> int:
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise ValueError(f"{field}: a whole number")
    return int(text)


@router.get("")
def home(_: AdminPage) -> Response:
    return redirect("/manager/servers")


@router.get("/servers")
def servers_page(request: Request, session: DB, _: AdminPage, done: Done = "") -> Response:
    return _servers_page(request, session, notice=NOTICES.get(done, ""))


@router.post("/servers")
def add_server(
    request: Request, session: DB, _: AdminPost, form: Annotated[ServerForm, Form()]
) -> Response:
    try:
        data = ServerIn(
            name=form.name.strip(),
            host=form.host,
            port=_number(form.port, "port"),
            zone=form.zone,  # type: ignore[arg-type]
            capacity=_number(form.capacity, "capacity"),
        )
        registry.create_server(session, data)
    except ValidationError as error:
        return _servers_page(request, session, form=form, errors=_problems(error), status=422)
    except ValueError as error:
        session.rollback()
        message = error.message if isinstance(error, ManagerError) else str(error)
        status = error.status if isinstance(error, ManagerError) else 422
        return _servers_page(request, session, form=form, errors=[message], status=status)
    session.commit()
    return redirect("/manager/servers?done=server_added")


def _server_page(
    request: Request,
    session: Session,
    server: Server,
    *,
    form: ServerForm | None = None,
    notice: str = "",
    errors: list[str] | None = None,
    status: int = 200,
) -> Response:
    form = form or ServerForm(
        name=server.name,
        host=server.host,
        port=str(server.port),
        zone=server.zone,
        capacity=str(server.capacity),
    )
    context = {
        "server": server,
        "state": STATES[registry.enrolment_state(server)],
        "trees": [tree for tree, _ in registry.trees_of(session, server)],
        "form": form,
        "zones": registry.ZONES,
        "notice": notice,
        "errors": errors or [],
    }
    return render(request, "manager_server.html", context, status=status)


@router.get("/servers/{server_id}")
def server_page(
    request: Request, session: DB, _: AdminPage, server_id: ItemId, done: Done = ""
) -> Response:
    server = registry.get_server(session, server_id)
    return _server_page(request, session, server, notice=NOTICES.get(done, ""))


@router.post("/servers/{server_id}")
def save_server(
    request: Request,
    session: DB,
    _: AdminPost,
    server_id: ItemId,
    form: Annotated[ServerForm, Form()],
) -> Response:
    server = registry.get_server(session, server_id)
    try:
        patch = ServerPatch(
            host=form.host,
            port=_number(form.port, "port"),
            zone=form.zone,  # type: ignore[arg-type]
            capacity=_number(form.capacity, "capacity"),
        )
    except ValidationError as error:
        return _server_page(
            request, session, server, form=form, errors=_problems(error), status=422
        )
    except ValueError as error:
        return _server_page(request, session, server, form=form, errors=[str(error)], status=422)
    registry.update_server(session, server, patch)
    session.commit()
    return redirect(f"/manager/servers/{server.id}?done=server_saved")


@router.post("/servers/{server_id}/delete")
def delete_server(request: Request, session: DB, _: AdminPost, server_id: ItemId) -> Response:
    server = registry.get_server(session, server_id)
    try:
        registry.delete_server(session, server)
    except ManagerError as error:
        session.rollback()
        return _server_page(request, session, server, errors=[error.message], status=error.status)
    session.commit()
    return redirect("/manager/servers?done=server_deleted")


# --- trees ------------------------------------------------------------------------------------


def _trees_page(
    request: Request,
    session: Session,
    *,
    name: str = "",
    notice: str = "",
    errors: list[str] | None = None,
    status: int = 200,
) -> Response:
    trees = [registry.resolve(session, tree) for tree in registry.list_trees(session)]
    context = {"trees": trees, "name": name, "notice": notice, "errors": errors or []}
    return render(request, "manager_trees.html", context, status=status)


@router.get("/trees")
def trees_page(request: Request, session: DB, _: AdminPage, done: Done = "") -> Response:
    return _trees_page(request, session, notice=NOTICES.get(done, ""))


@router.post("/trees")
def add_tree(
    request: Request,
    session: DB,
    _: AdminPost,
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        tree = registry.create_tree(session, registry.TreeIn(name=name.strip()))
    except ValidationError as error:
        return _trees_page(request, session, name=name, errors=_problems(error), status=422)
    except ManagerError as error:
        session.rollback()
        return _trees_page(request, session, name=name, errors=[error.message], status=error.status)
    session.commit()
    return redirect(f"/manager/trees/{tree.id}?done=tree_added")


def _tree_page(
    request: Request,
    session: Session,
    tree: Tree,
    *,
    name: str | None = None,
    chosen: dict[str, str] | None = None,
    notice: str = "",
    errors: list[str] | None = None,
    status: int = 200,
) -> Response:
    resolved = registry.resolve(session, tree)
    if chosen is None:
        chosen = {node.server.name: node.parent or MAIN for node in resolved.nodes}
    servers = registry.list_servers(session)
    context = {
        "tree": tree,
        "resolved": resolved,
        "servers": servers,
        "chosen": chosen,
        "name": tree.name if name is None else name,
        "out": OUT,
        "main": MAIN,
        "notice": notice,
        "errors": errors or [],
    }
    return render(request, "manager_tree.html", context, status=status)


@router.get("/trees/{tree_id}")
def tree_page(
    request: Request, session: DB, _: AdminPage, tree_id: ItemId, done: Done = ""
) -> Response:
    tree = registry.get_tree(session, tree_id)
    return _tree_page(request, session, tree, notice=NOTICES.get(done, ""))


@router.post("/trees/{tree_id}")
def save_tree(
    request: Request,
    session: DB,
    _: AdminPost,
    tree_id: ItemId,
    name: Annotated[str, Form(max_length=200)] = "",
    server: Annotated[list[str], Form(max_length=MAX_FORM_ROWS)] = [],  # noqa: B006
    parent: Annotated[list[str], Form(max_length=MAX_FORM_ROWS)] = [],  # noqa: B006
) -> Response:
    """One row per registered server: its parent here, ``:main``, or ``:out``."""
    tree = registry.get_tree(session, tree_id)
    if len(server) != len(parent):
        raise ManagerError(400, "invalid_form", "every server row needs its parent choice")
    chosen = dict(zip(server, parent, strict=True))
    try:
        nodes = [
            NodeIn(server=name_, parent=None if choice == MAIN else choice)
            for name_, choice in zip(server, parent, strict=True)
            if choice != OUT
        ]
        registry.replace_tree(session, tree, TreeReplace(name=name.strip(), nodes=nodes))
    except ValidationError as error:
        problems = _problems(error)
        return _tree_page(
            request, session, tree, name=name, chosen=chosen, errors=problems, status=422
        )
    except ManagerError as error:
        session.rollback()
        return _tree_page(
            request,
            session,
            tree,
            name=name,
            chosen=chosen,
            errors=[error.message],
            status=error.status,
        )
    session.commit()
    return redirect(f"/manager/trees/{tree.id}?done=tree_saved")


@router.post("/trees/{tree_id}/default")
def make_default(request: Request, session: DB, _: AdminPost, tree_id: ItemId) -> Response:
    registry.make_default(session, registry.get_tree(session, tree_id))
    session.commit()
    return redirect(f"/manager/trees/{tree_id}?done=default_set")


@router.post("/trees/{tree_id}/delete")
def delete_tree(request: Request, session: DB, _: AdminPost, tree_id: ItemId) -> Response:
    registry.delete_tree(session, registry.get_tree(session, tree_id))
    session.commit()
    return redirect("/manager/trees?done=tree_deleted")

"""Administration: the mail outbox (every message, readable) and the users.

Administrators only (``AdminPage``, ``AdminPost``). The Manager's admin pages
(servers, trees) are the Manager's own, under ``/manager``.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from townhall.center import accounts
from townhall.center.events import EventError
from townhall.center.pages.common import PAGE_SIZE, AdminPage, AdminPost, notice, render
from townhall.center.tables import MailJob, User
from townhall.web.deps import DB, Done, ItemId
from townhall.web.errors import redirect

router = APIRouter(include_in_schema=False)


@router.get("/admin/outbox")
def outbox_page(
    request: Request,
    session: DB,
    _: AdminPage,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    total = session.scalar(select(func.count()).select_from(MailJob)) or 0
    jobs = session.scalars(
        select(MailJob).order_by(MailJob.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).all()
    pages = max(1, -(-total // PAGE_SIZE))
    context = {
        "jobs": jobs,
        "total": total,
        "page": page,
        "pages": pages,
        "prev_link": f"/admin/outbox?page={page - 1}" if page > 1 else "",
        "next_link": f"/admin/outbox?page={page + 1}" if page < pages else "",
    }
    return render(request, "admin_outbox.html", context)


def _readable(raw: bytes) -> tuple[list[tuple[str, str]], str, list[tuple[str, str]]]:
    """Headers, the text part and the list of parts of a stored message."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    headers = [(name, str(value)) for name, value in message.items()]
    text = ""
    if isinstance(message, EmailMessage):
        body = message.get_body(preferencelist=("plain",))
        if body is not None and isinstance(body, EmailMessage):
            try:
                text = str(body.get_content())
            except (LookupError, ValueError) as error:
                text = f"(the text part cannot be decoded: {error})"
    parts = [
        (part.get_content_type(), part.get_filename() or "")
        for part in message.walk()
        if not part.is_multipart()
    ]
    return headers, text, parts


@router.get("/admin/outbox/{job_id}")
def outbox_message(request: Request, session: DB, _: AdminPage, job_id: ItemId) -> Response:
    job = session.get(MailJob, job_id)
    if job is None:
        raise EventError(404, "mail_not_found", f"no mail {job_id}")
    headers, text, parts = _readable(job.message)
    context = {"job": job, "headers": headers, "text": text, "parts": parts}
    return render(request, "admin_message.html", context)


def _users_page(
    request: Request,
    session: Session,
    *,
    notice: str = "",
    errors: list[str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    users = session.scalars(select(User).order_by(User.username).limit(1000)).all()
    context = {
        "users": users,
        "roles": accounts.ROLES,
        "notice": notice,
        "errors": errors or [],
        "form": form or {"username": "", "email": "", "role": "member"},
    }
    return render(request, "admin_users.html", context, status=status)


@router.get("/admin/users")
def users_page(request: Request, session: DB, _: AdminPage, done: Done = "") -> Response:
    return _users_page(request, session, notice=notice(done))


@router.post("/admin/users")
def add_user(
    request: Request,
    session: DB,
    _: AdminPost,
    username: Annotated[str, Form(max_length=200)] = "",
    email: Annotated[str, Form(max_length=300)] = "",
    role: Annotated[str, Form(max_length=20)] = "member",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    form = {"username": username, "email": email, "role": role}
    try:
        accounts.create_user(
            session,
            username.strip(),
            email=email.strip() or None,
            role=role,
            password=password or None,
        )
    except accounts.AccountError as error:
        session.rollback()
        return _users_page(request, session, errors=[error.message], form=form, status=422)
    session.commit()
    return redirect("/admin/users?done=user_added")

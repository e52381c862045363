"""The catalog: the events a signed-in user may see, searched, filtered by day, in pages.

Dates are days in the reader's time zone; the rules of what one may see are
``events.catalog``'s. Each row of the list is rendered once per content (what
it shows and the reader's zone) and kept: rendering fifty rows was half of a
catalog page's time, and most readers of a catalog see the same upcoming
events (bench/README.md, sixth pass). A row whose event changed has another
content, so it is rendered anew: nothing kept can be out of date.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, time, timedelta
from typing import Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from townhall.center import events, recordings
from townhall.center.auth import context_of
from townhall.center.pages.common import PAGE_SIZE, PAGES, render, signed_in_user
from townhall.web.deps import in_one_hop, query_of
from townhall.web.render import viewer_zone, zoneinfo

router = APIRouter(include_in_schema=False)


def _day_bound(value: str, name: str, zone: ZoneInfo) -> datetime | None:
    """A date input, taken as a day in the reader's zone."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as error:
        raise ValueError(f"{name}: not a date (YYYY-MM-DD)") from error
    moment = datetime.combine(day, time.min, tzinfo=zone)
    if not events.EARLIEST <= moment < events.LATEST - timedelta(days=1):
        raise ValueError(f"{name}: out of range")
    return moment


class CatalogPageParams(BaseModel):
    """The catalog page's query parameters (``query_of``)."""

    model_config = ConfigDict(frozen=True)

    q: str = Field("", max_length=200)
    when: Literal["upcoming", "past", "all"] = "upcoming"
    date_from: str = Field("", alias="from", max_length=10)
    date_to: str = Field("", alias="to", max_length=10)
    cancelled: bool = False
    page: int = Field(1, ge=1, le=100_000)


@router.get("/events")
async def catalog_page(request: Request) -> Response:
    params = query_of(request, CatalogPageParams)
    return await in_one_hop(
        request,
        lambda session: _catalog(
            request,
            session,
            q=params.q,
            when=params.when,
            date_from=params.date_from,
            date_to=params.date_to,
            cancelled=params.cancelled,
            page=params.page,
        ),
    )


def _catalog(
    request: Request,
    session: Session,
    *,
    q: str,
    when: Literal["upcoming", "past", "all"],
    date_from: str,
    date_to: str,
    cancelled: bool,
    page: int,
) -> Response:
    user = signed_in_user(request, session)
    reader_zone = viewer_zone(request, user)
    zone = zoneinfo(reader_zone)
    errors: list[str] = []
    try:
        after = _day_bound(date_from, "from", zone)
        before = _day_bound(date_to, "to", zone)
    except ValueError as error:
        errors.append(str(error))
        after = before = None
    if before is not None:
        before += timedelta(days=1)  # "to" names the last day shown
    rows: list[events.Listed] = []
    more = False
    if not errors:
        query = events.CatalogQuery(
            text=q.strip(),
            when=when,
            starts_after=after,
            starts_before=before,
            include_cancelled=cancelled,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
        rows, more = events.catalog(session, user, query)
    params: dict[str, str] = {"q": q, "when": when, "from": date_from, "to": date_to}
    if cancelled:
        params["cancelled"] = "1"
    kept = {key: value for key, value in params.items() if value}

    def page_link(number: int) -> str:
        return "/events?" + urlencode({**kept, "page": str(number)})

    # Which past events have a recording (a stat each, for one page of rows).
    recorded = recordings.with_recordings(
        context_of(request).settings, session, (r.id for r in rows if r.status != "cancelled")
    )
    context = {
        "rows": [
            _row(
                r.id,
                r.title,
                r.starts_at,
                r.kind,
                r.visibility,
                r.status,
                reader_zone,
                r.id in recorded,
            )
            for r in rows
        ],
        "q": q,
        "when": when,
        "date_from": date_from,
        "date_to": date_to,
        "cancelled": cancelled,
        "page": page,
        "prev_link": page_link(page - 1) if page > 1 else "",
        "next_link": page_link(page + 1) if more else "",
        "can_schedule": events.can_schedule(user),
        "errors": errors,
    }
    return render(request, "events.html", context, status=422 if errors else 200)


# Rows of a few thousand events in a few zones: about 1 MB at most.
@functools.lru_cache(maxsize=4096)
def _row(
    event_id: int,
    title: str,
    starts_at: datetime,
    kind: str,
    visibility: str,
    status: str,
    zone: str,
    recorded: bool,
) -> str:
    """One row of the list: what it shows is its whole key (see the module's docstring)."""
    return PAGES.fragment(
        "catalog_row.html",
        id=event_id,
        title=title,
        starts_at=starts_at,
        kind=kind,
        visibility=visibility,
        status=status,
        zone=zone,
        recorded=recorded,
    )

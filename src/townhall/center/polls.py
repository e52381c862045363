"""Polls and questions kept with an event, and the routes that show them to its organizers.

An event's main server decides its polls and Q&A (``townhall.live.polls``,
``townhall.live.questions``) and reports them, whole, through the Controller,
which calls ``record_polls`` (in-process, ``townhall.inprocess``): one row per
event, replaced by each report, so what stays after the event is what the
main server last held. Drafts never leave the room. The event's managers see
the record at ``GET /api/v1/events/{id}/polls``, as CSV at ``…/polls.csv``
(``csv_text``: a row per poll option and per question) and on the event page
(``kept_polls``, with the same CSV as a download). docs/live.md, "Polls and
questions"; docs/api.md, "Polls and questions".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from fastapi import APIRouter, Response
from pydantic import BaseModel
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from townhall.center import events
from townhall.center.api import EventId, Me
from townhall.center.pages.common import SignedInUser
from townhall.center.spreadsheet import cell, csv_download
from townhall.center.tables import Event, EventPolls
from townhall.store.conventions import now_utc, utc
from townhall.web.deps import DB
from townhall.web.errors import ERRORS
from townhall.wire.messages import Poll, PollState, Question

__all__ = ["CSV_COLUMNS", "KeptPolls", "csv_text", "kept_polls", "record_polls", "router"]

router = APIRouter()


def record_polls(
    session: Session, event_id: int, polls: Sequence[Poll], questions: Sequence[Question]
) -> None:
    """Keep the event's polls (drafts left out) and questions, replacing the last; commit."""
    if session.get(Event, event_id) is None:
        return  # deleted meanwhile: nothing to keep it with
    values = {
        "event_id": event_id,
        "polls": _json([p for p in polls if p.state is not PollState.DRAFT]),
        "questions": _json(list(questions)),
        "updated_at": now_utc(),
    }
    # One statement, as center.live.record_live_state: two reporters never conflict.
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(EventPolls).values(**values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[EventPolls.event_id],
            set_={key: statement.excluded[key] for key in ("polls", "questions", "updated_at")},
        )
    )
    session.commit()


def _json(items: Sequence[Poll | Question]) -> str:
    return msgspec.json.encode([msgspec.structs.asdict(item) for item in items]).decode()


@dataclass(frozen=True, slots=True)
class KeptPolls:
    """What is kept of an event's polls and questions; questions by votes, most first."""

    polls: list[dict[str, Any]]
    questions: list[dict[str, Any]]
    updated_at: datetime | None


def kept_polls(session: Session, event: Event) -> KeptPolls:
    row = session.get(EventPolls, event.id)
    if row is None:
        return KeptPolls([], [], None)
    polls = sorted(msgspec.json.decode(row.polls), key=lambda p: p["poll_id"])
    questions = sorted(
        msgspec.json.decode(row.questions), key=lambda q: (-q["votes"], q["question_id"])
    )
    return KeptPolls(polls, questions, utc(row.updated_at))


class PollOut(BaseModel):
    poll_id: int
    question: str
    options: list[str]
    multiple: bool
    state: str  # "open" (when the event ended, still open) or "closed"
    shared: bool  # the results were shown to everyone
    counts: list[int] = []
    voters: int = 0


class QuestionOut(BaseModel):
    question_id: int
    text: str
    asker: str | None  # also when asked anonymously: organizers see who asked
    anonymous: bool
    votes: int
    state: str  # "open", "answered", "answered-live", "dismissed"
    answer: str


class PollsOut(BaseModel):
    polls: list[PollOut]
    questions: list[QuestionOut]
    updated_at: datetime | None  # when the main server last reported them; null: never


@router.get(
    "/api/v1/events/{event_id}/polls", response_model=PollsOut, responses=ERRORS, tags=["api"]
)
def list_polls(session: DB, user: Me, event_id: EventId) -> PollsOut:
    """The event's polls with their results and its questions by votes; for its managers."""
    event = events.get_managed(session, event_id, user)
    kept = kept_polls(session, event)
    return PollsOut(
        polls=[PollOut(**{k: v for k, v in p.items() if v is not None}) for p in kept.polls],
        questions=[QuestionOut(**q) for q in kept.questions],
        updated_at=kept.updated_at,
    )


CSV_COLUMNS = (
    "kind",
    "id",
    "text",
    "option",
    "votes",
    "voters",
    "state",
    "shared",
    "asked_by",
    "anonymous",
    "answer",
)


def csv_text(kept: KeptPolls) -> str:
    """A row per poll option (its votes, the poll's voters) and per question (by votes)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for poll in kept.polls:
        counts = poll.get("counts") or [0] * len(poll["options"])
        for option, votes in zip(poll["options"], counts, strict=True):
            writer.writerow(
                (
                    "poll",
                    poll["poll_id"],
                    cell(poll["question"]),
                    cell(option),
                    votes,
                    poll.get("voters") or 0,
                    poll["state"],
                    "yes" if poll["shared"] else "no",
                    "",
                    "",
                    "",
                )
            )
    for question in kept.questions:
        writer.writerow(
            (
                "question",
                question["question_id"],
                cell(question["text"]),
                "",
                question["votes"],
                "",
                question["state"],
                "",
                cell(question["asker"] or ""),
                "yes" if question["anonymous"] else "no",
                cell(question.get("answer") or ""),
            )
        )
    return out.getvalue()


@router.get(
    "/api/v1/events/{event_id}/polls.csv",
    responses=ERRORS | {200: {"content": {"text/csv": {}}}},
    tags=["api"],
)
def get_polls_csv(session: DB, user: Me, event_id: EventId) -> Response:
    """The event's polls and questions as CSV; for its managers."""
    return _csv(session, events.get_managed(session, event_id, user))


@router.get("/events/{event_id}/polls.csv", include_in_schema=False)
def polls_csv_page(session: DB, user: SignedInUser, event_id: EventId) -> Response:
    """The event page's download (signed in with the portal's session)."""
    return _csv(session, events.get_managed(session, event_id, user))


def _csv(session: Session, event: Event) -> Response:
    return csv_download(csv_text(kept_polls(session, event)), f"event-{event.id}-polls.csv")

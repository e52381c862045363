"""Polls and questions kept with the event: what the Controller records, organizers see.

The record arrives as the Controller hands it over (``InProcessSources.record_polls``,
the Center's side of ``controller.sources``); each report replaces the last. The
event's organizer reads it in the API and on the event page, with the asker of an
anonymous question named; a participant of the event is refused.
"""

from __future__ import annotations

import csv
import io

from tests.center.test_join_tickets import API, schedule
from tests.support import Center
from townhall.inprocess import InProcessSources
from townhall.wire import Poll, PollState, Question, QuestionState

LUNCH = Poll(
    poll_id=1,
    question="Lunch?",
    options=("pizza", "soup"),
    multiple=False,
    state=PollState.CLOSED,
    shared=False,
    counts=(2, 1),
    voters=3,
)
DRAFT = Poll(
    poll_id=2,
    question="Later?",
    options=("a", "b"),
    multiple=False,
    state=PollState.DRAFT,
    shared=False,
    counts=(0, 0),
    voters=0,
)


def question(question_id: int, votes: int, **fields: object) -> Question:
    values: dict[str, object] = {
        "question_id": question_id,
        "text": f"question {question_id}",
        "asker": "bo",
        "anonymous": False,
        "votes": votes,
        "state": QuestionState.OPEN,
        **fields,
    }
    return Question(**values)  # type: ignore[arg-type]


def test_the_last_record_of_polls_and_questions_is_shown_to_organizers_only(
    center: Center,
) -> None:
    event = schedule(center, visibility="public")  # mike sees the event, not its record
    sources = InProcessSources(center.sessions)  # type: ignore[arg-type]
    with center.client("olga") as olga, center.client("mike") as mike:
        empty = olga.get(f"{API}/events/{event['id']}/polls").json()
        assert empty == {"polls": [], "questions": [], "updated_at": None}

        sources.record_polls(event["id"], [LUNCH], [question(1, 0)])
        sources.record_polls(
            event["id"],
            [LUNCH, DRAFT],
            [
                question(1, 1),
                question(
                    2, 3, asker="cy", anonymous=True, state=QuestionState.ANSWERED, answer="Yes."
                ),
            ],
        )
        kept = olga.get(f"{API}/events/{event['id']}/polls").json()
        assert [p["question"] for p in kept["polls"]] == ["Lunch?"]  # a draft is never kept
        assert kept["polls"][0]["counts"] == [2, 1] and kept["polls"][0]["voters"] == 3
        assert [(q["question_id"], q["votes"], q["asker"]) for q in kept["questions"]] == [
            (2, 3, "cy"),
            (1, 1, "bo"),
        ]
        assert kept["questions"][0]["answer"] == "Yes." and kept["updated_at"] is not None

        page = olga.get(f"/events/{event['id']}")
        assert "Polls and questions" in page.text and "Lunch?" in page.text
        assert "cy (anonymous to others)" in page.text

        assert mike.get(f"{API}/events/{event['id']}/polls").status_code == 403
        assert "Polls and questions" not in mike.get(f"/events/{event['id']}").text


def test_organizers_download_polls_and_questions_as_csv_a_spreadsheet_cannot_run(
    center: Center,
) -> None:
    event = schedule(center, visibility="public")
    formula = Poll(
        poll_id=3,
        question="=HYPERLINK(1)",
        options=("+1", "fine", "@me"),
        multiple=True,
        state=PollState.OPEN,
        shared=True,
        counts=(4, 0, 1),
        voters=4,
    )
    InProcessSources(center.sessions).record_polls(  # type: ignore[arg-type]
        event["id"],
        [LUNCH, DRAFT, formula],
        [question(1, 1), question(2, 5, asker="cy", anonymous=True, text="-2+3")],
    )
    with center.client("olga") as olga, center.client("mike") as mike:
        for url in (f"{API}/events/{event['id']}/polls.csv", f"/events/{event['id']}/polls.csv"):
            answer = olga.get(url)
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/csv")
            assert "attachment" in answer.headers["content-disposition"]
            rows = list(csv.DictReader(io.StringIO(answer.text)))
            polls = [
                (r["id"], r["text"], r["option"], r["votes"], r["voters"])
                for r in rows
                if r["kind"] == "poll"
            ]
            assert polls == [
                ("1", "Lunch?", "pizza", "2", "3"),
                ("1", "Lunch?", "soup", "1", "3"),
                ("3", "'=HYPERLINK(1)", "'+1", "4", "4"),
                ("3", "'=HYPERLINK(1)", "fine", "0", "4"),
                ("3", "'=HYPERLINK(1)", "'@me", "1", "4"),
            ]  # the draft is not kept; a cell never starts a formula
            questions = [
                (r["id"], r["text"], r["votes"], r["asked_by"], r["anonymous"])
                for r in rows
                if r["kind"] == "question"
            ]
            assert questions == [
                ("2", "'-2+3", "5", "cy", "yes"),
                ("1", "question 1", "1", "bo", "no"),
            ]
            assert mike.get(url).status_code == 403
        assert f"/events/{event['id']}/polls.csv" in olga.get(f"/events/{event['id']}").text


def test_a_record_for_an_event_deleted_meanwhile_is_dropped(center: Center) -> None:
    event = schedule(center)
    with center.client("olga") as olga:
        assert olga.delete(f"{API}/events/{event['id']}").status_code in (200, 204)
    InProcessSources(center.sessions).record_polls(event["id"], [LUNCH], [])  # type: ignore[arg-type]

"""The Center's ``/metrics``: refused without its bearer token, and what an operator reads there.

A real Center on a loopback port (tests/support.py). Requests are labelled by
their route's template, so a client typing ids or random paths cannot make a
series per URL; tickets issued and refused and the mail queue are counted as
the Center's own.
"""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.center.test_join_tickets import default_tree, schedule
from tests.support import Center, make_settings, start_center
from townhall.center import mailer
from townhall.center.metrics import METRIC_NAMES as CENTER_METRICS
from townhall.config import Settings
from townhall.store.conventions import now_utc
from townhall.web.metrics import METRIC_NAMES as WEB_METRICS

TOKEN = "a-long-scrape-token-for-the-tests"  # noqa: S105


@pytest.fixture
def center_settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url, metrics_token=TOKEN)


def scrape(center: Center) -> str:
    with center.client() as client:
        response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the one series ``name`` whose labels include ``labels``, if any."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            series, _, value = line.rpartition(" ")
            if all(f'{key}="{wanted}"' in series for key, wanted in labels.items()):
                return float(value)
    return None


def test_a_scrape_without_the_token_or_with_another_is_refused(center: Center) -> None:
    with center.client() as client:
        bare = client.get("/metrics")
        wrong = client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        basic = client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"})
        # A signed-in user's API token is not the scrape token either.
    with center.client("ada") as admin:
        api_token = admin.get("/metrics")
    for response in (bare, wrong, basic, api_token):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "townhall_http_requests_total" not in response.text
    assert "townhall_http_requests_total" in scrape(center)


def test_requests_are_labelled_by_route_template_never_by_the_path_sent(center: Center) -> None:
    with center.client("mike") as mike:
        assert mike.get("/api/v1/events/987654").status_code == 404
        assert mike.get("/api/v1/events/123456").status_code == 404
        assert mike.get("/no/such/page-31337").status_code == 404
    text = scrape(center)
    assert "987654" not in text and "123456" not in text and "31337" not in text
    assert (
        sample(
            text,
            "townhall_http_requests_total",
            route="/api/v1/events/{event_id}",
            method="GET",
            status="404",
        )
        == 2
    )
    assert sample(text, "townhall_http_requests_total", route="other", status="404") == 1
    assert (
        sample(
            text,
            "townhall_http_request_duration_seconds_count",
            route="/api/v1/events/{event_id}",
            method="GET",
        )
        == 2
    )


def test_tickets_issued_and_refused_and_the_mail_queue_are_counted(center: Center) -> None:
    default_tree(center)
    event = schedule(center)
    with center.client("olga") as olga:
        assert olga.post(f"/api/v1/events/{event['id']}/ticket").status_code == 200
    with center.client("mike") as mike:  # not invited to a private event
        assert mike.post(f"/api/v1/events/{event['id']}/ticket").status_code in (403, 404)
    with center.sessions() as session:  # type: ignore[operator]
        message = EmailMessage()
        message["Subject"] = "later"
        later = mailer.enqueue(
            session, event=None, recipient="x@example.org", purpose="invite", message=message
        )
        later.next_attempt_at = now_utc() + timedelta(days=1)
        given_up = mailer.enqueue(
            session, event=None, recipient="y@example.org", purpose="invite", message=message
        )
        given_up.status = "failed"
        session.commit()
    text = scrape(center)
    assert sample(text, "townhall_center_tickets_total", outcome="issued") == 1
    assert sample(text, "townhall_center_tickets_total", outcome="refused") == 1
    assert sample(text, "townhall_center_mail_jobs", status="pending") == 1
    assert sample(text, "townhall_center_mail_jobs", status="failed") == 1
    for name in (*WEB_METRICS, *CENTER_METRICS):  # what the dashboard's test relies on
        assert f"\n{name}" in text, name


def test_without_a_token_set_the_metrics_are_off(tmp_path: Path, database_url: str) -> None:
    server, running = start_center(make_settings(tmp_path / "data", database_url))
    with server as url:
        running.url = url
        with running.client() as client:
            response = client.get("/metrics", headers={"Authorization": "Bearer x"})
    assert response.status_code == 404
    assert "townhall_http" not in response.text

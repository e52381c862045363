"""The Center's own metrics: the mail queue (read from the database) and join tickets.

``MailQueueCollector`` counts the mail jobs by status at each scrape
(``pending``: the queue's depth, ``failed``: given up after
``center.mail.max_attempts``), from the database every web process shares,
so the numbers are the same whichever process answers. ``count_ticket``
counts a join ticket issued or refused (refused: the caller may not join,
or the event is not joinable: an ``EventError``) in the web process's
metrics. ``METRIC_NAMES`` lists what the Center adds to ``web.metrics``'s;
docs/metrics.md describes them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Final, Literal

from fastapi import Request
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from townhall.center.tables import MailJob
from townhall.web.metrics import metrics_of

__all__ = ["METRIC_NAMES", "MailQueueCollector", "count_ticket"]

log = logging.getLogger("townhall.center")

MAIL_STATUSES: Final = ("pending", "sent", "failed")
METRIC_NAMES: Final = ("townhall_center_mail_jobs", "townhall_center_tickets_total")


class MailQueueCollector(Collector):
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "townhall_center_mail_jobs",
            "Mail jobs by status: pending (the queue), sent, failed (given up)",
            labels=["status"],
        )
        try:
            with self._sessions() as session:
                rows = session.execute(
                    select(MailJob.status, func.count()).group_by(MailJob.status)
                )
                counts: dict[str, int] = {status: count for status, count in rows}
        except SQLAlchemyError as error:
            log.warning("metrics: could not count the mail jobs: %s", error)
            return
        for status in MAIL_STATUSES:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs


def count_ticket(request: Request, outcome: Literal["issued", "refused"]) -> None:
    metrics_of(request).counter(
        "townhall_center_tickets", "Join tickets issued and refused", ("outcome",)
    ).labels(outcome).inc()

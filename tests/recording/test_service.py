"""The recorder service's decisions: which events get a recorder, when one stops or starts again.

The service's own logic, driven pass by pass (``poll``). What it is handed
stands in for what the end-to-end tests run for real
(tests/e2e/test_recorder_service_e2e.py): the Center's answers are a list
the test edits (the ``RecordingSources`` contract, nothing more), and each
recorder is a coroutine that records nothing and ends as the test says
(stopped, failed, or the event ended), because a real one needs a whole tree
per event. Backoffs are a microsecond where a restart is expected and a
hundred seconds where it must not happen, so no assertion depends on timing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path

import pytest

from townhall.client.session import JoinFailed
from townhall.live.backoff import Backoff
from townhall.recording.recorder import Summary
from townhall.recording.service import RecorderService, ServiceSettings
from townhall.recording.sources import RecorderTicketRefused
from townhall.ticket import Role, TicketContents

NOW_SOON = Backoff(initial=1e-6, maximum=1e-6, jitter=0)
NOT_SOON = Backoff(initial=100, maximum=100, jitter=0)


def ticket(event_id: int, serial: int) -> TicketContents:
    return TicketContents(
        event_id=event_id,
        title=f"event {event_id}",
        center_url="https://center.example",
        issued_at=0,
        not_after=4_000_000_000,
        username=f"guest-{serial}",
        display_name="Recording",
        role=Role.PARTICIPANT,
        servers=(),
        ca_pem=None,
        cookies={},
        sealed_credential=b"",
        center_key=b"",
    )


class Center:
    """The contract's two calls over a list the test edits."""

    def __init__(self, *events: int) -> None:
        self.events = list(events)
        self.refused: set[int] = set()
        self.tickets: Counter[int] = Counter()

    def recorded_live_events(self) -> list[int]:
        return list(self.events)

    def recorder_ticket(self, event_id: int) -> TicketContents:
        if event_id in self.refused:
            raise RecorderTicketRefused("recording_off", "off")
        self.tickets[event_id] += 1
        return ticket(event_id, self.tickets[event_id])


class Recorders:
    """Recorder runs: each waits for its stop, or for the test to end it another way."""

    def __init__(self) -> None:
        self.started: list[TicketContents] = []
        self.outcome: dict[int, BaseException | bool] = {}  # True: saw the event end
        self.changed = asyncio.Event()

    async def __call__(self, contents: TicketContents, data: Path, stop: asyncio.Event) -> Summary:
        self.started.append(contents)
        event_id = contents.event_id
        while not stop.is_set() and event_id not in self.outcome:
            self.changed.clear()
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({stopped, asyncio.ensure_future(self.changed.wait())},
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        outcome = self.outcome.pop(event_id, False)
        if isinstance(outcome, BaseException):
            raise outcome
        return Summary(event_id, 1, 1.0, 0, 0, 0, 0, 0, complete=outcome)

    def end(self, event_id: int, outcome: BaseException | bool) -> None:
        self.outcome[event_id] = outcome
        self.changed.set()

    def running(self, service: RecorderService) -> list[int]:
        return sorted(e for e, r in service.running.items() if not r.task.done())


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def make(center: Center, recorders: Recorders, **settings: object) -> RecorderService:
    return RecorderService(
        center,
        Path("/nonexistent"),
        ServiceSettings(**{"poll_seconds": 0.1, "stop_grace_seconds": 0.0, **settings}),  # type: ignore[arg-type]
        record_function=recorders,
    )


async def test_at_most_max_recordings_run_and_the_next_starts_when_one_stops() -> None:
    center, recorders = Center(1, 2, 3), Recorders()
    service = make(center, recorders, max_recordings=2, restart=NOT_SOON)
    await service.poll()
    await settle()
    assert recorders.running(service) == [1, 2]
    center.events.remove(1)  # ended, or its recording turned off
    await service.poll()
    await settle()
    assert service.running[1].stop.is_set() and recorders.running(service) == [2]
    await service.poll()
    await settle()
    assert recorders.running(service) == [2, 3]
    await service.stop_all()
    assert service.running == {} and center.tickets == Counter({1: 1, 2: 1, 3: 1})


async def test_an_event_off_the_list_for_a_moment_keeps_its_recorder() -> None:
    # The tree reported "preparing" for a poll or two (it was re-forming): not the end.
    center, recorders = Center(5), Recorders()
    service = make(center, recorders, restart=NOT_SOON, stop_grace_seconds=0.5)
    await service.poll()
    await settle()
    center.events.remove(5)
    await service.poll()
    await settle()
    assert not service.running[5].stop.is_set()
    center.events.append(5)
    await asyncio.sleep(0.6)
    await service.poll()
    await settle()
    assert recorders.running(service) == [5] and len(recorders.started) == 1
    center.events.remove(5)  # now gone for good: stopped once the grace is over
    await service.poll()
    await asyncio.sleep(0.6)
    await service.poll()
    await settle()
    assert recorders.running(service) == []
    await service.stop_all()


async def test_a_failed_recorder_starts_again_with_its_ticket_unless_the_ticket_failed() -> None:
    center, recorders = Center(7), Recorders()
    service = make(center, recorders, restart=NOW_SOON)
    await service.poll()
    await settle()
    recorders.end(7, JoinFailed("unreachable", "no server answered"))
    await settle()
    await service.poll()
    await settle()
    assert len(recorders.started) == 2 and center.tickets[7] == 1
    recorders.end(7, JoinFailed("expired", "the ticket expired"))
    await settle()
    await service.poll()
    await settle()
    assert len(recorders.started) == 3 and center.tickets[7] == 2
    await service.stop_all()


async def test_a_restart_waits_for_its_backoff() -> None:
    center, recorders = Center(7), Recorders()
    service = make(center, recorders, restart=NOT_SOON)
    await service.poll()
    await settle()
    recorders.end(7, RuntimeError("the recorder broke"))
    await settle()
    await service.poll()
    await settle()
    assert len(recorders.started) == 1 and recorders.running(service) == []
    assert service.known[7].failures == 1


async def test_a_recorder_that_saw_the_event_end_is_not_started_again() -> None:
    center, recorders = Center(7), Recorders()
    service = make(center, recorders, restart=NOW_SOON)
    await service.poll()
    await settle()
    recorders.end(7, True)
    await settle()
    for _ in range(3):
        await service.poll()
        await settle()
    assert len(recorders.started) == 1 and recorders.running(service) == []


async def test_a_session_that_ended_early_is_recorded_again_in_a_new_run() -> None:
    center, recorders = Center(7), Recorders()
    service = make(center, recorders, restart=NOW_SOON)
    await service.poll()
    await settle()
    recorders.end(7, False)  # left before the event ended, nobody stopped it
    await settle()
    await service.poll()
    await settle()
    assert len(recorders.started) == 2 and recorders.running(service) == [7]
    await service.stop_all()


async def test_a_refused_ticket_starts_no_recorder_and_is_asked_again_later() -> None:
    center, recorders = Center(7), Recorders()
    center.refused.add(7)
    service = make(center, recorders, restart=NOW_SOON)
    await service.poll()
    await settle()
    assert recorders.started == [] and service.known[7].failures == 1
    center.refused.clear()
    await service.poll()
    await settle()
    assert recorders.running(service) == [7]
    await service.stop_all()


async def test_a_recorder_stopped_before_it_joined_is_not_counted_as_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    center, recorders = Center(7), Recorders()
    service = make(center, recorders, restart=NOT_SOON)
    await service.poll()
    await settle()
    # Its recording is turned off while it still waits to join: told to stop, it gives up.
    recorders.outcome[7] = JoinFailed("stopped", "stopped before the event was live")
    center.events.clear()
    with caplog.at_level(logging.INFO, logger="townhall.recording"):
        await service.poll()
        await settle()
        await service.poll()
    assert service.running == {}
    assert "event 7: the recorder stopped" in caplog.text
    assert "trying again" not in caplog.text

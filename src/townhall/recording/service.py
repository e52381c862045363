"""``RecorderService``: records every event whose recording is on, with nobody starting it.

Every ``poll_seconds`` it asks its ``RecordingSources`` which events to
record now (recording on, tree ready or degraded) and runs one ``record``
task per event, each with a recorder ticket it asks for once and keeps for
the task's restarts (a new one when the live servers refuse it). A task is
stopped through its ``stop`` event, so its file closes properly, when its
event leaves the list (it ended, or its recording was turned off). A task
that fails, or whose session ends before the event does, is started again
after a backoff (``live.backoff``); its recorder writes the next part, so
nothing already recorded is overwritten. A recorder that saw the event end
is done. At most ``max_recordings`` run at once; the other events wait, by
id, and the log says so. The service itself holds no state worth keeping:
killed and started again, it records the next part of every event.

With an object store (``store``), the parts of every event no recorder is
writing any more (finished, stopped, or left by a service that was killed)
are uploaded in the background, one event at a time (``uploads``), and a
new run numbers its parts after those already in the store; an event is
not recorded while its parts are being uploaded, nor uploaded while recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from townhall.client.session import ClientSettings, JoinFailed
from townhall.live.backoff import Backoff
from townhall.objectstore import ObjectStore
from townhall.recording.recorder import Summary, record
from townhall.recording.sources import (
    RecorderTicketRefused,
    RecordingSources,
    SourceUnavailable,
    UploadedPart,
)
from townhall.recording.uploads import local_parts, upload_parts
from townhall.ticket import TicketContents

__all__ = ["RecordFunction", "RecorderService", "ServiceSettings"]

log = logging.getLogger("townhall.recording")

RecordFunction = Callable[[TicketContents, Path, asyncio.Event], Awaitable[Summary]]
# The live servers refuse the ticket itself: ask the Center for a new one.
_TICKET_FAILURES: Final = frozenset({"bad-ticket", "expired", "wrong-event", "not-allowed"})
_TICKET_MARGIN: Final = 120  # seconds: a ticket this close to its end is not used again
_STOP_TIMEOUT: Final = 20.0  # seconds a stopping recorder gets to close its file


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    poll_seconds: float = 2.0
    max_recordings: int = 4
    # How long an event may be off the list before its recorder is stopped. A tree that
    # is (re)forming is reported "preparing" for a moment, also right after the first
    # "degraded" of a tree not yet linked; that is not the event's end, which reaches
    # the recorder itself (Bye event-ended). Only a recording turned off waits this long.
    stop_grace_seconds: float = 10.0
    restart: Backoff = Backoff(initial=1.0, maximum=60.0)


@dataclass
class _Running:
    stop: asyncio.Event
    task: asyncio.Task[Summary]
    started: float
    stopping: bool = False
    missing_since: float | None = None  # the loop's clock: first poll without its event


@dataclass
class _Known:
    """What the service remembers of an event while it is on the list."""

    ticket: TicketContents | None = None
    failures: int = 0
    not_before: float = 0.0  # the loop's clock: no start before then
    done: bool = False  # a recorder saw the event end
    waiting_logged: bool = False


@dataclass
class RecorderService:
    sources: RecordingSources
    data: Path
    settings: ServiceSettings = field(default_factory=ServiceSettings)
    client_settings: ClientSettings | None = None
    record_function: RecordFunction | None = None  # tests only: ``record`` otherwise
    store: ObjectStore | None = None  # None: parts stay in the data folder
    running: dict[int, _Running] = field(default_factory=dict)
    known: dict[int, _Known] = field(default_factory=dict)
    uploading: tuple[int, asyncio.Task[list[UploadedPart]]] | None = None
    upload_failures: int = 0
    upload_not_before: float = 0.0  # the loop's clock
    upload_failed: int | None = None  # the event whose upload failed last: tried after the rest

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and record until ``stop``; then stop every recorder and wait for its file."""
        log.info(
            "recorder service: data %s, at most %d recordings, polling every %.1f s",
            self.data,
            self.settings.max_recordings,
            self.settings.poll_seconds,
        )
        try:
            while not stop.is_set():
                await self.poll()
                self._upload_next()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.poll_seconds)
        finally:
            await self.stop_all()

    async def poll(self) -> None:
        """One pass: reap finished recorders, stop the unwanted, start the wanted."""
        self._reap()
        try:
            wanted = set(await asyncio.to_thread(self.sources.recorded_live_events))
        except SourceUnavailable as error:
            log.warning("recorder service: the Center is unavailable: %s", error)
            return
        except Exception:  # a bug must not stop the recordings under way
            log.exception("recorder service: asking for the events to record failed")
            return
        now = asyncio.get_running_loop().time()
        for event_id, running in self.running.items():
            if event_id in wanted or running.stopping:
                running.missing_since = None
                continue
            if running.missing_since is None:
                running.missing_since = now
            if now - running.missing_since >= self.settings.stop_grace_seconds:
                log.info("event %d: ended or its recording was turned off; stopping", event_id)
                running.stopping = True
                running.stop.set()
        for event_id in [e for e in self.known if e not in wanted and e not in self.running]:
            del self.known[event_id]  # turned on again later: recorded again, from a fresh start
        for event_id in sorted(wanted):
            known = self.known.setdefault(event_id, _Known())
            if event_id in self.running or known.done or now < known.not_before:
                continue
            if self.uploading is not None and self.uploading[0] == event_id:
                continue  # its parts are on their way to the store: next poll
            if len(self.running) >= self.settings.max_recordings:
                if not known.waiting_logged:
                    log.warning(
                        "event %d: waiting: %d recordings are running (recorder.max_recordings)",
                        event_id,
                        len(self.running),
                    )
                    known.waiting_logged = True
                continue
            await self._start(event_id, known, now)

    async def _start(self, event_id: int, known: _Known, now: float) -> None:
        ticket = known.ticket
        if ticket is None or ticket.not_after - _TICKET_MARGIN < _unix_now():
            try:
                ticket = await asyncio.to_thread(self.sources.recorder_ticket, event_id)
            except (RecorderTicketRefused, SourceUnavailable) as error:
                self._failed(event_id, known, now, f"no recorder ticket: {error}")
                return
            except Exception as error:  # a bug must not stop the other recordings
                log.exception("event %d: asking for a recorder ticket failed", event_id)
                self._failed(event_id, known, now, f"no recorder ticket: {error!r}")
                return
            known.ticket = ticket
        known.waiting_logged = False
        stop = asyncio.Event()
        task = asyncio.create_task(self._record(ticket, stop), name=f"record event {event_id}")
        self.running[event_id] = _Running(stop, task, now)
        log.info("event %d: recording (try %d)", event_id, known.failures + 1)

    async def _record(self, ticket: TicketContents, stop: asyncio.Event) -> Summary:
        if self.record_function is not None:
            return await self.record_function(ticket, self.data, stop)
        first = 1
        if self.store is not None:  # parts numbered after those already moved to the store
            first += await asyncio.to_thread(self.sources.highest_uploaded_part, ticket.event_id)
        return await record(
            ticket, self.data, stop=stop, settings=self.client_settings, first_part=first
        )

    def _upload_next(self) -> None:
        """With a store, start uploading the parts of one event nobody records now."""
        if self.store is None:
            return
        now = asyncio.get_running_loop().time()
        if self.uploading is not None:
            event_id, task = self.uploading
            if not task.done():
                return
            self.uploading = None
            error = None if task.cancelled() else task.exception()
            if error is None:
                self.upload_failures = 0
                self.upload_failed = None
            else:
                self.upload_failed = event_id
                delay = self.settings.restart.delay(self.upload_failures, random.random())  # noqa: S311
                self.upload_failures += 1
                self.upload_not_before = now + delay
                log.warning(
                    "event %d: uploading its recording failed: %s; trying again in %.1f s",
                    event_id,
                    error,
                    delay,
                )
        if now < self.upload_not_before:
            return
        waiting = sorted(
            (
                int(path.name)
                for path in _event_folders(self.data)
                if int(path.name) not in self.running and local_parts(path)
            ),
            key=lambda event_id: (event_id == self.upload_failed, event_id),
        )
        if waiting:
            event_id = waiting[0]
            task = asyncio.create_task(
                asyncio.to_thread(upload_parts, self.store, self.sources, self.data, event_id),
                name=f"upload event {event_id}",
            )
            self.uploading = (event_id, task)

    def _reap(self) -> None:
        now = asyncio.get_running_loop().time()
        for event_id in [e for e, r in self.running.items() if r.task.done()]:
            running = self.running.pop(event_id)
            known = self.known.setdefault(event_id, _Known())
            if now - running.started >= self.settings.restart.maximum:
                known.failures = 0  # it ran a good while: a new run of failures starts here
            if running.task.cancelled():
                continue
            error = running.task.exception()
            if error is not None:
                if running.stopping:  # e.g. stopped before it could join: nothing to retry
                    log.info("event %d: the recorder stopped: %s", event_id, error)
                    continue
                if isinstance(error, JoinFailed) and error.reason in _TICKET_FAILURES:
                    known.ticket = None
                self._failed(event_id, known, now, f"the recorder failed: {error!r}")
                continue
            summary = running.task.result()
            log.info(
                "event %d: part %d recorded, %.1f s, %d chat messages, %d bytes%s",
                event_id,
                summary.part,
                summary.seconds,
                summary.chat_messages,
                summary.file_bytes,
                "" if summary.complete else " (stopped before the event ended)",
            )
            if summary.complete:
                known.done = True
            elif not running.stopping:
                self._failed(event_id, known, now, "the recorder's session ended early")

    def _failed(self, event_id: int, known: _Known, now: float, why: str) -> None:
        delay = self.settings.restart.delay(known.failures, random.random())  # noqa: S311
        known.failures += 1
        known.not_before = now + delay
        log.warning("event %d: %s; trying again in %.1f s", event_id, why, delay)

    async def stop_all(self) -> None:
        """Stop every recorder and wait (a while) for each to close its file."""
        for running in self.running.values():
            running.stopping = True
            running.stop.set()
        tasks = [running.task for running in self.running.values()]
        if tasks:
            log.info("recorder service: stopping %d recordings", len(tasks))
            _, late = await asyncio.wait(tasks, timeout=_STOP_TIMEOUT)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._reap()
        if self.uploading is not None:  # a thread cannot be cancelled: let it finish its file
            await asyncio.gather(self.uploading[1], return_exceptions=True)
            self.uploading = None


def _event_folders(data: Path) -> list[Path]:
    """The event folders under ``<data>/recordings`` (named by the event's id)."""
    try:
        return [
            path
            for path in (data / "recordings").iterdir()
            if path.name.isdigit() and len(path.name) < 19 and path.is_dir()
        ]
    except OSError:
        return []


def _unix_now() -> int:
    return int(time.time())

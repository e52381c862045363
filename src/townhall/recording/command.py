"""``townhall record TICKET``: record an event as a listener until it ends.

The ticket is a recorder ticket (``POST /api/v1/events/{id}/recorder-ticket``,
for the event's managers when its recording is on), given as a ``.townhall``
file or link as for ``townhall join``. The recording goes into
``<data>/recordings/<event id>/`` (``--data``, default ``$TOWNHALL_DATA``),
where the Center on the same data folder serves it. SIGINT or SIGTERM stops
the recording and closes the file properly; SIGKILL leaves a file that plays
up to its last second or so. Exit status: 0 when the event ended or the
recording was stopped, 1 when joining failed, 2 for an unusable ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from townhall.client.command import TicketSourceError, load_ticket
from townhall.client.session import ClientError
from townhall.recording.recorder import folder_for, record
from townhall.ticket import TicketContents, TicketError

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``record`` to ``app``."""
    app.command("record")(record_command)


async def _run(ticket: TicketContents, data: Path) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        summary = await record(ticket, data, stop=stop)
    except ClientError as error:
        typer.echo(f"townhall record: {error}", err=True)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):
                loop.remove_signal_handler(sig)
    typer.echo(json.dumps(asdict(summary)))
    return 0


def record_command(
    ticket: Annotated[
        str, typer.Argument(metavar="TICKET", help="a recorder ticket: .townhall file or link")
    ],
    data: Annotated[
        Path,
        typer.Option("--data", envvar="TOWNHALL_DATA", help="the data folder the Center serves"),
    ],
) -> None:
    """Record an event (audio, video, chat) into the data folder until it ends."""
    try:
        contents = load_ticket(ticket)
    except (TicketSourceError, TicketError) as error:
        typer.echo(f"townhall record: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"recording into {folder_for(data, contents.event_id)}", err=True)
    raise typer.Exit(asyncio.run(_run(contents, data)))

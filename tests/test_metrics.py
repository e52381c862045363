"""The metrics door of the Controller and the live servers, its bad inputs, and JSON logs.

``MetricsServer`` is served for real on a loopback port and spoken to over
plain sockets, since what matters is what a scraper, or anyone else who
reaches the port, gets back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from townhall.config import Settings
from townhall.controller.command import metrics_door
from townhall.logformat import JsonFormatter, uvicorn_log_config
from townhall.metrics import MAX_REQUEST_BYTES, MetricsServer, token_matches


@pytest.fixture
async def door() -> AsyncIterator[MetricsServer]:
    registry = CollectorRegistry()
    Counter("townhall_test_things", "Things counted", registry=registry).inc(3)
    server = MetricsServer("127.0.0.1:0", registry, request_timeout=0.5)
    await server.start()
    yield server
    await server.close()


async def exchange(door: MetricsServer, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(door.host, door.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_a_scrape_gets_the_registry_in_the_text_format(door: MetricsServer) -> None:
    answer = await exchange(door, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Connection: close" in head
    assert b"townhall_test_things_total 3.0" in body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST /metrics HTTP/1.1\r\n\r\n", b"405"),
        (b"GET /metrics/../secret HTTP/1.1\r\n\r\n", b"404"),
        (b"GET / HTTP/1.1\r\n\r\n", b"404"),
        (b"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", b"413"),
        (b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"413"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", b"400"),
        (b"GET /metrics\r\n\r\n", b"400"),
        (b"GET /metrics HTTP/1.1\r\nX-Fill: " + b"a" * (2 * MAX_REQUEST_BYTES), b"431"),
    ],
)
async def test_anything_but_a_scrape_gets_its_error_and_the_door_stays_up(
    door: MetricsServer, request_bytes: bytes, status: bytes
) -> None:
    answer = await exchange(door, request_bytes)
    assert answer.split(b" ", 2)[1] == status
    assert b"townhall_test_things" not in answer
    again = await exchange(door, b"GET /metrics HTTP/1.1\r\n\r\n")
    assert again.startswith(b"HTTP/1.1 200")


async def test_a_client_that_never_finishes_its_request_is_answered_408_and_closed(
    door: MetricsServer,
) -> None:
    reader, writer = await asyncio.open_connection(door.host, door.port)
    writer.write(b"GET /metrics HTTP/1.1\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)  # no timed assertion: just not forever
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408")


def test_bearer_tokens_match_only_exactly() -> None:
    assert token_matches("Bearer s3cret", "s3cret")
    assert token_matches("bearer s3cret", "s3cret")
    assert not token_matches("Bearer s3cre", "s3cret")
    assert not token_matches("Basic s3cret", "s3cret")
    assert not token_matches(None, "s3cret")
    assert not token_matches("Bearer ", "")  # no token set: nothing matches


def test_json_logs_are_one_object_per_record_with_the_exception() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "townhall.live", logging.WARNING, __file__, 1, "room %d: %s", (7, "é"), None
        )
        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert "\n" not in line  # the traceback's lines are escaped inside the one object
    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert entry["logger"] == "townhall.live"
    assert entry["message"] == "room 7: é"
    assert "ValueError: boom" in entry["exception"]
    assert entry["time"].endswith("+00:00")


def test_json_logs_reach_stderr_from_townhall_and_uvicorn_loggers_alike() -> None:
    program = (
        "import logging, logging.config\n"
        "from townhall.logformat import configure_logging, uvicorn_log_config\n"
        "logging.config.dictConfig(uvicorn_log_config('json'))\n"
        "logging.getLogger('uvicorn.error').info('Started server process [1]')\n"
        "logging.getLogger('townhall.web').warning('health check failed: %s', 'db down')\n"
    )
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    entries = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(e["logger"], e["message"]) for e in entries] == [
        ("uvicorn.error", "Started server process [1]"),
        ("townhall.web", "health check failed: db down"),
    ]
    assert uvicorn_log_config("text") is None  # uvicorn keeps its own lines


@pytest.mark.parametrize(
    "fields",
    [
        {"controller": {"metrics_listen": "9460"}},
        {"controller": {"metrics_listen": "host:port"}},
        {"center": {"metrics_listen": "127.0.0.1"}},
        {"live": {"metrics_listen": {"main": "127.0.0.1:99999"}}},
    ],
)
def test_a_metrics_address_that_is_not_host_port_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="host:port"):
        Settings(**fields)  # type: ignore[arg-type]


async def test_a_busy_metrics_address_leaves_the_component_running_without_metrics(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    async with metrics_door("127.0.0.1:0", registry) as first:
        assert first is not None
        async with metrics_door(f"127.0.0.1:{first.port}", registry) as second:
            assert second is None
    assert "no metrics: cannot listen on" in caplog.text

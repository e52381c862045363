"""How every townhall process logs: readable lines, or JSON objects for a log collector.

``configure_logging(settings.log.format)`` sets the root logger up once per
process: ``text`` is the familiar ``time name: message`` line, ``json`` one
JSON object per line (``time``, ``level``, ``logger``, ``message``, and
``exception`` when there is one), which a collector (journald's JSON export,
Loki, Elasticsearch) reads without a parser of its own. ``uvicorn_log_config``
gives the Center's web processes the same format. docs/metrics.md, "Logs".
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter", "configure_logging", "uvicorn_log_config"]

TEXT_FORMAT = "%(asctime)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(form: str) -> None:
    """Log INFO and above to stderr in ``form`` ("text" or "json"), unless already set up."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def uvicorn_log_config(form: str) -> dict[str, Any] | None:
    """uvicorn's ``log_config`` for ``form``: None keeps uvicorn's own (text) format."""
    if form != "json":
        return None
    formatter = {"()": "townhall.logformat.JsonFormatter"}
    handler = {"class": "logging.StreamHandler", "formatter": "json"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": "INFO"},
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }

"""CSV downloads of an event's record (attendance, polls and questions): safe cells, one response.

A CSV file leaves the Center to be opened in a spreadsheet, where a cell that
starts with ``=``, ``+``, ``-`` or ``@`` runs as a formula: any text a
participant typed (a name, a question, a poll option) is written through
``cell``, which quotes such a start. ``csv_download`` is the one way the
routes answer with a file: UTF-8, an attachment name, never cached.
"""

from __future__ import annotations

from fastapi import Response

__all__ = ["cell", "csv_download"]

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(text: str) -> str:
    """Text as a spreadsheet shows it, never as a formula it runs (CSV injection)."""
    return "'" + text if text[:1] in _FORMULA_STARTS else text


def csv_download(text: str, filename: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )

"""CSV exports of console tables: cells a spreadsheet would run as formulas are neutralised (CSV
injection), and a whole table becomes one download."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from fastapi.responses import Response

# A spreadsheet runs a cell starting with these as a formula: such cells are prefixed with an
# apostrophe, which spreadsheets show as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def safe_cell(value: Any) -> Any:
    """A text cell a spreadsheet would evaluate is prefixed with ``'`` (numbers are left alone)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_text(rows: Iterable[Iterable[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([safe_cell(c) for c in row] for row in rows)
    return buffer.getvalue()


def csv_download(filename: str, header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Response:
    """A small table as a CSV attachment (large ones stream; see console.audit_api)."""
    return Response(
        csv_text([list(header), *rows]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )

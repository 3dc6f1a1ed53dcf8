"""Bounds every API input declares, so they are in the OpenAPI document and a value beyond what the
database column holds is a 422 naming the field, never a 500 from the driver."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, Field

INT32_MAX = 2**31 - 1  # INTEGER columns: versions, counts
INT64_MAX = 2**63 - 1  # BIGINT columns: timeline and message ids, offsets
MIN_YEAR, MAX_YEAR = 1900, 9998


def _in_range(value: datetime) -> datetime:
    """Instants between 1900 and 9998 in UTC: ``0001-01-01T00:00:00+01:00`` is a valid ISO string
    whose UTC conversion overflows (and nothing the bank stores predates 1900)."""
    try:
        utc = value.astimezone(UTC) if value.tzinfo is not None else value
    except OverflowError:
        raise ValueError(f"must be between {MIN_YEAR} and {MAX_YEAR}") from None
    if not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise ValueError(f"must be between {MIN_YEAR} and {MAX_YEAR}")
    return value


ApiDateTime = Annotated[
    datetime,
    AfterValidator(_in_range),
    Field(
        json_schema_extra={
            "formatMinimum": f"{MIN_YEAR}-01-01T00:00:00Z",
            "formatMaximum": f"{MAX_YEAR}-12-31T23:59:59Z",
        }
    ),
]

"""EX pulse summary as supervisors read it (GET /api/ex/pulse)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field


class PulseGroupRead(BaseModel):
    key: str | None = Field(description="Queue name, team or ISO day; null when the pulse has none")
    interaction_count: int
    average_rating: float | None
    tags: dict[str, int]
    shift_count: int
    average_energy: float | None
    average_workload: float | None


class PulseSummaryRead(BaseModel):
    from_: date = Field(serialization_alias="from")
    to: date
    group_by: Literal["queue", "team", "day"]
    groups: list[PulseGroupRead]

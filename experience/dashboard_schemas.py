"""The experience dashboard's filters and answers (``/api/experience/...`` and the console page)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from experience.dashboard_models import Dimension
from switchboard.db import utcnow

MAX_RANGE_DAYS = 366
DEFAULT_DAYS = 30
MIN_GROUP = 5  # agents' EX is shown only for groups with at least this many different respondents
HIDDEN_NOTE = f"fewer than {MIN_GROUP} responses from different agents"
Format = Literal["json", "csv"]


class ExperienceQuery(BaseModel):
    """Filters shared by every view. Days are UTC, both ends included; at most a year at a time."""

    start: date | None = Field(default=None, alias="from", description="First day (default: 30 days ago)")
    end: date | None = Field(default=None, alias="to", description="Last day (default: today)")
    dimension: Dimension = Field(default=Dimension.TEAM, description="Group rows by this")
    key: Annotated[str | None, Field(default=None, max_length=80)] = Field(
        default=None, description="One group of the dimension (drill-down and trend)"
    )
    tag: Annotated[str | None, Field(default=None, max_length=60)] = Field(
        default=None, description="Only interactions an agent tagged so (drill-down)"
    )
    format: Format = Field(default="json", description="csv: the same table as a CSV file")

    model_config = {"populate_by_name": True}

    @field_validator("start", "end", "key", "tag", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():  # an HTML form sends empty fields
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("end")
    @classmethod
    def _range(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start")
        last = value or utcnow().date()
        if start is not None and last < start:
            raise ValueError("must not be before 'from'")
        if start is not None and (last - start).days >= MAX_RANGE_DAYS:
            raise ValueError(f"at most {MAX_RANGE_DAYS} days from 'from'")
        return value

    def first_day(self) -> date:
        return self.start or self.last_day() - timedelta(days=DEFAULT_DAYS - 1)

    def last_day(self) -> date:
        return self.end or utcnow().date()

    def agent_key(self) -> uuid.UUID | None:
        return uuid.UUID(self.key) if self.dimension is Dimension.AGENT and self.key else None

    @field_validator("key")
    @classmethod
    def _agent_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and info.data.get("dimension") is Dimension.AGENT:
            try:
                return uuid.UUID(value).hex
            except ValueError:
                raise ValueError("an agent's id") from None
        return value


class CX(BaseModel):
    """Customer answers: counts and averages (NPS = % promoters - % detractors)."""

    csat_n: int = 0
    csat: float | None = None
    nps_n: int = 0
    nps: float | None = None
    ces_n: int = 0
    ces: float | None = None


class EX(BaseModel):
    """Agents' answers; every figure None (and ``note`` set) for a group below the minimum size."""

    shown: bool = False
    note: str | None = None
    respondents: int | None = None
    pulse_n: int | None = None
    pulse: float | None = None
    shift_n: int | None = None
    energy: float | None = None
    workload: float | None = None


class GroupRow(BaseModel):
    key: str
    label: str
    cx: CX
    ex: EX


class ExperienceSummary(BaseModel):
    start: date
    end: date
    dimension: Dimension
    min_group: int = MIN_GROUP
    rows: list[GroupRow]
    total: GroupRow


class TrendDay(BaseModel):
    day: date
    cx: CX
    ex: EX
    service_level: float | None = None
    service_level_target: float | None = None


class ExperienceTrend(BaseModel):
    start: date
    end: date
    dimension: Dimension
    key: str
    days: list[TrendDay]


class TagComparison(BaseModel):
    tag: str
    tagged: CX
    rest: CX


class ServiceLevelComparison(BaseModel):
    """EX (and CSAT) on days a queue (or the centre) was below its service-level target vs the rest."""

    scope: Literal["queue_days", "centre_days"]
    group: Literal["below_target", "met_target"]
    days: int
    cx: CX
    ex: EX


class ExperienceTogether(BaseModel):
    start: date
    end: date
    tags: list[TagComparison]
    service_level: list[ServiceLevelComparison]


class DrillRow(BaseModel):
    interaction_id: uuid.UUID
    customer_id: uuid.UUID
    answered_at: datetime
    channel: str
    queue: str | None
    agent: str | None
    tier: str
    topic: str | None
    csat: int | None
    nps: int | None
    ces: int | None
    comment: str | None
    interaction_url: str
    customer_url: str


class ExperienceDrill(BaseModel):
    start: date
    end: date
    dimension: Dimension
    key: str | None
    tag: str | None
    limit: int
    rows: list[DrillRow]

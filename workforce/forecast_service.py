"""Supervisors' changes to the forecast (interval overrides, the holiday list), each audited in the
caller's transaction, and the staffing requirement of a forecast (Erlang C per interval)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.audit import record_audit
from switchboard.auth.models import User
from switchboard.errors import Invalid, NotFound
from workforce.admin_schemas import CHANNELS
from workforce.forecast_models import ForecastOverride, Holiday
from workforce.models import Queue
from workforce.staffing import Demand, ImpossibleTarget, fewest_agents

OVERRIDE_SET = "forecast.override_set"
OVERRIDE_CLEARED = "forecast.override_cleared"
HOLIDAY_ADDED = "forecast.holiday_added"
HOLIDAY_REMOVED = "forecast.holiday_removed"

MAX_OVERRIDE_CONTACTS = 1_000_000


def _override_key(queue: str, channel: str, interval_minutes: int, start: datetime) -> str:
    return f"{queue}/{channel}/{interval_minutes}/{start.astimezone(UTC).isoformat()}"


def _check_aligned(start: datetime, interval_minutes: int) -> datetime:
    if start.tzinfo is None:
        raise Invalid("Give the interval start with its UTC offset", field="interval_start")
    try:
        start = start.astimezone(UTC)
    except OverflowError:
        raise Invalid("Out of range", field="interval_start") from None
    if start.second or start.microsecond or start.minute % interval_minutes:
        raise Invalid(
            f"{start.isoformat()} is not the start of a {interval_minutes}-minute interval",
            field="interval_start",
        )
    return start


async def set_override(
    session: AsyncSession,
    *,
    queue: str,
    channel: str,
    interval_minutes: int,
    interval_start: datetime,
    contacts: float,
    reason: str,
    actor: User,
) -> ForecastOverride:
    if await session.scalar(select(Queue.id).where(Queue.name == queue)) is None:
        raise Invalid(f"No queue named {queue!r}", field="queue")
    if channel not in CHANNELS:
        raise Invalid(f"No such channel: {channel}", field="channel")
    if interval_minutes not in (15, 30):
        raise Invalid("15 or 30", field="interval_minutes")
    start = _check_aligned(interval_start, interval_minutes)
    if not 0 <= contacts <= MAX_OVERRIDE_CONTACTS:
        raise Invalid(f"Contacts must be between 0 and {MAX_OVERRIDE_CONTACTS:,}", field="contacts")
    row = await session.scalar(
        select(ForecastOverride).where(
            ForecastOverride.queue_name == queue,
            ForecastOverride.channel == channel,
            ForecastOverride.interval_minutes == interval_minutes,
            ForecastOverride.interval_start == start,
        )
    )
    before = None if row is None else {"contacts": row.contacts, "reason": row.reason}
    if row is None:
        row = ForecastOverride(
            queue_name=queue, channel=channel, interval_minutes=interval_minutes, interval_start=start
        )
        session.add(row)
    row.contacts = float(contacts)
    row.reason = reason
    row.set_by = actor.id
    row.set_at = datetime.now(UTC)
    record_audit(
        session,
        actor_id=actor.id,
        action=OVERRIDE_SET,
        entity_type="forecast_interval",
        entity_id=_override_key(queue, channel, interval_minutes, start),
        before=before or {},
        after={"contacts": row.contacts, "reason": reason},
    )
    await session.flush()
    return row


async def clear_override(
    session: AsyncSession,
    *,
    queue: str,
    channel: str,
    interval_minutes: int,
    interval_start: datetime,
    actor: User,
) -> None:
    start = _check_aligned(interval_start, interval_minutes)
    row = await session.scalar(
        select(ForecastOverride).where(
            ForecastOverride.queue_name == queue,
            ForecastOverride.channel == channel,
            ForecastOverride.interval_minutes == interval_minutes,
            ForecastOverride.interval_start == start,
        )
    )
    if row is None:
        raise NotFound("No override for that interval", field="interval_start")
    record_audit(
        session,
        actor_id=actor.id,
        action=OVERRIDE_CLEARED,
        entity_type="forecast_interval",
        entity_id=_override_key(queue, channel, interval_minutes, start),
        before={"contacts": row.contacts, "reason": row.reason},
        after={},
    )
    await session.delete(row)
    await session.flush()


async def overrides_between(
    session: AsyncSession, *, queue: str, channel: str, interval_minutes: int, first: datetime, end: datetime
) -> dict[datetime, ForecastOverride]:
    rows = await session.scalars(
        select(ForecastOverride).where(
            ForecastOverride.queue_name == queue,
            ForecastOverride.channel == channel,
            ForecastOverride.interval_minutes == interval_minutes,
            ForecastOverride.interval_start >= first,
            ForecastOverride.interval_start < end,
        )
    )
    return {row.interval_start.astimezone(UTC): row for row in rows}


async def list_holidays(session: AsyncSession) -> list[Holiday]:
    return list(await session.scalars(select(Holiday).order_by(Holiday.day)))


async def add_holiday(session: AsyncSession, *, day: date, name: str, actor: User) -> Holiday:
    name = name.strip()
    if not name:
        raise Invalid("Name the holiday", field="name")
    if len(name) > 120:
        raise Invalid("At most 120 characters", field="name")
    row = await session.get(Holiday, day)
    before = None if row is None else {"name": row.name}
    if row is None:
        row = Holiday(day=day, name=name, created_by=actor.id)
        session.add(row)
    row.name = name
    record_audit(
        session,
        actor_id=actor.id,
        action=HOLIDAY_ADDED,
        entity_type="forecast_holiday",
        entity_id=day.isoformat(),
        before=before or {},
        after={"name": name},
    )
    await session.flush()
    return row


async def remove_holiday(session: AsyncSession, *, day: date, actor: User) -> None:
    row = await session.get(Holiday, day)
    if row is None:
        raise NotFound(f"{day.isoformat()} is not on the holiday list", field="day")
    record_audit(
        session,
        actor_id=actor.id,
        action=HOLIDAY_REMOVED,
        entity_type="forecast_holiday",
        entity_id=day.isoformat(),
        before={"name": row.name},
        after={},
    )
    await session.execute(delete(Holiday).where(Holiday.day == day))


# ------------------------------------------------------------------------------- requirement


@dataclass(frozen=True)
class Target:
    """The service promised on a queue, and the planning allowances around it."""

    aht_seconds: float
    service_level_target: float  # share answered within target_answer_seconds
    target_answer_seconds: float
    shrinkage: float


@dataclass(frozen=True)
class Requirement:
    agents: int  # on the phones (Erlang C)
    scheduled_agents: int  # after shrinkage
    service_level: float


@lru_cache(maxsize=8192)
def _requirement(contacts: float, interval_minutes: int, target: Target) -> Requirement:
    staffing = fewest_agents(
        Demand(
            contacts=contacts,
            interval_minutes=interval_minutes,
            aht_seconds=target.aht_seconds,
            service_level_target=target.service_level_target,
            target_answer_seconds=target.target_answer_seconds,
            shrinkage=target.shrinkage,
        )
    )
    return Requirement(staffing.agents, staffing.scheduled_agents, staffing.service_level)


def requirement(contacts: Sequence[float], *, interval_minutes: int, target: Target) -> list[Requirement]:
    """Agents each interval needs for its contacts (Erlang C; volumes rounded to 0.01 contact,
    which also lets repeated volumes share one computation)."""
    try:
        return [_requirement(round(float(c), 2), interval_minutes, target) for c in contacts]
    except ImpossibleTarget as exc:
        raise Invalid(str(exc), field="service_level_target") from exc

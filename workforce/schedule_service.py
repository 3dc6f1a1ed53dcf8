"""Schedules: templates and contracts, auto-scheduling (``workforce.scheduler``), hand edits that
keep every rule, coverage against the requirement, and publishing. Every change is audited in the
caller's transaction; a refused change raises before anything is written (nothing half-saved)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.audit import record_audit
from switchboard.auth.models import User
from switchboard.errors import Conflict, Invalid, NotFound
from workforce.models import Agent
from workforce.schedule_models import AgentContract, Schedule, ScheduledShift, ScheduleStatus, ShiftTemplate
from workforce.scheduler import (
    SLOT_MINUTES,
    AgentPlan,
    BreakRule,
    Horizon,
    PlannedShift,
    Template,
    available,
    coverage_of,
    shortfall_of,
    solve,
)

MAX_DAYS = 28
MAX_SHIFT_MINUTES = 16 * 60


# ------------------------------------------------------------------------ templates, contracts


def template_of(row: ShiftTemplate) -> Template:
    return Template(
        name=row.name,
        earliest_start=row.earliest_start_minute,
        latest_start=row.latest_start_minute,
        length=row.length_minutes,
        breaks=tuple(BreakRule(b["minutes"], b["earliest_after"], b["latest_after"]) for b in row.breaks),
        start_step=row.start_step_minutes,
    )


def check_template(
    *, earliest: int, latest: int, length: int, step: int, breaks: list[dict[str, int]]
) -> None:
    """Refuse a template the scheduler could not honour, naming the field."""
    if not 0 <= earliest < 1440 or earliest % SLOT_MINUTES:
        raise Invalid("A local time on a 15-minute mark", field="earliest_start_minute")
    if not earliest <= latest < 1440 or latest % SLOT_MINUTES:
        raise Invalid("Not before the earliest start, on a 15-minute mark", field="latest_start_minute")
    if step not in (15, 30, 60):
        raise Invalid("15, 30 or 60", field="start_step_minutes")
    if not 0 < length <= MAX_SHIFT_MINUTES or length % SLOT_MINUTES:
        raise Invalid(f"Up to {MAX_SHIFT_MINUTES // 60} h in 15-minute steps", field="length_minutes")
    for i, b in enumerate(breaks):
        minutes, first, last = b.get("minutes", 0), b.get("earliest_after", -1), b.get("latest_after", -1)
        if minutes <= 0 or minutes % SLOT_MINUTES or first % SLOT_MINUTES or last % SLOT_MINUTES:
            raise Invalid("Break lengths and windows in 15-minute steps", field=f"breaks.{i}")
        if not 0 < first <= last or last + minutes > length:
            raise Invalid("The break's window must lie inside the shift", field=f"breaks.{i}")


async def create_template(
    session: AsyncSession,
    *,
    name: str,
    earliest: int,
    latest: int,
    length: int,
    step: int,
    breaks: list[dict[str, int]],
    actor: User,
) -> ShiftTemplate:
    check_template(earliest=earliest, latest=latest, length=length, step=step, breaks=breaks)
    if await session.scalar(select(ShiftTemplate.id).where(ShiftTemplate.name == name)) is not None:
        raise Conflict(f"The name {name!r} is taken", field="name")
    row = ShiftTemplate(
        name=name,
        earliest_start_minute=earliest,
        latest_start_minute=latest,
        length_minutes=length,
        start_step_minutes=step,
        breaks=breaks,
    )
    session.add(row)
    await session.flush()
    record_audit(
        session,
        actor_id=actor.id,
        action="schedule.template_created",
        entity_type="shift_template",
        entity_id=row.id,
        after={"name": name, "earliest": earliest, "latest": latest, "length": length, "breaks": breaks},
    )
    return row


async def set_contract(
    session: AsyncSession, *, agent_id: uuid.UUID, values: dict[str, Any], actor: User
) -> AgentContract:
    if await session.get(Agent, agent_id) is None:
        raise NotFound("No such agent", field="agent_id")
    if values["min_minutes_week"] > values["max_minutes_week"]:
        raise Invalid("Not more than the weekly maximum", field="min_minutes_week")
    known = set((await session.scalars(select(ShiftTemplate.name))).all())
    unknown = sorted(set(values["templates"]) - known)
    if unknown:
        raise Invalid(f"No such shift template: {', '.join(unknown)}", field="templates")
    row = await session.get(AgentContract, agent_id)
    before = None
    if row is None:
        row = AgentContract(agent_id=agent_id)
        session.add(row)
    else:
        before = _contract_json(row)
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = datetime.now(UTC)
    record_audit(
        session,
        actor_id=actor.id,
        action="schedule.contract_set",
        entity_type="agent_contract",
        entity_id=agent_id,
        before=before or {},
        after=_contract_json(row),
    )
    await session.flush()
    return row


def _contract_json(row: AgentContract) -> dict[str, Any]:
    return {
        "min_minutes_week": row.min_minutes_week,
        "max_minutes_week": row.max_minutes_week,
        "max_days_week": row.max_days_week,
        "min_rest_minutes": row.min_rest_minutes,
        "templates": list(row.templates or []),
        "availability": dict(row.availability or {}),
    }


def plan_of(row: AgentContract) -> AgentPlan:
    return AgentPlan(
        agent_id=str(row.agent_id),
        min_minutes_week=row.min_minutes_week,
        max_minutes_week=row.max_minutes_week,
        max_days_week=row.max_days_week,
        min_rest_minutes=row.min_rest_minutes,
        templates=tuple(row.templates or ()),
        availability={int(d): tuple((lo, hi) for lo, hi in w) for d, w in (row.availability or {}).items()},
    )


# ---------------------------------------------------------------------------------- schedules


def horizon_of(schedule: Schedule) -> Horizon:
    return Horizon(schedule.first_day, schedule.days, ZoneInfo(schedule.time_zone))


def _planned(shift: ScheduledShift) -> PlannedShift:
    return PlannedShift(
        str(shift.agent_id),
        shift.template,
        shift.start,
        shift.end,
        tuple((datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in shift.breaks),
    )


@dataclass(frozen=True)
class Coverage:
    starts: list[datetime]
    requirement: list[int]
    coverage: list[int]
    shortfall: list[int]

    @property
    def total_shortfall(self) -> int:
        return sum(self.shortfall)


async def shifts_of(session: AsyncSession, schedule_id: uuid.UUID) -> list[ScheduledShift]:
    return list(
        await session.scalars(
            select(ScheduledShift)
            .where(ScheduledShift.schedule_id == schedule_id)
            .order_by(ScheduledShift.start, ScheduledShift.agent_id)
        )
    )


def coverage(schedule: Schedule, shifts: list[ScheduledShift]) -> Coverage:
    horizon = horizon_of(schedule)
    cover = coverage_of([_planned(s) for s in shifts], horizon)
    need = list(schedule.requirement)
    return Coverage([horizon.at(i) for i in range(horizon.slots)], need, cover, shortfall_of(cover, need))


async def auto_schedule(
    session: AsyncSession,
    *,
    first_day: date,
    days: int,
    time_zone: str,
    requirement: list[int],
    actor: User,
    queue_name: str | None = None,
    channel: str | None = None,
    time_limit_s: float = 20.0,
) -> Schedule:
    """Solve, then save the schedule (draft) and its shifts in the caller's transaction."""
    if not 1 <= days <= MAX_DAYS:
        raise Invalid(f"1 to {MAX_DAYS} days", field="days")
    horizon = Horizon(first_day, days, ZoneInfo(time_zone))
    if len(requirement) != horizon.slots:
        raise Invalid(
            f"{horizon.slots} intervals of 15 minutes from {first_day.isoformat()} (got {len(requirement)})",
            field="requirement",
        )
    if any(n < 0 for n in requirement):
        raise Invalid("Agents needed cannot be negative", field="requirement")
    templates = [
        template_of(t) for t in await session.scalars(select(ShiftTemplate).order_by(ShiftTemplate.name))
    ]
    if not templates:
        raise Invalid("Add a shift template first", field="templates")
    plans = [
        plan_of(c) for c in await session.scalars(select(AgentContract).order_by(AgentContract.agent_id))
    ]
    if not plans:
        raise Invalid("No agent has a contract to schedule", field="contracts")
    await session.commit()  # the SQLite rule: no transaction held through the solve
    result = await asyncio.to_thread(
        solve,
        horizon=horizon,
        requirement=requirement,
        templates=templates,
        agents=plans,
        time_limit_s=time_limit_s,
    )
    schedule = Schedule(
        queue_name=queue_name,
        channel=channel,
        first_day=first_day,
        days=days,
        time_zone=time_zone,
        requirement=list(requirement),
        solver={
            "status": result.status,
            "seconds": round(result.seconds, 2),
            "gap": result.objective_gap,
            "shortfall": sum(result.shortfall),
        },
        created_by=actor.id,
    )
    session.add(schedule)
    await session.flush()
    session.add_all(
        ScheduledShift(
            schedule_id=schedule.id,
            agent_id=uuid.UUID(s.agent_id),
            template=s.template,
            start=s.start,
            end=s.end,
            breaks=[[a.isoformat(), b.isoformat()] for a, b in s.breaks],
        )
        for s in result.shifts
    )
    record_audit(
        session,
        actor_id=actor.id,
        action="schedule.created",
        entity_type="schedule",
        entity_id=schedule.id,
        after={
            "first_day": first_day.isoformat(),
            "days": days,
            "shifts": len(result.shifts),
            **schedule.solver,
        },
    )
    await session.flush()
    return schedule


async def get_schedule(session: AsyncSession, schedule_id: uuid.UUID) -> Schedule:
    schedule = await session.get(Schedule, schedule_id)
    if schedule is None:
        raise NotFound("No such schedule", field="schedule_id")
    return schedule


def _aligned(at: datetime, field: str) -> datetime:
    if at.tzinfo is None:
        raise Invalid("Give the time with its UTC offset", field=field)
    try:
        at = at.astimezone(UTC)
    except OverflowError:
        raise Invalid("Out of range", field=field) from None
    if at.second or at.microsecond or at.minute % SLOT_MINUTES:
        raise Invalid("On a 15-minute mark", field=field)
    return at


async def check_shift(
    session: AsyncSession,
    schedule: Schedule,
    *,
    agent_id: uuid.UUID,
    start: datetime,
    end: datetime,
    ignore: uuid.UUID | None,
) -> None:
    """Refuse, naming the problem, a shift that overlaps the agent's others, breaks the agent's
    contract (rest, availability, weekly hours and days, as the auto-scheduler keeps them), or
    lies outside the schedule."""
    start, end = _aligned(start, "start"), _aligned(end, "end")
    if end <= start:
        raise Invalid("The shift must end after it starts", field="end")
    if end - start > timedelta(minutes=MAX_SHIFT_MINUTES):
        raise Invalid(f"A shift is at most {MAX_SHIFT_MINUTES // 60} h", field="end")
    horizon = horizon_of(schedule)
    if start < horizon.start or end > horizon.midnight(horizon.days):
        raise Invalid("The shift must lie within the schedule's days", field="start")
    if await session.get(Agent, agent_id) is None:
        raise Invalid("No such agent", field="agent_id")
    contract = await session.get(AgentContract, agent_id)
    rest = timedelta(minutes=contract.min_rest_minutes if contract else 0)
    others = [
        s
        for s in await session.scalars(
            select(ScheduledShift).where(
                ScheduledShift.schedule_id == schedule.id, ScheduledShift.agent_id == agent_id
            )
        )
        if s.id != ignore
    ]
    for other in others:
        if other.start < end and start < other.end:
            raise Conflict(
                f"Overlaps the agent's shift {other.start.isoformat()} to {other.end.isoformat()}",
                field="start",
            )
    for other in others:
        if other.end <= start and start - other.end < rest:
            raise Invalid(
                f"Only {_hours(start - other.end)} h after the shift ending {other.end.isoformat()}; "
                f"the contract's rest rule needs {_hours(rest)} h",
                field="start",
            )
        if end <= other.start and other.start - end < rest:
            raise Invalid(
                f"Only {_hours(other.start - end)} h before the shift starting {other.start.isoformat()}; "
                f"the contract's rest rule needs {_hours(rest)} h",
                field="end",
            )
    if contract is not None:
        _within_contract(contract, horizon, others, start, end)


def _within_contract(
    contract: AgentContract, horizon: Horizon, others: list[ScheduledShift], start: datetime, end: datetime
) -> None:
    """The contract's availability and weekly limits for a shift beside the agent's ``others``."""
    local = start.astimezone(horizon.zone)
    start_local = local.hour * 60 + local.minute
    length = int((end - start) / timedelta(minutes=1))
    if not available(plan_of(contract), local.weekday(), start_local, start_local + length):
        windows = contract.availability.get(str(local.weekday())) or []
        hours = ", ".join(f"{lo // 60:02d}:{lo % 60:02d}-{hi // 60:02d}:{hi % 60:02d}" for lo, hi in windows)
        raise Invalid(
            f"Outside the agent's availability on {local.strftime('%A')}s "
            f"({hours or 'not available that day'})",
            field="start",
        )
    week = (start - horizon.start) // timedelta(days=7)
    first, last = horizon.start + timedelta(days=7 * week), horizon.start + timedelta(days=7 * (week + 1))
    in_week = [o for o in others if first <= o.start < last]
    minutes = sum((o.end - o.start) / timedelta(minutes=1) for o in in_week) + length
    if minutes > contract.max_minutes_week:
        raise Invalid(
            f"{minutes / 60:g} h in that week; the contract allows {contract.max_minutes_week / 60:g} h",
            field="end",
        )
    days = {o.start.astimezone(horizon.zone).date() for o in in_week} | {local.date()}
    if len(days) > contract.max_days_week:
        raise Invalid(
            f"{len(days)} working days in that week; the contract allows {contract.max_days_week}",
            field="start",
        )


def _hours(delta: timedelta) -> str:
    return f"{delta / timedelta(hours=1):g}"


async def add_shift(
    session: AsyncSession,
    *,
    schedule: Schedule,
    agent_id: uuid.UUID,
    start: datetime,
    end: datetime,
    actor: User,
) -> ScheduledShift:
    await check_shift(session, schedule, agent_id=agent_id, start=start, end=end, ignore=None)
    row = ScheduledShift(
        schedule_id=schedule.id,
        agent_id=agent_id,
        template="",
        start=start.astimezone(UTC),
        end=end.astimezone(UTC),
    )
    session.add(row)
    schedule.version += 1
    await session.flush()
    record_audit(
        session,
        actor_id=actor.id,
        action="schedule.shift_added",
        entity_type="schedule",
        entity_id=schedule.id,
        after={
            "shift": str(row.id),
            "agent_id": str(agent_id),
            "start": row.start.isoformat(),
            "end": row.end.isoformat(),
        },
    )
    return row


async def move_shift(
    session: AsyncSession,
    *,
    schedule: Schedule,
    shift_id: uuid.UUID,
    start: datetime,
    end: datetime,
    actor: User,
) -> ScheduledShift:
    row = await session.get(ScheduledShift, shift_id)
    if row is None or row.schedule_id != schedule.id:
        raise NotFound("No such shift in this schedule", field="shift_id")
    await check_shift(session, schedule, agent_id=row.agent_id, start=start, end=end, ignore=row.id)
    before = {"start": row.start.isoformat(), "end": row.end.isoformat()}
    row.start, row.end = start.astimezone(UTC), end.astimezone(UTC)
    # Breaks outside the moved shift go; those inside stay where they were.
    row.breaks = [
        [a, b]
        for a, b in row.breaks
        if row.start <= datetime.fromisoformat(a) and datetime.fromisoformat(b) <= row.end
    ]
    schedule.version += 1
    record_audit(
        session,
        actor_id=actor.id,
        action="schedule.shift_moved",
        entity_type="schedule",
        entity_id=schedule.id,
        before={"shift": str(row.id), **before},
        after={"shift": str(row.id), "start": row.start.isoformat(), "end": row.end.isoformat()},
    )
    await session.flush()
    return row


async def remove_shift(
    session: AsyncSession, *, schedule: Schedule, shift_id: uuid.UUID, actor: User
) -> None:
    row = await session.get(ScheduledShift, shift_id)
    if row is None or row.schedule_id != schedule.id:
        raise NotFound("No such shift in this schedule", field="shift_id")
    record_audit(
        session,
        actor_id=actor.id,
        action="schedule.shift_removed",
        entity_type="schedule",
        entity_id=schedule.id,
        before={"shift": str(row.id), "agent_id": str(row.agent_id), "start": row.start.isoformat()},
    )
    await session.execute(delete(ScheduledShift).where(ScheduledShift.id == shift_id))
    schedule.version += 1
    await session.flush()


async def publish(session: AsyncSession, *, schedule: Schedule, actor: User) -> list[uuid.UUID]:
    """Mark the schedule published (audited); the agents with shifts in it, to be told after commit."""
    schedule.status = ScheduleStatus.PUBLISHED
    schedule.published_at = datetime.now(UTC)
    schedule.version += 1
    agents = sorted(
        set(
            (
                await session.scalars(
                    select(ScheduledShift.agent_id).where(ScheduledShift.schedule_id == schedule.id)
                )
            ).all()
        )
    )
    record_audit(
        session,
        actor_id=actor.id,
        action="schedule.published",
        entity_type="schedule",
        entity_id=schedule.id,
        after={"version": schedule.version, "agents": len(agents)},
    )
    await session.flush()
    return agents

"""``/api/workforce/shift-templates``, ``/api/workforce/agents/{id}/contract`` and
``/api/workforce/schedules``: templates, contracts, auto-scheduling against a given requirement or
the forecast's, hand edits with coverage recalculated, and publishing (agents told on their desktop).

Here rather than in workforce/ because a schedule's requirement can come from the forecast
(``console.forecast_run``), which reads interaction history."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from console.forecast_run import EARLIEST_DAY, LATEST_DAY, ForecastQuery, run_forecast
from interactions.states import Channel
from switchboard.auth.models import User
from switchboard.deps import AppSettings, DbSession, RequireSupervisor
from switchboard.desktop_messages import SchedulePublished
from switchboard.errors import Invalid
from switchboard.events import publish_many
from switchboard.settings import Settings
from workforce import schedule_service as svc
from workforce.schedule_models import Schedule, ScheduledShift, ShiftTemplate

router = APIRouter(prefix="/api/workforce", tags=["workforce"])

MAX_TIME_LIMIT_S = 55


class BreakWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    minutes: Annotated[int, Field(gt=0, le=120)]
    earliest_after: Annotated[int, Field(gt=0, le=960)]
    latest_after: Annotated[int, Field(gt=0, le=960)]


class TemplateWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=60)]
    earliest_start_minute: Annotated[int, Field(ge=0, lt=1440, description="Minutes after local midnight")]
    latest_start_minute: Annotated[int, Field(ge=0, lt=1440)]
    start_step_minutes: int = 30
    length_minutes: Annotated[int, Field(gt=0, le=svc.MAX_SHIFT_MINUTES)]
    breaks: list[BreakWrite] = []


class TemplateRead(TemplateWrite):
    id: uuid.UUID

    @classmethod
    def of(cls, row: ShiftTemplate) -> TemplateRead:
        return cls(
            id=row.id,
            name=row.name,
            earliest_start_minute=row.earliest_start_minute,
            latest_start_minute=row.latest_start_minute,
            start_step_minutes=row.start_step_minutes,
            length_minutes=row.length_minutes,
            breaks=[BreakWrite(**b) for b in row.breaks],
        )


@router.post("/shift-templates", response_model=TemplateRead, status_code=201)
async def post_template(body: TemplateWrite, session: DbSession, user: RequireSupervisor) -> TemplateRead:
    row = await svc.create_template(
        session,
        name=body.name,
        earliest=body.earliest_start_minute,
        latest=body.latest_start_minute,
        length=body.length_minutes,
        step=body.start_step_minutes,
        breaks=[b.model_dump() for b in body.breaks],
        actor=user,
    )
    read = TemplateRead.of(row)
    await session.commit()
    return read


class ContractWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_minutes_week: Annotated[int, Field(ge=0, le=7 * 1440)] = 0
    max_minutes_week: Annotated[int, Field(gt=0, le=7 * 1440)] = 40 * 60
    max_days_week: Annotated[int, Field(ge=0, le=7)] = 5
    min_rest_minutes: Annotated[int, Field(ge=0, le=2 * 1440)] = 11 * 60
    templates: list[str] = []
    availability: dict[Annotated[str, Field(pattern="^[0-6]$")], list[tuple[int, int]]] = Field(
        default_factory=dict, description="Weekday (0 = Monday) -> [from, to] local minutes; empty: any time"
    )


@router.put("/agents/{agent_id}/contract", response_model=ContractWrite)
async def put_contract(
    agent_id: uuid.UUID, body: ContractWrite, session: DbSession, user: RequireSupervisor
) -> ContractWrite:
    for day, windows in body.availability.items():
        if any(not 0 <= lo < hi <= 1440 for lo, hi in windows):
            raise Invalid("Windows are [from, to] minutes within the day", field=f"availability.{day}")
    values: dict[str, Any] = body.model_dump()
    values["availability"] = {d: [list(w) for w in ws] for d, ws in body.availability.items()}
    await svc.set_contract(session, agent_id=agent_id, values=values, actor=user)
    await session.commit()
    return body


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_day: Annotated[date, Field(ge=EARLIEST_DAY, le=LATEST_DAY)]
    days: Annotated[int, Field(ge=1, le=svc.MAX_DAYS)] = 7
    requirement: list[Annotated[int, Field(ge=0, le=100_000)]] | None = Field(
        default=None,
        description="Agents needed per 15-minute interval from first_day's local midnight; "
        "null: the forecast's requirement for queue and channel",
    )
    queue: Annotated[str | None, Field(max_length=60)] = None
    channel: Channel | None = None
    time_limit_seconds: Annotated[float, Field(gt=0, le=MAX_TIME_LIMIT_S)] = 20


class ShiftRead(BaseModel):
    id: uuid.UUID
    agent_id: uuid.UUID
    template: str
    start: datetime
    end: datetime
    breaks: list[tuple[datetime, datetime]]


class IntervalCoverage(BaseModel):
    start: datetime
    required: int
    scheduled: int
    shortfall: int


class ScheduleRead(BaseModel):
    id: uuid.UUID
    status: str
    version: int
    first_day: date
    days: int
    time_zone: str
    queue: str | None
    channel: str | None
    solver: dict[str, Any]
    shortfall_total: int = Field(description="Agent-intervals short of the requirement")
    shifts: list[ShiftRead]
    intervals: list[IntervalCoverage]


def schedule_read(schedule: Schedule, shifts: list[ScheduledShift]) -> ScheduleRead:
    cover = svc.coverage(schedule, shifts)
    return ScheduleRead(
        id=schedule.id,
        status=schedule.status.value,
        version=schedule.version,
        first_day=schedule.first_day,
        days=schedule.days,
        time_zone=schedule.time_zone,
        queue=schedule.queue_name,
        channel=schedule.channel,
        solver=schedule.solver,
        shortfall_total=cover.total_shortfall,
        shifts=[
            ShiftRead(
                id=s.id,
                agent_id=s.agent_id,
                template=s.template,
                start=s.start,
                end=s.end,
                breaks=[(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in s.breaks],
            )
            for s in shifts
        ],
        intervals=[
            IntervalCoverage(start=at, required=need, scheduled=have, shortfall=short)
            for at, need, have, short in zip(
                cover.starts, cover.requirement, cover.coverage, cover.shortfall, strict=True
            )
        ],
    )


async def requirement_from_forecast(
    session: AsyncSession,
    request: Request,
    settings: Settings,
    *,
    queue: str,
    channel: Channel,
    first_day: date,
    days: int,
) -> list[int]:
    """Agents to schedule per 15-minute interval, from the forecast (overrides included)."""
    forecast = await run_forecast(
        session,
        request.app.state.redis_client,
        ForecastQuery(queue=queue, channel=channel, interval_minutes=15, start=first_day, horizon_days=days),
        time_zone=settings.default_timezone,
    )
    if any(i.scheduled_agents is None for i in forecast.intervals):
        raise Invalid("The history has no handle time for the requirement", field="queue")
    # On the phones (the scheduler plans agents on the phones; shrinkage is for paid hours).
    return [i.agents or 0 for i in forecast.intervals]


async def create_schedule(
    session: AsyncSession, request: Request, settings: Settings, body: ScheduleCreate, user: User
) -> Schedule:
    requirement = body.requirement
    if requirement is None:
        if not body.queue or body.channel is None:
            raise Invalid(
                "Give the requirement, or a queue and channel to take it from the forecast", field="queue"
            )
        requirement = await requirement_from_forecast(
            session,
            request,
            settings,
            queue=body.queue,
            channel=body.channel,
            first_day=body.first_day,
            days=body.days,
        )
    return await svc.auto_schedule(
        session,
        first_day=body.first_day,
        days=body.days,
        time_zone=settings.default_timezone,
        requirement=list(requirement),
        actor=user,
        queue_name=body.queue,
        channel=body.channel.value if body.channel else None,
        time_limit_s=body.time_limit_seconds,
    )


@router.post("/schedules", response_model=ScheduleRead, status_code=201)
async def post_schedule(
    body: ScheduleCreate, request: Request, session: DbSession, settings: AppSettings, user: RequireSupervisor
) -> ScheduleRead:
    """Auto-schedule (OR-Tools CP-SAT) the agents with contracts against the requirement: a draft
    with the coverage and shortfall per interval."""
    schedule = await create_schedule(session, request, settings, body, user)
    read = schedule_read(schedule, await svc.shifts_of(session, schedule.id))
    await session.commit()
    return read


@router.get("/schedules/{schedule_id}", response_model=ScheduleRead)
async def get_schedule(schedule_id: uuid.UUID, session: DbSession, _user: RequireSupervisor) -> ScheduleRead:
    schedule = await svc.get_schedule(session, schedule_id)
    read = schedule_read(schedule, await svc.shifts_of(session, schedule.id))
    await session.commit()
    return read


class ShiftWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: uuid.UUID
    start: datetime
    end: datetime


class ShiftMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: datetime
    end: datetime


@router.post("/schedules/{schedule_id}/shifts", response_model=ScheduleRead, status_code=201)
async def post_shift(
    schedule_id: uuid.UUID, body: ShiftWrite, session: DbSession, user: RequireSupervisor
) -> ScheduleRead:
    """Add a shift by hand: refused (nothing saved) when it overlaps the agent's shifts, breaks the
    contract's rest rule or weekly hours; the answer has the coverage recalculated."""
    schedule = await svc.get_schedule(session, schedule_id)
    await svc.add_shift(
        session, schedule=schedule, agent_id=body.agent_id, start=body.start, end=body.end, actor=user
    )
    read = schedule_read(schedule, await svc.shifts_of(session, schedule.id))
    await session.commit()
    return read


@router.patch("/schedules/{schedule_id}/shifts/{shift_id}", response_model=ScheduleRead)
async def patch_shift(
    schedule_id: uuid.UUID, shift_id: uuid.UUID, body: ShiftMove, session: DbSession, user: RequireSupervisor
) -> ScheduleRead:
    schedule = await svc.get_schedule(session, schedule_id)
    await svc.move_shift(
        session, schedule=schedule, shift_id=shift_id, start=body.start, end=body.end, actor=user
    )
    read = schedule_read(schedule, await svc.shifts_of(session, schedule.id))
    await session.commit()
    return read


@router.delete("/schedules/{schedule_id}/shifts/{shift_id}", response_model=ScheduleRead)
async def delete_shift(
    schedule_id: uuid.UUID, shift_id: uuid.UUID, session: DbSession, user: RequireSupervisor
) -> ScheduleRead:
    schedule = await svc.get_schedule(session, schedule_id)
    await svc.remove_shift(session, schedule=schedule, shift_id=shift_id, actor=user)
    read = schedule_read(schedule, await svc.shifts_of(session, schedule.id))
    await session.commit()
    return read


async def publish_schedule(session: AsyncSession, request: Request, schedule: Schedule, user: User) -> None:
    """Publish, commit, then tell each agent with shifts in it on their desktop."""
    agents = await svc.publish(session, schedule=schedule, actor=user)
    shifts = await svc.shifts_of(session, schedule.id)
    zone = ZoneInfo(schedule.time_zone)
    await session.commit()
    events = []
    for agent_id in agents:
        mine = [s for s in shifts if s.agent_id == agent_id]
        first = mine[0].start
        summary = (
            f"{len(mine)} shift{'s' if len(mine) != 1 else ''} from {first.astimezone(zone):%a %d %b %H:%M}"
        )
        message = SchedulePublished(
            schedule_id=str(schedule.id), shifts=len(mine), first_shift=first.isoformat(), summary=summary
        )
        events.append(message.to(agent_id))
    if events:
        await publish_many(request.app.state.redis_client, events)


@router.post("/schedules/{schedule_id}/publish", response_model=ScheduleRead)
async def post_publish(
    schedule_id: uuid.UUID, request: Request, session: DbSession, user: RequireSupervisor
) -> ScheduleRead:
    """Publish the schedule (audited); every agent with shifts in it is told on their desktop."""
    schedule = await svc.get_schedule(session, schedule_id)
    await publish_schedule(session, request, schedule, user)
    read = schedule_read(schedule, await svc.shifts_of(session, schedule.id))
    await session.commit()
    return read

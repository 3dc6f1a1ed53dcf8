"""``/api/workforce/forecast`` (the forecast with its backtest, overrides and requirement),
``/api/workforce/forecast/overrides`` and ``/api/workforce/holidays``, for supervisors."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from console.forecast_run import ForecastQuery, ForecastRead, IntervalMinutes, run_forecast
from interactions.states import Channel
from switchboard.deps import AppSettings, DbSession, RequireSupervisor
from workforce.forecast_models import ForecastOverride, Holiday
from workforce.forecast_service import (
    MAX_OVERRIDE_CONTACTS,
    add_holiday,
    clear_override,
    list_holidays,
    remove_holiday,
    set_override,
)

router = APIRouter(prefix="/api/workforce", tags=["workforce"])


@router.get("/forecast", response_model=ForecastRead)
async def get_forecast(
    query: Annotated[ForecastQuery, Query()],
    request: Request,
    session: DbSession,
    settings: AppSettings,
    _user: RequireSupervisor,
) -> ForecastRead:
    """Contacts per interval for a queue and channel (weekday × time-of-day seasonality, trend,
    holidays), the backtest on held-out weeks (WAPE, MAPE), the overrides in force and the agents
    each interval needs (Erlang C at the queue's service level)."""
    result = await run_forecast(
        session, request.app.state.redis_client, query, time_zone=settings.default_timezone
    )
    await session.commit()
    return result


class OverrideKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: Annotated[str, Field(min_length=1, max_length=60)]
    channel: Channel
    interval_minutes: IntervalMinutes
    interval_start: datetime = Field(description="Start of the interval, with its UTC offset")


class OverrideWrite(OverrideKey):
    contacts: Annotated[float, Field(ge=0, le=MAX_OVERRIDE_CONTACTS)]
    reason: Annotated[str, Field(max_length=255)] = ""


class OverrideRead(BaseModel):
    queue: str
    channel: str
    interval_minutes: int
    interval_start: datetime
    contacts: float
    reason: str
    set_at: datetime

    @classmethod
    def of(cls, row: ForecastOverride) -> OverrideRead:
        return cls(
            queue=row.queue_name,
            channel=row.channel,
            interval_minutes=row.interval_minutes,
            interval_start=row.interval_start,
            contacts=row.contacts,
            reason=row.reason,
            set_at=row.set_at,
        )


@router.put("/forecast/overrides", response_model=OverrideRead)
async def put_override(body: OverrideWrite, session: DbSession, user: RequireSupervisor) -> OverrideRead:
    """Use ``contacts`` for one interval instead of the model's figure (audited)."""
    row = await set_override(
        session,
        queue=body.queue,
        channel=body.channel.value,
        interval_minutes=body.interval_minutes,
        interval_start=body.interval_start,
        contacts=body.contacts,
        reason=body.reason,
        actor=user,
    )
    read = OverrideRead.of(row)
    await session.commit()
    return read


@router.delete("/forecast/overrides", status_code=204)
async def delete_override(
    key: Annotated[OverrideKey, Query()], session: DbSession, user: RequireSupervisor
) -> Response:
    """Back to the model's figure for that interval (audited)."""
    await clear_override(
        session,
        queue=key.queue,
        channel=key.channel.value,
        interval_minutes=key.interval_minutes,
        interval_start=key.interval_start,
        actor=user,
    )
    await session.commit()
    return Response(status_code=204)


class HolidayWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: date
    name: Annotated[str, Field(min_length=1, max_length=120)]


class HolidayRead(BaseModel):
    day: date
    name: str

    @classmethod
    def of(cls, row: Holiday) -> HolidayRead:
        return cls(day=row.day, name=row.name)


@router.get("/holidays", response_model=list[HolidayRead])
async def get_holidays(session: DbSession, _user: RequireSupervisor) -> list[HolidayRead]:
    rows = [HolidayRead.of(h) for h in await list_holidays(session)]
    await session.commit()
    return rows


@router.post("/holidays", response_model=HolidayRead, status_code=201)
async def post_holiday(body: HolidayWrite, session: DbSession, user: RequireSupervisor) -> HolidayRead:
    """Add a day to the holiday list (or rename it); the forecast learns one factor for them."""
    read = HolidayRead.of(await add_holiday(session, day=body.day, name=body.name, actor=user))
    await session.commit()
    return read


@router.delete("/holidays/{day}", status_code=204)
async def delete_holiday(day: date, session: DbSession, user: RequireSupervisor) -> Response:
    await remove_holiday(session, day=day, actor=user)
    await session.commit()
    return Response(status_code=204)

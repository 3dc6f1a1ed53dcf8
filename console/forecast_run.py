"""One forecast as the console and ``GET /api/workforce/forecast`` show it: the history from
``interactions.volume``, the model and its backtest from ``workforce.forecast``, the supervisors'
overrides and the staffing requirement from ``workforce.forecast_service``.

Here, above interactions in the layers, because it joins interaction history (interactions/) with
planning (workforce/), which sits below it. The model's output is cached in Redis under a hash of
everything it depends on (the counts themselves, the holidays, the parameters), so a repeat view
costs one GROUP BY and a Redis read, and new history or a new holiday is never served stale.
Overrides and the requirement are applied after the cache: an override shows at once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interactions.states import Channel
from interactions.volume import Series, history
from switchboard.errors import Invalid
from workforce.forecast import Calendar, NotEnoughHistory, backtest, fit, interval_starts
from workforce.forecast_service import Target, list_holidays, overrides_between, requirement
from workforce.models import Queue

CACHE_TTL_S = 3600
CACHE_PREFIX = "wfm:forecast:"
MODEL_VERSION = 2  # bump when the model changes: old cache entries are then never read

MAX_HISTORY_WEEKS = 16
MAX_HORIZON_DAYS = 28
MAX_BACKTEST_WEEKS = 4
# Days a plan may concern (far-off dates would overflow the date arithmetic, never useful anyway).
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2100, 1, 1)

# 15 or 30 (a Literal would refuse the string "30" of a query parameter).
IntervalMinutes = Annotated[
    int, Field(ge=15, le=30, multiple_of=15, description="Interval length in minutes: 15 or 30")
]


class ForecastQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: Annotated[str, Field(min_length=1, max_length=60, description="Queue name, e.g. cards")]
    channel: Channel = Channel.VOICE
    interval_minutes: IntervalMinutes = 30
    history_weeks: Annotated[
        int, Field(ge=2, le=MAX_HISTORY_WEEKS, description="Whole weeks of history before the horizon")
    ] = 8
    horizon_days: Annotated[int, Field(ge=1, le=MAX_HORIZON_DAYS, description="Days to forecast")] = 7
    backtest_weeks: Annotated[
        int, Field(ge=1, le=MAX_BACKTEST_WEEKS, description="Last weeks of history held out for the backtest")
    ] = 2
    start: date | None = Field(
        default=None, ge=EARLIEST_DAY, le=LATEST_DAY, description="First day of the horizon (default: today)"
    )
    aht_seconds: Annotated[
        float | None,
        Field(gt=0, le=86_400, description="Handle time for the requirement (default: the history's mean)"),
    ] = None
    shrinkage: Annotated[float, Field(ge=0, lt=1, description="Share of paid time not on the phones")] = 0.3


class BacktestRead(BaseModel):
    weeks: int
    intervals: int
    actual_total: float
    forecast_total: float
    wape: float | None = Field(description="Σ|actual − forecast| / Σ actual over the held-out weeks")
    mape: float | None = Field(description="Mean |actual − forecast| / actual over intervals with contacts")


class IntervalRead(BaseModel):
    start: datetime
    forecast: float = Field(description="The model's contacts")
    override: float | None = Field(description="A supervisor's figure, used instead of the model's")
    override_reason: str | None
    contacts: float = Field(description="What planning uses: the override when there is one")
    agents: int | None = Field(description="Agents on the phones to meet the queue's service level")
    scheduled_agents: int | None = Field(description="Agents to schedule (after shrinkage)")


class ForecastRead(BaseModel):
    queue: str
    channel: Channel
    interval_minutes: int
    time_zone: str
    horizon_start: datetime
    history_start: datetime = Field(description="The first day of the history asked for")
    history_used_from: datetime = Field(
        description="The first day the model read: the day of the history's first contact (the days "
        "before it, before the queue had traffic, are not read as zero traffic)"
    )
    history_contacts: int
    weekly_growth: float = Field(description="Trend: growth per week (0.02 = 2 %)")
    holiday_factor: float | None = Field(
        description="Holiday traffic as a share of a usual day's; null when the history has no holiday"
    )
    closed_holidays: list[date] = Field(
        description="Holidays in the horizon forecast closed (none to learn from)"
    )
    backtest: BacktestRead | None
    backtest_note: str | None
    aht_seconds: float | None
    aht_source: Literal["history", "given"] | None
    service_level_target: float
    target_answer_seconds: float
    shrinkage: float
    intervals: list[IntervalRead]
    forecast_total: float
    contacts_total: float


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _model_run(
    series: Series, calendar: Calendar, horizon: list[datetime], backtest_weeks: int
) -> dict[str, Any]:
    starts = interval_starts(series.first, len(series.counts), series.interval_minutes)
    try:
        model = fit(starts, series.counts, calendar)
    except NotEnoughHistory as exc:
        raise Invalid(f"Cannot forecast from this history: {exc}", field="history_weeks") from exc
    note = None
    tested: dict[str, Any] | None = None
    try:
        tested = asdict(backtest(starts, series.counts, calendar, backtest_weeks))
    except NotEnoughHistory as exc:
        note = f"No backtest: {exc}"
    days = {s.astimezone(calendar.zone).date() for s in horizon}
    return {
        "forecast": [round(float(v), 4) for v in model.predict(horizon)],
        "history_from": model.origin.isoformat(),
        "weekly_growth": model.weekly_growth,
        "holiday_factor": model.holiday_factor,
        "closed_holidays": [
            d.isoformat() for d in sorted(days & calendar.holidays) if model.holiday_log_factor is None
        ],
        "backtest": tested,
        "backtest_note": note,
    }


async def run_forecast(
    session: AsyncSession, redis: Redis, query: ForecastQuery, *, time_zone: str, today: date | None = None
) -> ForecastRead:
    queue = await session.scalar(select(Queue).where(Queue.name == query.queue))
    if queue is None:
        raise Invalid(f"No queue named {query.queue!r}", field="queue")
    if query.backtest_weeks >= query.history_weeks:
        raise Invalid("Hold out fewer weeks than the history has", field="backtest_weeks")
    zone = ZoneInfo(time_zone)
    first_day = query.start or today or datetime.now(zone).date()
    horizon_start = _local_midnight(first_day, zone)
    horizon_end = _local_midnight(first_day + timedelta(days=query.horizon_days), zone)
    history_start = _local_midnight(first_day - timedelta(weeks=query.history_weeks), zone)
    step = timedelta(minutes=query.interval_minutes)
    series = await history(
        session,
        queue=query.queue,
        channel=query.channel,
        first=history_start,
        intervals=int((horizon_start - history_start) / step),
        interval_minutes=query.interval_minutes,
    )
    if sum(series.counts) == 0:
        raise Invalid(
            f"No inbound {query.channel.value} contacts on {query.queue} in the {query.history_weeks} weeks "
            f"before {first_day.isoformat()}: nothing to forecast from",
            field="queue",
        )
    holidays = frozenset(h.day for h in await list_holidays(session))
    overridden = await overrides_between(
        session,
        queue=query.queue,
        channel=query.channel.value,
        interval_minutes=query.interval_minutes,
        first=horizon_start,
        end=horizon_end,
    )
    overrides = {start: (row.contacts, row.reason) for start, row in overridden.items()}
    service_level_target = queue.sl_target_percent / 100
    target_answer_seconds = float(queue.sl_threshold_seconds)
    # The SQLite rule (docs/architecture.md): every read is done; end the transaction before the
    # model runs (seconds on a cold cache), so no write lock is held through it.
    await session.commit()
    calendar = Calendar(query.interval_minutes, zone, holidays)
    horizon = interval_starts(
        horizon_start, int((horizon_end - horizon_start) / step), query.interval_minutes
    )
    fingerprint = hashlib.sha256(
        json.dumps(
            [
                MODEL_VERSION,
                query.queue,
                query.channel.value,
                query.interval_minutes,
                query.backtest_weeks,
                time_zone,
                series.first.isoformat(),
                horizon_start.isoformat(),
                len(horizon),
                sorted(d.isoformat() for d in holidays),
                series.counts,
            ]
        ).encode()
    ).hexdigest()
    key = CACHE_PREFIX + fingerprint
    cached = await redis.get(key)
    if cached is not None:
        run: dict[str, Any] = json.loads(cached)
    else:
        run = await run_in_threadpool(_model_run, series, calendar, horizon, query.backtest_weeks)
        await redis.set(key, json.dumps(run), ex=CACHE_TTL_S)

    contacts = [
        overrides[s][0] if s in overrides else value
        for s, value in zip(horizon, run["forecast"], strict=True)
    ]
    aht = query.aht_seconds or series.aht_seconds
    aht_source: Literal["history", "given"] = "given" if query.aht_seconds else "history"
    target = Target(
        aht_seconds=aht or 0.0,
        service_level_target=service_level_target,
        target_answer_seconds=target_answer_seconds,
        shrinkage=query.shrinkage,
    )
    needs = (
        await run_in_threadpool(requirement, contacts, interval_minutes=query.interval_minutes, target=target)
        if aht
        else [None] * len(horizon)
    )
    intervals = [
        IntervalRead(
            start=s,
            forecast=value,
            override=overrides[s][0] if s in overrides else None,
            override_reason=overrides[s][1] if s in overrides else None,
            contacts=used,
            agents=None if need is None else need.agents,
            scheduled_agents=None if need is None else need.scheduled_agents,
        )
        for s, value, used, need in zip(horizon, run["forecast"], contacts, needs, strict=True)
    ]
    return ForecastRead(
        queue=query.queue,
        channel=query.channel,
        interval_minutes=query.interval_minutes,
        time_zone=time_zone,
        horizon_start=horizon_start,
        history_start=history_start,
        history_used_from=datetime.fromisoformat(run["history_from"]),
        history_contacts=sum(series.counts),
        weekly_growth=run["weekly_growth"],
        holiday_factor=run["holiday_factor"],
        closed_holidays=[date.fromisoformat(d) for d in run["closed_holidays"]],
        backtest=None if run["backtest"] is None else BacktestRead(**run["backtest"]),
        backtest_note=run["backtest_note"],
        aht_seconds=aht,
        aht_source=aht_source if aht else None,
        service_level_target=target.service_level_target,
        target_answer_seconds=target.target_answer_seconds,
        shrinkage=query.shrinkage,
        intervals=intervals,
        forecast_total=round(sum(run["forecast"]), 2),
        contacts_total=round(sum(contacts), 2),
    )

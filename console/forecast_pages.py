"""``/supervisor/workforce/forecast``: the forecast of a queue and channel with its backtest beside
it, a chart of contacts and required agents per interval, a form to override an interval (and
clear one), and the holiday list. A plain GET form like the staffing page (keyboard, history and
bookmarks work); the writes are small POST forms that come back to the same forecast."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from console.context import ConsoleStaff, console_context, supervisor_or_login
from console.forecast_run import ForecastQuery, ForecastRead, run_forecast
from switchboard.auth.models import User
from switchboard.deps import AppSettings, DbSession, OptionalUser
from switchboard.errors import DomainError, Invalid
from switchboard.settings import Settings
from switchboard.templating import templates
from workforce.forecast_service import (
    add_holiday,
    clear_override,
    list_holidays,
    remove_holiday,
    set_override,
)
from workforce.models import Queue

router = APIRouter(tags=["pages"], include_in_schema=False)

PAGE = "/supervisor/workforce/forecast"
TEMPLATE = "console/workforce/forecast.html"
FIELDS = (
    "queue",
    "channel",
    "interval_minutes",
    "history_weeks",
    "horizon_days",
    "backtest_weeks",
    "start",
    "aht_seconds",
    "shrinkage",
)
DEFAULTS = {
    "channel": "voice",
    "interval_minutes": "30",
    "history_weeks": "8",
    "horizon_days": "7",
    "backtest_weeks": "2",
    "start": "",
    "aht_seconds": "",
    "shrinkage": "0.3",
}


def _chart(result: ForecastRead, zone: ZoneInfo) -> str:
    return json.dumps(
        {
            "labels": [i.start.astimezone(zone).strftime("%a %d %H:%M") for i in result.intervals],
            "forecast": [round(i.forecast, 2) for i in result.intervals],
            "contacts": [round(i.contacts, 2) for i in result.intervals],
            "overridden": [i.override is not None for i in result.intervals],
            "agents": [i.scheduled_agents for i in result.intervals],
        }
    )


async def _render(
    request: Request,
    staff: User,
    settings: Settings,
    session: AsyncSession,
    form: dict[str, str],
    *,
    errors: dict[str, str] | None = None,
    notice: str = "",
    compute: bool = True,
) -> Response:
    zone = ZoneInfo(settings.default_timezone)
    queues = list(await session.scalars(select(Queue.name).order_by(Queue.name)))
    if not form.get("queue") and queues:
        form["queue"] = queues[0]
    errors = dict(errors or {})
    result: ForecastRead | None = None
    status = 422 if errors else 200
    if compute:
        try:
            query = ForecastQuery.model_validate(
                {k: v for k, v in form.items() if k in FIELDS and v.strip() != ""}
            )
            result = await run_forecast(
                session, request.app.state.redis_client, query, time_zone=settings.default_timezone
            )
        except ValidationError as exc:
            errors |= {str(e["loc"][0]) if e["loc"] else "": e["msg"] for e in exc.errors()}
            status = 422
        except Invalid as exc:
            errors[exc.field or ""] = exc.detail
            status = 422
    context: dict[str, Any] = await console_context(
        request,
        staff,
        settings,
        session,
        form=form,
        errors=errors,
        notice=notice,
        queues=queues,
        result=result,
        zone=zone,
        chart=_chart(result, zone) if result else None,
        holidays=await list_holidays(session),
        back=urlencode({k: form.get(k, "") for k in FIELDS}),
        today=datetime.now(zone).date().isoformat(),
    )
    await session.commit()
    return templates.TemplateResponse(request, TEMPLATE, context, status_code=status)


@router.get(PAGE, response_class=HTMLResponse)
async def forecast_page(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    asked = any(k in request.query_params for k in FIELDS)
    form = dict(DEFAULTS) | {k: request.query_params.get(k, "") for k in FIELDS if k in request.query_params}
    return await _render(
        request, staff, settings, session, form, notice=request.query_params.get("saved", ""), compute=asked
    )


def _back_form(posted: dict[str, str]) -> dict[str, str]:
    return dict(DEFAULTS) | {k: posted[k] for k in FIELDS if posted.get(k, "") != ""}


async def _posted(request: Request) -> dict[str, str]:
    return {k: str(v) for k, v in (await request.form()).items()}


def _local_start(value: str, zone: ZoneInfo) -> datetime:
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid("Give a date and time, e.g. 2026-12-07T09:00", field="interval_start") from None
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone)
    return local.astimezone(UTC)


def _interval_minutes(value: str) -> int:
    if value not in ("15", "30"):
        raise Invalid("15 or 30", field="interval_minutes")
    return int(value)


def _utc_start(value: str) -> datetime:
    try:
        start = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid("Give the interval's start", field="interval_start") from None
    if start.tzinfo is None:
        raise Invalid("Give the interval start with its UTC offset", field="interval_start")
    return start


def _number(value: str, field: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise Invalid("Give a number", field=field) from None


def _redirect(posted: dict[str, str], saved: str) -> Response:
    query = {k: posted[k] for k in FIELDS if posted.get(k, "") != ""} | {"saved": saved}
    return RedirectResponse(f"{PAGE}?{urlencode(query)}#forecast-notice", status_code=303)


@router.post(PAGE + "/overrides", response_class=HTMLResponse)
async def save_override(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    posted = await _posted(request)
    zone = ZoneInfo(settings.default_timezone)
    form = _back_form(posted)
    form["override_start"] = posted.get("interval_start", "")
    form["override_contacts"] = posted.get("contacts", "")
    form["override_reason"] = posted.get("reason", "")
    try:
        interval_minutes = _interval_minutes(posted.get("interval_minutes", "30"))
        start = _local_start(posted.get("interval_start", ""), zone)
        row = await set_override(
            session,
            queue=posted.get("queue", ""),
            channel=posted.get("channel", "voice"),
            interval_minutes=interval_minutes,
            interval_start=start,
            contacts=_number(posted.get("contacts", ""), "contacts"),
            reason=posted.get("reason", "")[:255],
            actor=staff,
        )
        saved = f"Override saved: {row.contacts:g} contacts at {start.astimezone(zone):%a %d %b %H:%M}"
        await session.commit()
    except DomainError as exc:
        await session.rollback()
        errors = {f"override_{exc.field or 'interval_start'}": exc.detail}
        return await _render(request, staff, settings, session, form, errors=errors)
    return _redirect(posted, saved)


@router.post(PAGE + "/overrides/clear", response_class=HTMLResponse)
async def remove_override(request: Request, user: OptionalUser, session: DbSession) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    posted = await _posted(request)
    await clear_override(
        session,
        queue=posted.get("queue", ""),
        channel=posted.get("channel", "voice"),
        interval_minutes=_interval_minutes(posted.get("interval_minutes", "30")),
        interval_start=_utc_start(posted.get("interval_start", "")),
        actor=staff,
    )
    await session.commit()
    return _redirect(posted, "Override cleared")


@router.post("/supervisor/workforce/holidays", response_class=HTMLResponse)
async def save_holiday(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    posted = await _posted(request)
    try:
        day = date.fromisoformat(posted.get("day", ""))
    except ValueError:
        return await _render(
            request,
            staff,
            settings,
            session,
            _back_form(posted),
            errors={"holiday_day": "Give a date"},
            compute=False,
        )
    try:
        await add_holiday(session, day=day, name=posted.get("name", ""), actor=staff)
        await session.commit()
    except Invalid as exc:
        await session.rollback()
        return await _render(
            request,
            staff,
            settings,
            session,
            _back_form(posted),
            errors={f"holiday_{exc.field}": exc.detail},
            compute=False,
        )
    return _redirect(posted, f"Holiday {day.isoformat()} saved")


@router.post("/supervisor/workforce/holidays/{day}/remove", response_class=HTMLResponse)
async def drop_holiday(staff: ConsoleStaff, day: date, request: Request, session: DbSession) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    posted = await _posted(request)
    await remove_holiday(session, day=day, actor=staff)
    await session.commit()
    return _redirect(posted, f"Holiday {day.isoformat()} removed")

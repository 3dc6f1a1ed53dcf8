"""``/supervisor/workforce/schedules``: the schedules, a form to auto-schedule from the forecast,
and one page per schedule with the coverage-versus-requirement chart, the shortfall per interval,
each shift editable by a small form (coverage recalculated on the page that comes back), and the
publish button (agents told on their desktop). Writes go through ``console.schedule_api``'s
functions, so the pages and the JSON API refuse and audit alike."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from console.context import ConsoleStaff, console_context, supervisor_or_login
from console.schedule_api import ScheduleCreate, create_schedule, publish_schedule
from switchboard.auth.models import User
from switchboard.deps import AppSettings, DbSession, OptionalUser
from switchboard.errors import DomainError, Invalid
from switchboard.settings import Settings
from switchboard.templating import templates
from workforce import schedule_service as svc
from workforce.models import Agent, Queue
from workforce.schedule_models import AgentContract, Schedule, ShiftTemplate

router = APIRouter(tags=["pages"], include_in_schema=False)

LIST = "/supervisor/workforce/schedules"


@router.get(LIST, response_class=HTMLResponse)
async def schedules_page(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    return await _list(request, staff, settings, session, form={}, errors={})


async def _list(
    request: Request,
    staff: User,
    settings: Settings,
    session: AsyncSession,
    *,
    form: dict[str, str],
    errors: dict[str, str],
) -> Response:
    zone = ZoneInfo(settings.default_timezone)
    schedules = list(await session.scalars(select(Schedule).order_by(Schedule.created_at.desc()).limit(50)))
    context = await console_context(
        request,
        staff,
        settings,
        session,
        schedules=schedules,
        queues=list(await session.scalars(select(Queue.name).order_by(Queue.name))),
        shift_templates=list(await session.scalars(select(ShiftTemplate).order_by(ShiftTemplate.name))),
        contracts=len(list(await session.scalars(select(AgentContract.agent_id)))),
        form={"first_day": (datetime.now(zone).date() + timedelta(days=1)).isoformat(), "days": "7"} | form,
        errors=errors,
    )
    await session.commit()
    return templates.TemplateResponse(
        request, "console/workforce/schedules.html", context, status_code=422 if errors else 200
    )


@router.post(LIST, response_class=HTMLResponse)
async def create_from_forecast(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    form = {k: str(v) for k, v in (await request.form()).items() if k != "csrf_token"}
    try:
        body = ScheduleCreate.model_validate(
            {
                "first_day": form.get("first_day"),
                "days": form.get("days") or 7,
                "queue": form.get("queue") or None,
                "channel": form.get("channel") or None,
                "time_limit_seconds": form.get("time_limit_seconds") or 20,
            }
        )
        schedule = await create_schedule(session, request, settings, body, staff)
        schedule_id = schedule.id
        await session.commit()
    except ValidationError as exc:
        await session.rollback()
        errors = {str(e["loc"][0]) if e["loc"] else "": e["msg"] for e in exc.errors()}
        return await _list(request, staff, settings, session, form=form, errors=errors)
    except DomainError as exc:
        await session.rollback()
        return await _list(request, staff, settings, session, form=form, errors={exc.field or "": exc.detail})
    return RedirectResponse(f"{LIST}/{schedule_id}", status_code=303)


def _chart(cover: svc.Coverage, zone: ZoneInfo) -> str:
    return json.dumps(
        {
            "labels": [at.astimezone(zone).strftime("%a %d %H:%M") for at in cover.starts],
            "required": cover.requirement,
            "scheduled": cover.coverage,
            "shortfall": cover.shortfall,
        }
    )


async def _detail(
    request: Request,
    staff: User,
    settings: Settings,
    session: AsyncSession,
    schedule_id: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    notice: str = "",
) -> Response:
    schedule = await svc.get_schedule(session, schedule_id)
    shifts = await svc.shifts_of(session, schedule.id)
    zone = ZoneInfo(schedule.time_zone)
    cover = svc.coverage(schedule, shifts)
    names = dict((await session.execute(select(Agent.id, Agent.display_name))).tuples().all())
    short = [
        (at, need, have, gap)
        for at, need, have, gap in zip(
            cover.starts, cover.requirement, cover.coverage, cover.shortfall, strict=True
        )
        if gap
    ]
    context: dict[str, Any] = await console_context(
        request,
        staff,
        settings,
        session,
        schedule=schedule,
        shifts=shifts,
        names=names,
        agents=sorted(names.items(), key=lambda kv: kv[1]),
        zone=zone,
        cover=cover,
        short=short,
        chart=_chart(cover, zone),
        errors=errors or {},
        form=form or {},
        notice=notice,
        local_input=local_input,
    )
    await session.commit()
    return templates.TemplateResponse(
        request, "console/workforce/schedule.html", context, status_code=422 if errors else 200
    )


@router.get(LIST + "/{schedule_id}", response_class=HTMLResponse)
async def schedule_page(
    staff: ConsoleStaff, schedule_id: uuid.UUID, request: Request, settings: AppSettings, session: DbSession
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    return await _detail(
        request, staff, settings, session, schedule_id, notice=request.query_params.get("saved", "")
    )


def _local(value: str, zone: ZoneInfo, field: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid("Give a date and time", field=field) from None
    return (at if at.tzinfo else at.replace(tzinfo=zone)).astimezone(UTC)


@router.post(LIST + "/{schedule_id}/shifts", response_class=HTMLResponse)
async def save_shift(
    staff: ConsoleStaff, schedule_id: uuid.UUID, request: Request, settings: AppSettings, session: DbSession
) -> Response:
    """Add a shift (no ``shift_id``) or move one; a refusal comes back at its field, nothing saved."""
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    form = {k: str(v) for k, v in (await request.form()).items() if k != "csrf_token"}
    shift_id = form.get("shift_id", "")
    prefix = f"shift-{shift_id}-" if shift_id else "new-"
    try:
        schedule = await svc.get_schedule(session, schedule_id)
        zone = ZoneInfo(schedule.time_zone)
        start = _local(form.get("start", ""), zone, "start")
        end = _local(form.get("end", ""), zone, "end")
        if form.get("remove"):
            await svc.remove_shift(session, schedule=schedule, shift_id=uuid.UUID(shift_id), actor=staff)
            saved = "Shift removed"
        elif shift_id:
            await svc.move_shift(
                session, schedule=schedule, shift_id=uuid.UUID(shift_id), start=start, end=end, actor=staff
            )
            saved = "Shift moved"
        else:
            try:
                agent_id = uuid.UUID(form.get("agent_id", ""))
            except ValueError:
                raise Invalid("Choose an agent", field="agent_id") from None
            await svc.add_shift(
                session, schedule=schedule, agent_id=agent_id, start=start, end=end, actor=staff
            )
            saved = "Shift added"
        await session.commit()
    except DomainError as exc:
        await session.rollback()
        errors = {prefix + (exc.field or "start"): exc.detail}
        return await _detail(request, staff, settings, session, schedule_id, errors=errors, form=form)
    return RedirectResponse(f"{LIST}/{schedule_id}?{urlencode({'saved': saved})}", status_code=303)


@router.post(LIST + "/{schedule_id}/publish", response_class=HTMLResponse)
async def publish_page(
    staff: ConsoleStaff, schedule_id: uuid.UUID, request: Request, session: DbSession
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    schedule = await svc.get_schedule(session, schedule_id)
    await publish_schedule(session, request, schedule, staff)
    return RedirectResponse(
        f"{LIST}/{schedule_id}?{urlencode({'saved': 'Published: agents told'})}", status_code=303
    )


def local_input(at: datetime, zone: ZoneInfo) -> str:
    """A ``datetime-local`` input's value for ``at`` in the schedule's zone."""
    return at.astimezone(zone).strftime("%Y-%m-%dT%H:%M")

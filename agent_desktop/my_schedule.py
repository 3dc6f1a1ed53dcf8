"""``/desktop/schedule``: the agent's own published shifts for the coming days with their breaks,
today's adherence (``workforce.adherence_service.day_adherence``), and their swap and time-off
requests with what they can do about each (ask, accept or decline a peer's swap, cancel their own).
Writes go through ``workforce.swap_api``'s functions, so the page and the JSON API refuse, audit and
tell the agents alike."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.auth.models import Role, User
from switchboard.auth.pages import page_context
from switchboard.db import utcnow
from switchboard.deps import AppSettings, DbSession, check_staff, get_optional_user
from switchboard.errors import DomainError, Invalid, Unauthorized
from switchboard.settings import Settings
from switchboard.templating import templates
from workforce import swap_service as swaps
from workforce.adherence_service import day_adherence
from workforce.models import Agent
from workforce.schedule_models import Schedule, ScheduledShift, ScheduleStatus
from workforce.swap_api import RequestWrite, commit_and_tell, create_request, reads

router = APIRouter(prefix="/desktop", tags=["pages"], include_in_schema=False)

PAGE = "/desktop/schedule"
DAYS_AHEAD = 14


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


def _user_or_login(request: Request, user: User | None) -> User | None:
    if user is None:
        if "text/html" in request.headers.get("accept", ""):
            return None
        raise Unauthorized("Sign in first")
    return check_staff(user, Role.AGENT)


async def _desk_user(request: Request) -> User | None:
    return _user_or_login(request, await get_optional_user(request))


# As a dependency, so it answers 401/403 before path parameters are validated.
DeskUser = Annotated[User | None, Depends(_desk_user)]


async def _agent_id(session: AsyncSession, user: User) -> uuid.UUID | None:
    return await session.scalar(select(Agent.id).where(Agent.user_id == user.id))


async def _upcoming(session: AsyncSession, *, since: datetime, until: datetime) -> list[ScheduledShift]:
    """Every published shift ending after ``since`` and starting before ``until``."""
    return list(
        await session.scalars(
            select(ScheduledShift)
            .join(Schedule, Schedule.id == ScheduledShift.schedule_id)
            .where(
                Schedule.status == ScheduleStatus.PUBLISHED,
                ScheduledShift.end > since,
                ScheduledShift.start < until,
            )
            .order_by(ScheduledShift.start)
        )
    )


async def _page(
    request: Request,
    user: User,
    settings: Settings,
    session: AsyncSession,
    *,
    error: str = "",
    error_field: str = "",
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    zone = ZoneInfo(settings.default_timezone)
    now = utcnow()
    agent_id = await _agent_id(session, user)
    context: dict[str, Any] = {"agent_id": agent_id, "zone": zone, "now": now}
    if agent_id is not None:
        shifts = await _upcoming(
            session, since=now - timedelta(hours=12), until=now + timedelta(days=DAYS_AHEAD)
        )
        names = dict((await session.execute(select(Agent.id, Agent.display_name))).all())
        today = [a for a in await day_adherence(session, day=now.date(), now=now) if a.agent_id == agent_id]
        context.update(
            mine=[s for s in shifts if s.agent_id == agent_id],
            # A peer's shift to ask for: not started, someone else's.
            peers=[s for s in shifts if s.agent_id != agent_id and s.start > now],
            names=names,
            today=today[0] if today else None,
            requests=await reads(session, await swaps.requests_for_agent(session, agent_id)),
        )
    context.update(
        error=error,
        error_field=error_field,
        form=form or {},
        saved=request.query_params.get("saved", ""),
        percent=percent,
        local=lambda at: at.astimezone(zone),
        breaks_of=lambda s: [
            (datetime.fromisoformat(a).astimezone(zone), datetime.fromisoformat(b).astimezone(zone))
            for a, b in s.breaks
        ],
    )
    await session.commit()
    return templates.TemplateResponse(
        request,
        "agent_desktop/schedule.html",
        page_context(request, user, settings, **context),
        status_code=status,
    )


@router.get("/schedule", response_class=HTMLResponse)
async def my_schedule(
    request: Request, staff: DeskUser, settings: AppSettings, session: DbSession
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    return await _page(request, staff, settings, session)


def _local(value: str, zone: ZoneInfo, field: str) -> datetime | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid("Give a date and time", field=field) from None
    return (at if at.tzinfo else at.replace(tzinfo=zone)).astimezone(UTC)


@router.post("/schedule/requests", response_class=HTMLResponse)
async def ask(request: Request, staff: DeskUser, settings: AppSettings, session: DbSession) -> Response:
    """Ask for time off (all or part of a shift) or a swap with a peer's shift."""
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    form = {k: str(v) for k, v in (await request.form()).items() if k != "csrf_token"}
    zone = ZoneInfo(settings.default_timezone)
    try:
        agent_id = await _agent_id(session, staff)
        if agent_id is None:
            raise Invalid("Your account has no agent profile", field="agent")
        body = RequestWrite.model_validate(
            {
                "kind": form.get("kind"),
                "shift_id": form.get("shift_id") or None,
                "peer_shift_id": form.get("peer_shift_id") or None,
                "start": _local(form.get("start", ""), zone, "start"),
                "end": _local(form.get("end", ""), zone, "end"),
                "note": form.get("note", ""),
            }
        )
        row = await create_request(session, body, agent_id, staff.id)
        await commit_and_tell(session, request, row)
    except ValidationError as exc:
        await session.rollback()
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        return await _page(
            request,
            staff,
            settings,
            session,
            error=f"{field}: {first['msg']}",
            error_field=field,
            form=form,
            status=422,
        )
    except DomainError as exc:
        await session.rollback()
        return await _page(
            request,
            staff,
            settings,
            session,
            error=exc.detail,
            error_field=exc.field or "",
            form=form,
            status=exc.status,
        )
    what = (
        "Swap asked: waiting for your peer"
        if body.kind == "swap"
        else "Time off asked: waiting for a supervisor"
    )
    return RedirectResponse(f"{PAGE}?{urlencode({'saved': what})}", status_code=303)


@router.post("/schedule/requests/{request_id}/{action}", response_class=HTMLResponse)
async def act(
    request_id: uuid.UUID,
    action: Literal["accept", "decline", "cancel"],
    request: Request,
    staff: DeskUser,
    settings: AppSettings,
    session: DbSession,
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    try:
        agent_id = await _agent_id(session, staff)
        if agent_id is None:
            raise Invalid("Your account has no agent profile", field="agent")
        if action == "cancel":
            row = await swaps.cancel(session, request_id=request_id, agent_id=agent_id, actor_id=staff.id)
        else:
            row = await swaps.answer_as_peer(
                session,
                request_id=request_id,
                agent_id=agent_id,
                accept=action == "accept",
                actor_id=staff.id,
            )
        await commit_and_tell(session, request, row)
    except DomainError as exc:
        await session.rollback()
        return await _page(request, staff, settings, session, error=exc.detail, status=exc.status)
    done = {
        "accept": "Swap accepted: waiting for a supervisor",
        "decline": "Swap declined",
        "cancel": "Request cancelled",
    }
    return RedirectResponse(f"{PAGE}?{urlencode({'saved': done[action]})}", status_code=303)

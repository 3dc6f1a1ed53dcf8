"""``/supervisor/workforce/rosters``: the shift templates (add one) and each agent's contract
(weekly hours and days, rest between shifts), one small form per row, keyboard-usable. Writes go
through ``workforce.schedule_service`` as the JSON API's do (same checks, same audit)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from console.context import ConsoleStaff, console_context
from switchboard.auth.models import User
from switchboard.deps import AppSettings, DbSession
from switchboard.errors import DomainError, Invalid
from switchboard.settings import Settings
from switchboard.templating import templates
from workforce import schedule_service as svc
from workforce.models import Agent
from workforce.schedule_models import AgentContract, ShiftTemplate

router = APIRouter(tags=["pages"], include_in_schema=False)

PAGE = "/supervisor/workforce/rosters"


def _clock(value: str, field: str) -> int:
    """'07:30' -> 450 minutes after midnight."""
    try:
        hours, minutes = value.strip().split(":")
        total = int(hours) * 60 + int(minutes)
    except ValueError:
        raise Invalid("A time as HH:MM", field=field) from None
    if not 0 <= total < 1440:
        raise Invalid("A time as HH:MM", field=field)
    return total


def _hours(value: str, field: str) -> int:
    """'37.5' hours -> 2250 minutes."""
    try:
        minutes = round(float(value) * 60)
    except ValueError:
        raise Invalid("A number of hours", field=field) from None
    if minutes < 0:
        raise Invalid("Not negative", field=field)
    return minutes


def _breaks(value: str) -> list[dict[str, int]]:
    """'15@1:30-2:30, 30@3:30-5:00': a 15-minute break starting 1 h 30 to 2 h 30 into the shift, ..."""
    breaks = []
    for i, part in enumerate(p.strip() for p in value.split(",") if p.strip()):
        try:
            minutes, window = part.split("@")
            first, last = window.split("-")
            breaks.append(
                {
                    "minutes": int(minutes),
                    "earliest_after": _clock(first, f"breaks.{i}"),
                    "latest_after": _clock(last, f"breaks.{i}"),
                }
            )
        except ValueError:
            raise Invalid(
                "Breaks as minutes@from-to into the shift, e.g. 15@1:30-2:30", field=f"breaks.{i}"
            ) from None
    return breaks


async def _render(
    request: Request,
    staff: User,
    settings: Settings,
    session: AsyncSession,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    notice: str = "",
) -> Response:
    agents = list(await session.scalars(select(Agent).order_by(Agent.display_name)))
    contracts = {c.agent_id: c for c in await session.scalars(select(AgentContract))}
    context: dict[str, Any] = await console_context(
        request,
        staff,
        settings,
        session,
        shift_templates=list(await session.scalars(select(ShiftTemplate).order_by(ShiftTemplate.name))),
        agents=agents,
        contracts=contracts,
        errors=errors or {},
        form=form or {},
        notice=notice,
    )
    await session.commit()
    return templates.TemplateResponse(
        request, "console/workforce/rosters.html", context, status_code=422 if errors else 200
    )


@router.get(PAGE, response_class=HTMLResponse)
async def rosters_page(
    staff: ConsoleStaff, request: Request, settings: AppSettings, session: DbSession
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    return await _render(request, staff, settings, session, notice=request.query_params.get("saved", ""))


@router.post(PAGE + "/templates", response_class=HTMLResponse)
async def add_template(
    staff: ConsoleStaff, request: Request, settings: AppSettings, session: DbSession
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    form = {k: str(v) for k, v in (await request.form()).items() if k != "csrf_token"}
    try:
        name = form.get("name", "").strip()
        if not name or len(name) > 60:
            raise Invalid("1 to 60 characters", field="name")
        try:
            step = int(form.get("start_step_minutes", "30"))
        except ValueError:
            raise Invalid("15, 30 or 60", field="start_step_minutes") from None
        await svc.create_template(
            session,
            name=name,
            earliest=_clock(form.get("earliest", ""), "earliest_start_minute"),
            latest=_clock(form.get("latest", ""), "latest_start_minute"),
            length=_hours(form.get("length_hours", ""), "length_minutes"),
            step=step,
            breaks=_breaks(form.get("breaks", "")),
            actor=staff,
        )
        await session.commit()
    except DomainError as exc:
        await session.rollback()
        field = exc.field or "name"
        return await _render(request, staff, settings, session, errors={f"t-{field}": exc.detail}, form=form)
    return RedirectResponse(f"{PAGE}?{urlencode({'saved': f'Template {name} added'})}", status_code=303)


@router.post(PAGE + "/contracts/{agent_id}", response_class=HTMLResponse)
async def save_contract(
    staff: ConsoleStaff, agent_id: uuid.UUID, request: Request, settings: AppSettings, session: DbSession
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    form = {k: str(v) for k, v in (await request.form()).items() if k != "csrf_token"}
    try:
        existing = await session.get(AgentContract, agent_id)
        try:
            days = int(form.get("max_days_week", "5"))
        except ValueError:
            raise Invalid("0 to 7", field="max_days_week") from None
        if not 0 <= days <= 7:
            raise Invalid("0 to 7", field="max_days_week")
        values = {
            "min_minutes_week": _hours(form.get("min_hours", "0"), "min_minutes_week"),
            "max_minutes_week": _hours(form.get("max_hours", "40"), "max_minutes_week"),
            "max_days_week": days,
            "min_rest_minutes": _hours(form.get("rest_hours", "11"), "min_rest_minutes"),
            "templates": list(existing.templates) if existing else [],
            "availability": dict(existing.availability) if existing else {},
        }
        await svc.set_contract(session, agent_id=agent_id, values=values, actor=staff)
        await session.commit()
    except DomainError as exc:
        await session.rollback()
        errors = {f"c-{agent_id}-{exc.field or 'max_minutes_week'}": exc.detail}
        return await _render(request, staff, settings, session, errors=errors, form=form)
    return RedirectResponse(
        f"{PAGE}?{urlencode({'saved': 'Contract saved'})}#agent-{agent_id}", status_code=303
    )

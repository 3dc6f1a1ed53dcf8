"""``/supervisor/workforce/requests``: the open shift swaps and time-off requests, oldest first,
each with approve and refuse by keyboard (plain forms). A refused approval comes back on the page
with the reason — the contract rule, or the intervals left short and by how much — and nothing
saved. Decisions go through ``workforce.swap_service`` and ``workforce.swap_api.commit_and_tell``,
as in the JSON API, so both audit and tell the agents alike."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from console.context import ConsoleStaff, console_context
from switchboard.auth.models import User
from switchboard.deps import AppSettings, DbSession
from switchboard.errors import DomainError
from switchboard.settings import Settings
from switchboard.templating import templates
from workforce import swap_service as swaps
from workforce.swap_api import commit_and_tell, reads

router = APIRouter(tags=["pages"], include_in_schema=False)

PAGE = "/supervisor/workforce/requests"


async def _page(
    request: Request,
    staff: User,
    settings: Settings,
    session: AsyncSession,
    *,
    refused: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    zone = ZoneInfo(settings.default_timezone)
    context = await console_context(
        request,
        staff,
        settings,
        session,
        requests=await reads(session, await swaps.open_requests(session)),
        refused=refused,
        saved=request.query_params.get("saved", ""),
        local=lambda at: (datetime.fromisoformat(at) if isinstance(at, str) else at).astimezone(zone),
        zone=zone,
    )
    await session.commit()
    return templates.TemplateResponse(request, "console/workforce/requests.html", context, status_code=status)


@router.get(PAGE, response_class=HTMLResponse)
async def requests_page(
    staff: ConsoleStaff, request: Request, settings: AppSettings, session: DbSession
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    return await _page(request, staff, settings, session)


@router.post(PAGE + "/{request_id}/{decision}", response_class=HTMLResponse)
async def decide(
    staff: ConsoleStaff,
    request_id: uuid.UUID,
    decision: Literal["approve", "refuse"],
    request: Request,
    settings: AppSettings,
    session: DbSession,
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    form = await request.form()
    try:
        if decision == "approve":
            row = await swaps.approve(session, request_id=request_id, actor_id=staff.id)
        else:
            row = await swaps.refuse(
                session, request_id=request_id, note=str(form.get("note", ""))[:280], actor_id=staff.id
            )
        read = await commit_and_tell(session, request, row)
    except DomainError as exc:
        await session.rollback()
        refused = {
            "request_id": str(request_id),
            "detail": exc.detail,
            "field": exc.field,
            "intervals": exc.extra.get("intervals", []),
        }
        return await _page(request, staff, settings, session, refused=refused, status=exc.status)
    done = f"{read.summary}: {read.state}"
    return RedirectResponse(f"{PAGE}?{urlencode({'saved': done})}", status_code=303)

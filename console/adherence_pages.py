"""``/supervisor/workforce/adherence``: the day's adherence per agent and team (a GET form: day and
team in the URL), refreshed every 15 s while it shows today."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console.context import ConsoleStaff, console_context
from console.floor import team_names
from console.journey_pages import percent
from switchboard.deps import AppSettings, DbSession
from switchboard.templating import templates
from workforce.adherence_api import read_day

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/supervisor/workforce/adherence", response_class=HTMLResponse)
async def adherence_page(
    request: Request,
    staff: ConsoleStaff,
    settings: AppSettings,
    session: DbSession,
    day: Annotated[date | None, Query()] = None,
    team: Annotated[str | None, Query(max_length=60)] = None,
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    found, now = await read_day(session, day=day, team=team or None)
    context = await console_context(
        request,
        staff,
        settings,
        session,
        found=found,
        team=team or "",
        teams=await team_names(session),
        today=now.date(),
        percent=percent,
    )
    await session.commit()
    return templates.TemplateResponse(request, "console/workforce/adherence.html", context)

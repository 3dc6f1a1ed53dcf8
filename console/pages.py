"""The console's home ``/supervisor``: the live queue figures the routing engine publishes and the
rule sets, the one in force marked. ``/`` sends each role to its home."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from console.context import console_context, supervisor_or_login
from console.floor import queue_names, team_names
from console.wallboard import wallboard_context
from routing import service as routing_service
from switchboard.auth.models import Role
from switchboard.auth.pages import HOME_BY_ROLE, page_context
from switchboard.deps import AppSettings, DbSession, OptionalUser
from switchboard.errors import NotFound
from switchboard.templating import templates

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, user: OptionalUser, settings: AppSettings) -> Response:
    if user is None:
        return RedirectResponse("/login", status_code=303)
    if user.role is not Role.CUSTOMER:
        return RedirectResponse(HOME_BY_ROLE[user.role], status_code=303)
    return templates.TemplateResponse(request, "console/home.html", page_context(request, user, settings))


@router.get("/supervisor", response_class=HTMLResponse)
async def console_home(
    request: Request,
    user: OptionalUser,
    settings: AppSettings,
    session: DbSession,
    queue: str = "",
    team: str = "",
    page: int = 1,
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    overview = await _overview(request, session, queue or None, team or None, max(page, 1))
    context = await console_context(request, staff, settings, session, **overview)
    await session.commit()  # the SQLite rule: end the read before rendering
    return templates.TemplateResponse(request, "console/home.html", context)


async def _overview(
    request: Request, session: AsyncSession, queue: str | None, team: str | None, page: int
) -> dict[str, Any]:
    """The wallboard (of one queue or team if asked; filters in the URL) and the rule set in force."""
    choices = await queue_names(session)
    if queue is not None and queue not in {name for name, _ in choices}:
        raise NotFound(f"No queue named {queue!r}", field="queue")
    teams = await team_names(session)
    if team is not None and team not in {name for name, _ in teams}:
        raise NotFound(f"No team named {team!r}", field="team")
    versions = await routing_service.list_versions(session)
    live = await routing_service.live_version_number(session)
    await session.commit()
    # fresh_after: the page shows the floor as of now, never a snapshot older than the request
    board = await wallboard_context(
        request.app, queue=queue, team=team, page=page, fresh_after=time.monotonic()
    )
    return {
        "queue_choices": choices,
        "team_choices": teams,
        "rule_sets": versions[:5],
        "live_version": live,
        **board,
    }

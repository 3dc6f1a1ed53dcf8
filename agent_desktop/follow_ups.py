"""The follow-ups an agent owns (a team lead or relationship manager who takes contacts), as a
small fragment of the desktop's side pane: each with its due time and a state change. The work
itself is ``experience.follow_ups`` (the same calls, and audit, as the JSON API and the console)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from experience import follow_ups
from experience.models import FollowUpState
from experience.schemas import FollowUpChange
from switchboard.auth.models import User
from switchboard.db import utcnow
from switchboard.deps import DbSession, RequireAgent
from switchboard.errors import Invalid
from switchboard.templating import templates

router = APIRouter(prefix="/desktop", tags=["pages"], include_in_schema=False)

ACTIVE = [FollowUpState.OPEN, FollowUpState.IN_PROGRESS, FollowUpState.ESCALATED]
LIMIT = 10


async def _fragment(
    request: Request, session: DbSession, user: User, *, error: str | None = None
) -> HTMLResponse:
    items = await follow_ups.list_follow_ups(session, user, owner="me", states=ACTIVE, limit=LIMIT)
    await session.commit()
    return templates.TemplateResponse(
        request,
        "agent_desktop/_follow_ups.html",
        {"items": items, "now": utcnow(), "error": error},
        status_code=422 if error else 200,
    )


@router.get("/follow-ups", response_class=HTMLResponse)
async def my_follow_ups(request: Request, session: DbSession, user: RequireAgent) -> HTMLResponse:
    return await _fragment(request, session, user)


@router.post("/follow-ups/{follow_up_id}", response_class=HTMLResponse)
async def change_my_follow_up(
    follow_up_id: uuid.UUID, request: Request, session: DbSession, user: RequireAgent
) -> HTMLResponse:
    try:
        state = FollowUpState(str((await request.form()).get("state", "")))
    except ValueError:
        return await _fragment(request, session, user, error="Choose a state")
    try:
        await follow_ups.change_follow_up(session, follow_up_id, FollowUpChange(state=state), user=user)
    except Invalid as exc:
        await session.rollback()
        return await _fragment(request, session, user, error=exc.detail)
    await session.commit()
    return await _fragment(request, session, user)

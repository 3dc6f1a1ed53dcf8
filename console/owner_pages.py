"""``/supervisor/owners``: each team's lead and each queue's owner (who alert follow-ups go to),
one small form per row (keyboard: Tab to the select, arrows or type-ahead, Enter on Save). Calls
``workforce.owners`` as the JSON API does, so both are audited the same way."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from console.context import console_context, supervisor_or_login
from switchboard.auth.models import Role, User
from switchboard.deps import AppSettings, DbSession, OptionalUser
from switchboard.errors import Invalid
from switchboard.templating import templates
from workforce.owners import list_teams, set_queue_owner, set_team_lead
from workforce.queues import list_queues

router = APIRouter(tags=["pages"], include_in_schema=False)


def _user_id(value: object) -> uuid.UUID | None:
    text = str(value or "")
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        raise Invalid("Choose someone from the list", field="user_id") from None


@router.get("/supervisor/owners", response_class=HTMLResponse)
async def owners_page(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession, saved: str = ""
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    supervisors = list(
        await session.scalars(
            select(User)
            .where(User.role.in_((Role.SUPERVISOR, Role.ADMIN)), User.is_active.is_(True))
            .order_by(User.display_name)
        )
    )
    context = await console_context(
        request,
        staff,
        settings,
        session,
        teams=await list_teams(session),
        queues=await list_queues(session),
        supervisors=supervisors,
        saved=saved,
    )
    await session.commit()
    return templates.TemplateResponse(request, "console/owners.html", context)


@router.post("/supervisor/owners/teams/{name}", response_class=HTMLResponse)
async def save_team_lead(name: str, request: Request, user: OptionalUser, session: DbSession) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    lead = _user_id((await request.form()).get("user_id"))
    await set_team_lead(session, name=name, lead_user_id=lead, actor=staff)
    await session.commit()
    return RedirectResponse(f"/supervisor/owners?saved=team:{name}", status_code=303)


@router.post("/supervisor/owners/queues/{queue_id}", response_class=HTMLResponse)
async def save_queue_owner(
    queue_id: uuid.UUID, request: Request, user: OptionalUser, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    owner = _user_id((await request.form()).get("user_id"))
    await set_queue_owner(session, queue_id=queue_id, owner_user_id=owner, actor=staff)
    await session.commit()
    return RedirectResponse(f"/supervisor/owners?saved=queue:{queue_id}", status_code=303)

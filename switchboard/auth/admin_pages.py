"""``/admin/users``: the administrator's list of users, to disable and enable them (and so end their
sessions) in place; "New user" and each user's edit page are ``console.admin`` pages.

The same service calls as the JSON API (``/api/auth/users/{id}/disable`` …), so both are audited
and both close the user's open desktop sockets within seconds.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.auth import service
from switchboard.auth.models import User
from switchboard.auth.pages import admin_or_login, page_context
from switchboard.deps import AppSettings, DbSession, OptionalUser
from switchboard.errors import DomainError
from switchboard.templating import templates

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/admin/users", response_class=HTMLResponse)
async def users_page(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession, saved: str = ""
) -> Response:
    """The list; creating and editing a user (role, status, password reset) are the console's
    administration pages (``/admin/users/new``, ``/admin/users/{id}``), which send back here."""
    admin = admin_or_login(request, user)
    if isinstance(admin, Response):
        return admin
    users = await service.list_users(session)
    await session.commit()
    notice = next((f"{u.display_name} ({u.username}): saved." for u in users if str(u.id) == saved), None)
    return templates.TemplateResponse(
        request, "admin/users.html", page_context(request, admin, settings, users=users, notice=notice)
    )


# One route per action: a signed-out caller gets 401 (or the login page) before anything else.
@router.post("/admin/users/{user_id}/disable", response_class=HTMLResponse)
async def disable_from_page(
    user_id: uuid.UUID, request: Request, session: DbSession, settings: AppSettings, user: OptionalUser
) -> Response:
    return await _page_action(request, session, settings, user, user_id, active=False)


@router.post("/admin/users/{user_id}/enable", response_class=HTMLResponse)
async def enable_from_page(
    user_id: uuid.UUID, request: Request, session: DbSession, settings: AppSettings, user: OptionalUser
) -> Response:
    return await _page_action(request, session, settings, user, user_id, active=True)


async def _page_action(
    request: Request,
    session: AsyncSession,
    settings: AppSettings,
    user: User | None,
    user_id: uuid.UUID,
    *,
    active: bool,
) -> Response:
    """htmx gets the refreshed table with a notice (or the refusal); a plain form post is sent back."""
    admin = admin_or_login(request, user)
    if isinstance(admin, Response):
        return admin
    try:
        changed = await service.set_active(session, user_id=user_id, active=active, actor=admin)
        await session.commit()
        notice = f"{changed.display_name} ({changed.username}) {'enabled' if active else 'disabled'}."
        if not active:
            notice += " Their sessions have ended."
    except DomainError as exc:
        if request.headers.get("hx-request") != "true":
            raise
        await session.rollback()
        notice = exc.detail
    if request.headers.get("hx-request") != "true":
        return RedirectResponse("/admin/users", status_code=303)
    users = await service.list_users(session)
    await session.commit()
    return templates.TemplateResponse(
        request, "admin/_users.html", page_context(request, admin, settings, users=users, notice=notice)
    )

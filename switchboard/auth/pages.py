"""HTML login/logout. The session JWT lives in an httpOnly, SameSite=Lax cookie."""

from __future__ import annotations

import json
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from switchboard.auth import service
from switchboard.auth.models import Role, User
from switchboard.deps import CSRF_COOKIE, SESSION_COOKIE, AppSettings, DbSession, OptionalUser
from switchboard.security import csrf_token_for
from switchboard.templating import templates

router = APIRouter(tags=["pages"], include_in_schema=False)

HOME_BY_ROLE = {
    Role.AGENT: "/desktop",
    # Supervisors land on the overview until the full console exists.
    Role.SUPERVISOR: "/",
    Role.ADMIN: "/",
    Role.CUSTOMER: "/",
}


def _login_page(request: Request, *, error: str | None = None, status_code: int = 200) -> Response:
    # Pre-login CSRF: double-submit a random value (cookie + hidden field).
    marker = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request, "auth/login.html", {"error": error, "csrf_token": marker}, status_code=status_code
    )
    response.set_cookie(CSRF_COOKIE, marker, httponly=True, samesite="strict", path="/login")
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login")
async def login(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    username: Annotated[str, Form(max_length=80)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    cookie_marker = request.cookies.get(CSRF_COOKIE)
    if not cookie_marker or not secrets.compare_digest(cookie_marker, csrf_token):
        return _login_page(request, error="Your session expired; please try again.", status_code=403)
    user = await service.authenticate(session, username=username, password=password)
    if user is None:
        return _login_page(request, error="Wrong username or password.", status_code=401)
    token, expires_in = service.token_for(user, settings)
    response = RedirectResponse(HOME_BY_ROLE[user.role], status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=expires_in,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/",
    )
    response.delete_cookie(CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, settings: AppSettings, user: OptionalUser) -> Response:
    # get_optional_user already enforced the CSRF header for cookie sessions.
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def page_context(request: Request, user: User | None, settings, **extra) -> dict:
    """What every signed-in page's layout needs (user, CSRF token for htmx headers)."""
    token = request.cookies.get(SESSION_COOKIE)
    csrf = csrf_token_for(token, settings.secret_key) if token else ""
    return {"user": user, "csrf_token": csrf, **extra}


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, user: OptionalUser, settings: AppSettings, session: DbSession) -> Response:
    if user is None:
        return RedirectResponse("/login", status_code=303)
    if user.role is Role.AGENT:
        return RedirectResponse(HOME_BY_ROLE[Role.AGENT], status_code=303)
    extra: dict = {}
    if user.role in (Role.SUPERVISOR, Role.ADMIN):
        extra = await _overview(request, session)
    return templates.TemplateResponse(request, "home.html", page_context(request, user, settings, **extra))


async def _overview(request: Request, session) -> dict:
    """Live figures published by the routing engine, and the rule set in force."""
    from routing import service as routing_service
    from routing.host import stats_key

    raw = await request.app.state.redis_client.get(stats_key())
    stats = json.loads(raw) if raw else None
    versions = await routing_service.list_versions(session)
    live = await routing_service.live_version_number(session)
    return {"stats": stats, "rule_sets": versions[:5], "live_version": live}

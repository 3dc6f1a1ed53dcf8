"""HTML login/logout. The session JWT lives in an httpOnly, SameSite=Lax cookie."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from switchboard.auth import service
from switchboard.auth.models import Role, User
from switchboard.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    AppSettings,
    DbSession,
    OptionalUser,
    check_staff,
)
from switchboard.errors import TooManyRequests, Unauthorized
from switchboard.security import csrf_token_for
from switchboard.templating import templates
from switchboard.throttle import client_address, throttle_of

router = APIRouter(tags=["pages"], include_in_schema=False)

HOME_BY_ROLE = {
    Role.AGENT: "/desktop",
    # The supervisor console (console/); one with an agent profile switches to /desktop from there.
    Role.SUPERVISOR: "/supervisor",
    Role.ADMIN: "/supervisor",
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
    try:
        user = await service.authenticate_throttled(
            session,
            throttle_of(request),
            username=username,
            password=password,
            address=client_address(request),
        )
    except TooManyRequests as exc:
        page = _login_page(request, error=f"Too many failed sign-ins. {exc.detail}.", status_code=429)
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
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
async def logout(request: Request, settings: AppSettings, user: OptionalUser, session: DbSession) -> Response:
    # get_optional_user already enforced the CSRF header for cookie sessions. The token is revoked
    # in SQL (the user's token version), not only forgotten by this browser: a copied cookie dies too.
    if user is not None:
        await service.sign_out(session, user_id=user.id)
        await session.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def admin_or_login(request: Request, user: User | None) -> User | Response:
    """Browsers without a session go to the login page; API clients get 401; non-admins 403."""
    if user is None:
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/login", status_code=303)
        raise Unauthorized("Sign in first")
    return check_staff(user, Role.ADMIN)


def page_context(request: Request, user: User | None, settings, **extra) -> dict:
    """What every signed-in page's layout needs (user, CSRF token for htmx headers)."""
    token = request.cookies.get(SESSION_COOKIE)
    csrf = csrf_token_for(token, settings.secret_key) if token else ""
    return {"user": user, "csrf_token": csrf, **extra}

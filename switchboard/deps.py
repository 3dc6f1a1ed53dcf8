"""FastAPI dependencies as ``Annotated`` aliases: DbSession, CurrentUser, RequireSupervisor, ..."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException

from switchboard.auth.cache import UserCache
from switchboard.auth.models import STAFF_RANK, Role, User
from switchboard.errors import Forbidden, Unauthorized
from switchboard.fastsql import reads_in_autocommit as reads_in_autocommit  # routes import it here
from switchboard.security import TokenClaims, TokenError, csrf_matches, decode_session_token
from switchboard.settings import Settings

SESSION_COOKIE = "sb_session"
CSRF_COOKIE = "sb_csrf"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


AppSettings = Annotated[Settings, Depends(get_settings_dep)]


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.db.sessionmaker() as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(get_db)]


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return None


async def _checked_user(session: AsyncSession, settings: Settings, token: str) -> tuple[User, TokenClaims]:
    try:
        claims = decode_session_token(token, settings)
        user_id = uuid.UUID(claims.subject)
    except (TokenError, ValueError) as exc:
        raise Unauthorized("Invalid or expired token") from exc
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise Unauthorized("Unknown or disabled user")
    if user.role != claims.role:
        raise Unauthorized("Token role no longer matches the user")
    if user.token_version != claims.version:
        raise Unauthorized("Session ended (signed out, disabled, or password or role changed)")
    return user, claims


async def authenticated_user(request: Request, token: str) -> User:
    """The active user behind ``token`` whose role still matches it, or Unauthorized.

    From the process's user cache (switchboard.auth.cache: invalidated through Redis on any change
    to users) when it holds the token; otherwise the row is read and checked in a short session of
    its own, and remembered.
    """
    state = request.app.state
    cache: UserCache | None = getattr(state, "user_cache", None)
    if cache is not None:
        cached = cache.get(token)
        if cached is not None:
            return cached
        generation = cache.generation
    async with state.db.sessionmaker() as session:
        await reads_in_autocommit(session)  # the user read needs no transaction
        user, claims = await _checked_user(session, state.settings, token)
        # End the read transaction before the request goes on: it must not hold SQLite's write
        # lock or sit idle-in-transaction on PostgreSQL while it waits (on the engine, a socket).
        await session.commit()
    if cache is not None:
        cache.put(token, user, generation=generation, token_expires_at=claims.expires_at)
    return user


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def _csrf_form_field(request: Request) -> str | None:
    """A plain HTML form (no htmx, so no header) sends the token as a hidden ``csrf_token`` field."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type not in _FORM_TYPES:
        return None
    try:
        form = await request.form()  # Starlette caches it: the endpoint's Form() params still work
    except HTTPException:
        raise  # e.g. 413 from the body-size limit
    except Exception:  # noqa: BLE001 - an unparsable form simply carries no token
        return None
    value = form.get("csrf_token")
    return value if isinstance(value, str) else None


_USER_SCOPE_KEY = "sb.user"  # the request's user, resolved once however many dependencies ask


async def get_optional_user(request: Request) -> User | None:
    scope = request.scope
    if _USER_SCOPE_KEY in scope:
        return scope[_USER_SCOPE_KEY]
    token = _bearer_token(request)
    from_cookie = False
    if token is None:
        token = request.cookies.get(SESSION_COOKIE)
        from_cookie = token is not None
    user = None
    if token is not None:
        user = await authenticated_user(request, token)
        # Cookies ride along on cross-site requests; a state change must also prove it came from our page.
        if from_cookie and request.method in UNSAFE_METHODS:
            settings: Settings = request.app.state.settings
            sent = request.headers.get(CSRF_HEADER) or await _csrf_form_field(request)
            if not csrf_matches(sent, token, settings.secret_key, settings.previous_secret_keys):
                raise Forbidden("Missing or invalid CSRF token", field=CSRF_HEADER)
    scope[_USER_SCOPE_KEY] = user
    return user


OptionalUser = Annotated[User | None, Depends(get_optional_user)]


async def get_current_user(request: Request) -> User:
    user = await get_optional_user(request)
    if user is None:
        raise Unauthorized("Sign in first")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_staff(minimum: Role):
    # One flat dependency (not CurrentUser -> OptionalUser -> ...): each dependency FastAPI
    # solves costs CPU on every request.
    async def dependency(request: Request) -> User:
        return check_staff(await get_current_user(request), minimum)

    dependency.authenticates = True  # type: ignore[attr-defined]  # switchboard.openapi reads it
    return dependency


def check_staff(user: User, minimum: Role) -> User:
    rank = STAFF_RANK.get(user.role)
    if rank is None or rank < STAFF_RANK[minimum]:
        raise Forbidden(f"Requires the {minimum.value} role or higher")
    return user


RequireAgent = Annotated[User, Depends(require_staff(Role.AGENT))]
RequireSupervisor = Annotated[User, Depends(require_staff(Role.SUPERVISOR))]
RequireAdmin = Annotated[User, Depends(require_staff(Role.ADMIN))]

"""FastAPI dependencies as ``Annotated`` aliases: DbSession, CurrentUser, RequireSupervisor, ..."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException

from routing.models import Agent
from switchboard.auth.models import STAFF_RANK, Role, User
from switchboard.errors import Forbidden, Unauthorized
from switchboard.security import TokenError, csrf_matches, decode_token
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


async def user_from_token(session: AsyncSession, settings: Settings, token: str) -> User:
    try:
        claims = decode_token(
            token, secret=settings.secret_key, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        )
        user_id = uuid.UUID(claims.subject)
    except (TokenError, ValueError) as exc:
        raise Unauthorized("Invalid or expired token") from exc
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise Unauthorized("Unknown or disabled user")
    if user.role != claims.role:
        raise Unauthorized("Token role no longer matches the user")
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


async def get_optional_user(request: Request, session: DbSession, settings: AppSettings) -> User | None:
    token = _bearer_token(request)
    from_cookie = False
    if token is None:
        token = request.cookies.get(SESSION_COOKIE)
        from_cookie = token is not None
    if token is None:
        return None
    if session.bind.dialect.name == "postgresql" and not session.in_transaction():
        # The user read needs no transaction: in autocommit it is one round trip instead of
        # BEGIN + SELECT + COMMIT on every request (the isolation level resets when the connection
        # returns to the pool at the commit below). Not on SQLite, whose BEGIN IMMEDIATE listener
        # and sqlite3 transaction handling must stay as configured in switchboard.db.
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    user = await user_from_token(session, settings, token)
    # End the read transaction: a request may wait (on the engine, a socket) and must not hold
    # SQLite's write lock or sit idle-in-transaction on PostgreSQL while it does.
    await session.commit()
    # Cookies ride along on cross-site requests; a state change must also prove it came from our page.
    if from_cookie and request.method in UNSAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER) or await _csrf_form_field(request)
        if not csrf_matches(sent, token, settings.secret_key):
            raise Forbidden("Missing or invalid CSRF token", field=CSRF_HEADER)
    return user


OptionalUser = Annotated[User | None, Depends(get_optional_user)]


async def get_current_user(user: OptionalUser) -> User:
    if user is None:
        raise Unauthorized("Sign in first")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_staff(minimum: Role):
    async def dependency(user: CurrentUser) -> User:
        rank = STAFF_RANK.get(user.role)
        if rank is None or rank < STAFF_RANK[minimum]:
            raise Forbidden(f"Requires the {minimum.value} role or higher")
        return user

    return dependency


RequireAgent = Annotated[User, Depends(require_staff(Role.AGENT))]
RequireSupervisor = Annotated[User, Depends(require_staff(Role.SUPERVISOR))]
RequireAdmin = Annotated[User, Depends(require_staff(Role.ADMIN))]


async def get_current_agent(user: CurrentUser, session: DbSession) -> Agent:
    agent = await session.scalar(select(Agent).where(Agent.user_id == user.id))
    await session.commit()  # as in get_optional_user: hold no transaction past authentication
    if agent is None:
        raise Forbidden("This user has no agent profile")
    return agent


CurrentAgent = Annotated[Agent, Depends(get_current_agent)]


async def get_agent_profile(user: RequireAgent, session: DbSession) -> Agent | None:
    """Staff member's agent profile, or None (a supervisor who does not take contacts)."""
    agent = await session.scalar(select(Agent).where(Agent.user_id == user.id))
    await session.commit()
    return agent


MaybeAgent = Annotated[Agent | None, Depends(get_agent_profile)]


async def get_redis(request: Request):
    return request.app.state.redis_client

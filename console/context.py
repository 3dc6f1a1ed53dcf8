"""What every console page's layout needs beyond ``page_context``: whether the user also has an
agent profile (a supervisor who takes contacts), so the top bar offers the switch to the desktop."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.auth.models import Role, User
from switchboard.auth.pages import page_context
from switchboard.deps import check_staff, get_optional_user
from switchboard.errors import Unauthorized
from switchboard.settings import Settings
from workforce.models import Agent


def supervisor_or_login(request: Request, user: User | None) -> User | None:
    """The signed-in supervisor or admin; ``None`` for a browser to send to /login. API clients
    without a session get 401, lower roles 403 (both problem+json)."""
    return staff_or_login(request, user, Role.SUPERVISOR)


def staff_or_login(request: Request, user: User | None, minimum: Role) -> User | None:
    """``supervisor_or_login`` for any least role (user accounts: admins only)."""
    if user is None:
        if "text/html" in request.headers.get("accept", ""):
            return None
        raise Unauthorized("Sign in first")
    return check_staff(user, minimum)


async def console_context(
    request: Request, user: User, settings: Settings, session: AsyncSession, **extra: Any
) -> dict[str, Any]:
    has_desk = await session.scalar(select(Agent.id).where(Agent.user_id == user.id).limit(1))
    return page_context(request, user, settings, desk_link=has_desk is not None, **extra)


async def _console_staff(request: Request) -> User | None:
    return supervisor_or_login(request, await get_optional_user(request))


# The signed-in supervisor or admin, or None for a browser to redirect to /login; as a dependency
# so it answers 401/403 before path parameters are validated (a 422 must not leak past the role).
ConsoleStaff = Annotated[User | None, Depends(_console_staff)]

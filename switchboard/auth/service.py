"""Users: create, authenticate, issue tokens."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.auth.models import Role, User
from switchboard.errors import Conflict
from switchboard.security import (
    DUMMY_PASSWORD_HASH,
    hash_password_off_loop,
    issue_token,
    verify_password_off_loop,
)
from switchboard.settings import Settings


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    display_name: str,
    role: Role,
    password: str,
    email: str | None = None,
) -> User:
    existing = await session.scalar(select(User).where(User.username == username))
    if existing is not None:
        raise Conflict(f"Username {username!r} is taken", field="username")
    user = User(
        username=username,
        display_name=display_name,
        role=role,
        email=email,
        password_hash=await hash_password_off_loop(password),
    )
    session.add(user)
    await session.flush()
    return user


async def authenticate(session: AsyncSession, *, username: str, password: str) -> User | None:
    user = await session.scalar(select(User).where(User.username == username))
    # End the read before the check: its connection goes back to the pool while the hash pool
    # works. At shift start hundreds of sign-ins queue for it (~0.2 s of CPU each); each holding a
    # connection meanwhile starved every other request of the process (desktop bench, 1,000
    # sign-ins a minute: offers 39 s late, 103 sign-ins answered 503).
    await session.commit()
    if user is None:
        # The same work as a real check: no user enumeration by timing.
        await verify_password_off_loop(DUMMY_PASSWORD_HASH, password)
        return None
    if not user.is_active or not await verify_password_off_loop(user.password_hash, password):
        return None
    return user


def token_for(user: User, settings: Settings) -> tuple[str, int]:
    ttl = timedelta(minutes=settings.access_token_minutes)
    token = issue_token(
        subject=str(user.id),
        role=user.role.value,
        secret=settings.secret_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=ttl,
    )
    return token, int(ttl.total_seconds())

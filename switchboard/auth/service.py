"""Users: create, authenticate, issue tokens, and the administration that ends sessions."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from switchboard.audit import record_audit
from switchboard.auth.cache import CHANGED_USERS_OPTION
from switchboard.auth.models import Role, User
from switchboard.errors import Conflict, NotFound
from switchboard.security import (
    DUMMY_PASSWORD_HASH,
    hash_password_off_loop,
    issue_token,
    password_needs_rehash,
    verify_password_off_loop,
)
from switchboard.settings import Settings
from switchboard.throttle import Throttle


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
    if password_needs_rehash(user.password_hash):
        await _rehash(session, user, password)
    return user


async def _rehash(session: AsyncSession, user: User, password: str) -> None:
    """Replace a hash made with older parameters, now that the password is known to be right. Only
    if the hash is still the one checked (a password changed meanwhile wins); sessions stay valid."""
    old_hash = user.password_hash
    new_hash = await hash_password_off_loop(password)
    result = await session.execute(
        update(User)
        .where(User.id == user.id, User.password_hash == old_hash)
        .values(password_hash=new_hash)
        .execution_options(synchronize_session=False, **{CHANGED_USERS_OPTION: [user.id]})
    )
    await session.commit()
    if result.rowcount == 1:  # type: ignore[attr-defined]
        set_committed_value(user, "password_hash", new_hash)


async def authenticate_throttled(
    session: AsyncSession, throttle: Throttle, *, username: str, password: str, address: str
) -> User | None:
    """``authenticate`` behind the sign-in throttle: refused (429) without checking the password
    while the account or address is locked out; a failure counts against both, a success clears
    the account's count."""
    await throttle.before_login(username=username, address=address)
    user = await authenticate(session, username=username, password=password)
    if user is None:
        await throttle.login_failed(username=username, address=address)
    else:
        await throttle.login_succeeded(username=username)
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
        version=user.token_version,
    )
    return token, int(ttl.total_seconds())


# ---- ending sessions ---------------------------------------------------------------------------
# Each change below adds one to the user's token version in SQL: every token issued before is
# refused from then on. The commit invalidates the user caches of every process (auth.cache), so
# no request is served on the old session after it, and open desktop sockets re-check and close.


def end_sessions(user: User) -> None:
    """Every session of ``user`` ends when the caller commits (an atomic increment in SQL)."""
    user.token_version = User.token_version + 1


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("No such user", field="user_id")
    return user


async def list_users(session: AsyncSession) -> list[User]:
    return list((await session.scalars(select(User).order_by(User.role, User.username))).all())


async def sign_out(session: AsyncSession, *, user_id: uuid.UUID) -> None:
    user = await session.get(User, user_id)
    if user is not None:
        end_sessions(user)
        await session.flush()


async def set_active(session: AsyncSession, *, user_id: uuid.UUID, active: bool, actor: User) -> User:
    """Disable (every session ends, no new sign-in) or enable a user; audited."""
    user = await get_user(session, user_id)
    if not active and user.id == actor.id:
        raise Conflict("You cannot disable your own account", field="user_id")
    if user.is_active != active:
        user.is_active = active
        end_sessions(user)
        record_audit(
            session,
            actor_id=actor.id,
            action="user.enabled" if active else "user.disabled",
            entity_type="user",
            entity_id=user.id,
            data={"username": user.username},
            before={"active": not active},
            after={"active": active},
        )
        await session.flush()
        await session.refresh(user)
    return user


async def change_role(session: AsyncSession, *, user_id: uuid.UUID, role: Role, actor: User) -> User:
    user = await get_user(session, user_id)
    if user.id == actor.id and role is not user.role:
        raise Conflict("You cannot change your own role", field="role")
    if user.role is not role:
        record_audit(
            session,
            actor_id=actor.id,
            action="user.role_changed",
            entity_type="user",
            entity_id=user.id,
            data={"username": user.username, "from": user.role.value, "to": role.value},
            before={"role": user.role.value},
            after={"role": role.value},
        )
        user.role = role
        end_sessions(user)
        await session.flush()
        await session.refresh(user)
    return user


async def set_password(session: AsyncSession, *, user: User, password: str, actor: User) -> User:
    """A new password (the caller checked the policy): every session ends, the actor's own too."""
    user.password_hash = await hash_password_off_loop(password)
    end_sessions(user)
    record_audit(
        session,
        actor_id=actor.id,
        action="user.password_changed",
        entity_type="user",
        entity_id=user.id,
        data={"username": user.username, "by_self": user.id == actor.id},
    )
    await session.flush()
    await session.refresh(user)
    return user

"""User accounts administered by admins (issue #11 item 4): create, change role, disable or
enable, reset the password, as one ``switchboard.crud`` entity (``/api/users``, ``/admin/users``).

Any change that alters what a session may do (role, disabling, a new password) ends every session
of the user (``service.end_sessions``); their open desktop closes within seconds. Users are never
deleted (their audit trail and work stay attributed): disable them instead.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.auth import service
from switchboard.auth.models import Role, User
from switchboard.auth.passwords import check_password
from switchboard.crud import json_value
from switchboard.errors import Conflict, Invalid
from switchboard.security import hash_password_off_loop
from switchboard.settings import Settings


class UserWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=2, max_length=80, pattern=r"^[a-zA-Z0-9_.@-]+$")
    display_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
    email: str | None = Field(None, max_length=254)
    role: Role
    active: bool = Field(True, description="A disabled user cannot sign in; disabling ends their sessions")
    password: str | None = Field(
        None,
        max_length=256,
        description="Required when creating; when changing, a reset (every session ends)",
    )


def read_user(row: User) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "username": row.username,
        "display_name": row.display_name,
        "email": row.email,
        "role": json_value(row.role),
        "active": row.is_active,
    }


def password_policy(settings: Settings, data: UserWrite, row: User | None) -> None:
    if row is None and not data.password:
        raise Invalid("Set a password for the new user", field="password")
    if data.password:
        check_password(
            data.password, min_length=settings.password_min_length, username=data.username, field="password"
        )


class UserService:
    """``switchboard.crud.Service`` for user accounts (the kit audits before -> after)."""

    async def list(self, session: AsyncSession) -> list[User]:
        return await service.list_users(session)

    async def get(self, session: AsyncSession, key: str) -> User | None:
        try:
            return await session.get(User, uuid.UUID(key), populate_existing=True)
        except ValueError:
            return None

    def read(self, row: User) -> dict[str, Any]:
        return read_user(row)

    async def create(self, session: AsyncSession, data: Any, actor: User) -> User:
        assert data.password  # password_policy ran first
        user = await service.create_user(
            session,
            username=data.username,
            display_name=data.display_name,
            role=data.role,
            password=data.password,
            email=data.email or None,
        )
        user.is_active = data.active
        await session.flush()
        return user

    async def update(self, session: AsyncSession, row: User, data: Any, actor: User) -> User:
        if row.id == actor.id and data.role is not row.role:
            raise Conflict("You cannot change your own role", field="role")
        if row.id == actor.id and not data.active:
            raise Conflict("You cannot disable your own account", field="active")
        ends = data.role is not row.role or data.active != row.is_active or bool(data.password)
        row.display_name, row.email, row.role, row.is_active = (
            data.display_name,
            data.email or None,
            data.role,
            data.active,
        )
        if data.password:
            row.password_hash = await hash_password_off_loop(data.password)
        if ends:
            service.end_sessions(row)
        await session.flush()
        await session.refresh(row)
        return row

    async def delete(self, session: AsyncSession, row: User, actor: User) -> None:
        raise Conflict(
            f"{row.username} is not deleted: their work and audit trail stay theirs. "
            "Disable the account instead.",
            field="id",
        )


users = UserService()

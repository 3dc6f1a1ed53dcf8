from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from switchboard.auth.models import Role


class TokenRead(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the token expires")


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    display_name: str
    email: str | None
    role: Role
    is_active: bool = True
    customer_id: uuid.UUID | None = None


class UserList(BaseModel):
    items: list[UserRead]


class UserUpdate(BaseModel):
    """An administrator's change to a user; a new role ends the user's sessions."""

    model_config = ConfigDict(extra="forbid")

    role: Role


class PasswordSet(BaseModel):
    """An administrator sets a user's password (every session of the user ends)."""

    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=8, max_length=256)


class PasswordChange(BaseModel):
    """A user changes their own password; every session of theirs ends, this one too."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=8, max_length=256)


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=2, max_length=80, pattern=r"^[a-zA-Z0-9_.@-]+$")
    display_name: str = Field(min_length=1, max_length=120)
    email: str | None = Field(default=None, max_length=254)
    role: Role
    password: str = Field(min_length=8, max_length=256)

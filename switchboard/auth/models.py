"""Users and roles."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import Base, UTCDateTime, new_id, utcnow
from switchboard.types import str_enum


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


# Higher roles inherit what lower staff roles may do; customers are outside this ladder.
STAFF_RANK = {Role.AGENT: 1, Role.SUPERVISOR: 2, Role.ADMIN: 3}


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254))
    role: Mapped[Role] = mapped_column(str_enum(Role))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Carried in every session token (``ver``); a token of another version is refused. Logout,
    # disabling, a role or password change add one: all the user's sessions end at once.
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A customer-role user (bank app / portal login) is tied to one customer profile.
    customer_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid,
        # use_alter: users -> customers -> agents -> users is a cycle; the FK is added after both exist.
        ForeignKey("customers.id", ondelete="SET NULL", use_alter=True),
        index=True,
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

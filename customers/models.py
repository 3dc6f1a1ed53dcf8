"""Customer profile, channel identities and the value-tier policy."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Time,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from switchboard.db import Base, JSONType, UTCDateTime, new_id, utcnow
from switchboard.pii import MaskedString
from switchboard.types import str_enum


class ValueTier(enum.StrEnum):
    PLATINUM = "platinum"
    GOLD = "gold"
    SILVER = "silver"
    STANDARD = "standard"


class IdentityKind(enum.StrEnum):
    PHONE = "phone"  # E.164
    EMAIL = "email"  # lower-cased
    CHAT = "chat"  # web chat visitor / chat platform user id
    APP = "app"  # bank mobile-app user id


class ContactChannel(enum.StrEnum):
    VOICE = "voice"
    CHAT = "chat"
    EMAIL = "email"
    SMS = "sms"


# Segments the product knows about; customers may carry others (bank-defined tags) too.
KNOWN_SEGMENTS = ("senior", "vulnerable", "private-banking", "new", "young", "business", "salaried")


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    display_name: Mapped[str] = mapped_column(MaskedString(160))
    language: Mapped[str] = mapped_column(String(16), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/London")
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    segments: Mapped[list[str]] = mapped_column(JSONType, default=list)

    # Value-tier policy inputs (money in the bank's reporting currency).
    relationship_balance: Mapped[Decimal] = mapped_column(Numeric(16, 2), default=Decimal("0"))
    products_held: Mapped[int] = mapped_column(Integer, default=0)
    annual_profit: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    cost_to_serve: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    customer_since: Mapped[date | None] = mapped_column(Date)

    value_tier: Mapped[ValueTier] = mapped_column(str_enum(ValueTier), default=ValueTier.STANDARD, index=True)
    # The per-input points and policy version that produced value_tier: the desktop's "why".
    tier_breakdown: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    tier_computed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    relationship_manager_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("agents.id", ondelete="SET NULL"), index=True
    )

    # Consent and contact preferences.
    preferred_channel: Mapped[ContactChannel | None] = mapped_column(str_enum(ContactChannel))
    do_not_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    marketing_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    quiet_hours_start: Mapped[time | None] = mapped_column(Time)
    quiet_hours_end: Mapped[time | None] = mapped_column(Time)

    # A customer merged into another keeps its row (history points at it) and this pointer.
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    identities: Mapped[list[Identity]] = relationship(
        back_populates="customer", lazy="selectin", order_by="Identity.created_at"
    )


class Identity(Base):
    """One way of reaching a customer; (kind, value) resolves to exactly one customer."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[IdentityKind] = mapped_column(str_enum(IdentityKind))
    value: Mapped[str] = mapped_column(String(254))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="identities")


class TierPolicyVersion(Base):
    """Supervisor-tunable value-tier policy; every change is a new row (the newest is live)."""

    __tablename__ = "tier_policy_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))

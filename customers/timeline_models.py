"""The customer's append-only timeline: every contact, state change and customer change, across
channels. Below interactions (whose events it also holds) because a customer's own changes are
written on it too; ``customers.timeline`` appends and announces the events."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from customers.models import Customer
from switchboard.db import Base, UTCDateTime, utcnow
from switchboard.pii import MaskedJSON
from switchboard.types import BigIntPK, str_enum


class ActorType(enum.StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    SYSTEM = "system"
    BOT = "bot"


class TimelineEvent(Base):
    """Append-only: rows are inserted, never updated or deleted.

    A customer merge leaves events on the merged profile; history reads the merged id set.
    """

    __tablename__ = "timeline_events"
    __table_args__ = (
        Index("ix_timeline_customer_id_desc", "customer_id", "id"),
        Index("ix_timeline_interaction", "interaction_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("customers.id"))
    interaction_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("interactions.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str | None] = mapped_column(String(16))
    actor_type: Mapped[ActorType] = mapped_column(str_enum(ActorType))
    actor_id: Mapped[str | None] = mapped_column(String(80))
    data: Mapped[dict[str, Any]] = mapped_column(MaskedJSON, default=dict)

    # Never loaded: it tells the unit of work that a customer created in the same flush is
    # inserted first (a foreign key alone does not order a flush).
    customer: Mapped[Customer] = relationship(lazy="raise")

"""What a webhook receiver can subscribe to, and the two tables behind it.

``EVENT_TYPES`` is the public contract (listed, not derived from the engine's events, so a new
event is published only on purpose). ``WebhookSubscription`` is a receiver; ``WebhookDelivery`` is
one event for one subscription: the outbox row and its delivery record at once.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import Base, JSONType, UTCDateTime, new_id, utcnow
from switchboard.types import str_enum

# Every engine decision a receiver may subscribe to (the public contract: listed, not derived, so a
# new engine event is published only on purpose). CommandRejected is a reply to a caller that lost a
# race, not a decision, so it is never sent.
EVENT_TYPES: frozenset[str] = frozenset(
    {
        "offer_created",
        "assigned",
        "offer_rejected",
        "offer_expired",
        "offer_rescinded",
        "queued",
        "requeued",
        "escalated",
        "diverted",
        "agent_status_changed",
        "wrap_up_started",
        "completed",
        "abandoned",
        "transferred",
        "reprioritised",  # a supervisor raised or lowered waiting work's priority
        "consult_ended",  # a warm transfer's outcome: accepted, or why the customer stayed
    }
)
PING = "ping"  # sent only by the "test" endpoint, to one subscription


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


# ---------------------------------------------------------------------- models


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    url: Mapped[str] = mapped_column(String(2000))
    # Empty means every event type.
    event_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Kept in clear: HMAC signing needs it. Returned once, on create; never listed or audited.
    secret: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event for one subscription: the outbox row and its delivery record."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The dispatcher's claim: due pending rows, oldest first.
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_subscription", "subscription_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    # Shared by the deliveries of one event to several subscriptions.
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[DeliveryState] = mapped_column(str_enum(DeliveryState), default=DeliveryState.PENDING)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

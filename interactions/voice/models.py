"""What the carrier told us, recorded once per event key (idempotency for webhook retries)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import Base, JSONType, UTCDateTime, utcnow
from switchboard.types import BigIntPK


class CarrierEvent(Base):
    """One processed carrier webhook.

    The unique (provider, event_key) index is the idempotency guard: a handler inserts its row
    FIRST, in the same transaction as its effects, so a retried or concurrently duplicated webhook
    hits the index and changes nothing. The row keyed ``<CallSid>:interaction`` maps a call to
    its interaction, and by the same index a call can never create two interactions.
    """

    __tablename__ = "carrier_events"
    __table_args__ = (UniqueConstraint("provider", "event_key"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32))
    event_key: Mapped[str] = mapped_column(String(200))
    call_sid: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(40))
    interaction_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("interactions.id", ondelete="SET NULL")
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

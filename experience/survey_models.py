"""One survey invitation per completed interaction (issue #12 item 1).

The row is the claim: its unique ``interaction_id`` means two survey passes (two workers) never
invite twice, and ``answered_at`` set by a compare-and-set means one response per link. A row is
also written when no survey goes out (nobody to reach, the customer was asked recently), so the
pass never considers that interaction again and the reason is on record.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import Base, JSONType, UTCDateTime, new_id, utcnow
from switchboard.types import str_enum


class SurveyStatus(enum.StrEnum):
    PENDING = "pending"  # claimed, not yet delivered (or the delivery failed: the next pass retries)
    SENT = "sent"  # a link went out by email or text
    INLINE = "inline"  # a chat: the widget asks when the chat ends
    ANSWERED = "answered"
    SKIPPED = "skipped"  # no survey: see ``reason``


class SurveyDelivery(enum.StrEnum):
    INLINE = "inline"
    EMAIL = "email"
    SMS = "sms"
    NONE = "none"


class SkipReason(enum.StrEnum):
    FREQUENCY_CAP = "frequency_cap"  # surveyed within the last N days
    QUEUE_ASKS_NONE = "queue_asks_none"
    NO_ADDRESS = "no_address"  # no email address or phone to send the link to


class SurveyInvitation(Base):
    __tablename__ = "survey_invitations"
    __table_args__ = (Index("ix_survey_invitations_customer_created", "customer_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    interaction_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("interactions.id", ondelete="CASCADE"), unique=True
    )
    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("customers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    delivery: Mapped[SurveyDelivery] = mapped_column(str_enum(SurveyDelivery))
    questions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    status: Mapped[SurveyStatus] = mapped_column(str_enum(SurveyStatus), index=True)
    reason: Mapped[SkipReason | None] = mapped_column(str_enum(SkipReason))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

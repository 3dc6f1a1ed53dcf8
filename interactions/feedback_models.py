"""Customer feedback on one interaction (CSAT, optionally NPS and CES) and the chat's own session row.

Kept out of ``interactions/models.py`` so the chat work and the agent-side EX pulse (another
module) never collide; both register through ``switchboard/model_registry.py``.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import Base, UTCDateTime, new_id, utcnow
from switchboard.pii import MaskedText


class CustomerFeedback(Base):
    """One survey answer per interaction (the unique index makes a double submit a 409, not a dup)."""

    __tablename__ = "customer_feedback"
    __table_args__ = (
        CheckConstraint("csat BETWEEN 1 AND 5", name="csat_range"),  # NULL passes a CHECK
        CheckConstraint("nps IS NULL OR nps BETWEEN 0 AND 10", name="nps_range"),
        CheckConstraint("ces IS NULL OR ces BETWEEN 1 AND 7", name="ces_range"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    interaction_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("interactions.id", ondelete="CASCADE"), unique=True
    )
    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("customers.id"), index=True)
    # Each queue chooses its questions (CSAT, NPS, CES); a survey may leave CSAT out.
    csat: Mapped[int | None] = mapped_column(Integer)
    nps: Mapped[int | None] = mapped_column(Integer)
    ces: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(MaskedText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ChatSession(Base):
    """The customer's side of one chat interaction.

    Only a SHA-256 of the per-chat access token is stored: the token is a bearer secret that
    authorises its holder to this one interaction, so a database read must not reveal it.
    """

    __tablename__ = "chat_sessions"
    __table_args__ = (
        # The transcript mailer's work list: requested and not yet sent. Partial, so it stays as
        # small as the pending set however many chats there have been.
        Index(
            "ix_chat_sessions_transcript_pending",
            "interaction_id",
            sqlite_where=text("transcript_email IS NOT NULL AND transcript_sent_at IS NULL"),
            postgresql_where=text("transcript_email IS NOT NULL AND transcript_sent_at IS NULL"),
        ),
    )

    interaction_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("interactions.id", ondelete="CASCADE"), primary_key=True
    )
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    senior_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    ended_by_customer_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    transcript_email: Mapped[str | None] = mapped_column(String(254))
    transcript_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when the mailer claims the transcript (before sending; cleared again if the relay refuses).
    transcript_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

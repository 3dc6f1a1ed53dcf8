"""What an email adds to a thread Message: its headers, sanitised HTML and attachments.

The Message row stays the one place a thread is read from (body = masked text part, external_id =
the RFC 5322 Message-ID); these rows hang off it, one-to-one and one-to-many.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from interactions.states import Direction
from switchboard.db import Base, UTCDateTime, new_id, utcnow
from switchboard.pii import MaskedString, MaskedText
from switchboard.types import BigIntPK, str_enum


class EmailDetail(Base):
    __tablename__ = "email_details"
    __table_args__ = (Index("ix_email_details_interaction", "interaction_id", "message_id"),)

    message_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    # Denormalised so a thread's References chain is one indexed query.
    interaction_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("interactions.id"))
    direction: Mapped[Direction] = mapped_column(str_enum(Direction))
    from_address: Mapped[str] = mapped_column(String(254))
    to_addresses: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(MaskedString(255), default="")  # card numbers masked
    in_reply_to: Mapped[str | None] = mapped_column(String(255))
    references: Mapped[str] = mapped_column(Text, default="")  # space-separated Message-IDs
    # Sanitised by nh3 and card-masked at ingest, so it is safe to render with |safe.
    html: Mapped[str | None] = mapped_column(MaskedText)
    # A web ticket's form submission: unique, so parallel posts of one form store one ticket (the
    # database decides the race; SQLite and PostgreSQL both let any number of rows hold NULL).
    submission_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, unique=True)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)


class Attachment(Base):
    """An attachment's bytes live in SQL: the SMTP listener may run on another host than the app,
    and the bytes then commit (or roll back) with the message they belong to."""

    __tablename__ = "attachments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    message_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(MaskedString(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

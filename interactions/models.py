"""Interaction and its messages. The timeline's storage (``TimelineEvent``, ``ActorType``) sits
one layer down, in customers.timeline_models: a customer's own changes are on it too. They are
re-exported here for the modules that still import them from this one."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from customers.timeline_models import ActorType, TimelineEvent
from interactions.states import Channel, Direction, State
from switchboard.db import Base, JSONType, UTCDateTime, new_id, utcnow
from switchboard.pii import MaskedJSON, MaskedString, MaskedText
from switchboard.types import BigIntPK, str_enum

__all__ = ["ActorType", "TimelineEvent"]  # re-exported (see the module docstring)


class Interaction(Base):
    __tablename__ = "interactions"
    __table_args__ = (
        Index("ix_interactions_state_queue", "state", "queue_id"),
        Index("ix_interactions_customer_created", "customer_id", "created_at"),
        # What an agent holds (the capacity check of every offer, the desktop's resync).
        Index("ix_interactions_agent_state", "agent_id", "state"),
        # An agent's contacts' ids without reading the rows: the experience drill-down for one
        # agent starts from them (~18,000 a year at 10 million contacts; docs/benchmarks.md).
        Index("ix_interactions_agent_id", "agent_id", "id"),
        # The wallboard's arrivals recorder reads a few seconds of entries at a time.
        Index("ix_interactions_queued_at", "queued_at"),
        # Links between interactions, read per render and per chat status tick (a transfer's
        # child, a callback, a ticket's follow-up): without them each read scans the whole table.
        # Partial: almost every interaction has none.
        Index(
            "ix_interactions_parent",
            "parent_id",
            "created_at",
            postgresql_where=text("parent_id IS NOT NULL"),
            sqlite_where=text("parent_id IS NOT NULL"),
        ),
        Index(
            "ix_interactions_callback_of",
            "callback_of_id",
            postgresql_where=text("callback_of_id IS NOT NULL"),
            sqlite_where=text("callback_of_id IS NOT NULL"),
        ),
        Index(
            "ix_interactions_follow_up_of",
            "follow_up_of_id",
            postgresql_where=text("follow_up_of_id IS NOT NULL"),
            sqlite_where=text("follow_up_of_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("customers.id"), index=True)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    direction: Mapped[Direction] = mapped_column(str_enum(Direction), default=Direction.INBOUND)
    state: Mapped[State] = mapped_column(str_enum(State), default=State.CREATED)
    # Optimistic-concurrency counter: every state change is a compare-and-set on it.
    version: Mapped[int] = mapped_column(Integer, default=1)

    priority: Mapped[int] = mapped_column(Integer, default=0)
    queue_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("queues.id", ondelete="SET NULL"))
    required_skills: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    agent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("agents.id", ondelete="SET NULL"))
    rule_set_version: Mapped[int | None] = mapped_column(Integer)

    subject: Mapped[str | None] = mapped_column(MaskedString(255))
    topic: Mapped[str | None] = mapped_column(String(80))
    language: Mapped[str | None] = mapped_column(String(16))
    disposition: Mapped[str | None] = mapped_column(String(80))
    # The identity the customer reached us through, e.g. {"kind": "phone", "value": "+44..."}.
    contact_identity: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    attributes: Mapped[dict[str, Any]] = mapped_column(MaskedJSON, default=dict)

    parent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("interactions.id"))
    callback_of_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("interactions.id"))
    follow_up_of_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("interactions.id"))

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Place in line, kept across re-queues and transfers (DESIGN §3).
    virtual_start_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    wrap_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # Never loaded: it tells the unit of work to insert an interaction before the timeline events
    # of the same flush (the events' model sits in customers/, mapped first; a foreign key alone
    # does not order a flush).
    timeline_events: Mapped[list[TimelineEvent]] = relationship(lazy="raise", viewonly=False)


class MessageSender(enum.StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    SYSTEM = "system"
    BOT = "bot"


class Message(Base):
    """A chat line, ticket post or email in an interaction's thread."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_interaction_at", "interaction_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    interaction_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("interactions.id"))
    sender: Mapped[MessageSender] = mapped_column(str_enum(MessageSender))
    author_id: Mapped[str | None] = mapped_column(String(80))
    body: Mapped[str] = mapped_column(MaskedText)
    content_type: Mapped[str] = mapped_column(String(40), default="text/plain")
    # Email threading (Message-ID) and carrier/channel ids; unique per channel source when present.
    external_id: Mapped[str | None] = mapped_column(String(255), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyKey(Base):
    """A client's ``Idempotency-Key`` and the interaction its first request created.

    The primary key (scope, owner, key) is what makes a retry race-free across processes: two
    requests with one key insert the same row, the database lets one commit and the other fails
    and replays (interactions.idempotency). Kept ``KEY_TTL`` (24 h), then purged.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires", "expires_at"),)

    scope: Mapped[str] = mapped_column(String(40), primary_key=True)  # which create, e.g. "interactions"
    owner: Mapped[str] = mapped_column(String(80), primary_key=True)  # whose key, e.g. "user:<uuid>"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the request body, canonical
    interaction_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("interactions.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

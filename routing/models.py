"""Routing's own records: offers, the engine partitions' fencing epochs and rule-set versions.

Agents, skills and queues (what routing matches against) are ``workforce.models``.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import Base, JSONType, UTCDateTime, new_id, utcnow
from switchboard.pii import MaskedString
from switchboard.types import str_enum


class OfferState(enum.StrEnum):
    LIVE = "live"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXPIRED = "expired"  # missed: the agent did not answer in time
    RESCINDED = "rescinded"  # withdrawn: customer hung up, agent vanished, re-routed


class Offer(Base):
    """An interaction reserved for one agent until ``expires_at``.

    The partial unique index allows at most one live offer per interaction on any backend, so
    even two engines racing during a lease hand-over cannot offer one interaction twice.
    Rejected/expired rows are also the memory of "never re-offer to this agent".
    """

    __tablename__ = "offers"
    __table_args__ = (
        Index(
            "uq_offers_one_live_per_interaction",
            "interaction_id",
            unique=True,
            sqlite_where=text("state = 'live'"),
            postgresql_where=text("state = 'live'"),
        ),
        Index("ix_offers_agent_state", "agent_id", "state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    interaction_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("interactions.id"), index=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("agents.id"))
    state: Mapped[OfferState] = mapped_column(str_enum(OfferState), default=OfferState.LIVE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(80))
    # Lease epoch of the engine that made the offer (fencing token, for audits of hand-overs).
    engine_epoch: Mapped[int] = mapped_column(BigInteger, default=0)


class RoutingPartition(Base):
    """One row per engine partition: the fencing epoch and the live rule-set version.

    Every engine write bumps-or-checks ``epoch`` in the same transaction, so a stale engine whose
    lease lapsed cannot commit decisions after a newer engine has started.
    """

    __tablename__ = "routing_partitions"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    live_rule_set_version: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RuleSetStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"  # was live at some point; the partition row says which one is live now


class RuleSetVersion(Base):
    """A versioned routing rule set (filters -> steps). Drafts are edited; published ones are frozen."""

    __tablename__ = "rule_set_versions"
    __table_args__ = (UniqueConstraint("partition", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    partition: Mapped[str] = mapped_column(String(40), default="default")
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[RuleSetStatus] = mapped_column(str_enum(RuleSetStatus), default=RuleSetStatus.DRAFT)
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    comment: Mapped[str] = mapped_column(MaskedString(255), default="")
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

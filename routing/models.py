"""Agents, skills and queues: the supply side that routing matches interactions against."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from switchboard.db import Base, JSONType, UTCDateTime, new_id, utcnow
from switchboard.types import str_enum


class Presence(enum.StrEnum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    BUSY = "busy"
    WRAP_UP = "wrap_up"
    BREAK = "break"
    TRAINING = "training"
    NOT_RESPONDING = "not_responding"


class SelectionStrategy(enum.StrEnum):
    LONGEST_IDLE = "longest_idle"
    BEST_PROFICIENCY = "best_proficiency"
    LEAST_OCCUPIED = "least_occupied"


# Default per-channel maximum concurrent interactions (DESIGN §2: voice blocks other work).
DEFAULT_CHANNEL_MAX = {"voice": 1, "chat": 3, "ticket": 5, "email": 5}


class Skill(Base):
    __tablename__ = "skills"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    description: Mapped[str] = mapped_column(String(255), default="")


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    languages: Mapped[list[str]] = mapped_column(JSONType, default=list)
    teams: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Weighted capacity units (e.g. 100) and a per-channel ceiling; see routing capacity rules.
    capacity_units: Mapped[int] = mapped_column(Integer, default=100)
    channel_max: Mapped[dict[str, int]] = mapped_column(JSONType, default=lambda: dict(DEFAULT_CHANNEL_MAX))
    presence: Mapped[Presence] = mapped_column(str_enum(Presence), default=Presence.OFFLINE)
    presence_reason: Mapped[str | None] = mapped_column(String(60))
    presence_since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    idle_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    skills: Mapped[list[AgentSkill]] = relationship(
        back_populates="agent", lazy="selectin", cascade="all, delete-orphan"
    )

    def skill_levels(self) -> dict[str, int]:
        return {s.skill_name: s.proficiency for s in self.skills}


class AgentSkill(Base):
    __tablename__ = "agent_skills"
    __table_args__ = (
        UniqueConstraint("agent_id", "skill_name"),
        CheckConstraint("proficiency BETWEEN 1 AND 5", name="proficiency_range"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    agent_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    skill_name: Mapped[str] = mapped_column(String(60), ForeignKey("skills.name", ondelete="CASCADE"))
    proficiency: Mapped[int] = mapped_column(Integer)

    agent: Mapped[Agent] = relationship(back_populates="skills")


class Queue(Base):
    __tablename__ = "queues"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(60), unique=True)  # slug used in rules: "cards"
    display_name: Mapped[str] = mapped_column(String(120))
    channels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Service level: sl_target_percent of interactions answered within sl_threshold_seconds.
    sl_target_percent: Mapped[int] = mapped_column(Integer, default=80)
    sl_threshold_seconds: Mapped[int] = mapped_column(Integer, default=20)
    strategy: Mapped[SelectionStrategy] = mapped_column(
        str_enum(SelectionStrategy), default=SelectionStrategy.LONGEST_IDLE
    )
    # Skill-based membership: agents holding all of these at >= level serve the queue.
    required_skills: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    overflow_queue_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("queues.id", ondelete="SET NULL")
    )
    wrap_up_seconds: Mapped[int] = mapped_column(Integer, default=60)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class QueueMember(Base):
    """Explicit queue membership (in addition to skill-based membership)."""

    __tablename__ = "queue_members"
    __table_args__ = (UniqueConstraint("queue_id", "agent_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    queue_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("queues.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("agents.id", ondelete="CASCADE"), index=True)


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
    comment: Mapped[str] = mapped_column(String(255), default="")
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

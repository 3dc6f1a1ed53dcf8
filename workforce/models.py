"""Agents, skills and queues: the people of the floor and what they are organised into.

The supply side that routing matches interactions against, and that workforce planning staffs.
Below interactions and routing in the layers: both read agents and queues, neither is imported here.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from switchboard.db import Base, JSONType, UTCDateTime, new_id, utcnow
from switchboard.pii import MaskedString
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


class OfferPolicy(enum.StrEnum):
    """How many offers of a queue's work an agent may have pending at once (supervisor-set)."""

    # One pending offer per agent at a time: the next comes when it is accepted, rejected or
    # expires. Multitasking capacity still applies to accepted work.
    ONE_AT_A_TIME = "one_at_a_time"
    # As many pending offers as free capacity allows (every free chat place offered at once).
    UP_TO_CAPACITY = "up_to_capacity"


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
    presence_reason: Mapped[str | None] = mapped_column(MaskedString(60))  # a supervisor's typed reason
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


# A chat customer whose estimated wait passes this is offered a callback or to leave a message
# (interactions.chat_waiting); per queue in ``settings``, changed on /supervisor/queues.
CHAT_WAIT_OFFER_KEY = "chat_wait_offer_after_seconds"
CHAT_WAIT_OFFER_DEFAULT_S = 300


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
    # How long an agent has to answer an offer of this queue's work; None: the channel's default.
    offer_timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    offer_policy: Mapped[OfferPolicy] = mapped_column(
        str_enum(OfferPolicy),
        default=OfferPolicy.ONE_AT_A_TIME,
        server_default=OfferPolicy.ONE_AT_A_TIME.value,
    )
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Who answers for the queue's service (a supervisor): the owner of its alerts' follow-ups.
    owner_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def chat_wait_offer_after_seconds(self) -> int:
        return int((self.settings or {}).get(CHAT_WAIT_OFFER_KEY, CHAT_WAIT_OFFER_DEFAULT_S))


class QueueMember(Base):
    """Explicit queue membership (in addition to skill-based membership)."""

    __tablename__ = "queue_members"
    __table_args__ = (UniqueConstraint("queue_id", "agent_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    queue_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("queues.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("agents.id", ondelete="CASCADE"), index=True)


class Team(Base):
    """A team by the name agents carry in ``Agent.teams`` (the engine and the rules read the
    names, as with skills), and who leads it: the owner that an alert's follow-up about the team's
    work goes to (experience/)."""

    __tablename__ = "teams"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    display_name: Mapped[str] = mapped_column(String(120), default="", server_default="")
    description: Mapped[str] = mapped_column(String(255), default="", server_default="")
    lead_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

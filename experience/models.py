"""Alert rules, the follow-ups they raise and the improvement items follow-ups are grouped into.

The small loop: a rule (a condition in the routing language over one kind of signal) raises a
follow-up with an owner and a due time; the owner works it, or it escalates once to the next owner.
The big loop: follow-ups sharing a topic and a cause across teams become one improvement item.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import Base, UTCDateTime, new_id, utcnow
from switchboard.pii import MaskedString, MaskedText
from switchboard.types import str_enum


class SignalKind(enum.StrEnum):
    FEEDBACK = "feedback"  # a customer's CSAT / NPS / CES answer on an interaction
    REPEAT_CONTACT = "repeat_contact"  # a new contact on a topic the customer contacted us on before
    SERVICE_LEVEL = "service_level"  # a queue's service level over the last complete interval
    EX_PULSE = "ex_pulse"  # an agent's interaction pulses over one shift (day)
    ABANDON = "abandon"  # a customer hung up or left before reaching an agent


class OwnerRole(enum.StrEnum):
    TEAM_LEAD = "team_lead"  # lead of the team of the agent involved
    RELATIONSHIP_MANAGER = "relationship_manager"  # the customer's relationship manager
    QUEUE_OWNER = "queue_owner"  # the owner of the queue the contact was in
    SUPERVISORS = "supervisors"  # nobody in particular: every supervisor's unassigned list


class FollowUpState(enum.StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    ESCALATED = "escalated"


class ImprovementStatus(enum.StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"


class AlertRule(Base):
    """One supervisor-editable rule; every edit bumps ``version`` (the audit log keeps before/after)."""

    __tablename__ = "alert_rules"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    # The shipped defaults carry a key so seeding them is idempotent; rules made by hand have none.
    seed_key: Mapped[str | None] = mapped_column(String(60), unique=True)
    signal: Mapped[SignalKind] = mapped_column(str_enum(SignalKind))
    condition: Mapped[str] = mapped_column(String(2000))
    owner_role: Mapped[OwnerRole] = mapped_column(str_enum(OwnerRole))
    escalation_role: Mapped[OwnerRole] = mapped_column(str_enum(OwnerRole, name="escalationrole"))
    due_minutes: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Improvement(Base):
    """The big loop: one cause behind follow-ups across teams, with a cross-team owner."""

    __tablename__ = "improvements"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(MaskedString(200))
    topic: Mapped[str] = mapped_column(String(80))
    cause: Mapped[str] = mapped_column(String(80))
    owner_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[ImprovementStatus] = mapped_column(
        str_enum(ImprovementStatus), default=ImprovementStatus.OPEN
    )
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FollowUp(Base):
    """What one rule raised for one triggering event: (rule, event_key) is unique, so evaluating
    the same event again (a retried job, a second worker) never raises a second follow-up."""

    __tablename__ = "follow_ups"
    __table_args__ = (
        UniqueConstraint("rule_id", "event_key", name="uq_follow_ups_rule_event"),
        Index("ix_follow_ups_owner_state", "owner_user_id", "state"),
        Index("ix_follow_ups_state_due", "state", "due_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    rule_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("alert_rules.id", ondelete="CASCADE"))
    rule_version: Mapped[int] = mapped_column(Integer)
    event_key: Mapped[str] = mapped_column(String(200))
    signal: Mapped[SignalKind] = mapped_column(str_enum(SignalKind))
    title: Mapped[str] = mapped_column(MaskedString(200))
    topic: Mapped[str] = mapped_column(String(80), default="")
    cause: Mapped[str | None] = mapped_column(String(80))
    customer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("customers.id"), index=True)
    agent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("agents.id", ondelete="SET NULL"))
    queue_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("queues.id", ondelete="SET NULL"))
    owner_role: Mapped[OwnerRole] = mapped_column(str_enum(OwnerRole))
    owner_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    escalation_role: Mapped[OwnerRole] = mapped_column(str_enum(OwnerRole, name="escalationrole"))
    state: Mapped[FollowUpState] = mapped_column(str_enum(FollowUpState), default=FollowUpState.OPEN)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_from_user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    improvement_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("improvements.id", ondelete="SET NULL"), index=True
    )
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FollowUpLink(Base):
    """An interaction behind a follow-up (the rated contact, both repeat contacts, missed calls)."""

    __tablename__ = "follow_up_links"

    follow_up_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("follow_ups.id", ondelete="CASCADE"), primary_key=True
    )
    interaction_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("interactions.id", ondelete="CASCADE"), primary_key=True
    )


class FollowUpNote(Base):
    __tablename__ = "follow_up_notes"
    __table_args__ = (Index("ix_follow_up_notes_follow_up", "follow_up_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    follow_up_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("follow_ups.id", ondelete="CASCADE"))
    author_user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    body: Mapped[str] = mapped_column(MaskedText)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

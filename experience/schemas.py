"""JSON shapes of the alert rules, follow-ups and improvement items APIs."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from experience.models import FollowUpState, ImprovementStatus, OwnerRole, SignalKind

MAX_DUE_MINUTES = 60 * 24 * 30


class AlertRuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    signal: SignalKind
    condition: str = Field(min_length=1, max_length=2000)
    owner_role: OwnerRole
    escalation_role: OwnerRole
    due_minutes: int = Field(ge=1, le=MAX_DUE_MINUTES)
    enabled: bool = True


class AlertRuleUpdate(BaseModel):
    """A partial edit; ``version`` is the one the editor read (a stale edit is a 409)."""

    model_config = ConfigDict(extra="forbid")

    version: int
    name: str | None = Field(default=None, min_length=1, max_length=120)
    condition: str | None = Field(default=None, min_length=1, max_length=2000)
    owner_role: OwnerRole | None = None
    escalation_role: OwnerRole | None = None
    due_minutes: int | None = Field(default=None, ge=1, le=MAX_DUE_MINUTES)
    enabled: bool | None = None


class AlertRuleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    seed_key: str | None
    signal: SignalKind
    condition: str
    owner_role: OwnerRole
    escalation_role: OwnerRole
    due_minutes: int
    enabled: bool
    version: int
    updated_by_id: uuid.UUID | None
    updated_at: datetime


class FollowUpChange(BaseModel):
    """What an owner changes: the state, the cause (for the big loop), a note; any of them."""

    model_config = ConfigDict(extra="forbid")

    state: FollowUpState | None = None
    cause: str | None = Field(default=None, max_length=80)
    note: str | None = Field(default=None, max_length=4000)


class NoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    author_user_id: uuid.UUID | None
    body: str
    at: datetime


class FollowUpOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    rule_id: uuid.UUID
    rule_version: int
    event_key: str
    signal: SignalKind
    title: str
    topic: str
    cause: str | None
    customer_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    queue_id: uuid.UUID | None
    owner_role: OwnerRole
    owner_user_id: uuid.UUID | None
    escalation_role: OwnerRole
    state: FollowUpState
    due_at: datetime
    overdue: bool = False
    escalated_at: datetime | None
    resolved_at: datetime | None
    improvement_id: uuid.UUID | None
    created_at: datetime
    interaction_ids: list[uuid.UUID] = []
    notes: list[NoteOut] = []


class FollowUpList(BaseModel):
    items: list[FollowUpOut]


class EvaluationOut(BaseModel):
    signals: int
    raised: int


class ImprovementCreate(BaseModel):
    """Group every unlinked follow-up with this topic and cause under a new item."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    topic: str = Field(max_length=80)
    cause: str = Field(min_length=1, max_length=80)
    owner_user_id: uuid.UUID | None = None


class ImprovementUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: ImprovementStatus | None = None
    owner_user_id: uuid.UUID | None = None
    title: str | None = Field(default=None, min_length=1, max_length=200)


class ImprovementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    topic: str
    cause: str
    owner_user_id: uuid.UUID | None
    status: ImprovementStatus
    created_at: datetime
    done_at: datetime | None
    follow_ups: int = 0
    open_follow_ups: int = 0
    teams: int = 0
    age_days: float = 0.0


class ImprovementCandidate(BaseModel):
    """Unlinked follow-ups sharing a topic and a cause: what an improvement item could group."""

    topic: str
    cause: str
    follow_ups: int
    teams: int

"""API shapes for routing: rule-set versions and dry-runs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from customers.models import ValueTier
from interactions.states import Channel
from routing.condition_help import ConditionKind
from routing.models import OfferState, RuleSetStatus
from switchboard.bounds import INT32_MAX
from workforce.models import Presence


class RuleSetVersionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: dict[str, Any] = Field(description="The rule set: filters, default_filter, on_final_timeout")
    comment: str = Field(default="", max_length=255)


class RuleSetVersionUpdate(RuleSetVersionCreate):
    pass


class RuleSetVersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    version: int
    status: RuleSetStatus
    live: bool = False
    body: dict[str, Any]
    comment: str
    created_by_id: uuid.UUID | None
    created_at: datetime
    published_by_id: uuid.UUID | None
    published_at: datetime | None


class RuleProblem(BaseModel):
    field: str
    message: str


class RuleSetValidationRead(BaseModel):
    valid: bool
    errors: list[RuleProblem]


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_version: int = Field(ge=1, le=INT32_MAX)


class PresenceUpdate(BaseModel):
    """What an agent may choose; busy, wrap-up and not-responding are set by routing itself."""

    model_config = ConfigDict(extra="forbid")

    presence: Literal["available", "break", "training", "offline"]
    reason: str | None = Field(default=None, max_length=60)


class AgentStatusRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    display_name: str
    presence: Presence
    presence_reason: str | None
    presence_since: datetime


class OfferRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    interaction_id: uuid.UUID
    agent_id: uuid.UUID
    state: OfferState
    created_at: datetime
    expires_at: datetime


class CommandResult(BaseModel):
    ok: bool
    reason: str | None = None


TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class DescribedContact(BaseModel):
    """A contact described in the terms supervisors use; each field becomes a rule attribute."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    channel: Channel = Channel.VOICE
    tier: ValueTier = ValueTier.STANDARD
    senior: bool = Field(default=False, description='Adds the "senior" segment')
    vulnerable: bool = False
    language: str = Field(default="en", max_length=16, pattern=r"^[A-Za-z-]*$")
    topic: str = Field(default="", max_length=80)
    time: str | None = Field(default=None, pattern=TIME_PATTERN, description="Time of day, HH:MM")
    waited_seconds: float = Field(default=0, ge=0, le=86_400, description="How long it has waited")
    direction: Literal["inbound", "outbound"] = "inbound"


class DryRunRequest(BaseModel):
    """An existing interaction, a described contact, or rule-context attributes (which override
    the described contact's)."""

    model_config = ConfigDict(extra="forbid")

    interaction_id: uuid.UUID | None = None
    contact: DescribedContact | None = None
    context: dict[str, Any] = Field(
        default_factory=dict,
        description='Rule attributes, e.g. {"channel": "voice", "customer.tier": "gold"}',
        max_length=50,
    )
    version: int | None = Field(
        default=None, ge=1, le=INT32_MAX, description="A rule-set version to try (a draft); default: live"
    )


class ConditionCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=2000, description="The condition as typed so far")
    kind: ConditionKind = Field(default="when", description="when: a filter's condition; target: a step's")


class ConditionCheckRead(BaseModel):
    valid: bool
    message: str | None = None
    position: int | None = Field(default=None, description="0-based offset of the problem")
    column: int | None = Field(default=None, description="1-based column of the problem")
    completions: list[str] = Field(description="Whole-text completions of the word being typed")


class ConditionAttributesRead(BaseModel):
    kind: ConditionKind
    attributes: list[str]
    values: dict[str, list[str]]


class TransferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_queue: str | None = Field(default=None, min_length=1, max_length=60)
    to_agent_id: uuid.UUID | None = None
    mode: Literal["blind", "warm"] = "blind"
    note: str | None = Field(default=None, max_length=2000, description="Context for the next agent")

    @model_validator(mode="after")
    def _one_target(self) -> TransferRequest:
        if (self.to_queue is None) == (self.to_agent_id is None):
            raise ValueError("give exactly one of to_queue or to_agent_id")
        return self


class TransferRead(CommandResult):
    child_interaction_id: uuid.UUID | None = None
    consult: Literal["pending", "accepted", "cancelled"] | None = Field(
        default=None,
        description="Warm transfers only: pending while the target decides (the sender keeps the "
        "customer), accepted once they took it (the parent ended as transferred), cancelled otherwise",
    )
    consult_outcome: str | None = Field(
        default=None,
        description="How the consult ended: accepted, rejected, missed, agent_offline, timed_out, "
        "cancelled, parent_ended or abandoned",
    )

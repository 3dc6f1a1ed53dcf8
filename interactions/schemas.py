"""Pydantic shapes for the interactions hub (inputs forbid unknown keys)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from customers.models import IdentityKind, ValueTier
from interactions.models import ActorType, MessageSender
from interactions.states import Channel, Direction, State
from switchboard.bounds import INT32_MAX

MAX_MESSAGE_CHARS = 10_000
MAX_NOTE_CHARS = 5_000
PREVIEW_CHARS = 200

SkillName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,59}$")]
Proficiency = Annotated[int, Field(ge=1, le=5)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdentityRef(_Input):
    """How the customer reached us; resolved (or created) to one customer profile."""

    kind: IdentityKind
    value: str = Field(min_length=1, max_length=254)


class InteractionBase(BaseModel):
    channel: Channel
    direction: Direction = Direction.INBOUND
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher is served first")
    required_skills: dict[SkillName, Proficiency] = Field(default_factory=dict, max_length=20)
    subject: str | None = Field(default=None, max_length=255)
    topic: str | None = Field(default=None, max_length=80)
    language: str | None = Field(default=None, min_length=2, max_length=16)


class InteractionCreate(_Input, InteractionBase):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "channel": "voice",
                    "identity": {"kind": "phone", "value": "+44 7911 123456"},
                    "customer_name": "Ann Example",
                    "queue": "retail",
                    "subject": "Card declined abroad",
                }
            ]
        },
    )

    identity: IdentityRef
    customer_name: str | None = Field(
        default=None, min_length=1, max_length=160, description="Used only when the customer is new"
    )
    queue: str | None = Field(default=None, min_length=1, max_length=60, description="Queue name (slug)")
    attributes: dict[str, Any] = Field(default_factory=dict, max_length=50)
    enqueue: bool | None = Field(
        default=None, description="Hand to routing now; defaults to true for inbound, false for outbound"
    )
    parent_id: uuid.UUID | None = None
    callback_of_id: uuid.UUID | None = None
    follow_up_of_id: uuid.UUID | None = None


class InteractionCustomer(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    display_name: str
    language: str
    value_tier: ValueTier
    segments: list[str]


class InteractionRead(InteractionBase):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    customer_id: uuid.UUID
    customer: InteractionCustomer | None = None
    state: State
    version: int
    queue_id: uuid.UUID | None
    queue: str | None = None
    agent_id: uuid.UUID | None
    rule_set_version: int | None
    disposition: str | None
    contact_identity: dict[str, Any]
    attributes: dict[str, Any]
    parent_id: uuid.UUID | None
    callback_of_id: uuid.UUID | None
    follow_up_of_id: uuid.UUID | None
    created_at: datetime
    virtual_start_at: datetime
    queued_at: datetime | None
    offered_at: datetime | None
    connected_at: datetime | None
    wrap_up_at: datetime | None
    ended_at: datetime | None
    updated_at: datetime


class InteractionPage(BaseModel):
    items: list[InteractionRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class InteractionFilters(BaseModel):
    """List filters; every one is optional and they combine with AND."""

    state: State | None = None
    channel: Channel | None = None
    direction: Direction | None = None
    customer_id: uuid.UUID | None = None
    queue: str | None = None
    agent_id: uuid.UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class TransitionRequest(_Input):
    to_state: State
    reason: str | None = Field(default=None, max_length=255)
    expected_version: int | None = Field(
        default=None,
        ge=1,
        le=INT32_MAX,
        description="Compare-and-set: refuse with 409 unless this is the current version",
    )


class DispositionUpdate(_Input):
    disposition: str = Field(min_length=1, max_length=80)
    expected_version: int | None = Field(default=None, ge=1, le=INT32_MAX)


class MessageCreate(_Input):
    body: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    content_type: Literal["text/plain", "text/html"] = "text/plain"


class MessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    interaction_id: uuid.UUID
    sender: MessageSender
    author_id: str | None
    body: str
    content_type: str
    at: datetime


class NoteCreate(_Input):
    body: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)


class TimelineEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: uuid.UUID
    interaction_id: uuid.UUID | None
    at: datetime
    kind: str
    channel: str | None
    actor_type: ActorType
    actor_id: str | None
    data: dict[str, Any]


class TimelinePage(BaseModel):
    items: list[TimelineEventRead]
    next_before_id: int | None = Field(description="Pass as `before_id` for the next (older) page")

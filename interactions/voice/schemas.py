"""Request shapes for callbacks and outbound contact (inputs forbid unknown keys)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from interactions.voice.outbound import Purpose


class CallbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str | None = Field(
        default=None,
        max_length=40,
        description="Number to call; must be on the customer's profile. Default: the number they called from",
    )


class OutboundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: uuid.UUID
    channel: Literal["voice", "email"]
    reason: str = Field(min_length=1, max_length=255, description="Why we contact the customer (the subject)")
    purpose: Purpose = Field(default=Purpose.SERVICE, description="marketing needs the customer's consent")
    follow_up_of_id: uuid.UUID | None = Field(
        default=None,
        description="The interaction this contact continues (e.g. a chat escalated to a call): one thread",
    )

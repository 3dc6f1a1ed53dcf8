"""Shapes for the public ticket form and agent replies (inputs forbid unknown keys)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from interactions.schemas import MAX_MESSAGE_CHARS


class TicketCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "Ann Example",
                    "email": "ann@example.org",
                    "subject": "Statement missing",
                    "message": "My March statement never arrived; please send it again.",
                    "submission_id": "0b9c1f3e-7c1a-4d5e-9a57-3c2d1e0f4b6a",
                }
            ]
        },
    )

    name: str | None = Field(default=None, max_length=160, description="How we should address you")
    email: EmailStr = Field(description="Where our reply goes")
    subject: str = Field(min_length=3, max_length=200)
    message: str = Field(min_length=10, max_length=MAX_MESSAGE_CHARS)
    # Idempotency: the form renders one per page load, so a double click or a refresh files one ticket.
    submission_id: uuid.UUID | None = None


class TicketCreated(BaseModel):
    """All an anonymous submitter learns: no customer data echoes back."""

    id: uuid.UUID
    reference: str
    channel: str


class ReplyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


def ticket_reference(interaction_id: uuid.UUID) -> str:
    """A short reference a customer can quote on the phone (not a secret; ids are UUIDs)."""
    return "SB-" + interaction_id.hex[:8].upper()

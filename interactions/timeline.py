"""Appending to the timeline: the only write path for TimelineEvent rows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from interactions.models import ActorType, TimelineEvent
from switchboard.db import utcnow


def append_event(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    kind: str,
    actor_type: ActorType,
    actor_id: str | uuid.UUID | None = None,
    interaction_id: uuid.UUID | None = None,
    channel: str | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> TimelineEvent:
    """Add an event to the caller's transaction; it commits (or rolls back) with the change it records."""
    event = TimelineEvent(
        customer_id=customer_id,
        interaction_id=interaction_id,
        kind=kind,
        channel=channel,
        actor_type=actor_type,
        actor_id=str(actor_id) if actor_id is not None else None,
        data=data or {},
        at=at or utcnow(),
    )
    session.add(event)
    return event

"""Transfers in SQL: the interaction ends as ``transferred`` and a child carries on.

The child keeps the parent's virtual start time (its place in line), its customer, channel and
context, and carries the note, so the next agent never has to ask the customer again.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from interactions import service as interactions_service
from interactions.models import ActorType, Interaction
from interactions.states import State
from interactions.timeline import append_event

TransferMode = Literal["blind", "warm"]


async def transfer_in_sql(
    session: AsyncSession,
    *,
    parent: Interaction,
    from_agent_id: uuid.UUID,
    to_queue_id: uuid.UUID | None,
    to_agent_id: uuid.UUID | None,
    mode: TransferMode,
    note: str | None,
    now: datetime,
) -> Interaction:
    safe_note = interactions_service.mask_card_numbers(note) if note else None
    await interactions_service.transition(
        session,
        interaction_id=parent.id,
        to_state=State.TRANSFERRED,
        actor_type=ActorType.AGENT,
        actor_id=str(from_agent_id),
        reason=f"{mode} transfer",
        now=now,
    )
    transfer = {
        "from_agent_id": str(from_agent_id),
        "to_agent_id": str(to_agent_id) if to_agent_id else None,
        "mode": mode,
        "note": safe_note,
    }
    child = Interaction(
        customer_id=parent.customer_id,
        channel=parent.channel,
        direction=parent.direction,
        state=State.QUEUED,
        priority=parent.priority,
        queue_id=to_queue_id or parent.queue_id,
        required_skills=dict(parent.required_skills or {}),
        subject=parent.subject,
        topic=parent.topic,
        language=parent.language,
        contact_identity=dict(parent.contact_identity or {}),
        attributes={**(parent.attributes or {}), "transfer": transfer},
        parent_id=parent.id,
        created_at=now,
        virtual_start_at=parent.virtual_start_at,  # keeps its place in line
        queued_at=now,
        updated_at=now,
    )
    session.add(child)
    await session.flush()
    for interaction, kind in ((parent, "transferred"), (child, "interaction_created")):
        append_event(
            session,
            customer_id=parent.customer_id,
            interaction_id=interaction.id,
            kind=kind,
            channel=parent.channel.value,
            actor_type=ActorType.AGENT,
            actor_id=str(from_agent_id),
            data={**transfer, "parent_id": str(parent.id), "child_id": str(child.id)},
            at=now,
        )
    return child

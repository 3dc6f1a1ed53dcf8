"""What follows a customer into a merge from this layer (``customers.merge.merge_customers``):
their interactions and their survey answers. The app passes these movers (with those of the layers
above) to the merge route; the chat verification, in this layer, passes them itself."""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from customers.merge import Movers
from interactions.feedback_models import CustomerFeedback
from interactions.models import Interaction


async def move_interactions(session: AsyncSession, *, source_id: uuid.UUID, target_id: uuid.UUID) -> int:
    moved = await session.execute(
        update(Interaction).where(Interaction.customer_id == source_id).values(customer_id=target_id)
    )
    return int(moved.rowcount)  # type: ignore[attr-defined]


async def move_feedback(session: AsyncSession, *, source_id: uuid.UUID, target_id: uuid.UUID) -> int:
    moved = await session.execute(
        update(CustomerFeedback)
        .where(CustomerFeedback.customer_id == source_id)
        .values(customer_id=target_id)
    )
    return int(moved.rowcount)  # type: ignore[attr-defined]


MOVERS: Movers = {"interactions": move_interactions, "feedback": move_feedback}

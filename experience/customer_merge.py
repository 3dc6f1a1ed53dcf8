"""What follows a customer into a merge from this layer (``customers.merge.merge_customers``):
their survey invitations (and so the frequency cap) and their follow-ups."""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from customers.merge import Movers
from experience.models import FollowUp
from experience.survey_models import SurveyInvitation


async def move_invitations(session: AsyncSession, *, source_id: uuid.UUID, target_id: uuid.UUID) -> int:
    moved = await session.execute(
        update(SurveyInvitation)
        .where(SurveyInvitation.customer_id == source_id)
        .values(customer_id=target_id)
    )
    return int(moved.rowcount)  # type: ignore[attr-defined]


async def move_follow_ups(session: AsyncSession, *, source_id: uuid.UUID, target_id: uuid.UUID) -> int:
    moved = await session.execute(
        update(FollowUp).where(FollowUp.customer_id == source_id).values(customer_id=target_id)
    )
    return int(moved.rowcount)  # type: ignore[attr-defined]


MOVERS: Movers = {"survey_invitations": move_invitations, "follow_ups": move_follow_ups}

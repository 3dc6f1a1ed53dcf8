"""Recording a customer's answer to a survey (CSAT, NPS, CES and a comment) on one interaction:
the row (one per interaction: the unique index turns a second answer into a 409) and its
``feedback`` timeline event, in the caller's transaction. The chat's inline survey
(``interactions.chat``) and the survey links (``experience.surveys``) both record through here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from customers.timeline import append_event
from interactions.feedback_models import CustomerFeedback
from interactions.models import ActorType, Interaction
from switchboard.errors import Conflict


async def record_feedback(
    session: AsyncSession,
    interaction: Interaction,
    *,
    scores: dict[str, int],
    comment: str | None,
    now: datetime,
    already: str,
    field: str,
    event_extra: dict[str, Any] | None = None,
) -> CustomerFeedback:
    """``scores``: any of csat, nps, ces; ``already``/``field``: the 409 when it was answered."""
    row = CustomerFeedback(
        interaction_id=interaction.id,
        customer_id=interaction.customer_id,
        csat=scores.get("csat"),
        nps=scores.get("nps"),
        ces=scores.get("ces"),
        comment=comment or None,
        created_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(already, field=field) from exc
    append_event(
        session,
        customer_id=interaction.customer_id,
        interaction_id=interaction.id,
        kind="feedback",
        channel=interaction.channel.value,
        actor_type=ActorType.CUSTOMER,
        actor_id=str(interaction.customer_id),
        data={**scores, **(event_extra or {})},
        at=now,
    )
    return row

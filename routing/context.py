"""What routing rules see about an interaction, built from the durable records.

One builder for the engine host (arrivals and rebuilds) and the dry-run API, so a dry-run
answers exactly what the engine would decide.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer
from interactions.models import Interaction
from interactions.states import State


async def last_agent_id(session: AsyncSession, customer_id: Any) -> str | None:
    """The agent who last completed work for this customer (the "last agent" preference)."""
    agent_id = await session.scalar(
        select(Interaction.agent_id)
        .where(
            Interaction.customer_id == customer_id,
            Interaction.agent_id.is_not(None),
            Interaction.state == State.COMPLETED,
        )
        .order_by(Interaction.ended_at.desc())
        .limit(1)
    )
    return str(agent_id) if agent_id else None


def rule_context(interaction: Interaction, customer: Customer, *, last_agent: str | None) -> dict[str, Any]:
    segments = list(customer.segments or [])
    return {
        "channel": interaction.channel.value,
        "direction": interaction.direction.value,
        "customer.id": str(customer.id),
        "customer.tier": customer.value_tier.value,
        "customer.language": customer.language or "",
        "customer.segments": segments,
        "customer.relationship_manager": str(customer.relationship_manager_id)
        if customer.relationship_manager_id
        else "",
        "customer.last_agent": last_agent or "",
        "customer.do_not_contact": bool(customer.do_not_contact),
        "customer.vulnerable": "vulnerable" in segments,
        "interaction.priority": int(interaction.priority),
        "interaction.topic": interaction.topic or "",
        "interaction.intent": str((interaction.attributes or {}).get("intent", "")),
        "interaction.started_at": interaction.virtual_start_at.timestamp(),
    }


async def context_for(session: AsyncSession, interaction: Interaction) -> dict[str, Any]:
    customer = await session.get(Customer, interaction.customer_id)
    assert customer is not None  # FK
    return rule_context(interaction, customer, last_agent=await last_agent_id(session, customer.id))

"""Who a follow-up's owner role is, from workforce and customer data.

* team lead: the lead (``teams.lead_user_id``) of the first of the agent's teams that has one;
* relationship manager: the customer's (``customers.relationship_manager_id``), as a user;
* queue owner: ``queues.owner_user_id``;
* supervisors: nobody in particular (``None``): every supervisor's unassigned list.

Any role that cannot be resolved (no agent, no team lead, no manager) is ``None`` too, so the
follow-up is still raised and seen, never dropped for want of an owner.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer
from experience.models import OwnerRole
from workforce.models import Agent, Queue, Team


async def resolve_owner(
    session: AsyncSession,
    role: OwnerRole,
    *,
    agent_id: uuid.UUID | None,
    customer_id: uuid.UUID | None,
    queue_id: uuid.UUID | None,
) -> uuid.UUID | None:
    if role == OwnerRole.TEAM_LEAD and agent_id is not None:
        teams = await session.scalar(select(Agent.teams).where(Agent.id == agent_id))
        if not teams:
            return None
        rows = await session.execute(select(Team.name, Team.lead_user_id).where(Team.name.in_(teams)))
        leads: dict[str, uuid.UUID | None] = {name: lead for name, lead in rows.all()}
        return next((leads[name] for name in teams if leads.get(name) is not None), None)
    if role == OwnerRole.RELATIONSHIP_MANAGER and customer_id is not None:
        return await session.scalar(
            select(Agent.user_id)
            .join(Customer, Customer.relationship_manager_id == Agent.id)
            .where(Customer.id == customer_id)
        )
    if role == OwnerRole.QUEUE_OWNER and queue_id is not None:
        return await session.scalar(select(Queue.owner_user_id).where(Queue.id == queue_id))
    return None

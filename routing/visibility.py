"""Which customers an agent may see: those behind an interaction assigned to them, or live-offered
to them (the offer toast shows who is calling), including profiles merged into it (DESIGN §6).

Here and not in ``customers``: the rule reads interactions and routing's offers. The customer
routes reach it through ``customers.access.CustomerAccess``, wired by the app.
"""

from __future__ import annotations

import uuid

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.service import merged_customer_ids
from interactions.models import Interaction
from interactions.visibility import audit_customer_read
from routing.models import Offer, OfferState
from switchboard.auth.models import STAFF_RANK, Role, User
from switchboard.errors import Forbidden, NotFound
from workforce.models import Agent


async def customer_visible_to_agent(
    session: AsyncSession, *, customer_id: uuid.UUID, agent_id: uuid.UUID
) -> bool:
    ids = await merged_customer_ids(session, customer_id)
    assigned = exists().where(Interaction.customer_id.in_(ids), Interaction.agent_id == agent_id)
    offered = (
        exists()
        .where(Offer.interaction_id == Interaction.id)
        .where(Interaction.customer_id.in_(ids), Offer.agent_id == agent_id, Offer.state == OfferState.LIVE)
    )
    return bool(await session.scalar(select(assigned | offered)))


async def authorise_customer_access(session: AsyncSession, user: User, customer_id: uuid.UUID) -> None:
    """Supervisors and admins see every customer; an agent only those behind their work. Every
    read outside the reader's held work (a supervisor's, an agent's through an offer or earlier
    work) is audited.

    A customer hidden from an agent is reported as not found, so ids cannot be probed.
    """
    rank = STAFF_RANK.get(user.role)
    if rank is None:
        raise Forbidden("Staff only")
    if rank >= STAFF_RANK[Role.SUPERVISOR]:
        await audit_customer_read(session, user=user, agent_id=None, customer_id=customer_id, what="profile")
        return
    agent_id = await session.scalar(select(Agent.id).where(Agent.user_id == user.id))
    if agent_id is None or not await customer_visible_to_agent(
        session, customer_id=customer_id, agent_id=agent_id
    ):
        raise NotFound(f"Customer {customer_id} not found")
    await audit_customer_read(session, user=user, agent_id=agent_id, customer_id=customer_id, what="profile")

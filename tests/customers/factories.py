"""Factories for customer tests (real rows through the real services)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer, IdentityKind
from customers.service import resolve_or_create_customer
from interactions.models import ActorType, Interaction
from interactions.states import Channel
from interactions.timeline import append_event
from routing.models import Agent
from switchboard.auth.models import Role, User
from switchboard.auth.service import create_user

_counter = iter(range(1, 10**9))


def next_phone() -> str:
    # A valid UK mobile shape (phonenumbers rejects Ofcom's 07700 900xxx drama range as invalid).
    return f"07400 1{next(_counter) % 100000:05d}"


async def make_customer(session: AsyncSession, *, phone: str | None = None, **fields: Any) -> Customer:
    customer, _, _ = await resolve_or_create_customer(
        session, kind=IdentityKind.PHONE, raw_value=phone or next_phone(), default_region="GB"
    )
    for name, value in fields.items():
        setattr(customer, name, value)
    await session.flush()
    return customer


async def make_agent(session: AsyncSession, *, user: User | None = None, name: str = "Agent") -> Agent:
    if user is None:
        user = await create_user(
            session,
            username=f"agent-{uuid.uuid4().hex[:8]}",
            display_name=name,
            role=Role.AGENT,
            password="correct-horse-battery",
        )
    agent = Agent(user_id=user.id, display_name=name)
    session.add(agent)
    await session.flush()
    return agent


async def make_interaction(
    session: AsyncSession, *, customer: Customer, agent: Agent | None = None, channel: Channel = Channel.CHAT
) -> Interaction:
    interaction = Interaction(customer_id=customer.id, channel=channel, agent_id=agent.id if agent else None)
    session.add(interaction)
    await session.flush()
    append_event(
        session,
        customer_id=customer.id,
        interaction_id=interaction.id,
        kind="interaction_created",
        channel=channel.value,
        actor_type=ActorType.CUSTOMER,
    )
    await session.flush()
    return interaction

"""What the agent desktop shows: status, capacity, live offer cards and the work in hand.

Plain async functions (session first, keyword-only, no FastAPI): the page, the htmx fragments and
the websocket pushes all build their template context here, so a resync after a reconnect shows
exactly what a fresh page load would.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer
from interactions.models import Interaction, TimelineEvent
from interactions.service import customer_timeline
from interactions.states import State
from routing.models import Agent, Offer, OfferState, Queue
from switchboard.db import utcnow

HELD_STATES = (State.CONNECTED, State.WRAP_UP)
TIMELINE_LIMIT = 20

# Short, human reasons for an offer leaving the screen (the engine's reason codes as keys).
CLOSED_REASONS: dict[str, str] = {
    "expired": "Offer expired",
    "rejected": "Offer rejected",
    "abandoned": "Customer hung up",
    "agent_offline": "Offer withdrawn: you went offline",
    "transferred": "Offer withdrawn: the interaction was transferred",
    "engine_failover": "Offer withdrawn: routing restarted",
}


def closed_reason_text(reason: str | None) -> str:
    return CLOSED_REASONS.get(reason or "", "Offer withdrawn")


@dataclass(frozen=True)
class CapacityLine:
    channel: str
    in_use: int
    maximum: int


@dataclass(frozen=True)
class OfferCard:
    offer_id: uuid.UUID
    interaction_id: uuid.UUID
    channel: str
    customer_name: str
    tier: str
    segments: list[str]
    topic: str | None
    subject: str | None
    queue: str | None
    waiting_since: datetime
    expires_at: datetime


@dataclass(frozen=True)
class WorkItem:
    interaction: Interaction
    customer: Customer
    timeline: list[TimelineEvent]


@dataclass
class DesktopState:
    agent: Agent
    capacity: list[CapacityLine]
    offers: list[OfferCard] = field(default_factory=list)
    work: list[WorkItem] = field(default_factory=list)

    def context(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "capacity": self.capacity,
            "offers": self.offers,
            "work": self.work,
        }


async def agent_for_user(session: AsyncSession, *, user_id: uuid.UUID) -> Agent | None:
    return await session.scalar(
        select(Agent).where(Agent.user_id == user_id).execution_options(populate_existing=True)
    )


async def get_agent(session: AsyncSession, *, agent_id: uuid.UUID) -> Agent | None:
    # populate_existing: a long-lived socket must see presence the engine wrote since.
    return await session.get(Agent, agent_id, populate_existing=True)


async def capacity(session: AsyncSession, *, agent: Agent) -> list[CapacityLine]:
    """Interactions held per channel against the agent's per-channel ceiling."""
    rows = await session.execute(
        select(Interaction.channel, func.count())
        .where(Interaction.agent_id == agent.id, Interaction.state.in_(HELD_STATES))
        .group_by(Interaction.channel)
    )
    held = {channel.value: count for channel, count in rows.all()}
    channels = list(agent.channel_max) + [c for c in held if c not in agent.channel_max]
    return [CapacityLine(c, held.get(c, 0), agent.channel_max.get(c, 0)) for c in channels]


async def offer_card(session: AsyncSession, *, offer_id: uuid.UUID, agent_id: uuid.UUID) -> OfferCard | None:
    """The card for a live offer made to this agent; None once it is no longer live or not theirs."""
    cards = await _offer_cards(session, Offer.id == offer_id, agent_id=agent_id)
    return cards[0] if cards else None


async def live_offers(session: AsyncSession, *, agent_id: uuid.UUID) -> list[OfferCard]:
    return await _offer_cards(session, None, agent_id=agent_id)


async def _offer_cards(session: AsyncSession, extra: Any, *, agent_id: uuid.UUID) -> list[OfferCard]:
    stmt = (
        select(Offer, Interaction, Customer, Queue.display_name)
        .join(Interaction, Interaction.id == Offer.interaction_id)
        .join(Customer, Customer.id == Interaction.customer_id)
        .outerjoin(Queue, Queue.id == Interaction.queue_id)
        .where(Offer.agent_id == agent_id, Offer.state == OfferState.LIVE, Offer.expires_at > utcnow())
        .order_by(Offer.created_at)
    )
    if extra is not None:
        stmt = stmt.where(extra)
    return [
        OfferCard(
            offer_id=offer.id,
            interaction_id=it.id,
            channel=it.channel.value,
            customer_name=customer.display_name,
            tier=customer.value_tier.value,
            segments=list(customer.segments or []),
            topic=it.topic,
            subject=it.subject,
            queue=queue_name,
            waiting_since=it.virtual_start_at,
            expires_at=offer.expires_at,
        )
        for offer, it, customer, queue_name in (await session.execute(stmt)).all()
    ]


async def work_item(
    session: AsyncSession, *, interaction_id: uuid.UUID, agent_id: uuid.UUID
) -> WorkItem | None:
    """An interaction this agent holds now (connected or in wrap-up) with its customer 360."""
    interaction = await session.scalar(
        select(Interaction)
        .where(Interaction.id == interaction_id, Interaction.agent_id == agent_id)
        .where(Interaction.state.in_(HELD_STATES))
        .execution_options(populate_existing=True)
    )
    if interaction is None:
        return None
    return await _work_item(session, interaction)


async def held_tab(
    session: AsyncSession, *, interaction_id: uuid.UUID, agent_id: uuid.UUID
) -> WorkItem | None:
    """What a tab and a panel header show (the interaction and its customer's name): no 360."""
    row = (
        await session.execute(
            select(Interaction, Customer)
            .join(Customer, Customer.id == Interaction.customer_id)
            .where(Interaction.id == interaction_id, Interaction.agent_id == agent_id)
            .where(Interaction.state.in_(HELD_STATES))
            .execution_options(populate_existing=True)
        )
    ).first()
    return WorkItem(interaction=row[0], customer=row[1], timeline=[]) if row is not None else None


async def held_work(session: AsyncSession, *, agent_id: uuid.UUID) -> list[WorkItem]:
    rows = await session.scalars(
        select(Interaction)
        .where(Interaction.agent_id == agent_id, Interaction.state.in_(HELD_STATES))
        .order_by(Interaction.connected_at, Interaction.id)
        .execution_options(populate_existing=True)
    )
    return [await _work_item(session, it) for it in rows.all()]


async def _work_item(session: AsyncSession, interaction: Interaction) -> WorkItem:
    customer = await session.get(Customer, interaction.customer_id, populate_existing=True)
    assert customer is not None  # interactions.customer_id is a non-null foreign key
    timeline = await customer_timeline(session, customer_id=customer.id, limit=TIMELINE_LIMIT)
    return WorkItem(interaction=interaction, customer=customer, timeline=timeline.items)


async def load_state(session: AsyncSession, *, agent: Agent) -> DesktopState:
    """Everything the desktop shows, for the first render and for every (re)connect resync."""
    return DesktopState(
        agent=agent,
        capacity=await capacity(session, agent=agent),
        offers=await live_offers(session, agent_id=agent.id),
        work=await held_work(session, agent_id=agent.id),
    )


async def accepted_offer_for(
    session: AsyncSession, *, interaction_id: uuid.UUID, agent_id: uuid.UUID
) -> uuid.UUID | None:
    """The offer this agent accepted for the interaction (its toast must leave the screen)."""
    return await session.scalar(
        select(Offer.id)
        .where(Offer.interaction_id == interaction_id, Offer.agent_id == agent_id)
        .order_by(Offer.created_at.desc())
        .limit(1)
    )

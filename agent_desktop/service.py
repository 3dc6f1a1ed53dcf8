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

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload

from customers.models import Customer
from customers.service import merged_customer_ids
from interactions.models import Interaction, TimelineEvent
from interactions.service import customer_timeline
from interactions.states import State
from routing.models import Offer, OfferState
from switchboard.db import utcnow
from switchboard.fastsql import FastStatement
from workforce.models import Agent, Queue

HELD_STATES = (State.CONNECTED, State.WRAP_UP)
TIMELINE_LIMIT = 20
# The desktop shows no customer identities (phone numbers, addresses): a Customer it loads skips
# their selectin query, one per tab opened or changed; reading them here would raise.
NO_IDENTITIES = raiseload(Customer.identities)
CONTACTS_LIMIT = 15

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
class TransferOrigin:
    """Where a transferred offer comes from: shown on the offer, before the agent accepts."""

    warm: bool
    from_agent: str | None
    note: str | None

    @property
    def title(self) -> str:
        kind = "Warm transfer" if self.warm else "Transfer"
        return f"{kind} from {self.from_agent}" if self.from_agent else kind


async def transfer_origin(session: AsyncSession, attributes: dict[str, Any] | None) -> TransferOrigin | None:
    """The origin of an interaction that a colleague transferred (``attributes["transfer"]``)."""
    transfer = (attributes or {}).get("transfer")
    if not isinstance(transfer, dict):
        return None
    sender = None
    if transfer.get("from_agent_id"):
        try:
            sender = await session.scalar(
                select(Agent.display_name).where(Agent.id == uuid.UUID(str(transfer["from_agent_id"])))
            )
        except ValueError:
            sender = None
    return TransferOrigin(
        warm=transfer.get("mode") == "warm", from_agent=sender, note=transfer.get("note") or None
    )


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
    transfer: TransferOrigin | None = None
    # False for a card built from the engine's push, which does not say whether the work was
    # transferred: the toast then asks (GET /desktop/offers/{id}/origin).
    origin_known: bool = True


@dataclass(frozen=True)
class ContactLine:
    """One contact in the customer's history: what it was about and how it ended."""

    interaction_id: uuid.UUID
    at: datetime
    channel: str
    about: str | None
    state: str
    disposition: str | None


@dataclass(frozen=True)
class WorkItem:
    interaction: Interaction
    customer: Customer
    timeline: list[TimelineEvent]
    contacts: list[ContactLine] = field(default_factory=list)


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
    """The agent's row for the socket (status, capacity ceilings): without its skills, which the
    desktop does not show (their selectin query ran on every presence change and resync)."""
    # populate_existing: a long-lived socket must see presence the engine wrote since.
    return await session.get(Agent, agent_id, populate_existing=True, options=[raiseload(Agent.skills)])


async def capacity(session: AsyncSession, *, agent: Agent) -> list[CapacityLine]:
    """Interactions held per channel against the agent's per-channel ceiling."""
    rows = await session.execute(
        select(Interaction.channel, func.count())
        .where(Interaction.agent_id == agent.id, Interaction.state.in_(HELD_STATES))
        .group_by(Interaction.channel)
    )
    return _capacity_lines(agent.channel_max, {channel.value: count for channel, count in rows.all()})


_HELD = Interaction.state.in_(HELD_STATES)


# Built once (switchboard.fastsql): it runs two or three times per contact, and building and
# compiling it cost more CPU than running it.
_CAPACITY = FastStatement(
    select(Agent.channel_max, Interaction.channel, func.count(Interaction.id))
    .select_from(Agent)
    .outerjoin(Interaction, and_(Interaction.agent_id == Agent.id, Interaction.state.in_(HELD_STATES)))
    .where(Agent.id == bindparam("agent_id"))
    .group_by(Agent.id, Interaction.channel)  # channel_max depends on the key
)


async def capacity_for(session: AsyncSession, *, agent_id: uuid.UUID) -> list[CapacityLine] | None:
    """``capacity`` in one statement from the agent's id (the socket after each change of work, and
    the complete route): no ``Agent`` entity, whose skills load with it. None without a profile."""
    rows = await _CAPACITY.rows(session, {"agent_id": agent_id})
    if not rows:
        return None
    held = {channel.value: count for _, channel, count in rows if channel is not None}
    return _capacity_lines(rows[0][0] or {}, held)


def _capacity_lines(channel_max: dict[str, int], held: dict[str, int]) -> list[CapacityLine]:
    channels = list(channel_max) + [c for c in held if c not in channel_max]
    return [CapacityLine(c, held.get(c, 0), channel_max.get(c, 0)) for c in channels]


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
    cards = []
    for offer, it, customer, queue_name in (await session.execute(stmt)).all():
        cards.append(
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
                transfer=await transfer_origin(session, it.attributes),
            )
        )
    return cards


async def offer_origin(
    session: AsyncSession, *, offer_id: uuid.UUID, agent_id: uuid.UUID
) -> tuple[bool, TransferOrigin | None]:
    """(the offer is this agent's, where its work was transferred from, if it was)."""
    attributes = await session.scalar(
        select(Interaction.attributes)
        .join(Offer, Offer.interaction_id == Interaction.id)
        .where(Offer.id == offer_id, Offer.agent_id == agent_id)
    )
    if attributes is None:
        found = await session.scalar(select(Offer.id).where(Offer.id == offer_id, Offer.agent_id == agent_id))
        return found is not None, None
    return True, await transfer_origin(session, attributes)


async def work_item(
    session: AsyncSession, *, interaction_id: uuid.UUID, agent_id: uuid.UUID
) -> WorkItem | None:
    """An interaction this agent holds now (connected or in wrap-up) with its customer 360."""
    row = await _held_with_customer(session, interaction_id=interaction_id, agent_id=agent_id)
    return await _work_item(session, *row) if row is not None else None


async def held_tab(
    session: AsyncSession, *, interaction_id: uuid.UUID, agent_id: uuid.UUID
) -> WorkItem | None:
    """What a tab and a panel header show (the interaction and its customer's name): no 360."""
    row = await _held_with_customer(session, interaction_id=interaction_id, agent_id=agent_id)
    return WorkItem(interaction=row[0], customer=row[1], timeline=[]) if row is not None else None


async def _held_with_customer(
    session: AsyncSession, *, interaction_id: uuid.UUID, agent_id: uuid.UUID
) -> tuple[Interaction, Customer] | None:
    """The held interaction and its customer in one statement (fresh: re-read if already loaded)."""
    row = (
        await session.execute(
            select(Interaction, Customer)
            .join(Customer, Customer.id == Interaction.customer_id)
            .where(Interaction.id == interaction_id, Interaction.agent_id == agent_id)
            .where(Interaction.state.in_(HELD_STATES))
            .options(NO_IDENTITIES)
            .execution_options(populate_existing=True)
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


async def held_work(session: AsyncSession, *, agent_id: uuid.UUID) -> list[WorkItem]:
    rows = await session.scalars(
        select(Interaction)
        .where(Interaction.agent_id == agent_id, Interaction.state.in_(HELD_STATES))
        .order_by(Interaction.connected_at, Interaction.id)
        .execution_options(populate_existing=True)
    )
    return [await _work_item(session, it) for it in rows.all()]


async def _work_item(
    session: AsyncSession, interaction: Interaction, customer: Customer | None = None
) -> WorkItem:
    if customer is None:
        customer = await session.get(
            Customer, interaction.customer_id, populate_existing=True, options=[NO_IDENTITIES]
        )
    assert customer is not None  # interactions.customer_id is a non-null foreign key
    timeline = await customer_timeline(session, customer_id=customer.id, limit=TIMELINE_LIMIT)
    contacts = await contact_history(session, customer_id=customer.id)
    return WorkItem(interaction=interaction, customer=customer, timeline=timeline.items, contacts=contacts)


async def contact_history(session: AsyncSession, *, customer_id: uuid.UUID) -> list[ContactLine]:
    """The customer's latest contacts on every channel (merged profiles too), newest first, one line
    each: read from the interactions, as the timeline's events would give one line per event."""
    ids = await merged_customer_ids(session, customer_id)
    rows = await session.execute(
        select(
            Interaction.id,
            Interaction.created_at,
            Interaction.channel,
            Interaction.subject,
            Interaction.topic,
            Interaction.state,
            Interaction.disposition,
        )
        .where(Interaction.customer_id.in_(ids))
        .order_by(Interaction.created_at.desc(), Interaction.id)
        .limit(CONTACTS_LIMIT)
    )
    return [
        ContactLine(iid, at, channel.value, subject or topic, state.value, disposition)
        for iid, at, channel, subject, topic, state, disposition in rows.all()
    ]


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

"""Who may see which interactions and customers (DESIGN §6).

- supervisors and admins see everything;
- an agent sees interactions offered or assigned to them, now or before (the interaction's
  agent_id, or any of its timeline events naming them under ``data.agent_id``), and the customers
  behind those interactions;
- a customer-role user sees only their own customer's interactions (merged profiles included).

Anything out of sight is reported as 404, never 403, so existence does not leak.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer
from customers.service import merged_customer_ids
from interactions.models import ActorType, Interaction, TimelineEvent
from interactions.service import Actor, get_interaction
from interactions.states import AGENT_KEY, TERMINAL_STATES
from switchboard.audit import record_customer_read
from switchboard.auth.models import Role, User
from switchboard.errors import NotFound
from workforce.models import Agent

# Internal working notes are for staff only.
HIDDEN_FROM_CUSTOMERS = ("note",)


@dataclass(frozen=True)
class Viewer:
    user: User
    sees_all: bool
    agent_id: uuid.UUID | None = None
    customer_ids: tuple[uuid.UUID, ...] = ()

    @property
    def is_customer(self) -> bool:
        return self.user.role is Role.CUSTOMER

    @property
    def actor(self) -> Actor:
        kind = {
            Role.CUSTOMER: ActorType.CUSTOMER,
            Role.AGENT: ActorType.AGENT,
        }.get(self.user.role, ActorType.SUPERVISOR)
        return Actor(kind, str(self.user.id))

    @property
    def hidden_kinds(self) -> tuple[str, ...]:
        return HIDDEN_FROM_CUSTOMERS if self.is_customer else ()


async def viewer_for(session: AsyncSession, user: User) -> Viewer:
    if user.role in (Role.SUPERVISOR, Role.ADMIN):
        return Viewer(user=user, sees_all=True)
    if user.role is Role.AGENT:
        agent_id = await session.scalar(select(Agent.id).where(Agent.user_id == user.id))
        return Viewer(user=user, sees_all=False, agent_id=agent_id)
    customer_ids: tuple[uuid.UUID, ...] = ()
    if user.customer_id is not None:
        survivor = await _surviving_customer(session, user.customer_id)
        customer_ids = tuple(await merged_customer_ids(session, survivor))
    return Viewer(user=user, sees_all=False, customer_ids=customer_ids)


def interaction_scope(viewer: Viewer) -> ColumnElement[bool] | None:
    """A WHERE clause limiting Interaction rows to the viewer's; None means no limit."""
    if viewer.sees_all:
        return None
    if viewer.agent_id is not None:
        involved = exists().where(
            TimelineEvent.interaction_id == Interaction.id,
            TimelineEvent.data[AGENT_KEY].as_string() == str(viewer.agent_id),
        )
        return or_(Interaction.agent_id == viewer.agent_id, involved)
    if viewer.customer_ids:
        return Interaction.customer_id.in_(viewer.customer_ids)
    return false()


async def visible_interaction(
    session: AsyncSession, viewer: Viewer, interaction_id: uuid.UUID
) -> Interaction:
    """The interaction, or NotFound when it does not exist or is out of the viewer's sight."""
    interaction = await get_interaction(session, interaction_id)
    scope = interaction_scope(viewer)
    if scope is not None:
        seen = await session.scalar(select(Interaction.id).where(Interaction.id == interaction_id, scope))
        if seen is None:
            raise NotFound(f"No interaction {interaction_id}", field="interaction_id")
    return interaction


async def read_visible_interaction(
    session: AsyncSession, viewer: Viewer, interaction_id: uuid.UUID, *, what: str
) -> Interaction:
    """``visible_interaction`` for a read of its content (its customer, messages, timeline), which
    is a read of the customer: audited when outside the reader's held work."""
    interaction = await visible_interaction(session, viewer, interaction_id)
    await audit_customer_read(
        session, user=viewer.user, agent_id=viewer.agent_id, customer_id=interaction.customer_id, what=what
    )
    return interaction


async def held_by_agent(session: AsyncSession, *, agent_id: uuid.UUID, customer_ids: list[uuid.UUID]) -> bool:
    """Does the agent hold work for this customer now (assigned, not finished)? Reads inside held
    work are the job; any other read of a customer is audited."""
    held = await session.scalar(
        select(Interaction.id)
        .where(
            Interaction.customer_id.in_(customer_ids),
            Interaction.agent_id == agent_id,
            Interaction.state.not_in(TERMINAL_STATES),
        )
        .limit(1)
    )
    return held is not None


async def outbound_reason(
    session: AsyncSession, *, agent_id: uuid.UUID, customer: Customer, follow_up_of_id: uuid.UUID | None
) -> str | None:
    """Why this agent may contact this customer, or None: ``held`` (an unfinished interaction with
    the customer assigned to them, an accepted callback included), ``follow_up`` (of an earlier
    interaction of this customer that they handled), ``relationship_manager``."""
    ids = await merged_customer_ids(session, customer.id)
    if await held_by_agent(session, agent_id=agent_id, customer_ids=ids):
        return "held"
    if follow_up_of_id is not None:
        earlier = await session.get(Interaction, follow_up_of_id)
        if earlier is not None and earlier.customer_id in ids and earlier.agent_id == agent_id:
            return "follow_up"
    if customer.relationship_manager_id == agent_id:
        return "relationship_manager"
    return None


async def audit_customer_read(
    session: AsyncSession, *, user: User, agent_id: uuid.UUID | None, customer_id: uuid.UUID, what: str
) -> None:
    """Record the read unless it is within the reader's held work (staff only; a customer reading
    their own profile is not audited)."""
    if user.role is Role.CUSTOMER:
        return
    if agent_id is not None:
        ids = await merged_customer_ids(session, customer_id)
        if await held_by_agent(session, agent_id=agent_id, customer_ids=ids):
            return
    basis = "supervisor" if user.role in (Role.SUPERVISOR, Role.ADMIN) else "offer or earlier work"
    await record_customer_read(session, user_id=user.id, customer_id=customer_id, basis=basis, what=what)


async def ensure_customer_visible(
    session: AsyncSession, viewer: Viewer, customer_id: uuid.UUID, *, what: str = "timeline"
) -> None:
    """NotFound unless the customer exists and the viewer may see them; a staff read outside the
    viewer's held work is audited."""
    if await session.get(Customer, customer_id) is None:
        raise NotFound(f"No customer {customer_id}", field="customer_id")
    if viewer.sees_all:
        await audit_customer_read(
            session, user=viewer.user, agent_id=None, customer_id=customer_id, what=what
        )
        return
    ids = await merged_customer_ids(session, customer_id)
    scope = interaction_scope(viewer)
    if viewer.is_customer:
        allowed = customer_id in viewer.customer_ids
    else:
        assert scope is not None
        found = await session.scalar(
            select(Interaction.id).where(Interaction.customer_id.in_(ids), scope).limit(1)
        )
        allowed = found is not None
    if not allowed:
        raise NotFound(f"No customer {customer_id}", field="customer_id")
    await audit_customer_read(
        session, user=viewer.user, agent_id=viewer.agent_id, customer_id=customer_id, what=what
    )


async def _surviving_customer(session: AsyncSession, customer_id: uuid.UUID) -> uuid.UUID:
    current = customer_id
    for _ in range(32):  # merges form a short chain; the bound guards against a corrupt cycle
        merged_into = await session.scalar(select(Customer.merged_into_id).where(Customer.id == current))
        if merged_into is None:
            return current
        current = merged_into
    return current

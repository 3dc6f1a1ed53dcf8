"""The SQL safety net under the routing engine (DESIGN §3).

Every engine decision is written here as a compare-and-set inside one transaction:
* the partition epoch fences stale engines (a lapsed lease holder cannot commit),
* the interaction moves state by CAS on (version, state) through ``interactions.service.transition``,
* the partial unique index allows one live offer per interaction,
* the agent's load is checked in the same transaction.
So even two engines during a hand-over cannot double-assign. Functions take a session and do not
commit; the caller (the engine host) commits or rolls back the whole decision.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from interactions import service as interactions_service
from interactions.models import ActorType, Interaction
from interactions.states import State
from interactions.timeline import append_event
from routing.capacity import DEFAULT_CHANNEL_COST, fits
from routing.models import Agent, Offer, OfferState, RoutingPartition
from switchboard.errors import Conflict, NotFound

# States in which an interaction occupies its agent's capacity (released only after wrap-up).
OCCUPYING_STATES = (State.OFFERED, State.CONNECTED, State.WRAP_UP)


class StaleEngine(Conflict):
    """A newer engine holds the partition: this one must stop writing and stand by."""


async def fence(session: AsyncSession, *, partition: str, epoch: int) -> None:
    """Raise StaleEngine unless ``epoch`` is the newest this partition has seen (and record it).

    The UPDATE also takes the partition row lock on PostgreSQL, serialising engine writes.
    """
    result = await session.execute(
        update(RoutingPartition)
        .where(RoutingPartition.name == partition, RoutingPartition.epoch <= epoch)
        .values(epoch=epoch)
    )
    if result.rowcount == 1:
        return
    if await session.get(RoutingPartition, partition) is None:
        try:
            async with session.begin_nested():
                session.add(RoutingPartition(name=partition, epoch=epoch))
            return
        except IntegrityError:
            pass  # another engine created it first; fall through to the re-check
        return await fence(session, partition=partition, epoch=epoch)
    raise StaleEngine(f"engine epoch {epoch} is stale for partition {partition!r}")


async def agent_load(session: AsyncSession, agent_id: uuid.UUID) -> Counter[str]:
    rows = await session.execute(
        select(Interaction.channel, func.count())
        .where(Interaction.agent_id == agent_id, Interaction.state.in_(OCCUPYING_STATES))
        .group_by(Interaction.channel)
    )
    return Counter({channel.value: count for channel, count in rows.all()})


async def declined_agent_ids(session: AsyncSession, interaction_id: uuid.UUID) -> set[uuid.UUID]:
    """Agents who rejected or missed this interaction: it is never offered to them again."""
    rows = await session.scalars(
        select(Offer.agent_id).where(
            Offer.interaction_id == interaction_id, Offer.state.in_((OfferState.REJECTED, OfferState.EXPIRED))
        )
    )
    return set(rows)


async def create_offer(
    session: AsyncSession,
    *,
    partition: str,
    epoch: int,
    interaction_id: uuid.UUID,
    agent_id: uuid.UUID,
    now: datetime,
    ttl: timedelta,
    costs: dict[str, int] = DEFAULT_CHANNEL_COST,
    fenced: bool = False,
) -> Offer:
    """Offer the interaction to the agent (fenced, capacity and decliners re-checked in SQL).

    ``fenced=True``: the caller already ran ``fence`` in this transaction (the engine host fences
    once per decision batch); the row lock it took is held until commit, so once is enough.
    """
    if not fenced:
        await fence(session, partition=partition, epoch=epoch)
    interaction = await session.get(Interaction, interaction_id, populate_existing=True)
    if interaction is None:
        raise NotFound("No such interaction", field="interaction_id")
    # Only the capacity columns: loading the Agent entity also loads its skills (selectin).
    agent = (
        await session.execute(select(Agent.capacity_units, Agent.channel_max).where(Agent.id == agent_id))
    ).first()
    if agent is None:
        raise NotFound("No such agent", field="agent_id")
    if agent_id in await declined_agent_ids(session, interaction_id):
        raise Conflict("This agent already declined or missed the interaction", field="agent_id")
    load = await agent_load(session, agent_id)
    if not fits(
        channel=interaction.channel.value,
        load_by_channel=load,
        capacity_units=agent.capacity_units,
        channel_max=agent.channel_max,
        costs=costs,
    ):
        raise Conflict("The agent has no capacity for this channel", field="agent_id")
    offer = Offer(
        interaction_id=interaction_id,
        agent_id=agent_id,
        state=OfferState.LIVE,
        created_at=now,
        expires_at=now + ttl,
        engine_epoch=epoch,
    )
    session.add(offer)
    try:
        # No SAVEPOINT: a Conflict always rolls the caller's whole decision back.
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("The interaction already has a live offer", field="interaction_id") from exc
    await interactions_service.transition(
        session,
        interaction_id=interaction_id,
        to_state=State.OFFERED,
        actor_type=ActorType.SYSTEM,
        actor_id="routing",
        reason="offered",
        expected_version=interaction.version,
        changes={"agent_id": agent_id},
        now=now,
    )
    append_event(
        session,
        customer_id=interaction.customer_id,
        interaction_id=interaction_id,
        kind="offer_created",
        channel=interaction.channel.value,
        actor_type=ActorType.SYSTEM,
        actor_id="routing",
        data={
            "offer_id": str(offer.id),
            "agent_id": str(agent_id),
            "expires_at": offer.expires_at.isoformat(),
        },
        at=now,
    )
    return offer


async def _live_offer(session: AsyncSession, offer_id: uuid.UUID) -> Offer:
    offer = await session.get(Offer, offer_id, populate_existing=True, with_for_update=True)
    if offer is None:
        raise NotFound("No such offer", field="offer_id")
    if offer.state is not OfferState.LIVE:
        raise Conflict(
            f"The offer is already {offer.state.value}", field="offer_id", offer_state=offer.state.value
        )
    return offer


async def accept_offer(
    session: AsyncSession,
    *,
    partition: str,
    epoch: int,
    offer_id: uuid.UUID,
    agent_id: uuid.UUID,
    now: datetime,
) -> Offer:
    """Offer live, the agent's own and unexpired → accepted, interaction offered → connected."""
    await fence(session, partition=partition, epoch=epoch)
    offer = await _live_offer(session, offer_id)
    if offer.agent_id != agent_id:
        raise Conflict("This offer belongs to another agent", field="offer_id")
    if offer.expires_at <= now:
        raise Conflict("The offer has expired", field="offer_id", offer_state="expired")
    offer.state, offer.decided_at, offer.reason = OfferState.ACCEPTED, now, "accepted"
    await session.flush()
    await interactions_service.transition(
        session,
        interaction_id=offer.interaction_id,
        to_state=State.CONNECTED,
        actor_type=ActorType.AGENT,
        actor_id=str(agent_id),
        reason="offer accepted",
        now=now,
    )
    return offer


async def close_offer(
    session: AsyncSession,
    *,
    partition: str,
    epoch: int,
    offer_id: uuid.UUID,
    outcome: OfferState,
    now: datetime,
    reason: str,
    requeue: bool = True,
) -> Offer:
    """Reject, expire (missed) or rescind a live offer; the interaction returns to its queue.

    The interaction keeps its virtual start time, so it keeps its place in line. With
    ``requeue=False`` (the customer hung up) the caller moves the interaction on itself.
    """
    if outcome not in (OfferState.REJECTED, OfferState.EXPIRED, OfferState.RESCINDED):
        raise ValueError(f"not a closing outcome: {outcome}")
    await fence(session, partition=partition, epoch=epoch)
    offer = await _live_offer(session, offer_id)
    offer.state, offer.decided_at, offer.reason = outcome, now, reason
    await session.flush()
    if requeue:
        await interactions_service.transition(
            session,
            interaction_id=offer.interaction_id,
            to_state=State.QUEUED,
            actor_type=ActorType.SYSTEM,
            actor_id="routing",
            reason=f"offer {outcome.value}: {reason}",
            changes={"agent_id": None},
            now=now,
        )
    return offer

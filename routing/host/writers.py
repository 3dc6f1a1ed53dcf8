"""The engine's decisions, one writer per event type (``WRITERS``), for ``routing.host.persist``.

A writer gets the leader, the decision's session (fenced, not committed), its event and the time
the engine decided; it writes what the event changes and returns the messages to publish once the
transaction commits. The lean writers (``LEAN_EVENTS``) write with SQLAlchemy Core and collect their
timeline rows and interval counters in ``session.info`` for ``persist.finish`` to write at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from customers.timeline import append_event, event_row, insert_events
from interactions import service as interactions_service
from interactions.models import ActorType, Interaction
from interactions.states import State
from routing import store
from routing.engine.events import (
    Abandoned,
    AgentStatusChanged,
    Assigned,
    Completed,
    Diverted,
    Escalated,
    Event,
    OfferCreated,
    OfferExpired,
    OfferRejected,
    OfferRescinded,
    Queued,
    Requeued,
    Transferred,
    WrapUpStarted,
)
from routing.engine.hosted import ConsultEnded
from routing.host.floor import dt
from routing.models import OfferState
from routing.transfer import end_consult_in_sql
from switchboard import desktop_messages as messages
from switchboard.fastsql import FastStatement
from workforce.models import Agent, Presence, Queue
from workforce.presence_log import record_presence

if TYPE_CHECKING:
    from routing.host.leader import Leader

Message = tuple[str, dict[str, Any]]
Writer = Callable[["Leader", AsyncSession, Any, datetime], Awaitable[list[Message]]]


# Events whose writes are SQLAlchemy Core collecting their timeline rows (see persist.write_events); their
# writers flush the rows collected so far themselves before any ORM write (``flush_rows``).
LEAN_EVENTS = (OfferCreated, Queued, Escalated, Requeued, Assigned, WrapUpStarted, Completed)
EVENT_ROWS_KEY = "sb_routing_event_rows"
BUMPS_KEY = "sb_routing_bumps"

WRITERS: dict[type[Event], Writer] = {}


def writes(*kinds: type[Event]) -> Callable[[Writer], Writer]:
    def register(writer: Writer) -> Writer:
        for kind in kinds:
            WRITERS[kind] = writer
        return writer

    return register


# ---------------------------------------------------------------------- offers


@writes(OfferCreated)
async def _offer_created(
    leader: Leader, session: AsyncSession, event: OfferCreated, now: datetime
) -> list[Message]:
    # SQL expiry is the engine's, to the microsecond: both judge "expired" alike.
    offer = await store.create_offer(
        session,
        partition=leader.host.partition,
        epoch=leader.lease.epoch,
        interaction_id=uuid.UUID(event.interaction_id),
        agent_id=uuid.UUID(event.agent_id),
        now=now,
        ttl=dt(event.expires_at) - now,
        fenced=True,  # write_events fenced this transaction
        events=session.info[EVENT_ROWS_KEY],  # one INSERT with the decision's other events
    )
    leader.floor.remember_offer(event.offer_id, offer.id)
    leader.count(session, offer, now, offered=1)
    return [leader.offer_message(event, offer)]


@writes(Assigned)
async def _assigned(leader: Leader, session: AsyncSession, event: Assigned, now: datetime) -> list[Message]:
    sql_id = leader.floor.forget_offer(event.offer_id)
    if sql_id is None:
        raise KeyError(event.offer_id)  # an engine offer never written: a bug, not a conflict
    agent_id = uuid.UUID(event.agent_id)
    received_at = dt(event.received_at) if event.received_at is not None else None
    accepted: Any = await store.accept_live_offer(
        session,
        offer_id=sql_id,
        agent_id=agent_id,
        now=now,
        received_at=received_at,
        events=session.info[EVENT_ROWS_KEY],
    )
    if accepted is None:  # not accepted as it stood: the portable path says why (or finds it done)
        await flush_rows(session)
        await store.accept_offer(
            session,
            partition=leader.host.partition,
            epoch=leader.lease.epoch,
            offer_id=sql_id,
            agent_id=agent_id,
            now=now,
            received_at=received_at,
        )
        accepted = await session.get(Interaction, uuid.UUID(event.interaction_id))
    wait, in_sl = leader.floor.within_sl(accepted, now)
    leader.count(session, accepted, now, accepted=1, answered_within_sl=int(in_sl), answer_wait_seconds=wait)
    return [messages.Assigned(interaction_id=event.interaction_id).to(event.agent_id)]


async def flush_rows(session: AsyncSession) -> None:
    """Write the timeline rows collected so far: an ORM write next appends its own events."""
    rows = session.info[EVENT_ROWS_KEY]
    if rows:
        await insert_events(session, rows)
        rows.clear()


_CLOSED = {
    OfferRejected: OfferState.REJECTED,
    OfferExpired: OfferState.EXPIRED,
    OfferRescinded: OfferState.RESCINDED,
}


@writes(OfferRejected, OfferExpired, OfferRescinded)
async def _offer_closed(
    leader: Leader, session: AsyncSession, event: OfferRejected | OfferExpired | OfferRescinded, now: datetime
) -> list[Message]:
    sql_id = leader.floor.forget_offer(event.offer_id)
    if sql_id is None:
        return []
    outcome = _CLOSED[type(event)]
    reason = getattr(event, "reason", outcome.value)
    # Abandoned work is ended by the Abandoned event; transferred work is re-placed by the engine.
    await store.close_offer(
        session,
        partition=leader.host.partition,
        epoch=leader.lease.epoch,
        offer_id=sql_id,
        outcome=outcome,
        now=now,
        reason=reason,
        requeue=reason != "abandoned",
    )
    if outcome is not OfferState.RESCINDED:
        counter = "rejected" if outcome is OfferState.REJECTED else "missed"
        closed = await session.get(Interaction, uuid.UUID(event.interaction_id))
        leader.count(session, closed, now, **{counter: 1})
    return [messages.OfferClosed(offer_id=str(sql_id), reason=reason).to(event.agent_id)]


# ---------------------------------------------------------------------- placement in queues


def _place_statement() -> Any:
    """Where the engine placed waiting work (queue, priority, routing version), built once."""
    it = Interaction.__table__.c
    return (
        update(cast(Table, Interaction.__table__))
        .where(it.id == bindparam("interaction_id"))
        .values(
            queue_id=bindparam("queue_id"),
            priority=func.coalesce(bindparam("priority", type_=it.priority.type), it.priority),
            rule_set_version=func.coalesce(
                bindparam("rule_set_version", type_=it.rule_set_version.type), it.rule_set_version
            ),
        )
        .returning(it.customer_id, it.channel)
    )


_PLACE = FastStatement(_place_statement())


@writes(Queued, Escalated, Requeued)
async def _placed(
    leader: Leader, session: AsyncSession, event: Queued | Escalated | Requeued, now: datetime
) -> list[Message]:
    queue_name = event.queue if isinstance(event, Queued | Requeued) else event.to_queue
    queue_id = leader.floor.queue_id_by_name(queue_name)
    if queue_id is None:  # a queue the host has not seen yet
        queue_id = await session.scalar(select(Queue.id).where(Queue.name == queue_name))
    values = {"interaction_id": uuid.UUID(event.interaction_id), **leader.placement(event, queue_id)}
    placed = await _PLACE.first(session, values)
    if placed is not None and not isinstance(event, Requeued):
        session.info[EVENT_ROWS_KEY].append(
            event_row(
                customer_id=placed.customer_id,
                interaction_id=uuid.UUID(event.interaction_id),
                kind="routed" if isinstance(event, Queued) else "escalated",
                channel=placed.channel.value,
                actor_type=ActorType.SYSTEM,
                actor_id="routing",
                data={k: v for k, v in event_dict(event).items() if k != "interaction_id"},
                at=now,
            )
        )
    return []


@writes(Diverted)
async def _diverted(leader: Leader, session: AsyncSession, event: Diverted, now: datetime) -> list[Message]:
    leader.floor.divert(event.interaction_id)
    interaction = await session.get(Interaction, uuid.UUID(event.interaction_id))
    if interaction is None:  # deleted meanwhile: nothing to divert
        return []
    interaction.attributes = {**(interaction.attributes or {}), "routing_diverted": event.action}
    append_event(
        session,
        customer_id=interaction.customer_id,
        interaction_id=interaction.id,
        kind="diverted",
        channel=interaction.channel.value,
        actor_type=ActorType.SYSTEM,
        actor_id="routing",
        data={"action": event.action},
        at=now,
    )
    return []


# ---------------------------------------------------------------------- agents and held work


@writes(AgentStatusChanged)
async def _presence(
    leader: Leader, session: AsyncSession, event: AgentStatusChanged, now: datetime
) -> list[Message]:
    await session.execute(
        update(Agent)
        .where(Agent.id == uuid.UUID(event.agent_id))
        .values(presence=Presence(event.presence), presence_reason=event.reason, presence_since=now)
    )
    agent_id = uuid.UUID(event.agent_id)
    await record_presence(
        session, agent_id=agent_id, presence=event.presence, reason=event.reason, at=now, by="engine"
    )
    presence = messages.Presence(agent_id=event.agent_id, presence=event.presence, reason=event.reason)
    return [presence.to(event.agent_id)]


_TARGET = {WrapUpStarted: State.WRAP_UP, Completed: State.COMPLETED, Abandoned: State.ABANDONED}
# What the holder's desktops are told (abandoned work has no holder left to tell).
_TOLD: dict[type[Event], type[messages.WrapUpStarted | messages.Completed]] = {
    WrapUpStarted: messages.WrapUpStarted,
    Completed: messages.Completed,
}
# The lean moves (``store.move_held``): from the one state each may come from.
_FROM = {WrapUpStarted: State.CONNECTED, Completed: State.WRAP_UP}


@writes(WrapUpStarted, Completed, Abandoned)
async def _work_state(
    leader: Leader, session: AsyncSession, event: WrapUpStarted | Completed | Abandoned, now: datetime
) -> list[Message]:
    target = _TARGET[type(event)]
    agent = getattr(event, "agent_id", None)
    told = _TOLD.get(type(event))
    published = [told(interaction_id=event.interaction_id).to(agent)] if agent and told else []
    interaction_id = uuid.UUID(event.interaction_id)
    from_state = _FROM.get(type(event))
    if from_state is not None:
        moved = await store.move_held(
            session,
            interaction_id=interaction_id,
            from_state=from_state,
            to_state=target,
            reason=event.kind,
            now=now,
            events=session.info[EVENT_ROWS_KEY],
        )
        if moved is not None:
            if isinstance(event, Completed):
                handled = (now - (moved.connected_at or now)).total_seconds()
                leader.count(session, moved, now, completed=1, handle_seconds=max(0.0, handled))
            return published
    # Not in the state the lean move expects (already moved, or moved elsewhere): re-read it.
    await flush_rows(session)
    current = await session.get(Interaction, interaction_id, populate_existing=True)
    if isinstance(event, Completed) and current is not None:
        handled = (now - (current.connected_at or now)).total_seconds()
        leader.count(session, current, now, completed=1, handle_seconds=max(0.0, handled))
    elif isinstance(event, Abandoned) and current is not None:
        _, in_sl = leader.floor.within_sl(current, now)
        leader.count(session, current, now, abandoned=1, abandoned_within_sl=int(in_sl))
    if current is not None and current.state is not target:
        await interactions_service.transition(
            session,
            interaction_id=current.id,
            to_state=target,
            actor_type=ActorType.SYSTEM,
            actor_id="routing",
            reason=event.kind,
            now=now,
        )
    return published


@writes(ConsultEnded)
async def _consult_ended(
    leader: Leader, session: AsyncSession, event: ConsultEnded, now: datetime
) -> list[Message]:
    return await end_consult_in_sql(
        session,
        parent_id=uuid.UUID(event.parent_id),
        child_id=uuid.UUID(event.child_id),
        from_agent_id=uuid.UUID(event.from_agent),
        outcome=event.outcome,
        to_agent_id=uuid.UUID(event.to_agent) if event.to_agent else None,
        now=now,
    )


@writes(Transferred)
async def _transferred(
    leader: Leader, session: AsyncSession, event: Transferred, now: datetime
) -> list[Message]:
    leader.count(session, await session.get(Interaction, uuid.UUID(event.interaction_id)), now, transferred=1)
    return []


def event_dict(event: Event) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__dataclass_fields__}

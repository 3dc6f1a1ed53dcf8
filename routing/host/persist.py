"""Writing the engine's decisions to SQL: one writer per event type, in one fenced transaction.

``write_events`` fences the transaction with the leader's epoch, runs each event's writer (the
``WRITERS`` registry), adds the webhook outbox rows and the timeline and interval counters the
lean writers collected, and commits. Each writer returns the messages to publish once committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from interactions import service as interactions_service
from interactions.models import ActorType, Interaction
from interactions.states import State
from interactions.timeline import append_event, event_row, insert_events
from routing import history, store
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
from routing.models import Agent, OfferState, Presence, Queue
from routing.transfer import end_consult_in_sql
from routing.webhooks import enqueue_webhook_deliveries, event_payload
from switchboard import events as bus
from switchboard.fastsql import FastStatement

if TYPE_CHECKING:
    from routing.host.leader import Leader

Message = tuple[str, dict[str, Any]]
Writer = Callable[["Leader", AsyncSession, Any, datetime], Awaitable[list[Message]]]

# Events whose writes are SQLAlchemy Core collecting their timeline rows (see write_events).
LEAN_EVENTS = (OfferCreated, Queued, Escalated, Requeued)
EVENT_ROWS_KEY = "sb_routing_event_rows"
BUMPS_KEY = "sb_routing_bumps"

WRITERS: dict[type[Event], Writer] = {}


def writes(*kinds: type[Event]) -> Callable[[Writer], Writer]:
    def register(writer: Writer) -> Writer:
        for kind in kinds:
            WRITERS[kind] = writer
        return writer

    return register


async def write_events(
    leader: Leader, session: AsyncSession, events: list[Event], *, fenced: bool = False
) -> list[Message]:
    """Fence (unless the caller did), write every event, commit; returns what to publish.
    Raises what SQL raises."""
    published: list[Message] = []
    # Timeline rows and interval counters of the lean writes, written once before commit.
    rows: list[dict[str, Any]] = []
    session.info[EVENT_ROWS_KEY], session.info[BUMPS_KEY] = rows, {}
    floor = leader.floor
    if not fenced:
        await store.fence(session, partition=leader.host.partition, epoch=leader.lease.epoch)
    for event in events:
        engine_offer = getattr(event, "offer_id", None)
        sql_offer = floor.sql_offer.get(engine_offer) if engine_offer else None  # the writer may forget it
        if not isinstance(event, LEAN_EVENTS) and rows:
            # ORM writes append their own events: keep the timeline in decision order.
            await insert_events(session, rows)
            rows.clear()
        writer = WRITERS.get(type(event))
        if writer is not None:
            published += await writer(leader, session, event, dt(leader.engine_now()))
        payload = event_payload(event, occurred_at=dt(leader.engine_now()))
        if engine_offer is not None:
            # Receivers get the durable offer id (the engine's counter restarts with each leader).
            payload["offer_id"] = str(sql_offer or floor.sql_offer.get(engine_offer) or "") or None
        # Outbox: the webhook deliveries commit (or roll back) with the decision itself.
        await enqueue_webhook_deliveries(session, event_type=event.kind, payload=payload)
    await insert_events(session, rows)
    await history.bump_many(session, session.info[BUMPS_KEY])
    await session.commit()
    return published


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
    await store.accept_offer(
        session,
        partition=leader.host.partition,
        epoch=leader.lease.epoch,
        offer_id=sql_id,
        agent_id=uuid.UUID(event.agent_id),
        now=now,
        received_at=dt(event.received_at) if event.received_at is not None else None,
    )
    accepted = await session.get(Interaction, uuid.UUID(event.interaction_id))
    wait, in_sl = leader.floor.within_sl(accepted, now)
    leader.count(session, accepted, now, accepted=1, answered_within_sl=int(in_sl), answer_wait_seconds=wait)
    return [(bus.agent_topic(event.agent_id), {"type": "assigned", "interaction_id": event.interaction_id})]


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
    return [
        (bus.agent_topic(event.agent_id), {"type": "offer_closed", "offer_id": str(sql_id), "reason": reason})
    ]


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
    leader.floor.diverted.add(event.interaction_id)
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
    return [(bus.agent_topic(event.agent_id), {"type": "presence", **event_dict(event)})]


_TARGET = {WrapUpStarted: State.WRAP_UP, Completed: State.COMPLETED, Abandoned: State.ABANDONED}


@writes(WrapUpStarted, Completed, Abandoned)
async def _work_state(
    leader: Leader, session: AsyncSession, event: WrapUpStarted | Completed | Abandoned, now: datetime
) -> list[Message]:
    target = _TARGET[type(event)]
    current = await session.get(Interaction, uuid.UUID(event.interaction_id), populate_existing=True)
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
    agent = getattr(event, "agent_id", None)
    return (
        [(bus.agent_topic(agent), {"type": event.kind, "interaction_id": event.interaction_id})]
        if agent
        else []
    )


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


# ---------------------------------------------------------------------- session helpers


def hold_loaded(session: AsyncSession) -> None:
    """Keep every row this session loads alive until the session ends.

    The identity map holds clean rows only weakly: a row read early in a decision (the
    interaction, its customer, the queues) was collected before the next step asked for it again,
    and each ``session.get`` became another SELECT (measured: 7 extra per offer).
    """
    session.info["held"] = []


def _hold(session: Session, instance: object) -> None:
    held = session.info.get("held")
    if held is not None:
        held.append(instance)


def keep_loaded_rows(session_class: type[Session]) -> None:
    """Make ``hold_loaded`` work on sessions of ``session_class`` (the host's ``Database``'s): the
    hook is registered on that class only, never on SQLAlchemy's global ``Session``."""
    if not sa_event.contains(session_class, "loaded_as_persistent", _hold):
        sa_event.listen(session_class, "loaded_as_persistent", _hold)


def event_dict(event: Event) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__dataclass_fields__}

"""Writing the engine's decisions to SQL, in one fenced transaction.

``write_events`` fences the transaction with the leader's epoch, runs each event's writer
(``routing.host.writers``: one per event type), adds the webhook outbox rows and the timeline and
interval counters the lean writers collected, and commits. Each writer returns the messages to
publish once committed. Several decisions can share one transaction (``begin``, ``write_decision``
per decision, ``finish``): the leader's group commit across the commands of one read of the
streams. Also here: what a commit publishes (``publishable``) and the sessions' row keeping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from customers.timeline import insert_events
from routing import history, store
from routing.engine.events import (
    AgentStatusChanged,
    Assigned,
    Completed,
    Event,
    Transferred,
    WrapUpStarted,
)
from routing.host.floor import dt
from routing.host.writers import BUMPS_KEY, EVENT_ROWS_KEY, LEAN_EVENTS, WRITERS, Message, flush_rows
from routing.webhooks import enqueue_webhook_deliveries, event_payload
from switchboard.events import FLOOR_TOPIC

if TYPE_CHECKING:
    from routing.host.leader import Leader


# What changes an agent's line on the wallboard: the engine's status changes (not responding, a
# status asked for taking effect) and the work they hold (busy on accept, wrap-up, done).
FLOOR_EVENTS = (AgentStatusChanged, Assigned, WrapUpStarted, Completed, Transferred)


async def write_events(
    leader: Leader,
    session: AsyncSession,
    events: list[Event],
    *,
    fenced: bool = False,
    now: float | None = None,
) -> list[Message]:
    """Fence (unless the caller did), write every event, commit; returns what to publish.
    ``now``: the time the engine made the decision (default: its latest). Raises what SQL raises."""
    begin(session)
    if not fenced:
        await store.fence(session, partition=leader.host.partition, epoch=leader.lease.epoch)
    published = await write_decision(leader, session, events, leader.engine_now() if now is None else now)
    await finish(session)
    return published


def begin(session: AsyncSession) -> None:
    """Start collecting the lean writers' timeline rows and interval counters in ``session``."""
    session.info[EVENT_ROWS_KEY], session.info[BUMPS_KEY] = [], {}


async def finish(session: AsyncSession) -> None:
    """Write the collected timeline rows and interval counters (one statement each) and commit."""
    await insert_events(session, session.info[EVENT_ROWS_KEY])
    session.info[EVENT_ROWS_KEY].clear()
    await history.bump_many(session, session.info[BUMPS_KEY])
    await session.commit()


async def write_decision(
    leader: Leader, session: AsyncSession, events: list[Event], decided_at: float
) -> list[Message]:
    """One decision's events, in a transaction ``begin`` prepared and the caller fenced (several
    decisions may share it: ``Leader.commit_decisions``); returns what to publish once committed."""
    published: list[Message] = []
    floor = leader.floor
    now = dt(decided_at)
    for event in events:
        engine_offer = getattr(event, "offer_id", None)
        sql_offer = floor.sql_offer.get(engine_offer) if engine_offer else None  # the writer may forget it
        if not isinstance(event, LEAN_EVENTS):
            await flush_rows(session)  # ORM writes append their own events: keep decision order
        writer = WRITERS.get(type(event))
        if writer is not None:
            published += await writer(leader, session, event, now)
        if isinstance(event, FLOOR_EVENTS):
            # The supervisors' wallboards (one notice per commit: ``publishable`` folds them).
            published.append((FLOOR_TOPIC, {"agents": {a: event.kind for a in agents_named(event)}}))
        payload = event_payload(event, occurred_at=now)
        if engine_offer is not None:
            # Receivers get the durable offer id (the engine's counter restarts with each leader).
            payload["offer_id"] = str(sql_offer or floor.sql_offer.get(engine_offer) or "") or None
        # Outbox: the webhook deliveries commit (or roll back) with the decision itself.
        await enqueue_webhook_deliveries(session, event_type=event.kind, payload=payload)
    return published


def agents_named(event: Event) -> list[str]:
    """The agents an event is about (an offer's, a transfer's sender and target)."""
    named = (getattr(event, name, None) for name in ("agent_id", "from_agent", "to_agent"))
    return [agent for agent in named if agent]


def publishable(published: list[Message]) -> list[Message]:
    """What a commit publishes: the wallboards' notices folded into one, after the rest (a group
    of many decisions makes each supervisor socket re-read the floor once, not once per agent)."""
    agents: dict[str, Any] = {}
    rest: list[Message] = []
    for topic, event in published:
        if topic == FLOOR_TOPIC:
            agents.update(event["agents"])
        else:
            rest.append((topic, event))
    return [*rest, (FLOOR_TOPIC, {"agents": agents})] if agents else rest


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

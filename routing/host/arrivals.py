"""Arrivals: routing a queued interaction, with PostgreSQL's one-statement fast path.

On PostgreSQL through asyncpg an arrival reads its snapshot, decides, and writes its offer in ONE
statement (``store.offer_in_one_statement``); elsewhere, and for decisions of any other shape,
every decision is one portable transaction (``Leader.commit_events``).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from customers.timeline import InsertedEvent, live_payloads
from interactions.states import State
from routing import store
from routing.context import routing_snapshot, routing_snapshot_on
from routing.engine.events import Event, OfferCreated, Queued
from routing.host.floor import dt
from routing.host.leader import Leader
from routing.host.persist import hold_loaded
from routing.host.placing import enqueue_from_sql
from routing.host.writers import event_dict
from routing.webhooks import subscription_cache
from switchboard.events import customer_topic
from switchboard.fastsql import held_connection


async def enqueue(leader: Leader, interaction_id: str) -> None:
    if leader.engine.knows(interaction_id):
        return  # a repeated command (re-read after a crash) changes nothing
    if leader.host.one_statement_offers:
        await _enqueue_in_autocommit(leader, interaction_id)
        return
    host = leader.host

    async def route(session: AsyncSession) -> list[Event]:
        snapshot = await routing_snapshot(session, uuid.UUID(interaction_id))
        if snapshot is None or snapshot[0].state is not State.QUEUED:
            return []
        return await enqueue_from_sql(
            host, session, leader.floor, snapshot[0], host.clock(), context=snapshot[1]
        )

    await leader.apply_in_session(route, context=f"enqueue {interaction_id}")


async def _enqueue_in_autocommit(leader: Leader, interaction_id: str) -> None:
    """The arrival hot path on PostgreSQL: one read, the decision, one write statement.

    Both run in autocommit: the read is a snapshot and the write re-checks in SQL everything
    the decision relied on (state still queued, capacity, decliners, the fence), exactly as
    the portable transaction does. A decision of another shape (no agent free: just placed;
    webhook subscribers wanting these events) is persisted the portable way.
    """
    host = leader.host
    events: list[Event] = []
    # The session is for the rare reads of unusual work (a queue added since, decliners, a
    # pinned rule set, a consult); it opens a connection only if one of them asks.
    async with host.db.sessionmaker() as session, held_connection(host.db.engine) as driver:
        snapshot = await routing_snapshot_on(driver, host.db.engine.dialect, uuid.UUID(interaction_id))
        if snapshot is None or snapshot[0].state is not State.QUEUED:
            return
        it, context = snapshot
        events = await enqueue_from_sql(host, session, leader.floor, it, host.clock(), context=context)
        if await _offer_in_one_statement(leader, session, driver, it, events):
            return
    if events:
        async with host.db.sessionmaker() as session:
            hold_loaded(session)
            await leader.commit_events(session, events, context=f"enqueue {interaction_id}")


async def _offer_in_one_statement(
    leader: Leader, session: AsyncSession, driver: Any, it: Any, events: list[Event]
) -> bool:
    """Persist [Queued?, OfferCreated] for ``it`` with ``store.offer_in_one_statement``;
    False (nothing written) when the decision has another shape."""
    *placed, offered = events if events else [None]
    if (
        not isinstance(offered, OfferCreated)
        or offered.interaction_id != str(it.id)
        or len(placed) > 1
        or (placed and not (isinstance(placed[0], Queued) and placed[0].interaction_id == str(it.id)))
    ):
        return False
    if any(s.wants(e.kind) for s in await subscription_cache.active(session) for e in events):
        return False  # the webhook outbox commits with the decision: the portable transaction
    floor = leader.floor
    now = dt(leader.engine_now())
    placement = routed = None
    queue_name = offered.queue
    if placed:
        queued = placed[0]
        assert isinstance(queued, Queued)  # checked above
        placement = leader.placement(queued, floor.queue_id_by_name(queued.queue))
        if placement["queue_id"] is None:
            return False  # a queue the host has not seen yet: the portable path looks it up
        routed = {k: v for k, v in event_dict(queued).items() if k != "interaction_id"}
    async with leader.sql_verdict(f"offer for {it.id}", touched=events):
        offer, event_ids = await store.offer_in_one_statement(
            driver,
            partition=leader.host.partition,
            epoch=leader.lease.epoch,
            interaction_id=it.id,
            channel=it.channel.value,
            agent_id=uuid.UUID(offered.agent_id),
            now=now,
            ttl=dt(offered.expires_at) - now,
            placement=placement,
            routed_data=routed,
            queue_name=queue_name if floor.queue_id_by_name(queue_name) is not None else None,
        )
    floor.remember_offer(offered.offer_id, offer.id)
    kinds = (["routed"] if placed else []) + ["state_changed", "offer_created"]
    timeline = live_payloads(
        [InsertedEvent(i, offer.customer_id, it.id, kind) for i, kind in zip(event_ids, kinds, strict=True)]
    )
    await leader.host.publisher.publish_many(
        [leader.offer_message(offered, offer), *((customer_topic(p["customer_id"]), p) for p in timeline)]
    )
    return True

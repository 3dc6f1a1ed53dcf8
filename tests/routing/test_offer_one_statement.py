"""PostgreSQL's arrival hot path writes an offer in ONE statement (``store.offer_in_one_statement``).

It must leave exactly what the portable transaction leaves (the path SQLite always takes): the
same interaction columns, offer row, timeline events, interval counters and published offer, and
it must refuse exactly when the portable path refuses (stale epoch, capacity, decliners, state).
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from interactions.models import Interaction, TimelineEvent
from interactions.states import State
from routing import store
from routing.history import QueueInterval
from routing.host import EngineHost, Leader, LostLeadership, arrivals
from routing.models import Offer, OfferState
from switchboard.db import Database, utcnow
from switchboard.errors import Conflict
from switchboard.fastsql import held_connection
from tests.routing.test_host import new_interaction, seed

pytestmark = pytest.mark.usefixtures("redis_sync")


@pytest.fixture
async def pg_db(postgres_url: str) -> Database:
    from tests.conftest import _truncate, db_schema_for

    database = Database(postgres_url, schema=db_schema_for(postgres_url))
    await _truncate(database)
    yield database
    await database.dispose()


async def _leading_host(db: Database, redis_handle, *, one_statement: bool) -> tuple[EngineHost, Leader]:
    host = EngineHost(db, redis_handle.async_client(), desktop_grace_seconds=None)
    host.one_statement_offers = one_statement
    lease = await host.leases.try_acquire(min_epoch=0)
    assert lease is not None
    return host, await host.take_lead(lease)


def _normalised(value, agent: str):
    """Ids and clock values the two paths cannot share, replaced by placeholders."""
    if isinstance(value, dict):
        return {
            k: "<set>" if k in ("offer_id", "expires_at") else _normalised(v, agent) for k, v in value.items()
        }
    return "<agent>" if value == agent else value


async def _written(db: Database, interaction_id: uuid.UUID, epoch: int) -> dict:
    """Everything the decision wrote for one interaction, with ids and clock values normalised."""
    async with db.sessionmaker() as s:
        it = await s.get(Interaction, interaction_id)
        offer = (await s.scalars(select(Offer).where(Offer.interaction_id == interaction_id))).one()
        events = (
            await s.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.interaction_id == interaction_id)
                .order_by(TimelineEvent.id)
            )
        ).all()
    agent = str(it.agent_id)
    return {
        "agent": it.agent_id,
        "interaction": (it.state, it.version, it.queue_id, it.priority, it.rule_set_version),
        "offer": (
            offer.state,
            offer.agent_id == it.agent_id,
            offer.engine_epoch == epoch,
            offer.expires_at - offer.created_at,
        ),
        "events": [
            (e.kind, e.channel, e.actor_type, e.actor_id, _normalised(e.data, agent)) for e in events[2:]
        ],
        # The decision's events carry the decision's time, as its columns do.
        "decided_at": {e.at for e in events[2:]} | {it.offered_at, it.updated_at, offer.created_at},
    }


async def _offered_count(db: Database) -> int:
    async with db.sessionmaker() as s:
        return sum((await s.scalars(select(QueueInterval.offered))).all())


async def test_same_rows_as_the_portable_transaction(pg_db: Database, redis_handle):
    db = pg_db
    agent_ids, queue_id = await seed(db, agents=2)
    client = redis_handle.async_client()
    try:
        written = {}
        for one_statement in (False, True):
            host, leader = await _leading_host(db, redis_handle, one_statement=one_statement)
            iid = await new_interaction(db, client, 7 if one_statement else 8, notify=False)
            counted = await _offered_count(db)
            await arrivals.enqueue(leader, str(iid))
            written[one_statement] = await _written(db, iid, leader.lease.epoch)
            assert await _offered_count(db) == counted + 1  # the interval counter, from either path
            await host.leases.release()  # the next host takes over (and rescinds this offer)
            await host.client.aclose()
        portable, fast = written[False], written[True]
        assert portable["agent"] in agent_ids and fast["agent"] in agent_ids
        assert portable["interaction"][0] is State.OFFERED and portable["interaction"][2] == queue_id
        assert len(fast["decided_at"]) == 1 and len(portable["decided_at"]) == 1
        for key in ("interaction", "offer", "events"):
            assert fast[key] == portable[key], key
        kinds = [e[0] for e in fast["events"]]
        assert kinds == ["routed", "state_changed", "offer_created"]  # after created, queued
    finally:
        await client.aclose()


async def test_refuses_what_the_portable_path_refuses(pg_db: Database, redis_handle):
    db = pg_db
    agent_ids, _ = await seed(db, agents=1, chat_max=1)
    client = redis_handle.async_client()
    try:
        first = await new_interaction(db, client, 1, notify=False)
        second = await new_interaction(db, client, 2, notify=False)
        now, ttl = utcnow(), timedelta(seconds=30)

        async def offer(interaction_id: uuid.UUID, *, epoch: int = 5):
            async with held_connection(db.engine) as driver:
                return await store.offer_in_one_statement(
                    driver,
                    partition="p",
                    epoch=epoch,
                    interaction_id=interaction_id,
                    channel="chat",
                    agent_id=agent_ids[0],
                    now=now,
                    ttl=ttl,
                )

        async with db.sessionmaker() as s:
            await store.fence(s, partition="p", epoch=5)
            await s.commit()
        with pytest.raises(store.StaleEngine):
            await offer(first, epoch=4)
        made, event_ids = await offer(first)
        assert len(event_ids) == 2 and made.customer_name
        with pytest.raises(Conflict):  # chat_max=1: no capacity left
            await offer(second)
        with pytest.raises(Conflict):  # no longer queued
            await offer(first)
        async with db.sessionmaker() as s:
            assert (await s.get(Interaction, second)).state is State.QUEUED
            live = (await s.scalars(select(Offer).where(Offer.state == OfferState.LIVE))).all()
            assert [o.interaction_id for o in live] == [first]
        # A stale host stops leading instead of writing.
        host, leader = await _leading_host(db, redis_handle, one_statement=True)
        leader.lease = dataclasses.replace(leader.lease, epoch=leader.lease.epoch - 1)
        third = await new_interaction(db, client, 3, notify=False)
        with pytest.raises(LostLeadership):
            await arrivals.enqueue(leader, str(third))
        await host.client.aclose()
    finally:
        await client.aclose()

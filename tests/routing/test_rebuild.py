"""Rebuilding the engine from SQL: set-based reads, built off to the side, installed whole.

Real SQL (SQLite and PostgreSQL) and real Redis; on PostgreSQL the host's own backends are
terminated (pg_terminate_backend) while it rebuilds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text, update

from interactions.models import Interaction
from interactions.schemas import InteractionCreate
from interactions.service import Actor, create_interaction
from interactions.states import State
from routing import commands
from routing.host import EngineHost
from routing.models import Agent, Offer, OfferState, Presence
from switchboard.db import Database, utcnow
from tests.routing.test_host import eventually, live_offers, seed


async def queued(db: Database, count: int, *, first: int = 0) -> list[uuid.UUID]:
    """``count`` chats waiting in the retail queue (no engine told: the rebuild finds them)."""
    ids = []
    async with db.sessionmaker() as s:
        for n in range(first, first + count):
            data = InteractionCreate(
                channel="chat", queue="retail", identity={"kind": "phone", "value": f"+4479222{n:05d}"}
            )
            ids.append((await create_interaction(s, data=data, actor=Actor.system(), default_region="GB")).id)
        await s.commit()
    return ids


async def declined_by(db: Database, interaction_ids: list[uuid.UUID], agent_id: uuid.UUID) -> None:
    """The agent missed these once: an expired offer row each, and the version an offer leaves."""
    async with db.sessionmaker() as s:
        now = utcnow()
        for interaction_id in interaction_ids:
            s.add(
                Offer(
                    interaction_id=interaction_id,
                    agent_id=agent_id,
                    state=OfferState.EXPIRED,
                    expires_at=now,
                    decided_at=now,
                    reason="expired",
                )
            )
        await s.execute(
            update(Interaction)
            .where(Interaction.id.in_(interaction_ids))
            .values(version=Interaction.version + 2)
        )
        await s.commit()


def counting(db: Database) -> tuple[list[str], object]:
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    sa_event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    return statements, count


async def test_rebuild_reads_are_set_based(db: Database, redis_handle, redis_sync):
    """The statements a rebuild issues do not grow with the work waiting (one query per table)."""
    agent_ids, _ = await seed(db, agents=3, chat_max=1)
    async with db.sessionmaker() as s:  # nobody can take work: the rebuild only reads and places
        await s.execute(update(Agent).values(presence=Presence.BREAK))
        await s.commit()
    client = redis_handle.async_client()
    host = EngineHost(db, client, desktop_grace_seconds=None)
    try:
        lease = await host.leases.try_acquire(min_epoch=0)
        assert lease is not None
        leader = await host.take_lead(lease)
        counts = []
        for waiting, more in ((40, 40), (300, 260)):
            ids = await queued(db, more, first=waiting)
            await declined_by(db, ids[: len(ids) // 3], agent_ids[0])
            statements, listener = counting(db)
            try:
                await leader.rebuild()
            finally:
                sa_event.remove(db.engine.sync_engine, "before_cursor_execute", listener)
            assert len(leader.engine.live_ids()) == waiting
            counts.append(len(statements))
        assert counts[0] == counts[1], counts
        assert counts[1] <= 16, counts
    finally:
        await host.leases.release()
        await client.aclose()


@pytest.fixture
async def pg_db(postgres_url: str) -> Database:
    from tests.conftest import _truncate, db_schema_for

    database = Database(postgres_url, schema=db_schema_for(postgres_url))
    await _truncate(database)
    yield database
    await database.dispose()


def tracked(url: str, schema: str) -> tuple[Database, set[int]]:
    """The host's own Database, remembering the backend pid of every connection it opens."""
    database = Database(url, schema=schema)
    pids: set[int] = set()

    def remember(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        pids.add(cursor.fetchone()[0])
        cursor.close()

    sa_event.listen(database.engine.sync_engine, "connect", remember)
    return database, pids


async def terminate(db: Database, pids: set[int]) -> int:
    async with db.engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                " FROM unnest(CAST(:pids AS int[])) pid"
            ),
            {"pids": list(pids)},
        )
        return int(result.scalar_one())


async def test_backends_killed_during_rebuilds_leave_no_offer_that_cannot_be_accepted(
    pg_db: Database, postgres_url: str, redis_handle, redis_sync, caplog
):
    db = pg_db
    agent_ids, _ = await seed(db, agents=6, chat_max=1)
    ids = await queued(db, 200)
    host_db, pids = tracked(postgres_url, db.schema)
    client = redis_handle.async_client()
    host = EngineHost(host_db, client, lease_ttl_ms=1500, tick_seconds=0.05, reconcile_seconds=0.5)
    runner = asyncio.create_task(host.run())
    caplog.set_level(logging.WARNING, logger="routing.host")
    try:
        await asyncio.wait_for(host.is_leader.wait(), 15)
        await eventually(lambda: _live_count(db, 6), what="six offers")

        async def killer(stop: asyncio.Event) -> int:
            killed = 0
            while not stop.is_set():
                killed += await terminate(db, set(pids))
                await asyncio.sleep(0.02)
            return killed

        stop = asyncio.Event()
        killing = asyncio.create_task(killer(stop))
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # explicit rebuilds, each racing the killer
            with contextlib.suppress(commands.EngineUnavailable):
                await commands.call(client, commands.Rebuild(), wait_seconds=1.0)
        stop.set()
        assert await killing > 0

        # Once the killing stops, a rebuild asked for now (behind those still in the stream) works.
        async def rebuilt() -> bool:
            with contextlib.suppress(commands.EngineUnavailable):
                return (await commands.call(client, commands.Rebuild(), wait_seconds=3.0)) == {"ok": True}
            return False

        await eventually(rebuilt, within=30, what="a rebuild that succeeds")

        # The floor settles: a leader whose engine knows every live offer SQL holds.
        async def settled() -> bool:
            if host.leader is None or not host.is_leader.is_set():
                return False
            live = await live_offers(db)
            return len(live) == 6 and all(o.id in host.leader.floor.engine_offer for o in live)

        await eventually(settled, within=20, what="a leader knowing every live offer")
        assert any("rebuild failed" in r.getMessage() for r in caplog.records), (
            "the fault never hit a rebuild"
        )

        # Zero lost, zero double-assigned: every interaction waits, offered at most once.
        async with db.sessionmaker() as s:
            states = dict(
                (await s.execute(select(Interaction.state, func.count()).group_by(Interaction.state))).all()
            )
            per_interaction = (
                await s.execute(
                    select(Offer.interaction_id, func.count())
                    .where(Offer.state == OfferState.LIVE)
                    .group_by(Offer.interaction_id)
                    .having(func.count() > 1)
                )
            ).all()
        assert sum(states.values()) == len(ids) and set(states) <= {State.QUEUED, State.OFFERED}
        assert states.get(State.OFFERED) == 6 and per_interaction == []
        live = await live_offers(db)
        assert len({o.agent_id for o in live}) == 6
        # Each can be accepted.
        for offer in live:
            reply = await commands.call(
                client, commands.Accept(offer_id=str(offer.id), agent_id=str(offer.agent_id))
            )
            assert reply == {"ok": True}, reply
    finally:
        await host.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(runner, timeout=10)
        await client.aclose()
        await host_db.dispose()


async def _live_count(db: Database, count: int) -> bool:
    return len(await live_offers(db)) == count


async def test_offers_made_by_a_rebuild_carry_the_time_they_were_made(db: Database, redis_handle, redis_sync):
    """However long the reads took, an offer's lifetime starts when the offer is made."""
    await seed(db, agents=2, chat_max=1)
    await queued(db, 5)
    slow_reads = 20.0
    offset = [0.0]

    def clock() -> float:
        return time.time() + offset[0]

    def reads_took_long(conn, cursor, statement, parameters, context, executemany) -> None:
        if "FROM offers JOIN interactions" in statement:  # the rebuild's last read
            offset[0] = slow_reads

    client = redis_handle.async_client()
    host = EngineHost(db, client, desktop_grace_seconds=None, clock=clock)
    sa_event.listen(db.engine.sync_engine, "after_cursor_execute", reads_took_long)
    try:
        lease = await host.leases.try_acquire(min_epoch=0)
        assert lease is not None
        started = time.time()
        await host.take_lead(lease)
        live = await live_offers(db)
        assert len(live) == 2
        for offer in live:
            made = offer.created_at.timestamp()
            assert made >= started + slow_reads - 0.01
            # Its whole lifetime (the engine's 30 s for chat; the row is written a moment later).
            assert abs((offer.expires_at - offer.created_at) - timedelta(seconds=30)) < timedelta(seconds=1)
    finally:
        sa_event.remove(db.engine.sync_engine, "after_cursor_execute", reads_took_long)
        await host.leases.release()
        await client.aclose()

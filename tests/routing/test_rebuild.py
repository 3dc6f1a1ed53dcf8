"""Rebuilding the engine from SQL: set-based reads, built off to the side, installed whole.

Real SQL (SQLite and PostgreSQL) and real Redis; on PostgreSQL the host's own backends are
terminated (pg_terminate_backend) while it rebuilds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text, update

from interactions.models import Interaction
from interactions.states import State
from routing.host import EngineHost
from routing.models import Offer, OfferState
from switchboard import commands
from switchboard.auth.models import Role
from switchboard.db import Database
from tests.factories import declined_by, queued, routing_floor
from tests.helpers import describe_host, eventually, live_offers
from workforce.models import Agent, Presence


def counting(db: Database) -> tuple[list[str], object]:
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    sa_event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    return statements, count


async def test_rebuild_reads_are_set_based(db: Database, redis_handle, redis_sync):
    """The statements a rebuild issues do not grow with the work waiting (one query per table)."""
    agent_ids, _ = await routing_floor(db, agents=3, chat_max=1)
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
    from tests.helpers import db_schema_for, truncate_all

    database = Database(postgres_url, schema=db_schema_for(postgres_url))
    await truncate_all(database)
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
    agent_ids, _ = await routing_floor(db, agents=6, chat_max=1)
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

        async def state() -> str:
            async with db.engine.connect() as conn:  # the host's live backends: what each is doing
                backends = (
                    await conn.execute(
                        text(
                            "SELECT pid, state, wait_event_type, wait_event, left(query, 80)"
                            " FROM pg_stat_activity WHERE pid = ANY(CAST(:pids AS int[]))"
                        ),
                        {"pids": list(pids)},
                    )
                ).all()
            return "\n".join(
                [
                    await describe_host(host, runner),
                    *(f"backend {tuple(b)}" for b in backends),
                    "log since the killing stopped:",
                    *(f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records[logged:]),
                ]
            )

        logged = len(caplog.records)
        await eventually(rebuilt, within=30, what="a rebuild that succeeds", explain=state)

        # The floor settles: a leader whose engine knows every live offer SQL holds.
        async def settled() -> bool:
            if host.leader is None or not host.is_leader.is_set():
                return False
            live = await live_offers(db)
            return len(live) == 6 and all(o.id in host.leader.floor.engine_offer for o in live)

        await eventually(settled, within=20, what="a leader knowing every live offer", explain=state)
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


async def test_a_connection_whose_backend_died_in_the_pool_is_not_handed_out_again(
    pg_db: Database, postgres_url: str, redis_handle, redis_sync
):
    """The backend of an idle pooled connection is terminated, then a take-over begins. Its first
    statement, the fence, starts its transaction on the driver directly (``switchboard.fastsql``),
    so SQLAlchemy never learnt the connection was dead and took it back into the pool as it was:
    every retry of the take-over failed on that same connection ("connection is closed"), for as
    long as the lease held, and routing stayed down (seen in CI after backends were killed)."""
    db = pg_db
    await routing_floor(db, agents=2, chat_max=1)
    await queued(db, 3)
    host_db, pids = tracked(postgres_url, db.schema)
    client = redis_handle.async_client()
    host = EngineHost(host_db, client, desktop_grace_seconds=None)
    try:
        async with host_db.engine.connect() as conn:  # the pool's one connection, idle once returned
            driver = (await conn.get_raw_connection()).driver_connection
        assert await terminate(db, pids) == 1

        async def closed() -> bool:
            return driver.is_closed()

        await eventually(closed, what="the driver to see its backend gone")
        lease = await host.leases.try_acquire(min_epoch=0)
        assert lease is not None
        leader = await host.take_lead(lease)  # one attempt (no ``lost`` event): it must succeed
        assert len(leader.engine.live_ids()) == 3
        assert len(await live_offers(db)) == 2
    finally:
        await host.leases.release()
        await client.aclose()
        await host_db.dispose()


async def test_a_rebuild_that_keeps_failing_frees_the_lease_at_once(
    pg_db: Database, redis_handle, redis_sync
):
    """SQL refuses every rebuild (a trigger on the fence's row): the leadership ends, and so does
    the lease, at once, instead of standing until it lapses; the host leads again (a new epoch) as
    soon as SQL takes the rebuild. The lease's TTL here is far longer than the test waits."""
    db = pg_db
    await routing_floor(db, agents=1, chat_max=1)
    client = redis_handle.async_client()
    host = EngineHost(db, client, lease_ttl_ms=60_000, tick_seconds=0.05, reconcile_seconds=600)
    runner = asyncio.create_task(host.run())

    async def state() -> str:
        return await describe_host(host, runner)

    try:
        await asyncio.wait_for(host.is_leader.wait(), 15)
        assert host.leader is not None and host.leader.lease.epoch == 1
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE FUNCTION refuse_fence() RETURNS trigger LANGUAGE plpgsql"
                    " AS $$ BEGIN RAISE EXCEPTION 'fence refused by the test'; END $$"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse_fence BEFORE UPDATE ON routing_partitions"
                    " FOR EACH ROW EXECUTE FUNCTION refuse_fence()"
                )
            )
        await commands.send(client, commands.Rebuild())

        async def ended() -> bool:
            return not host.is_leader.is_set()

        await eventually(ended, what="the failed rebuild to end the leadership", explain=state)
        async with db.engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER refuse_fence ON routing_partitions"))

        async def leading_again() -> bool:
            return host.is_leader.is_set() and host.leader is not None and host.leader.lease.epoch == 2

        await eventually(leading_again, within=15, what="a new leadership", explain=state)
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER IF EXISTS refuse_fence ON routing_partitions"))
            await conn.execute(text("DROP FUNCTION IF EXISTS refuse_fence()"))
        await host.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(runner, timeout=10)
        await client.aclose()


async def test_offers_made_by_a_rebuild_carry_the_time_they_were_made(db: Database, redis_handle, redis_sync):
    """However long the reads took, an offer's lifetime starts when the offer is made."""
    await routing_floor(db, agents=2, chat_max=1)
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


async def test_work_no_rule_can_route_waits_and_routing_stays_up(routed, make_user, caplog):
    """An interaction created without a queue while no rule set is published (any API caller can
    make one) waits in SQL; before, the engine's rebuild raised on it, every take-over failed and
    routing stopped for everyone (found by the OpenAPI fuzz run)."""
    app, client = routed
    caplog.set_level(logging.WARNING, logger="routing")
    _, headers = await make_user(Role.SUPERVISOR)
    created = await client.post(
        "/api/interactions",
        json={"channel": "chat", "identity": {"kind": "phone", "value": "+447911000111"}},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    host = app.state.engine_host

    async def placed_or_waiting() -> bool:
        return "no queue given and no rule set published" in caplog.text

    await eventually(placed_or_waiting, within=15, what="the reconcile pass to meet the interaction")
    assert host.is_leader.is_set()
    assert "unexpected failure" not in caplog.text and "rebuild failed" not in caplog.text
    ready = await client.get("/readyz")
    assert ready.json().get("routing_engine") == "leader"


async def test_a_take_over_keeps_live_offers_before_older_work_can_take_their_agents(
    db: Database, redis_handle, redis_sync
):
    """A previous leader's live offer stays as it is (id, times; nothing written for it), even when
    older work that nobody was offered waits too: kept offers are placed first, so that work does
    not take the agent and the offer is not withdrawn and made again to someone else."""
    (agent_id,), _ = await routing_floor(db, agents=1, chat_max=1)
    (offered,) = await queued(db, 1)
    client = redis_handle.async_client()
    first = EngineHost(db, client, desktop_grace_seconds=None)
    lease = await first.leases.try_acquire(min_epoch=0)
    assert lease is not None
    await first.take_lead(lease)
    (offer,) = await live_offers(db)
    assert (offer.interaction_id, offer.agent_id) == (offered, agent_id)
    await first.leases.release()
    (older,) = await queued(db, 1, first=1)
    async with db.sessionmaker() as s:  # it has waited longer than the offered chat
        await s.execute(
            update(Interaction)
            .where(Interaction.id == older)
            .values(virtual_start_at=offer.created_at - timedelta(minutes=5))
        )
        await s.commit()
    statements, listener = counting(db)
    second = EngineHost(db, client, desktop_grace_seconds=None)
    try:
        lease = await second.leases.try_acquire(min_epoch=0)
        assert lease is not None
        leader = await second.take_lead(lease)
    finally:
        sa_event.remove(db.engine.sync_engine, "before_cursor_execute", listener)
    try:
        (kept,) = await live_offers(db)
        assert (kept.id, kept.created_at, kept.expires_at) == (offer.id, offer.created_at, offer.expires_at)
        assert not [s for s in statements if s.lstrip().upper().startswith("INSERT INTO OFFERS")]
        assert leader.floor.engine_offer[offer.id] == leader.floor.engine.kept_offer(str(offered))
        assert leader.floor.engine.snapshot()["interactions"][str(older)]["status"] == "waiting"
    finally:
        await second.leases.release()
        await client.aclose()

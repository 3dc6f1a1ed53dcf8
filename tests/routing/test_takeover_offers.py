"""A take-over's offers written set-based (PostgreSQL): as many statements for 60 offers as for 20,
the same rows as an arrival's offer, and an offer SQL refuses left out and repaired alone.
Real PostgreSQL and Redis (SQLite keeps the writers' path, covered by test_rebuild.py)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, text, update
from sqlalchemy.exc import DBAPIError

from interactions.models import Interaction, TimelineEvent
from interactions.states import State
from routing import store
from routing.history import QueueInterval
from routing.host import EngineHost, Leader
from routing.host import offers as offers_module
from routing.host.floor import Floor
from routing.host.rebuild import build_floor
from routing.models import Offer, OfferState
from switchboard.db import Database, utcnow
from switchboard.errors import Conflict
from tests.factories import (
    declined_by,
    make_agent,
    make_staff_user,
    queued,
    queued_chat,
    routing_floor,
    sql_transition,
)
from tests.helpers import live_offers
from workforce.models import OfferPolicy, Presence, Queue


@pytest.fixture
def pg(db: Database) -> Database:
    if db.engine.dialect.driver != "asyncpg":
        pytest.skip("set-based offers are PostgreSQL's (SQLite takes the writers' path)")
    return db


class Statements:
    """Every statement sent: SQLAlchemy's executions and asyncpg's query logger (raw statements)."""

    def __init__(self, db: Database) -> None:
        self.count = 0
        self.engine = db.engine.sync_engine
        event.listen(self.engine, "before_cursor_execute", self._executed)
        event.listen(self.engine, "connect", self._connected)

    def _executed(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        self._count(statement)

    def _connected(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection._connection.add_query_logger(self._logged)

    def _logged(self, record: Any) -> None:
        if not record.query.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            self._count(record.query)

    def _count(self, statement: str) -> None:
        # Not the take-over's own: asyncpg's type introspection on a new connection, the webhook
        # subscriptions' cache (refreshed every 2 s).
        if not any(other in statement for other in ("typeinfo_tree", "'jit'", "FROM webhook_subscriptions")):
            self.count += 1

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._executed)
        event.remove(self.engine, "connect", self._connected)


async def take_over(db: Database, redis_handle) -> tuple[int, int]:
    """A new leader takes the floor: (statements its take-over sent, live offers after it)."""
    client = redis_handle.async_client()
    await db.engine.dispose()  # fresh connections: the query logger sees every one
    statements = Statements(db)
    host = EngineHost(db, client, desktop_grace_seconds=None)
    try:
        lease = await host.leases.try_acquire(min_epoch=0)
        assert lease is not None
        await host.take_lead(lease)
        return statements.count, len(await live_offers(db))
    finally:
        statements.close()
        await host.leases.release()
        await client.aclose()


async def test_a_take_over_writes_its_offers_set_based_with_an_arrivals_rows(pg, redis_handle, redis_sync):
    agents, queue_id = await routing_floor(pg, agents=10, chat_max=2)
    await offer_up_to_capacity(pg)  # rounds: each agent's two places offered at once
    await take_over(pg, redis_handle)  # the first ever: creates the partition row, warms caches
    waiting = await queued(pg, 20)
    await declined_by(pg, waiting[:3], agents[0])  # never offered back to who missed it
    small, offered = await take_over(pg, redis_handle)
    assert offered == 20  # each agent two: two rounds of one offer per agent
    await rows_as_an_arrival_leaves(pg, waiting, waiting[:3], agents[0])

    async with pg.sessionmaker() as s:  # the same shape, three times the size
        await s.execute(Offer.__table__.delete())
        await s.execute(QueueInterval.__table__.delete())
        await s.execute(Interaction.__table__.update().values(state=State.COMPLETED))
        await s.commit()
    await more_agents(pg, 20, queue_id)  # 30 agents, two places each: 60 offers
    await queued(pg, 60, first=100)
    large, offered = await take_over(pg, redis_handle)
    assert offered == 60  # 20 + 10 agents' two places (the first 20 offers were cleared)
    assert large == small, (small, large)  # one statement per round, not per offer
    assert len(agents) == 10


async def offer_up_to_capacity(db: Database) -> None:
    async with db.sessionmaker() as s:
        await s.execute(update(Queue).values(offer_policy=OfferPolicy.UP_TO_CAPACITY))
        await s.commit()


async def test_a_take_over_offers_each_agent_one_chat_at_a_time(db, redis_handle, redis_sync):
    """The queue's default policy: a rebuild offers each free agent one chat, however many places
    it has (SQLite's writers and PostgreSQL's set-based install alike)."""
    agents, _ = await routing_floor(db, agents=2, chat_max=3)
    await queued(db, 5)
    client = redis_handle.async_client()
    host = EngineHost(db, client, desktop_grace_seconds=None, reconcile_seconds=600)
    try:
        lease = await host.leases.try_acquire(min_epoch=0)
        assert lease is not None
        await host.take_lead(lease)
        assert sorted(o.agent_id for o in await live_offers(db)) == sorted(agents)
    finally:
        await host.leases.release()
        await client.aclose()


async def test_set_based_offers_hold_to_one_at_a_time(pg, redis_handle, redis_sync):
    """SQL holds to the policy whatever the engine decided: an agent holding a pending offer is
    not offered a second by ``offers_set_based`` (None for it), a free agent is; once the queue
    offers up to capacity, the first agent is offered it too."""
    agents, _ = await routing_floor(pg, agents=2, chat_max=3)
    own = await queued_chat(pg, None, 99, notify=False)
    await sql_transition(pg, own, State.OFFERED, agent_id=agents[0])
    waiting = await queued(pg, 2)

    async def offer(interaction_id: uuid.UUID, agent_id: uuid.UUID) -> bool:
        async with pg.sessionmaker() as s:
            now = utcnow()
            wanted = [store.OfferWanted(interaction_id, agent_id, now + timedelta(seconds=30))]
            await store.fence(s, partition="p", epoch=1)
            made = await store.offers_set_based(s, partition="p", epoch=1, now=now, wanted=wanted)
            await s.commit()
            return made[0] is not None

    assert not await offer(waiting[0], agents[0])  # holds one pending: one at a time
    assert await offer(waiting[0], agents[1])
    await offer_up_to_capacity(pg)
    assert await offer(waiting[1], agents[0])


async def more_agents(db: Database, count: int, queue_id: uuid.UUID) -> None:
    async with db.sessionmaker() as s:
        for n in range(count):
            user = await make_staff_user(
                s, name="M", username=f"more{n}-{uuid.uuid4().hex[:6]}", password=None
            )
            await make_agent(
                s,
                user,
                presence=Presence.AVAILABLE,
                channel_max={"voice": 1, "chat": 2, "ticket": 5, "email": 5},
                queues=[queue_id],
            )


async def rows_as_an_arrival_leaves(
    db: Database, waiting: list[uuid.UUID], declined: list[uuid.UUID], by
) -> None:
    """Every waiting chat offered with the rows and events ``offer_in_one_statement`` writes,
    never to who declined it, and counted once in its queue's interval."""
    async with db.sessionmaker() as s:
        offers = (await s.scalars(select(Offer).where(Offer.state == OfferState.LIVE))).all()
        rows = {
            i.id: i for i in (await s.scalars(select(Interaction).where(Interaction.id.in_(waiting)))).all()
        }
        events = (
            await s.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.interaction_id.in_(waiting), TimelineEvent.actor_id == "routing")
                .order_by(TimelineEvent.id)
            )
        ).all()
        counted = await s.scalar(select(func.sum(QueueInterval.offered)))
    assert sorted(o.interaction_id for o in offers) == sorted(waiting)
    for offer in offers:
        it = rows[offer.interaction_id]
        assert (it.state, it.agent_id) == (State.OFFERED, offer.agent_id)
        assert not (offer.interaction_id in declined and offer.agent_id == by)
        assert offer.expires_at > offer.created_at
        mine = [e for e in events if e.interaction_id == offer.interaction_id]
        assert [e.kind for e in mine][-2:] == ["state_changed", "offer_created"]
        changed, made = mine[-2].data, mine[-1].data
        assert changed == {
            "from": "queued",
            "to": "offered",
            "reason": "offered",
            "version": it.version,
            "changes": {"agent_id": str(offer.agent_id)},
            "agent_id": str(offer.agent_id),
        }
        assert made == {
            "offer_id": str(offer.id),
            "agent_id": str(offer.agent_id),
            "expires_at": offer.expires_at.isoformat(),
        }
    assert counted == len(waiting)


async def _built_under_lease(host: EngineHost) -> tuple[Any, Any]:
    """A take-over's first step: the lease, then the floor built off to the side from SQL."""
    lease = await host.leases.try_acquire(min_epoch=0)
    assert lease is not None
    return lease, await build_floor(host, lease)


async def test_an_offer_sql_refuses_at_install_is_left_out_and_repaired_alone(pg, redis_handle, redis_sync):
    agents, _ = await routing_floor(pg, agents=4, chat_max=1)
    await queued(pg, 4)
    client = redis_handle.async_client()
    host = EngineHost(pg, client, desktop_grace_seconds=None, reconcile_seconds=600)
    try:
        lease, rebuilt = await _built_under_lease(host)
        planned = {e.agent_id: e.interaction_id for e in rebuilt.decided if e.kind == "offer_created"}
        assert len(planned) == 4
        # Between the reads and the install, one agent takes a chat of their own straight in SQL:
        # SQL now counts them full, the rebuilt engine does not.
        full = str(agents[0])
        own = await queued_chat(pg, client, 99, notify=False)
        await sql_transition(pg, own, State.OFFERED, agent_id=uuid.UUID(full))
        await sql_transition(pg, own, State.CONNECTED)
        leader = Leader(host, lease, rebuilt.floor)
        host.leader = leader
        await leader._install(rebuilt)  # noqa: SLF001 - the install step of Leader.take, on its own

        live = await live_offers(pg)
        assert {str(o.agent_id) for o in live} == {str(a) for a in agents[1:]}  # the others stand
        refused = uuid.UUID(planned[full])
        async with pg.sessionmaker() as s:
            assert (await s.get(Interaction, refused)).state is State.QUEUED
        # Repaired: the engine counts the agent's own chat, and the refused work waits again.
        assert leader.engine.holder_of(str(own)) == full
        assert leader.engine.knows(str(refused))
        assert leader.engine.holder_of(str(refused)) is None
    finally:
        await host.leases.release()
        await client.aclose()


async def test_set_based_offers_return_each_offers_own_events(pg, redis_handle, redis_sync):
    """Each offer made comes back with the ids and kinds of the timeline events written for it
    (the live announcement publishes them), in id order; a refused offer (None) has none."""
    agents, _ = await routing_floor(pg, agents=4, chat_max=2)
    waiting = await queued(pg, 4)
    await declined_by(pg, [waiting[1]], agents[1])  # the second offer is refused
    async with pg.sessionmaker() as s:
        before = await s.scalar(select(func.max(TimelineEvent.id)))
        now = utcnow()
        wanted = [
            store.OfferWanted(
                interaction_id,
                agent_id,
                now + timedelta(seconds=30),
                routed_data={"queue": "retail"} if n == 0 else None,  # placed in this decision
            )
            for n, (interaction_id, agent_id) in enumerate(zip(waiting, agents, strict=True))
        ]
        await store.fence(s, partition="p", epoch=1)
        made = await store.offers_set_based(s, partition="p", epoch=1, now=now, wanted=wanted)
        await s.commit()
        written = (
            await s.scalars(select(TimelineEvent).where(TimelineEvent.id > before).order_by(TimelineEvent.id))
        ).all()
    assert made[1] is None
    returned = {
        w.interaction_id: (ids, kinds)
        for w, result in zip(wanted, made, strict=True)
        if result is not None
        for _, ids, kinds in [result]
    }
    assert returned == {
        interaction_id: (
            [e.id for e in written if e.interaction_id == interaction_id],
            [e.kind for e in written if e.interaction_id == interaction_id],
        )
        for interaction_id in (waiting[0], waiting[2], waiting[3])
    }
    assert returned[waiting[0]][1] == ["routed", "state_changed", "offer_created"]
    assert returned[waiting[2]][1] == ["state_changed", "offer_created"]
    assert {e.interaction_id for e in written} == {waiting[0], waiting[2], waiting[3]}


# The install's second round meets a real fault in PostgreSQL: a trigger on offers that acts once
# the transaction holds the first round's two live offers (a row-level BEFORE trigger sees the rows
# its statement inserted before it), so round one goes through and round two does not.
_SECOND_ROUND = "(SELECT count(*) FROM offers WHERE state = 'live') >= 2"
_FAULTS = {
    # SQL refuses the second round as the partial unique index refuses a second live offer.
    "refused": f"IF {_SECOND_ROUND} THEN RAISE unique_violation USING MESSAGE = 'refused'; END IF;",
    # The second round's statement waits on a lock the test holds.
    "blocked": f"IF {_SECOND_ROUND} THEN PERFORM pg_advisory_xact_lock({{key}}); END IF;",
}


async def _install_fault(db: Database, fault: str, key: int) -> None:
    async with db.sessionmaker() as s:
        await s.execute(
            text(
                "CREATE OR REPLACE FUNCTION test_install_fault() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN {_FAULTS[fault].format(key=key)} RETURN NEW; END $$"
            )
        )
        await s.execute(
            text(
                "CREATE TRIGGER test_install_fault BEFORE INSERT ON offers "
                "FOR EACH ROW EXECUTE FUNCTION test_install_fault()"
            )
        )
        await s.commit()


async def _remove_fault(db: Database) -> None:
    async with db.sessionmaker() as s:
        await s.execute(text("DROP TRIGGER IF EXISTS test_install_fault ON offers"))
        await s.execute(text("DROP FUNCTION IF EXISTS test_install_fault()"))
        await s.commit()


async def _waiting_on(lock: Any, key: int) -> int | None:
    """The backend waiting for advisory lock ``key``, if one is."""
    return await lock.scalar(
        text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = :key AND NOT granted"),
        {"key": key},
    )


def _a_bug(*_: Any) -> Any:
    raise RuntimeError("a bug")


@pytest.mark.parametrize("interrupted", ["refused", "cancelled", "connection killed", "bug"])
async def test_an_install_interrupted_mid_round_leaves_nothing_installed(
    pg, redis_handle, redis_sync, monkeypatch, interrupted
):
    """The rounds run one after another while earlier ones become messages. SQL refusing a later
    round, the install cancelled while that round's statement runs, its connection killed then, or
    an error while the first round's results become messages (the second's statement running
    meanwhile) fails the whole install: the earlier rounds' offers roll back with it, the previous
    floor is put back, and no statement of the install outlives it."""
    agents, _ = await routing_floor(pg, agents=4, chat_max=1)
    await queued(pg, 4)
    monkeypatch.setattr(offers_module, "ROUND", 2)  # two rounds of two offers
    key = uuid.uuid4().int % 2_000_000_000  # this run's advisory lock
    await _install_fault(pg, "refused" if interrupted == "refused" else "blocked", key)
    client = redis_handle.async_client()
    host = EngineHost(pg, client, desktop_grace_seconds=None, reconcile_seconds=600)
    try:
        async with pg.engine.connect() as lock:
            await lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            await lock.commit()
            lease, rebuilt = await _built_under_lease(host)
            assert sum(e.kind == "offer_created" for e in rebuilt.decided) == 4
            leader = Leader(host, lease, rebuilt.floor)
            previous = leader.floor = Floor(rebuilt.floor.engine)  # stands for the floor in use
            if interrupted == "bug":
                # Injected: no real fault reaches the window between a round's statement starting
                # and the next await (the previous round's messages are made there, in Python).
                monkeypatch.setattr(leader, "offer_message", _a_bug)
            install = asyncio.create_task(leader._install(rebuilt))  # noqa: SLF001 - Leader.take's install step
            if interrupted != "refused":
                for _ in range(500):  # the second round's statement is running, held by the lock
                    if (waiting := await _waiting_on(lock, key)) is not None or install.done():
                        break
                    await asyncio.sleep(0.01)
                assert waiting is not None, "the second round never reached the lock"
                if interrupted == "cancelled":
                    install.cancel()
                elif interrupted == "connection killed":
                    await lock.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": waiting})
                else:  # the bug raised, but the rollback waits for the statement still running
                    await asyncio.sleep(0.3)
                    assert not install.done()
                    await lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            expected = {
                "refused": Conflict,
                "cancelled": asyncio.CancelledError,
                "connection killed": DBAPIError,
                "bug": RuntimeError,
            }
            with pytest.raises(expected[interrupted]):
                await asyncio.wait_for(install, 10)
            # The second round's statement did not outlive the install.
            assert await _waiting_on(lock, key) is None
            await lock.execute(text("SELECT pg_advisory_unlock_all()"))
            await lock.commit()
        assert leader.floor is previous  # the floor in use is put back
        assert await live_offers(pg) == []  # the first round's two offers rolled back too
        async with pg.sessionmaker() as s:
            states = (await s.scalars(select(Interaction.state))).all()
        assert set(states) == {State.QUEUED}
    finally:
        await _remove_fault(pg)
        await host.leases.release()
        await client.aclose()

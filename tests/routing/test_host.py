"""The engine host end to end in-process: real SQL (SQLite and PostgreSQL) and real Redis.

Hosts run as asyncio tasks here; tests/routing/test_failover_processes.py does the same with
real app processes that get killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy import func, select

from interactions.models import Interaction
from interactions.schemas import InteractionCreate
from interactions.service import Actor, create_interaction
from interactions.states import State
from routing import commands
from routing.engine.state import EngineConfig
from routing.host import EngineHost
from routing.models import Agent, Offer, OfferState, Presence, Queue, QueueMember
from switchboard.auth.models import Role, User
from switchboard.db import Database


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 10.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


async def seed(db: Database, *, agents: int = 2, chat_max: int = 3) -> tuple[list[uuid.UUID], uuid.UUID]:
    async with db.sessionmaker() as s:
        queue = Queue(name="retail", display_name="Retail", channels=["chat", "voice"])
        s.add(queue)
        ids = []
        for n in range(agents):
            user = User(
                username=f"agent{n}-{uuid.uuid4().hex[:6]}",
                display_name=f"A{n}",
                role=Role.AGENT,
                password_hash="x",
            )
            s.add(user)
            await s.flush()
            agent = Agent(
                user_id=user.id,
                display_name=f"A{n}",
                presence=Presence.AVAILABLE,
                channel_max={"voice": 1, "chat": chat_max, "ticket": 5, "email": 5},
            )
            s.add(agent)
            await s.flush()
            s.add(QueueMember(queue_id=queue.id, agent_id=agent.id))
            ids.append(agent.id)
        await s.commit()
        return ids, queue.id


async def new_interaction(db: Database, client, n: int, *, notify: bool = True) -> uuid.UUID:
    async with db.sessionmaker() as s:
        data = InteractionCreate(
            channel="chat", queue="retail", identity={"kind": "phone", "value": f"+4479111{n:05d}"}
        )
        it = await create_interaction(s, data=data, actor=Actor.system(), default_region="GB")
        await s.commit()
    if notify:
        await commands.notify_enqueued(client, it.id)
    return it.id


async def live_offers(db: Database, interaction_id: uuid.UUID | None = None) -> list[Offer]:
    async with db.sessionmaker() as s:
        query = select(Offer).where(Offer.state == OfferState.LIVE)
        if interaction_id is not None:
            query = query.where(Offer.interaction_id == interaction_id)
        return list((await s.scalars(query)).all())


async def state_of(db: Database, interaction_id: uuid.UUID) -> State:
    async with db.sessionmaker() as s:
        return (await s.get(Interaction, interaction_id)).state


@contextlib.asynccontextmanager
async def running_host(db: Database, redis_handle, **kw):
    client = redis_handle.async_client()
    host = EngineHost(
        db, client, lease_ttl_ms=kw.pop("lease_ttl_ms", 1500), tick_seconds=0.05, reconcile_seconds=0.3, **kw
    )
    task = asyncio.create_task(host.run())
    try:
        yield host, client, task
    finally:
        await host.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        await client.aclose()


async def kill_host(task: asyncio.Task) -> None:
    """The leader process dies. Python 3.11's wait_for can swallow a cancellation that lands as its
    inner wait finishes (fixed in 3.12); a killed process cannot, so cancel until the task is gone."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.5)


async def test_offer_accept_wrap_up_complete(db, redis_handle, redis_sync):
    agent_ids, _ = await seed(db, agents=1)
    async with running_host(db, redis_handle) as (host, client, _):
        await asyncio.wait_for(host.is_leader.wait(), 10)
        iid = await new_interaction(db, client, 1)
        await eventually(lambda: _has_offer(db, iid), what="an offer")
        (offer,) = await live_offers(db, iid)
        assert offer.agent_id == agent_ids[0]

        # A stranger cannot accept it; the owner can.
        denied = await commands.call(
            client, {"type": "accept", "offer_id": str(offer.id), "agent_id": str(uuid.uuid4())}
        )
        assert denied["ok"] is False
        accepted = await commands.call(
            client, {"type": "accept", "offer_id": str(offer.id), "agent_id": str(offer.agent_id)}
        )
        assert accepted == {"ok": True}
        assert await state_of(db, iid) is State.CONNECTED
        again = await commands.call(
            client, {"type": "accept", "offer_id": str(offer.id), "agent_id": str(offer.agent_id)}
        )
        assert again["ok"] is False  # an offer is accepted once

        done = await commands.call(
            client, {"type": "complete", "interaction_id": str(iid), "agent_id": str(offer.agent_id)}
        )
        assert done["ok"] is False  # wrap-up is mandatory before completing
        assert (
            await commands.call(
                client, {"type": "wrap_up", "interaction_id": str(iid), "agent_id": str(offer.agent_id)}
            )
        )["ok"]
        assert await state_of(db, iid) is State.WRAP_UP
        assert (
            await commands.call(
                client, {"type": "complete", "interaction_id": str(iid), "agent_id": str(offer.agent_id)}
            )
        )["ok"]
        assert await state_of(db, iid) is State.COMPLETED


async def _has_offer(db, iid) -> bool:
    return bool(await live_offers(db, iid))


async def test_rejected_goes_to_the_other_agent_and_never_back(db, redis_handle, redis_sync):
    agent_ids, _ = await seed(db, agents=2)
    async with running_host(db, redis_handle) as (host, client, _):
        await asyncio.wait_for(host.is_leader.wait(), 10)
        iid = await new_interaction(db, client, 2)
        await eventually(lambda: _has_offer(db, iid), what="first offer")
        (first,) = await live_offers(db, iid)
        assert (
            await commands.call(
                client, {"type": "reject", "offer_id": str(first.id), "agent_id": str(first.agent_id)}
            )
        )["ok"]
        await eventually(lambda: _has_offer(db, iid), what="second offer")
        (second,) = await live_offers(db, iid)
        assert second.agent_id != first.agent_id
        assert (
            await commands.call(
                client, {"type": "reject", "offer_id": str(second.id), "agent_id": str(second.agent_id)}
            )
        )["ok"]
        await asyncio.sleep(0.5)
        assert await live_offers(db, iid) == []  # both declined: nobody left to offer it to
        assert await state_of(db, iid) is State.QUEUED


async def test_lost_enqueue_command_is_routed_by_reconcile(db, redis_handle, redis_sync):
    await seed(db, agents=1)
    async with running_host(db, redis_handle) as (host, client, _):
        await asyncio.wait_for(host.is_leader.wait(), 10)
        iid = await new_interaction(db, client, 3, notify=False)  # the API died before notifying
        await eventually(lambda: _has_offer(db, iid), what="reconcile to route it")


async def test_missed_offer_makes_agent_not_responding_and_moves_on(db, redis_handle, redis_sync):
    agent_ids, _ = await seed(db, agents=2)
    config = EngineConfig(offer_ttl={"voice": 0.4, "chat": 0.4, "ticket": 0.4, "email": 0.4})
    async with running_host(db, redis_handle, engine_config=config) as (host, client, _):
        await asyncio.wait_for(host.is_leader.wait(), 10)
        iid = await new_interaction(db, client, 4)
        await eventually(lambda: _has_offer(db, iid), what="first offer")
        (first,) = await live_offers(db, iid)

        async def moved_on() -> bool:
            offers = await live_offers(db, iid)
            return bool(offers) and offers[0].agent_id != first.agent_id

        await eventually(moved_on, what="re-offer after the miss")
        async with db.sessionmaker() as s:
            missed = await s.get(Offer, first.id)
            agent = await s.get(Agent, first.agent_id)
            assert missed.state is OfferState.EXPIRED
            assert agent.presence is Presence.NOT_RESPONDING


async def test_leader_dies_standby_takes_over_nothing_lost_or_doubled(db, redis_handle, redis_sync):
    """Kill the leader (no clean release) mid-traffic: the stand-by takes over after the lease lapses."""
    await seed(db, agents=2, chat_max=2)
    async with running_host(db, redis_handle) as (a, client_a, task_a):
        await asyncio.wait_for(a.is_leader.wait(), 10)
        async with running_host(db, redis_handle) as (b, client_b, _):
            ids = [await new_interaction(db, client_a, 10 + n) for n in range(3)]
            await eventually(lambda: _count_live(db, 3), what="three offers from the first leader")
            assert not b.is_leader.is_set()

            await kill_host(task_a)  # the leader process dies: no lease release, offers left live
            ids += [await new_interaction(db, client_b, 20 + n) for n in range(4)]
            await asyncio.wait_for(b.is_leader.wait(), 10)

            # Capacity is 2 agents x 2 chats: four live offers, the other three wait; none lost.
            await eventually(lambda: _count_live(db, 4), what="the new leader's offers")
            async with db.sessionmaker() as s:
                states = dict((await s.execute(select(Interaction.id, Interaction.state))).all())
                per_interaction = dict(
                    (
                        await s.execute(
                            select(Offer.interaction_id, func.count())
                            .where(Offer.state == OfferState.LIVE)
                            .group_by(Offer.interaction_id)
                        )
                    ).all()
                )
                rescinded = await s.scalar(
                    select(func.count()).select_from(Offer).where(Offer.reason == "engine_failover")
                )
            assert set(states) == set(ids)
            assert all(states[i] in (State.QUEUED, State.OFFERED) for i in ids)
            assert max(per_interaction.values()) == 1
            assert rescinded == 3  # the dead leader's offers were withdrawn, not orphaned


async def _count_live(db, n: int) -> bool:
    return len(await live_offers(db)) == n

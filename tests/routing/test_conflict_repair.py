"""SQL refusing one decision is repaired locally: the rest of the floor keeps its offers.

A conflict used to rebuild the whole engine and rescind every live offer (``engine_failover``),
other agents' included. Now only what the refused decision touched is re-read from SQL.
Real SQL (SQLite and PostgreSQL, the latter through the one-statement offer path) and real Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from sqlalchemy import select

from interactions import service as interactions_service
from interactions.models import ActorType
from interactions.states import State
from routing import commands
from routing.engine.events import Assigned, CommandRejected, Event, OfferCreated
from routing.engine.hosted import HostedEngine
from routing.engine.state import QueueConfig
from routing.host import EngineHost
from routing.models import Offer, OfferState, Presence
from switchboard.db import Database
from tests.routing.test_host import eventually, live_offers, new_interaction, seed, state_of


@contextlib.asynccontextmanager
async def leading_host(db: Database, redis_handle):
    """A leader whose reconcile pass stays out of the way (it would adopt work behind our back)."""
    client = redis_handle.async_client()
    host = EngineHost(
        db, client, lease_ttl_ms=1500, tick_seconds=0.05, reconcile_seconds=600, desktop_grace_seconds=None
    )
    task = asyncio.create_task(host.run())
    try:
        await asyncio.wait_for(host.is_leader.wait(), 10)
        yield host, client
    finally:
        await host.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        await client.aclose()


async def all_offers(db: Database) -> dict[uuid.UUID, tuple[OfferState, str | None]]:
    async with db.sessionmaker() as s:
        return {o.id: (o.state, o.reason) for o in (await s.scalars(select(Offer))).all()}


async def offered(db: Database, count: int) -> dict[uuid.UUID, Offer]:
    """Wait for ``count`` live offers; by agent."""
    await eventually(lambda: _count_live(db, count), what=f"{count} live offers")
    return {o.agent_id: o for o in await live_offers(db)}


async def _count_live(db: Database, count: int) -> bool:
    return len(await live_offers(db)) == count


async def sql_transition(db: Database, interaction_id: uuid.UUID, to: State, **changes) -> None:
    """An edit committed straight to SQL (the agent's own screen, an adapter), racing the engine."""
    async with db.sessionmaker() as s:
        await interactions_service.transition(
            s,
            interaction_id=interaction_id,
            to_state=to,
            actor_type=ActorType.AGENT,
            actor_id="racing-edit",
            reason="edited directly",
            changes=changes or None,
        )
        await s.commit()


def untouched(before: dict[uuid.UUID, tuple[OfferState, str | None]], after, live: list[Offer]) -> None:
    for offer in live:
        assert after[offer.id] == (OfferState.LIVE, None), f"offer {offer.id} was closed: {after[offer.id]}"
    assert not [o for o, (_, reason) in after.items() if reason == "engine_failover"]
    assert {o: v for o, v in after.items() if o in before} == before


async def test_wrap_up_racing_a_direct_edit_leaves_other_offers_live(db, redis_handle, redis_sync):
    agent_ids, _ = await seed(db, agents=4, chat_max=1)
    async with leading_host(db, redis_handle) as (host, client):
        held = await new_interaction(db, client, 1)
        (offer,) = (await offered(db, 1)).values()
        holder = str(offer.agent_id)
        reply = await commands.call(client, commands.Accept(offer_id=str(offer.id), agent_id=holder))
        assert reply == {"ok": True}
        for n in (2, 3, 4):
            await new_interaction(db, client, n)
        others = list((await offered(db, 3)).values())
        assert holder not in {str(o.agent_id) for o in others}  # chat_max=1: the holder is full
        before = await all_offers(db)

        # The agent finishes the work straight in SQL while the engine still has it connected.
        await sql_transition(db, held, State.WRAP_UP)
        await sql_transition(db, held, State.COMPLETED)
        refused = await commands.call(client, commands.WrapUp(interaction_id=str(held), agent_id=holder))
        assert refused["ok"] is False

        # Nobody else's offer moved; the conflicting interaction is consistent with SQL: the engine
        # no longer counts it, so the holder's capacity is free for the next arrival.
        untouched(before, await all_offers(db), others)
        assert await state_of(db, held) is State.COMPLETED
        assert not host.engine.knows(str(held))
        nxt = await new_interaction(db, client, 5)
        await eventually(lambda: _offered_to(db, nxt, holder), what="the next arrival offered to the holder")
        untouched(before, await all_offers(db), others)
    assert len(agent_ids) == 4


async def test_offer_to_an_agent_sql_says_is_full_is_repaired(db, redis_handle, redis_sync):
    agent_ids, _ = await seed(db, agents=3, chat_max=1)
    async with leading_host(db, redis_handle) as (host, client):
        for n in (1, 2):
            await new_interaction(db, client, n)
        by_agent = await offered(db, 2)
        (free,) = {str(a) for a in agent_ids} - {str(a) for a in by_agent}
        before = await all_offers(db)

        # The free agent takes a chat of their own, committed straight to SQL (no adopt command):
        # SQL counts it against their capacity, the engine does not know it yet.
        own = await new_interaction(db, client, 3, notify=False)
        await sql_transition(db, own, State.OFFERED, agent_id=uuid.UUID(free))
        await sql_transition(db, own, State.CONNECTED)

        # The next arrival: the engine offers it to the agent it believes free; SQL refuses.
        arrival = await new_interaction(db, client, 4)
        await eventually(lambda: _engine_holds(host, str(own), free), what="the agent's own work counted")

        untouched(before, await all_offers(db), list(by_agent.values()))
        assert await state_of(db, arrival) is State.QUEUED
        assert await live_offers(db, arrival) == []
        assert host.engine.knows(str(arrival))  # waiting in its queue again, its place kept
        async with db.sessionmaker() as s:
            assert (await s.scalars(select(Offer).where(Offer.interaction_id == arrival))).all() == []


async def _offered_to(db: Database, interaction_id: uuid.UUID, agent_id: str) -> bool:
    return [str(o.agent_id) for o in await live_offers(db, interaction_id)] == [agent_id]


async def _engine_holds(host: EngineHost, interaction_id: str, agent_id: str) -> bool:
    return host.engine is not None and host.engine.holder_of(interaction_id) == agent_id


# --------------------------------------------------------------------------- the engine's part


def test_engine_forget_releases_what_the_interaction_held_and_emits_nothing() -> None:
    e = HostedEngine([QueueConfig("retail")])
    e.add_agent(0, "a", queues=("retail",), presence=Presence.AVAILABLE, channel_max={"chat": 1})
    (first,) = new_offers(e.enqueue(1, "c1", "chat", queue="retail"))
    assert any(isinstance(ev, Assigned) for ev in e.accept(2, first.offer_id, "a"))
    assert new_offers(e.enqueue(3, "c2", "chat", queue="retail", virtual_start=1.5)) == []
    assert new_offers(e.enqueue(3, "c3", "chat", queue="retail", virtual_start=0.5)) == []

    assert e.forget("c2") is None and not e.knows("c2")  # waiting: out of its queue
    assert e.forget("c1") is None and e.held_by("a") == {}  # held: the capacity is free again
    assert e.forget("unknown") is None
    (offer,) = new_offers(e.tick(4))  # the freed agent takes the oldest waiting work
    assert (offer.interaction_id, offer.agent_id) == ("c3", "a")

    assert e.forget("c3") == offer.offer_id  # offered: the offer is dropped, the reservation freed
    assert new_offers(e.tick(5)) == []
    # Re-added as SQL has it (its virtual start, its place): offered again.
    (again,) = new_offers(e.enqueue(6, "c2", "chat", queue="retail", virtual_start=1.5))
    assert (again.interaction_id, again.agent_id) == ("c2", "a")
    assert [type(ev) for ev in e.accept(7, offer.offer_id, "a")] == [CommandRejected]


def new_offers(events: list[Event]) -> list[OfferCreated]:
    return [ev for ev in events if isinstance(ev, OfferCreated)]

"""SQL refusing one decision is repaired locally: the rest of the floor keeps its offers.

A conflict used to rebuild the whole engine and rescind every live offer (``engine_failover``),
other agents' included. Now only what the refused decision touched is re-read from SQL.
Real SQL (SQLite and PostgreSQL, the latter through the one-statement offer path) and real Redis.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from interactions.states import State
from routing.engine.events import Assigned, CommandRejected, Event, OfferCreated, Transferred
from routing.engine.hosted import ConsultEnded, HostedEngine
from routing.engine.state import QueueConfig
from routing.host import EngineHost
from routing.host.repair import touched_by
from routing.models import Offer
from switchboard import commands
from switchboard.db import Database
from tests.factories import queued_chat, routing_floor, sql_transition
from tests.helpers import all_offers, eventually, leading_host, live_offers, offered, state_of, untouched
from workforce.models import Presence


async def test_wrap_up_racing_a_direct_edit_leaves_other_offers_live(db, redis_handle, redis_sync):
    agent_ids, _ = await routing_floor(db, agents=4, chat_max=1)
    async with leading_host(db, redis_handle) as (host, client):
        held = await queued_chat(db, client, 1)
        (offer,) = (await offered(db, 1)).values()
        holder = str(offer.agent_id)
        reply = await commands.call(client, commands.Accept(offer_id=str(offer.id), agent_id=holder))
        assert reply == {"ok": True}
        for n in (2, 3, 4):
            await queued_chat(db, client, n)
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
        nxt = await queued_chat(db, client, 5)
        await eventually(lambda: _offered_to(db, nxt, holder), what="the next arrival offered to the holder")
        untouched(before, await all_offers(db), others)
    assert len(agent_ids) == 4


async def test_offer_to_an_agent_sql_says_is_full_is_repaired(db, redis_handle, redis_sync):
    agent_ids, _ = await routing_floor(db, agents=3, chat_max=1)
    async with leading_host(db, redis_handle) as (host, client):
        for n in (1, 2):
            await queued_chat(db, client, n)
        by_agent = await offered(db, 2)
        (free,) = {str(a) for a in agent_ids} - {str(a) for a in by_agent}
        before = await all_offers(db)

        # The free agent takes a chat of their own, committed straight to SQL (no adopt command):
        # SQL counts it against their capacity, the engine does not know it yet.
        own = await queued_chat(db, client, 3, notify=False)
        await sql_transition(db, own, State.OFFERED, agent_id=uuid.UUID(free))
        await sql_transition(db, own, State.CONNECTED)

        # The next arrival: the engine offers it to the agent it believes free; SQL refuses.
        arrival = await queued_chat(db, client, 4)
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


def test_a_refused_decision_names_every_agent_it_touched_for_the_repair() -> None:
    """A transfer SQL refuses is repaired for its sender and its target as well as the work: both
    agents' capacity moved in the engine (it used to name only an event's ``agent_id``)."""
    events: list[Event] = [
        Transferred("i1", from_agent="a1", to_queue=None, to_agent="a2"),
        OfferCreated("of-1", "i2", "a3", "retail", 0.0, "arrival"),
        ConsultEnded("p1", "c1", "a4", "accepted", to_agent="a5"),
    ]
    assert touched_by(events) == ({"i1", "i2", "p1", "c1"}, {"a1", "a2", "a3", "a4", "a5"})

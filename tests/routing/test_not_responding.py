"""Not-responding means not responding (issue #15 item 4), through a real engine host on SQL and
Redis: only an offer that expired without any answer from an idle, available agent marks them;
never on break, never while they work on something they accepted, never for a fail-over."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select

from interactions.models import Interaction
from interactions.states import State
from routing.engine import EngineConfig
from routing.models import Offer, OfferState
from switchboard import commands
from tests.factories import queued_chat, routing_floor, set_presence
from tests.helpers import eventually, live_offers, running_host
from workforce.models import Agent, Presence

SHORT = EngineConfig(offer_ttl={"voice": 1.0, "chat": 1.0, "ticket": 1.0, "email": 1.0})


async def _presence(db, agent_id: uuid.UUID) -> Presence:
    async with db.sessionmaker() as s:
        return (await s.get(Agent, agent_id, populate_existing=True)).presence


async def _offer_states(db, interaction_id: uuid.UUID) -> list[OfferState]:
    async with db.sessionmaker() as s:
        rows = await s.scalars(select(Offer.state).where(Offer.interaction_id == interaction_id))
        return list(rows)


async def _rescinded(db, iid) -> bool:
    return OfferState.RESCINDED in await _offer_states(db, iid)


async def _has_offer(db, iid) -> bool:
    return bool(await live_offers(db, iid))


async def test_silence_from_an_idle_available_agent_marks_them(db, redis_handle, redis_sync):
    (agent_id,), _ = await routing_floor(db, agents=1)
    async with running_host(db, redis_handle, engine_config=SHORT) as (host, client, _):
        await asyncio.wait_for(host.is_leader.wait(), 10)
        iid = await queued_chat(db, client, 1)
        await eventually(lambda: _has_offer(db, iid), what="an offer")

        async def marked() -> bool:
            return await _presence(db, agent_id) is Presence.NOT_RESPONDING

        await eventually(marked, what="the agent marked not-responding")
        assert await _offer_states(db, iid) == [OfferState.EXPIRED]


async def test_an_offer_missed_on_break_keeps_the_break(db, redis_handle, redis_sync):
    (agent_id,), _ = await routing_floor(db, agents=1)
    async with running_host(db, redis_handle, engine_config=SHORT) as (host, client, _):
        await asyncio.wait_for(host.is_leader.wait(), 10)
        iid = await queued_chat(db, client, 1)
        await eventually(lambda: _has_offer(db, iid), what="an offer")
        await set_presence(db, client, agent_id, Presence.BREAK)  # the offer stays, as designed

        async def expired() -> bool:
            return OfferState.EXPIRED in await _offer_states(db, iid)

        await eventually(expired, what="the offer expired")
        # A mark would be the expiry's own decision, written in the same transaction: no wait.
        assert await _presence(db, agent_id) is Presence.BREAK


async def test_an_offer_missed_while_busy_with_accepted_work_does_not_mark(db, redis_handle, redis_sync):
    (agent_id,), _ = await routing_floor(db, agents=1)
    async with running_host(db, redis_handle, engine_config=SHORT) as (host, client, _):
        await asyncio.wait_for(host.is_leader.wait(), 10)
        first = await queued_chat(db, client, 1, notify=False)
        second = await queued_chat(db, client, 2, notify=False)
        await commands.notify_enqueued(client, first)
        await eventually(lambda: _has_offer(db, first), what="the first offer")
        (offer,) = await live_offers(db, first)
        reply = await commands.call(
            client, {"type": "accept", "offer_id": str(offer.id), "agent_id": str(agent_id)}
        )
        assert reply["ok"], reply
        await commands.notify_enqueued(client, second)

        async def second_missed() -> bool:
            return OfferState.EXPIRED in await _offer_states(db, second)

        await eventually(second_missed, what="the second offer missed")
        # A mark would be the expiry's own decision, written in the same transaction: no wait.
        assert await _presence(db, agent_id) is Presence.AVAILABLE
        async with db.sessionmaker() as s:
            held = await s.get(Interaction, first)
            assert (held.state, held.agent_id) == (State.CONNECTED, agent_id)


async def test_a_fail_over_never_marks(db, redis_handle, redis_sync):
    """Offers a previous leader left live are kept by the next one, and an accept of one is
    honoured: nobody is unresponsive, nothing is taken back from a desktop. (A kept offer that
    then expires unanswered does not mark its agent: test_kept_offers.py.)"""
    agent_ids, _ = await routing_floor(db, agents=2)
    long_ttl = EngineConfig()  # the offers must outlive the hand-over, not expire during it
    async with running_host(db, redis_handle, engine_config=long_ttl) as (host, client, _):
        await asyncio.wait_for(host.is_leader.wait(), 10)
        iids = [await queued_chat(db, client, n) for n in range(2)]
        for iid in iids:
            await eventually(lambda iid=iid: _has_offer(db, iid), what="offers")
        before = {o.id: o.agent_id for o in await live_offers(db)}
    async with running_host(db, redis_handle, engine_config=long_ttl) as (host, client, _):
        await asyncio.wait_for(host.is_leader.wait(), 10)
        assert {o.id: o.agent_id for o in await live_offers(db)} == before
        assert not [iid for iid in iids if await _rescinded(db, iid)]
        for agent_id in agent_ids:
            assert await _presence(db, agent_id) is Presence.AVAILABLE
        offer_id, agent_id = next(iter(before.items()))
        reply = await commands.call(
            client, {"type": "accept", "offer_id": str(offer_id), "agent_id": str(agent_id)}
        )
        assert reply["ok"], reply

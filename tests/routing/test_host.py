"""The engine host end to end in-process: real SQL (SQLite and PostgreSQL) and real Redis.

Hosts run as asyncio tasks here; tests/routing/test_failover_processes.py does the same with
real app processes that get killed.
"""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select, update

from interactions.models import Interaction
from interactions.states import State
from routing.engine.state import EngineConfig
from routing.models import Offer, OfferState
from switchboard import commands
from tests.factories import queued_chat, routing_floor
from tests.helpers import eventually, kill_host, live_offers, running_host, state_of
from workforce.models import Agent, OfferPolicy, Presence, Queue
from workforce.presence_log import PresenceChange


async def test_offer_accept_wrap_up_complete(db, redis_handle, redis_sync):
    agent_ids, _ = await routing_floor(db, agents=1)
    async with running_host(db, redis_handle) as (host, client, _):
        await asyncio.wait_for(host.is_leader.wait(), 10)
        iid = await queued_chat(db, client, 1)
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
    agent_ids, _ = await routing_floor(db, agents=2)
    async with running_host(db, redis_handle) as (host, client, _):
        await asyncio.wait_for(host.is_leader.wait(), 10)
        iid = await queued_chat(db, client, 2)
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
        # Route all waiting work again (its reply follows the decisions' commit): still nobody.
        assert (await commands.call(client, commands.Reevaluate()))["ok"]
        assert await live_offers(db, iid) == []  # both declined: nobody left to offer it to
        assert await state_of(db, iid) is State.QUEUED


async def test_lost_enqueue_command_is_routed_by_reconcile(db, redis_handle, redis_sync):
    await routing_floor(db, agents=1)
    async with running_host(db, redis_handle) as (host, client, _):
        await asyncio.wait_for(host.is_leader.wait(), 10)
        iid = await queued_chat(db, client, 3, notify=False)  # the API died before notifying
        await eventually(lambda: _has_offer(db, iid), what="reconcile to route it")


async def test_missed_offer_makes_agent_not_responding_and_moves_on(db, redis_handle, redis_sync):
    agent_ids, _ = await routing_floor(db, agents=2)
    config = EngineConfig(offer_ttl={"voice": 0.4, "chat": 0.4, "ticket": 0.4, "email": 0.4})
    async with running_host(db, redis_handle, engine_config=config) as (host, client, _):
        await asyncio.wait_for(host.is_leader.wait(), 10)
        iid = await queued_chat(db, client, 4)
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
            # The engine's change is in the agent's presence log (adherence reads it), once.
            logged = (
                await s.execute(
                    select(PresenceChange.presence, PresenceChange.by, PresenceChange.at).where(
                        PresenceChange.agent_id == first.agent_id
                    )
                )
            ).all()
            assert [(p, by) for p, by, _ in logged] == [(Presence.NOT_RESPONDING, "engine")]
            assert logged[0].at == agent.presence_since


async def test_leader_dies_standby_takes_over_nothing_lost_or_doubled(db, redis_handle, redis_sync):
    """Kill the leader (no clean release) mid-traffic: the stand-by takes over after the lease lapses."""
    await routing_floor(db, agents=2, chat_max=2)
    async with db.sessionmaker() as s:  # every free place offered at once: 2 agents x 2 chats
        await s.execute(update(Queue).values(offer_policy=OfferPolicy.UP_TO_CAPACITY))
        await s.commit()
    async with running_host(db, redis_handle) as (a, client_a, task_a):
        await asyncio.wait_for(a.is_leader.wait(), 10)
        async with running_host(db, redis_handle) as (b, client_b, _):
            ids = [await queued_chat(db, client_a, 10 + n) for n in range(3)]
            await eventually(lambda: _count_live(db, 3), what="three offers from the first leader")
            assert not b.is_leader.is_set()
            first_offers = {o.id for o in await live_offers(db)}

            await kill_host(task_a)  # the leader process dies: no lease release, offers left live
            ids += [await queued_chat(db, client_b, 20 + n) for n in range(4)]
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
            # The dead leader's offers are kept as they are (the agents still have room for them),
            # not withdrawn and made again: the desktops keep what they show; one more is made.
            assert rescinded == 0
            assert first_offers < {o.id for o in await live_offers(db)}


async def _count_live(db, n: int) -> bool:
    return len(await live_offers(db)) == n

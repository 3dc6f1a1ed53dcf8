"""An accept clicked before the offer's expiry is honoured even behind a burst of arrivals
(issue #15 item 3): judged by when the API received it, and carried in the priority lane."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from interactions.models import Interaction
from interactions.schemas import InteractionCreate
from interactions.service import Actor, create_interaction
from interactions.states import State
from routing.engine import EngineConfig
from routing.host import EngineHost
from routing.host.leadership import ANSWER_GRACE_SECONDS
from routing.models import Offer, OfferState
from switchboard import commands
from tests.factories import available_agent, make_queue, queued_chat
from tests.helpers import eventually, live_offers
from workforce.models import Agent, Presence

BURST = 1_500
TTL = 4.0


@contextlib.asynccontextmanager
async def _host(db, redis_handle):
    client = redis_handle.async_client()
    # No reconcile pass during the test: it would route the burst from SQL on its own; here the
    # burst arrives as it does from the API, as enqueue commands all at once.
    host = EngineHost(
        db,
        client,
        lease_ttl_ms=3000,
        tick_seconds=0.05,
        reconcile_seconds=3600,
        engine_config=EngineConfig(
            offer_ttl={"voice": TTL, "chat": TTL, "ticket": TTL, "email": TTL},
            answer_grace_seconds=ANSWER_GRACE_SECONDS,  # as in production
        ),
    )
    task = asyncio.create_task(host.run())
    try:
        await asyncio.wait_for(host.is_leader.wait(), 10)
        yield client
    finally:
        await host.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=20)
        await client.aclose()


async def _burst_in_sql(db) -> list[uuid.UUID]:
    """Email arriving for a queue nobody serves: each is placed, none offered."""
    async with db.sessionmaker() as s:
        await make_queue(s, "bulk", channels=["email"])
        ids = []
        for n in range(BURST):
            data = InteractionCreate(
                channel="email", queue="bulk", identity={"kind": "phone", "value": "+447911123456"}
            )
            it = await create_interaction(s, data=data, actor=Actor.system(), default_region="GB")
            ids.append(it.id)
            if n % 250 == 249:
                await s.commit()
        await s.commit()
        return ids


async def test_accept_sent_a_second_before_expiry_behind_a_burst_is_honoured(
    client, db, redis_handle, make_user
):
    agent_id, headers = await available_agent(db, make_user)
    async with _host(db, redis_handle) as redis_client:
        burst = await _burst_in_sql(db)
        iid = await queued_chat(db, redis_client, 1)
        await eventually(lambda: _live(db, iid), what="an offer")
        (offer,) = await live_offers(db, iid)
        # The burst goes in two seconds before expiry (writing 1,500 stream entries takes a while
        # on a busy machine, and must not eat into the agent's second), the click one second before.
        await asyncio.sleep(max(0.0, offer.expires_at.timestamp() - 2.0 - time.time()))
        async with redis_client.pipeline(transaction=False) as pipe:
            for bulk_id in burst:
                pipe.xadd(
                    commands.stream_key(),
                    {"c": f'{{"type": "enqueue", "interaction_id": "{bulk_id}"}}'},
                )
            await pipe.execute()
        await asyncio.sleep(max(0.0, offer.expires_at.timestamp() - 1.0 - time.time()))
        sent = time.time()
        accepted = await client.post(f"/api/routing/offers/{offer.id}/accept", headers=headers)
        assert sent < offer.expires_at.timestamp()
        assert accepted.status_code == 200, accepted.text

        async with db.sessionmaker() as s:
            assert (await s.get(Offer, offer.id)).state is OfferState.ACCEPTED
            it = await s.get(Interaction, iid)
            assert (it.state, it.agent_id) == (State.CONNECTED, agent_id)
            assert (await s.get(Agent, agent_id)).presence is Presence.AVAILABLE


async def _live(db, iid) -> bool:
    return bool(await live_offers(db, iid))

"""One pending offer at a time, and a break that waits for the offer (issue #10 items 1 and 2),
through a real engine host on SQL (SQLite and PostgreSQL) and Redis."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select, update

from routing.engine import EngineConfig
from routing.models import Offer, OfferState
from switchboard import commands
from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from tests.factories import queued_chat, routing_floor, set_presence
from tests.helpers import eventually, live_offers, running_host
from workforce.models import Agent, Presence

SHORT = EngineConfig(offer_ttl={"voice": 1.0, "chat": 1.0, "ticket": 1.0, "email": 1.0})


async def _go_offline(db, agent_id: uuid.UUID) -> None:
    async with db.sessionmaker() as s:
        await s.execute(update(Agent).where(Agent.id == agent_id).values(presence=Presence.OFFLINE))
        await s.commit()


async def test_going_available_with_three_chats_queued_offers_one_then_the_next(db, redis_handle, redis_sync):
    (agent_id,), _ = await routing_floor(db, agents=1, chat_max=3)
    await _go_offline(db, agent_id)
    async with running_host(db, redis_handle) as (host, client, _):
        await asyncio.wait_for(host.is_leader.wait(), 10)
        chats = [await queued_chat(db, client, n) for n in range(3)]
        await set_presence(db, client, agent_id, Presence.AVAILABLE)

        async def offered() -> bool:
            return bool(await live_offers(db))

        await eventually(offered, what="an offer")
        (first,) = await live_offers(db)  # one, though three chats fit the agent's capacity
        assert first.interaction_id == chats[0]
        accepted = await commands.call(
            client, {"type": "accept", "offer_id": str(first.id), "agent_id": str(agent_id)}
        )
        assert accepted == {"ok": True}

        async def the_next() -> bool:
            return any(o.interaction_id != chats[0] for o in await live_offers(db))

        await eventually(the_next, what="the next offer")
        (second,) = await live_offers(db)
        assert second.interaction_id == chats[1] and second.agent_id == agent_id


async def test_a_break_asked_for_with_an_offer_pending_starts_when_it_expires(db, redis_handle, redis_sync):
    (agent_id,), _ = await routing_floor(db, agents=1)
    async with running_host(db, redis_handle, engine_config=SHORT) as (host, client, _):
        await asyncio.wait_for(host.is_leader.wait(), 10)
        iid = await queued_chat(db, client, 1)

        async def offered() -> bool:
            return bool(await live_offers(db, iid))

        await eventually(offered, what="an offer")
        await set_presence(db, client, agent_id, Presence.BREAK)

        async def expired() -> Offer | None:
            async with db.sessionmaker() as s:
                return await s.scalar(
                    select(Offer).where(Offer.interaction_id == iid, Offer.state == OfferState.EXPIRED)
                )

        await eventually(lambda: _is_some(expired()), what="the offer expired")
        offer = await expired()
        async with db.sessionmaker() as s:
            agent = await s.get(Agent, agent_id)
        # The break took effect when the offer ended (its clock starts then), not before; and
        # the missed offer did not make the agent "not responding".
        assert agent.presence is Presence.BREAK
        assert offer is not None and offer.decided_at is not None
        assert agent.presence_since >= offer.decided_at


async def _is_some(value) -> bool:
    return (await value) is not None


async def test_a_supervisor_sets_a_queues_offer_policy_and_routing_applies_it_live(db, routed, make_user):
    """PATCH /api/workforce/queues/{id} (audited): with up_to_capacity the agent holding one
    offer is offered the other waiting chats at once; a bad value is a 422 naming the field."""
    app, client = routed
    (agent_id,), queue_id = await routing_floor(db, agents=1, chat_max=3)
    redis = app.state.redis_client
    await commands.send(redis, commands.AgentChanged(agent_id=str(agent_id)))  # made after the start
    chats = [await queued_chat(db, redis, n) for n in range(3)]

    async def offered(n: int) -> bool:
        return len(await live_offers(db)) == n

    await eventually(lambda: offered(1), what="one offer")
    _, headers = await make_user(Role.SUPERVISOR)
    listed = await client.get("/api/workforce/queues", headers=headers)
    assert listed.status_code == 200
    assert [(q["name"], q["offer_policy"]) for q in listed.json()] == [("retail", "one_at_a_time")]

    bad = await client.patch(
        f"/api/workforce/queues/{queue_id}", json={"offer_policy": "all"}, headers=headers
    )
    assert bad.status_code == 422 and "offer_policy" in bad.text
    agent_headers = (await make_user(Role.AGENT))[1]
    denied = await client.patch(
        f"/api/workforce/queues/{queue_id}", json={"offer_policy": "up_to_capacity"}, headers=agent_headers
    )
    assert denied.status_code == 403

    changed = await client.patch(
        f"/api/workforce/queues/{queue_id}", json={"offer_policy": "up_to_capacity"}, headers=headers
    )
    assert changed.status_code == 200 and changed.json()["offer_policy"] == "up_to_capacity"
    await eventually(lambda: offered(3), what="the other two offered at once")
    assert sorted(o.interaction_id for o in await live_offers(db)) == sorted(chats)
    assert {o.agent_id for o in await live_offers(db)} == {agent_id}
    async with db.sessionmaker() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "queue.offer_policy_changed"))
    assert entry is not None and entry.data["after"] == {"offer_policy": "up_to_capacity"}


async def test_the_queues_page_shows_and_changes_the_offer_policy(db, client, make_user):
    _, queue_id = await routing_floor(db, agents=1)
    _, headers = await make_user(Role.SUPERVISOR)
    page = await client.get("/supervisor/queues", headers={**headers, "accept": "text/html"})
    assert page.status_code == 200
    assert f'id="policy-{queue_id}"' in page.text and 'value="one_at_a_time" selected' in page.text
    bad = await client.post(f"/supervisor/queues/{queue_id}", data={"offer_policy": "x"}, headers=headers)
    assert bad.status_code == 422 and "offer_policy" in bad.text
    saved = await client.post(
        f"/supervisor/queues/{queue_id}", data={"offer_policy": "up_to_capacity"}, headers=headers
    )
    assert saved.status_code == 303
    page = await client.get(saved.headers["location"], headers={**headers, "accept": "text/html"})
    assert 'value="up_to_capacity" selected' in page.text and "offer policy saved" in page.text

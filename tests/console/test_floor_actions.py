"""Supervisor actions on the floor (issue #11 item 2) through the real engine host: sign out a
vanished desktop (its offer goes back), set an agent's state with a reason, end stuck work —
each audited, ended work on its timeline; bad input named, roles checked, nothing half-done."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select

from interactions.models import Interaction, TimelineEvent
from interactions.states import State
from routing.models import Offer, OfferState
from switchboard import commands
from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from tests.factories import make_agent, make_queue, queued_chat, routing_floor, set_presence
from tests.helpers import eventually, live_offers, state_of
from workforce.models import Agent, Presence


async def _offered(db, iid) -> Offer:
    async def one() -> bool:
        return bool(await live_offers(db, iid))

    await eventually(one, what="an offer")
    (offer,) = await live_offers(db, iid)
    return offer


async def _floor(app, db, *, agents: int, available: bool = True) -> list[uuid.UUID]:
    """Queue "retail" and its agents, made after the engine started: it is told to re-read them."""
    ids, _ = await routing_floor(db, agents=agents, chat_max=1)
    redis = app.state.redis_client
    assert await commands.call(redis, {"type": "queues_changed"}) == {"ok": True}
    for agent_id in ids:
        await set_presence(db, redis, agent_id, Presence.AVAILABLE if available else Presence.OFFLINE)
    return ids


async def _audit(db, action: str) -> list[AuditEntry]:
    async with db.sessionmaker() as s:
        rows = list(await s.scalars(select(AuditEntry).where(AuditEntry.action == action)))
        await s.commit()
    return rows


async def test_signing_out_a_vanished_desktop_sends_its_offer_back(routed, db, make_user):
    app, client = routed
    agent_id, other_id = await _floor(app, db, agents=2)
    redis = app.state.redis_client
    await set_presence(db, redis, other_id, Presence.OFFLINE)
    iid = await queued_chat(db, redis, 1)
    offer = await _offered(db, iid)
    assert offer.agent_id == agent_id
    supervisor, headers = await make_user(Role.SUPERVISOR)

    response = await client.post(
        f"/api/supervisor/agents/{agent_id}/state",
        json={"presence": "offline", "reason": "Desktop vanished"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["presence"] == "offline"

    async def rescinded() -> bool:
        async with db.sessionmaker() as s:
            row = await s.get(Offer, offer.id, populate_existing=True)
            await s.commit()
        return row.state != OfferState.LIVE

    await eventually(rescinded, what="the offer taken back")
    assert await state_of(db, iid) == State.QUEUED  # back in the queue, not lost
    [entry] = await _audit(db, "agent.state_set")
    assert entry.actor_id == supervisor.id and entry.entity_id == str(agent_id)
    assert entry.data["before"]["presence"] == "available"
    assert entry.data["after"] == {"presence": "offline", "reason": "Desktop vanished"}


async def test_ending_waiting_and_connected_work(routed, db, make_user):
    app, client = routed
    (agent_id,) = await _floor(app, db, agents=1)
    redis = app.state.redis_client
    connected = await queued_chat(db, redis, 1)
    offer = await _offered(db, connected)
    assert await commands.call(
        redis, {"type": "accept", "offer_id": str(offer.id), "agent_id": str(agent_id)}
    ) == {"ok": True}
    await eventually(lambda: _state_is(db, connected, State.CONNECTED), what="connected")
    waiting = await queued_chat(db, redis, 2)  # the agent is full: it waits
    supervisor, headers = await make_user(Role.SUPERVISOR)

    ended = await client.post(
        f"/api/supervisor/interactions/{waiting}/end", json={"reason": "Test contact"}, headers=headers
    )
    assert ended.status_code == 200, ended.text
    assert await state_of(db, waiting) == State.ABANDONED

    held = await client.post(
        f"/api/supervisor/interactions/{connected}/end",
        json={"reason": "Customer left hours ago"},
        headers=headers,
    )
    assert held.status_code == 200, held.text
    async with db.sessionmaker() as s:
        row = await s.get(Interaction, connected)
        events = list(
            await s.scalars(
                select(TimelineEvent).where(
                    TimelineEvent.interaction_id == connected, TimelineEvent.kind == "ended_by_supervisor"
                )
            )
        )
        await s.commit()
    assert row.state == State.COMPLETED and row.disposition == "ended_by_supervisor"
    assert [e.data for e in events] == [{"reason": "Customer left hours ago", "state": "connected"}]
    assert [e.actor_id for e in events] == [str(supervisor.id)]
    assert len(await _audit(db, "interaction.ended")) == 2

    again = await client.post(
        f"/api/supervisor/interactions/{connected}/end", json={"reason": "twice"}, headers=headers
    )
    assert again.status_code == 409 and again.json()["errors"][0]["field"] == "interaction_id"


async def _state_is(db, iid, state) -> bool:
    return await state_of(db, iid) == state


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("agents/{agent}/state", {"presence": "offline", "reason": "x"}, 422, "reason"),
        ("agents/{agent}/state", {"presence": "busy", "reason": "Not allowed"}, 422, "presence"),
        ("agents/{unknown}/state", {"presence": "break", "reason": "Coffee"}, 404, "agent_id"),
        ("interactions/{unknown}/end", {"reason": "Stuck"}, 404, "interaction_id"),
        ("interactions/{unknown}/end", {}, 422, "reason"),
    ],
)
async def test_bad_input_is_named_and_changes_nothing(client, db, make_user, path, body, status, field):
    (agent_id,), _ = await routing_floor(db, agents=1)
    _, headers = await make_user(Role.SUPERVISOR)
    url = "/api/supervisor/" + path.format(agent=agent_id, unknown=uuid.uuid4())
    response = await client.post(url, json=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.text
    async with db.sessionmaker() as s:
        assert (await s.get(Agent, agent_id)).presence == Presence.AVAILABLE
        await s.commit()
    assert await _audit(db, "agent.state_set") == []


async def test_agents_cannot_act_on_the_floor(client, db, make_user):
    (agent_id,), _ = await routing_floor(db, agents=1)
    _, headers = await make_user(Role.AGENT)
    body = {"presence": "offline", "reason": "Because"}
    assert (
        await client.post(f"/api/supervisor/agents/{agent_id}/state", json=body, headers=headers)
    ).status_code == 403
    assert (await client.post(f"/api/supervisor/agents/{agent_id}/state", json=body)).status_code == 401


async def test_moving_waiting_work_to_another_queue_offers_it_there(routed, db, make_user):
    app, client = routed
    (retail_agent,) = await _floor(app, db, agents=1, available=False)  # nobody takes retail work
    redis = app.state.redis_client
    async with db.sessionmaker() as s:
        cards = await make_queue(s, "cards", channels=["chat"])
        cards_agent = await make_agent(
            s,
            name="Cara Cards",
            presence=Presence.AVAILABLE,
            channel_max={"chat": 1, "voice": 1},
            queues=[cards],
        )
    assert await commands.call(redis, {"type": "queues_changed"}) == {"ok": True}
    await set_presence(db, redis, cards_agent.id, Presence.AVAILABLE)
    iid = await queued_chat(db, redis, 1)
    supervisor, headers = await make_user(Role.SUPERVISOR)

    # The move list names queues as the table does (display names), and sends the queue's name.
    page = await client.get("/supervisor/work", headers=headers)
    assert page.status_code == 200, page.text
    move_list = re.search(rf'<select id="to-queue-{iid}" name="to_queue">(.*?)</select>', page.text, re.S)
    assert move_list is not None
    assert re.findall(r'<option value="([^"]+)"( selected)?>([^<]+)</option>', move_list.group(1)) == [
        ("cards", "", "Cards"),
        ("retail", " selected", "Retail"),
    ]

    moved = await client.post(
        f"/api/supervisor/interactions/{iid}/move",
        json={"to_queue": "cards", "reason": "Card question"},
        headers=headers,
    )
    assert moved.status_code == 200, moved.text
    offer = await _offered(db, iid)
    assert offer.agent_id == cards_agent.id
    async with db.sessionmaker() as s:
        row = await s.get(Interaction, iid)
        [event] = list(
            await s.scalars(
                select(TimelineEvent).where(
                    TimelineEvent.interaction_id == iid, TimelineEvent.kind == "moved"
                )
            )
        )
        await s.commit()
    assert row.queue_id == cards.id
    assert event.data["reason"] == "Card question" and event.actor_id == str(supervisor.id)
    assert len(await _audit(db, "interaction.moved")) == 1

    both = await client.post(
        f"/api/supervisor/interactions/{iid}/move",
        json={"to_queue": "retail", "to_agent_id": str(retail_agent), "reason": "Both"},
        headers=headers,
    )
    assert both.status_code == 422


async def test_raising_a_contacts_priority_serves_it_first(routed, db, make_user):
    app, client = routed
    (agent_id,) = await _floor(app, db, agents=1, available=False)
    redis = app.state.redis_client
    first = await queued_chat(db, redis, 1)
    second = await queued_chat(db, redis, 2)
    # A command answered behind the two arrivals (same stream): both are waiting in routing now,
    # as work a supervisor sees on the live-work page is.
    assert await commands.call(redis, {"type": "queues_changed"}) == {"ok": True}
    supervisor, headers = await make_user(Role.SUPERVISOR)
    raised = await client.post(
        f"/api/supervisor/interactions/{second}/priority",
        json={"priority": 50, "reason": "Vulnerable customer"},
        headers=headers,
    )
    assert raised.status_code == 200, raised.text
    await set_presence(db, redis, agent_id, Presence.AVAILABLE)
    offer = await _offered(db, second)  # the raised one first, although it came later
    assert offer.agent_id == agent_id and await live_offers(db, first) == []
    async with db.sessionmaker() as s:
        assert (await s.get(Interaction, second)).priority == 50
        await s.commit()
    [entry] = await _audit(db, "interaction.reprioritised")
    assert entry.data == {"reason": "Vulnerable customer", "priority": 50, "before": 0}

    too_high = await client.post(
        f"/api/supervisor/interactions/{first}/priority",
        json={"priority": 500, "reason": "Much"},
        headers=headers,
    )
    assert too_high.status_code == 422 and "priority" in too_high.text

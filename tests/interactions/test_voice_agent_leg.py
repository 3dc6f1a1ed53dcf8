"""An agent's device that never answers must not trap the caller (issue #10, after ddf5bc2).

Against the carrier simulator (demo's ``FakeCarrierApi`` over real HTTP, posting the agent leg's
signed status callbacks as the carrier would; the caller's side played by ``CarrierSimulator``)
and the running routing engine: the leg ends unanswered -> the caller is back in the hold loop,
the interaction queued again with its place, the agent not responding, a timeline event, and the
next available agent gets the call. A retried callback is applied once; an answered leg changes
nothing. SQLite and PostgreSQL (the ``db`` fixture's backends).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from demo.carrier import Call, CarrierSimulator, FakeCarrierApi
from interactions.models import Interaction, TimelineEvent
from interactions.states import State
from interactions.voice.models import CarrierEvent
from switchboard.auth.models import Role
from switchboard.db import Database
from tests.factories import agent_in_queue, make_queue
from tests.helpers import carrier_settings, engine_caught_up, eventually, running_carrier
from workforce.models import Agent, Presence

TOKEN = "agent-leg-carrier-token-0123456789"
ACCOUNT = "AC" + "7" * 32
BASE = "http://testserver"
CALLER = "+447911123401"
LATER_CALLER = "+447911123402"


@pytest.fixture
async def carrier() -> AsyncIterator[FakeCarrierApi]:
    async with running_carrier(account_sid=ACCOUNT, auth_token=TOKEN) as fake:
        yield fake


@pytest.fixture
def settings(settings, carrier):
    return carrier_settings(settings, carrier, voice_agent_ring_seconds=15)


async def _interaction_of(db: Database, call: Call) -> Interaction:
    async with db.sessionmaker() as s:
        found = await s.scalar(
            select(Interaction)
            .join(CarrierEvent, CarrierEvent.interaction_id == Interaction.id)
            .where(CarrierEvent.event_key == f"{call.call_sid}:interaction")
        )
        await s.commit()
    assert found is not None
    return found


async def _get(db: Database, model: Any, key: uuid.UUID) -> Any:
    async with db.sessionmaker() as s:
        row = await s.get(model, key)
        await s.commit()
    assert row is not None
    return row


async def _children(db: Database, parent_id: uuid.UUID) -> list[Interaction]:
    async with db.sessionmaker() as s:
        rows = list(await s.scalars(select(Interaction).where(Interaction.parent_id == parent_id)))
        await s.commit()
    return rows


async def _events(db: Database, interaction_id: uuid.UUID, kind: str) -> list[TimelineEvent]:
    async with db.sessionmaker() as s:
        rows = list(
            await s.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.interaction_id == interaction_id, TimelineEvent.kind == kind)
                .order_by(TimelineEvent.id)
            )
        )
        await s.commit()
    return rows


async def _available(client, headers: dict[str, str]) -> None:
    answer = await client.post("/api/routing/presence", json={"presence": "available"}, headers=headers)
    assert answer.status_code == 200, answer.text


async def _accept_offer(client, headers: dict[str, str], interaction_id: uuid.UUID) -> None:
    async def offered() -> bool:
        offers = (await client.get("/api/routing/offers", headers=headers)).json()
        return any(o["interaction_id"] == str(interaction_id) for o in offers)

    await eventually(offered, what=f"an offer of {interaction_id}")
    offers = (await client.get("/api/routing/offers", headers=headers)).json()
    [offer] = [o for o in offers if o["interaction_id"] == str(interaction_id)]
    accepted = await client.post(f"/api/routing/offers/{offer['id']}/accept", headers=headers)
    assert accepted.status_code == 200, accepted.text


async def test_unanswered_agent_device_returns_the_caller_to_the_queue_in_place(
    routed, db, make_user, carrier
) -> None:
    app, client = routed
    async with db.sessionmaker() as s:
        await make_queue(s, "retail")
        await s.commit()
    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE, api=carrier)
    carrier.webhooks = client
    first_user, first = await make_user(Role.AGENT)
    second_user, second = await make_user(Role.AGENT)
    first_id = await agent_in_queue(db, first_user)
    second_id = await agent_in_queue(db, second_user)
    carrier.device_does_not_answer(first_id)  # the softphone is not there: it rings out
    await _available(client, first)
    call = await sim.incoming(CALLER)
    await sim.press(call, "1")
    parent = await _interaction_of(db, call)
    await _accept_offer(client, first, parent.id)
    await sim.wait(call)
    assert call.conference == f"interaction-{parent.id}"
    # The device is added with a ring timeout and a signed status callback naming the leg's owner.
    [added] = carrier.participant_adds
    assert added["Timeout"] == ["15"] and added["To"] == [f"client:{first_id}"]
    callback = added["StatusCallback"][0]
    assert callback.startswith(f"{BASE}/carrier/twilio/voice/agent-leg?")
    assert f"interaction={parent.id}" in callback and f"agent={first_id}" in callback
    assert "completed" in added["StatusCallbackEvent"]

    # While it rings, the caller waits in the conference; the turn of the loop does not re-ring.
    await sim.post(sim.url("wait"), sim.params(call, CallStatus="in-progress"))
    assert len(carrier.participant_adds) == 1

    # Someone else calls meanwhile: they queue behind the first caller.
    later = await sim.incoming(LATER_CALLER)
    await sim.press(later, "1")
    assert "number 1 in the queue" in later.said

    # The ring timeout passes: the carrier reports the leg "completed" with CallStatus no-answer.
    answers = await carrier.deliver_leg_callbacks()
    assert [a.status_code for a in answers] == [200, 200]  # ringing, then the unanswered end
    [ended] = await _events(db, parent.id, "agent_leg_unanswered")
    assert ended.data["status"] == "no-answer" and ended.data["agent_id"] == str(first_id)
    assert ended.data["text"] == "The agent's phone did not answer"
    assert ended.actor_type.value == "system"

    # Back in its queue with its place (the transfer's child keeps the virtual start), never to be
    # offered to the agent who missed it, and that agent is not responding.
    [child] = await _children(db, parent.id)
    assert (await _get(db, Interaction, parent.id)).state is State.TRANSFERRED
    assert child.state is State.QUEUED and child.queue_id == parent.queue_id
    assert child.virtual_start_at == (await _get(db, Interaction, parent.id)).virtual_start_at
    first_agent = await _get(db, Agent, first_id)
    assert first_agent.presence is Presence.NOT_RESPONDING
    assert first_agent.presence_reason == "phone did not answer"

    # The caller left the conference for the hold loop, where they are first in line again.
    [update] = [u for u in carrier.updates if u.call_sid == call.call_sid]
    assert update.twiml is not None
    assert update.twiml.endswith("/carrier/twilio/voice/wait</Redirect></Response>")
    await sim.redirected(call)
    assert "number 1 in the queue" in call.said and call.conference is None
    await sim.wait(later)
    assert "number 2 in the queue" in later.said
    assert carrier.live_conference(f"interaction-{parent.id}") is None

    # The next available agent gets it (not the later caller), and the call bridges to them.
    await _available(client, second)
    await _accept_offer(client, second, child.id)
    await sim.wait(call)
    assert call.conference == f"interaction-{child.id}"
    assert carrier.participant_adds[-1]["To"] == [f"client:{second_id}"]
    assert (await _get(db, Interaction, child.id)).agent_id == second_id


async def test_retried_callback_is_applied_once(routed, db, make_user, carrier) -> None:
    app, client = routed
    async with db.sessionmaker() as s:
        await make_queue(s, "retail")
        await s.commit()
    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE, api=carrier)
    carrier.webhooks = client
    user, headers = await make_user(Role.AGENT)
    agent_id = await agent_in_queue(db, user)
    carrier.device_does_not_answer(agent_id, status="busy")
    await _available(client, headers)
    call = await sim.incoming(CALLER)
    await sim.press(call, "1")
    parent = await _interaction_of(db, call)
    await _accept_offer(client, headers, parent.id)
    await sim.wait(call)
    await carrier.deliver_leg_callbacks()
    [ending] = [c for c in carrier.delivered_leg_callbacks if c.params["CallStatus"] == "busy"]

    for _ in range(2):  # the carrier retries (twice)
        again = await carrier.post_leg_callback(ending)
        assert again.status_code == 200
    await engine_caught_up(app.state.engine_host.client)
    assert len(await _events(db, parent.id, "agent_leg_unanswered")) == 1
    assert len(await _children(db, parent.id)) == 1
    assert len(await _events(db, parent.id, "transferred")) == 1
    assert len([u for u in carrier.updates if u.call_sid == call.call_sid]) == 1
    async with db.sessionmaker() as s:
        claims = await s.scalar(
            select(func.count()).select_from(CarrierEvent).where(CarrierEvent.kind == "agent_leg_status")
        )
        await s.commit()
    assert claims == 2  # ringing, busy: one row each, the retries added none


async def test_answered_agent_leg_changes_nothing(routed, db, make_user, carrier) -> None:
    app, client = routed
    async with db.sessionmaker() as s:
        await make_queue(s, "retail")
        await s.commit()
    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE, api=carrier)
    carrier.webhooks = client
    user, headers = await make_user(Role.AGENT)
    agent_id = await agent_in_queue(db, user)
    await _available(client, headers)
    call = await sim.incoming(CALLER)
    await sim.press(call, "1")
    interaction = await _interaction_of(db, call)
    await _accept_offer(client, headers, interaction.id)
    await sim.wait(call)
    answers = await carrier.deliver_leg_callbacks()
    assert [c.params["CallStatus"] for c in carrier.delivered_leg_callbacks] == ["ringing", "in-progress"]
    assert all(a.status_code == 200 for a in answers)
    # A late or forged "no-answer" for the answered leg is not an unanswered end either.
    answered = carrier.delivered_leg_callbacks[-1]
    late = await carrier.post_leg_callback(
        type(answered)(url=answered.url, params={**answered.params, "CallStatus": "no-answer"})
    )
    assert late.status_code == 200
    await engine_caught_up(app.state.engine_host.client)

    row = await _get(db, Interaction, interaction.id)
    assert row.state is State.CONNECTED and row.agent_id == agent_id
    assert await _children(db, interaction.id) == []
    assert (await _get(db, Agent, agent_id)).presence is Presence.AVAILABLE
    assert [e.data["status"] for e in await _events(db, interaction.id, "agent_leg_answered")] == [
        "in-progress"
    ]
    assert await _events(db, interaction.id, "agent_leg_unanswered") == []
    assert not [u for u in carrier.updates if u.call_sid == call.call_sid]
    room = carrier.live_conference(f"interaction-{interaction.id}")
    assert room is not None and len(room.participants) == 2


async def test_agent_leg_callback_is_signed_and_names_its_leg(client, db, carrier) -> None:
    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE, api=carrier)
    call = Call(call_sid="CA" + "1" * 32, caller=CALLER, to="+442071234567")
    url = sim.url(f"agent-leg?interaction={uuid.uuid4()}&agent={uuid.uuid4()}")
    params = sim.params(call, CallStatus="no-answer")
    assert (await sim.post(url, params, signature="forged")).status_code == 403
    bad = await sim.post(sim.url("agent-leg?interaction=nope&agent=x"), params)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.interaction"
    unknown = await sim.post(url, params)  # not a leg we added: nothing to do
    assert unknown.status_code == 200 and unknown.headers["content-type"].startswith("application/xml")


async def _hand_to(db: Database, call: Call, agent: Agent) -> Interaction:
    interaction = await _interaction_of(db, call)
    async with db.sessionmaker() as s:
        row = await s.get(Interaction, interaction.id)
        assert row is not None
        row.state, row.agent_id, row.connected_at = State.CONNECTED, agent.id, datetime.now(UTC)
        await s.commit()
    return interaction


async def _agent(db: Database, make_user) -> Agent:
    user, _ = await make_user(Role.AGENT)
    async with db.sessionmaker() as s:
        agent = Agent(user_id=user.id, display_name=user.display_name, presence=Presence.AVAILABLE)
        s.add(agent)
        await make_queue(s, "retail")
        await s.commit()
        return agent


async def test_caller_hears_connecting_while_the_carrier_will_not_add_the_agent(
    client, db, make_user, carrier
) -> None:
    """The carrier refusing (here: unreachable) to add the agent: the loop retries, and the
    caller hears they are being connected, not "number 1 in the queue"."""
    agent = await _agent(db, make_user)
    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE, api=carrier)
    call = await sim.incoming(CALLER)
    await sim.press(call, "1")
    await _hand_to(db, call, agent)
    await carrier.stop()
    await sim.wait(call)
    assert not call.bridged and "Connecting you to an adviser" in call.said
    assert "in the queue" not in call.said and call.find("Gather") is None
    assert call.find("Redirect").text == f"{BASE}/carrier/twilio/voice/wait"


async def test_caller_hears_connecting_until_the_engine_has_moved_the_call_back(
    client, db, make_user, carrier
) -> None:
    """No engine running: the device's unanswered end is recorded and the caller is returned to
    the flow even so, where the loop says "connecting" (not a position) until routing acts."""
    agent = await _agent(db, make_user)
    carrier.webhooks = client
    carrier.device_does_not_answer(agent.id, status="failed")
    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE, api=carrier)
    call = await sim.incoming(CALLER)
    await sim.press(call, "1")
    interaction = await _hand_to(db, call, agent)
    await sim.wait(call)
    assert call.conference == f"interaction-{interaction.id}"
    await carrier.deliver_leg_callbacks()  # waits for the engine's answer (none: 4 s), then redirects
    assert len(await _events(db, interaction.id, "agent_leg_unanswered")) == 1
    assert (await _get(db, Agent, agent.id)).presence is Presence.NOT_RESPONDING
    await sim.redirected(call)
    assert "Connecting you to an adviser" in call.said and not call.bridged
    await sim.wait(call)
    assert "Connecting you to an adviser" in call.said and len(carrier.participant_adds) == 1

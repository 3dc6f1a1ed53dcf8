"""Mute, hold and keypad through the call's conference, against the carrier simulator (demo's
``FakeCarrierApi`` over real HTTP, the outer edge; the caller's side played by ``CarrierSimulator``
through signed webhooks). Issue #10 item 7.

The caller reaches the IVR and queues; the routing engine's part (putting the call in the agent's
hands) is done directly; the hold loop then bridges: the agent's device is added to the
interaction's conference and the caller joins it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from demo.carrier import Call, CarrierSimulator, FakeCarrierApi, Participant
from interactions.models import Interaction, TimelineEvent
from interactions.states import State
from interactions.voice.models import CarrierEvent
from switchboard.auth.models import Role
from switchboard.db import Database
from tests.factories import agent_profile, make_queue
from tests.helpers import carrier_settings, running_carrier
from workforce.models import Agent

TOKEN = "mute-carrier-token-0123456789"
ACCOUNT = "AC" + "5" * 32
BASE = "http://testserver"
CALLER = "+447911123400"
PROBLEM_JSON = "application/problem+json"


@pytest.fixture
async def carrier() -> AsyncIterator[FakeCarrierApi]:
    async with running_carrier(account_sid=ACCOUNT, auth_token=TOKEN) as fake:
        yield fake


@pytest.fixture
def settings(settings, carrier):
    return carrier_settings(settings, carrier)


async def _bridged_call(
    client, db: Database, carrier: FakeCarrierApi, agent: Agent
) -> tuple[Call, Interaction]:
    async with db.sessionmaker() as s:
        await make_queue(s, "retail")
        await s.commit()
    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE, api=carrier)
    call = await sim.incoming(CALLER)
    await sim.press(call, "1")
    async with db.sessionmaker() as s:
        interaction = await s.scalar(
            select(Interaction)
            .join(CarrierEvent, CarrierEvent.interaction_id == Interaction.id)
            .where(CarrierEvent.event_key == f"{call.call_sid}:interaction")
        )
        assert interaction is not None
        interaction.state, interaction.agent_id = State.CONNECTED, agent.id
        interaction.connected_at = datetime.now(UTC)
        await s.commit()
    await sim.wait(call)
    assert call.conference == f"interaction-{interaction.id}" and call.agent_client is None, call.last.text
    return call, interaction


def _agent_leg(carrier: FakeCarrierApi, interaction: Interaction, agent: Agent) -> Participant:
    room = carrier.live_conference(f"interaction-{interaction.id}")
    assert room is not None, "no live conference"
    [leg] = [p for p in room.participants.values() if p.to == f"client:{agent.id}"]
    return leg


async def _controls(db: Database, interaction_id: uuid.UUID) -> list[str]:
    async with db.sessionmaker() as s:
        return [
            str(ev.data["action"])
            for ev in await s.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.interaction_id == interaction_id, TimelineEvent.kind == "call_control")
                .order_by(TimelineEvent.id)
            )
        ]


async def test_bridge_is_a_conference_with_the_agent_and_the_caller(client, db, carrier, make_user) -> None:
    user, _ = await make_user(Role.AGENT)
    agent = await agent_profile(db, user)
    call, interaction = await _bridged_call(client, db, carrier, agent)
    room = carrier.live_conference(f"interaction-{interaction.id}")
    assert room is not None
    caller = room.participants[call.call_sid]
    assert caller.label == "customer" and caller.end_conference_on_exit
    agent_leg = _agent_leg(carrier, interaction, agent)
    assert agent_leg.label == "agent" and agent_leg.end_conference_on_exit and not agent_leg.muted

    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE, api=carrier)
    await sim.post(sim.url("wait"), sim.params(call, CallStatus="in-progress"))  # a replayed turn
    assert len(room.participants) == 2  # the agent is not rung twice


async def test_mute_and_unmute_set_the_agents_participant_and_the_timeline(
    client, db, carrier, make_user
) -> None:
    user, headers = await make_user(Role.AGENT)
    agent = await agent_profile(db, user)
    call, interaction = await _bridged_call(client, db, carrier, agent)
    agent_leg = _agent_leg(carrier, interaction, agent)
    base = f"/desktop/interactions/{interaction.id}"

    panel = await client.get(f"{base}/voice", headers=headers)
    assert f'id="voice-mute-{interaction.id}"' in panel.text and 'aria-pressed="false"' in panel.text

    muted = await client.post(f"{base}/call/mute", headers=headers)
    assert muted.status_code == 200, muted.text
    assert agent_leg.muted  # at the carrier, on the agent's participant only
    assert not carrier.participant(f"interaction-{interaction.id}", call.call_sid).muted
    assert 'aria-pressed="true"' in muted.text and "Muted" in muted.text and "/call/unmute" in muted.text

    again = await client.post(f"{base}/call/mute", headers=headers)
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM_JSON
    assert again.json()["errors"][0]["field"] == "action"
    assert len(carrier.participant_updates) == 1  # refused before the carrier was asked

    # Hold keeps the agent's leg (and its mute) up: the caller's participant is held.
    held = await client.post(f"{base}/call/hold", headers=headers)
    assert held.status_code == 200 and "On hold" in held.text and 'aria-pressed="true"' in held.text
    caller = carrier.participant(f"interaction-{interaction.id}", call.call_sid)
    assert caller.hold and caller.hold_url and _agent_leg(carrier, interaction, agent) is agent_leg
    resumed = await client.post(f"{base}/call/resume", headers=headers)
    assert resumed.status_code == 200 and "Connected" in resumed.text and not caller.hold

    unmuted = await client.post(f"{base}/call/unmute", headers=headers)
    assert unmuted.status_code == 200 and not agent_leg.muted
    assert 'aria-pressed="false"' in unmuted.text and "/call/mute" in unmuted.text

    tones = await client.post(f"{base}/call/digits", data={"digits": "4"}, headers=headers)
    assert tones.status_code == 200 and caller.announcements[-1].endswith(
        "/carrier/twilio/voice/tones?digits=4"
    )

    assert await _controls(db, interaction.id) == ["mute", "hold", "resume", "unmute", "keypad"]
    async with db.sessionmaker() as s:
        mute_event = await s.scalar(
            select(TimelineEvent).where(
                TimelineEvent.interaction_id == interaction.id, TimelineEvent.kind == "call_control"
            )
        )
        assert mute_event.actor_id == str(agent.id)


async def test_tones_announcement_is_signed_twiml(client, db, carrier) -> None:
    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE)
    url = sim.url("tones") + "?digits=12%23"
    ok = await sim.post(url, {"AccountSid": ACCOUNT, "ConferenceSid": "CF" + "1" * 32})
    assert ok.status_code == 200 and '<Play digits="12#" />' in ok.text
    forged = await sim.post(url, {"AccountSid": ACCOUNT}, signature="bm90LXRoZS1zaWduYXR1cmU=")
    assert forged.status_code == 403
    bad = await sim.post(sim.url("tones") + "?digits=1;2", {"AccountSid": ACCOUNT})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.digits"


async def test_carrier_failure_is_503_problem_json_and_nothing_is_recorded(
    client, db, carrier, make_user
) -> None:
    user, headers = await make_user(Role.AGENT)
    agent = await agent_profile(db, user)
    call, interaction = await _bridged_call(client, db, carrier, agent)
    carrier.leave(call.call_sid)  # the conference ended at the carrier (the caller's leg went)
    refused = await client.post(f"/desktop/interactions/{interaction.id}/call/mute", headers=headers)
    assert refused.status_code == 503 and refused.headers["content-type"] == PROBLEM_JSON
    assert int(refused.headers["retry-after"]) > 0
    assert await _controls(db, interaction.id) == []
    panel = await client.get(f"/desktop/interactions/{interaction.id}/voice", headers=headers)
    assert 'aria-pressed="false"' in panel.text  # still what the carrier last confirmed


async def test_mute_refused_for_a_call_the_agent_does_not_hold(client, db, carrier, make_user) -> None:
    user, _ = await make_user(Role.AGENT)
    agent = await agent_profile(db, user)
    _, interaction = await _bridged_call(client, db, carrier, agent)
    other, other_headers = await make_user(Role.AGENT)
    await agent_profile(db, other)
    foreign = await client.post(f"/desktop/interactions/{interaction.id}/call/mute", headers=other_headers)
    assert foreign.status_code == 404 and foreign.headers["content-type"] == PROBLEM_JSON
    missing = await client.post(f"/desktop/interactions/{uuid.uuid4()}/call/unmute", headers=other_headers)
    assert missing.status_code == 404
    assert carrier.participant_updates == [] and not _agent_leg(carrier, interaction, agent).muted
    assert await _controls(db, interaction.id) == []

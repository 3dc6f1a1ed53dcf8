"""Outbound legs through the carrier: the agent's own call and an accepted callback are placed with
the carrier's REST "create call" (a fake carrier over real HTTP at the outer edge), bridged to the
agent's device when answered, and driven by that leg's status callbacks like any call."""

# Fixtures are imported and requested by name, which ruff reads as redefinition.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from customers.models import IdentityKind
from demo.carrier import Call, CarrierSimulator, FakeCarrierApi
from interactions.models import Interaction, TimelineEvent
from interactions.states import Channel, State
from interactions.voice import dialer
from interactions.voice.models import CarrierEvent
from interactions.voice.twilio import CALLBACK_GREETING
from switchboard.auth.models import Role
from switchboard.db import Database
from tests.factories import SUMMER_NOON_UTC, add_identity, agent_in_queue, contactable_customer, outbound_body
from tests.helpers import engine_caught_up, eventually

TOKEN = "test-carrier-token-0123456789"
ACCOUNT = "AC" + "1" * 32
BANK_NUMBER = "+442070000001"
CALLER = "+447911123456"
BASE = "http://testserver"


@pytest.fixture
async def carrier() -> AsyncIterator[tuple[FakeCarrierApi, str]]:
    fake = FakeCarrierApi(account_sid=ACCOUNT, auth_token=TOKEN)
    url = await fake.start()
    yield fake, url
    await fake.stop()


@pytest.fixture
def settings(settings, carrier):
    return settings.model_copy(
        update={
            "carrier_auth_token": TOKEN,
            "carrier_api_url": carrier[1],
            "carrier_account_sid": ACCOUNT,
            "carrier_caller_id": BANK_NUMBER,
            "public_base_url": BASE,
            "voice_queue": "retail",
        }
    )


def _bridged(fake: FakeCarrierApi, leg: Call, agent_id: uuid.UUID) -> None:
    """The leg's TwiML joined a conference where the agent's device (added by REST) is, once."""
    assert leg.conference is not None and leg.agent_client is None, leg.last and leg.last.text
    room = fake.live_conference(leg.conference)
    assert room is not None and leg.call_sid in room.participants
    agents = [p for p in room.participants.values() if p.to == f"client:{agent_id}"]
    assert len(agents) == 1 and agents[0].label == "agent"


async def _get(db: Database, interaction_id: uuid.UUID | str) -> Interaction:
    async with db.sessionmaker() as s:
        row = await s.get(Interaction, uuid.UUID(str(interaction_id)))
        await s.commit()
    assert row is not None
    return row


async def _kinds(db: Database, interaction_id: uuid.UUID | str) -> list[str]:
    async with db.sessionmaker() as s:
        kinds = list(
            await s.scalars(
                select(TimelineEvent.kind)
                .where(TimelineEvent.interaction_id == uuid.UUID(str(interaction_id)))
                .order_by(TimelineEvent.id)
            )
        )
        await s.commit()
    return kinds


async def test_agents_call_rings_the_customer_and_bridges_to_the_agent(
    client, db, carrier, agent_user, clock
):
    fake, _ = carrier
    _, headers, agent = await agent_user()
    customer = await contactable_customer(db, relationship_manager_id=agent.id)
    clock(SUMMER_NOON_UTC)

    made = await client.post("/api/interactions/outbound", json=outbound_body(customer), headers=headers)

    assert made.status_code == 201, made.text
    interaction_id = made.json()["id"]
    [placed] = fake.calls
    assert (placed.to, placed.from_) == (CALLER, BANK_NUMBER)
    assert placed.url == f"{BASE}/carrier/twilio/voice/answer"
    assert placed.status_callback == f"{BASE}/carrier/twilio/voice/status"
    assert set(placed.status_events) == {"initiated", "ringing", "answered", "completed"}
    assert (await _get(db, interaction_id)).state is State.CREATED  # ringing, not yet talking

    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE, api=fake)
    leg = sim.leg(placed)
    assert (await sim.status(leg, "ringing")).status_code == 200
    answered = await sim.answer(leg, placed)
    assert answered.status_code == 200, answered.text
    _bridged(fake, leg, agent.id)  # the customer and the agent's device in one conference
    assert (await _get(db, interaction_id)).state is State.CONNECTED
    # The carrier's own "answered" status callback (and a replay of the answer) change nothing more.
    assert (await sim.status(leg, "in-progress")).status_code == 200
    assert (await sim.answer(leg, placed)).status_code == 200
    _bridged(fake, leg, agent.id)  # the replay rang nobody again
    kinds = await _kinds(db, interaction_id)
    assert kinds.count("state_changed") == 1  # connected, once
    assert "call_leg_placed" in kinds and kinds.count("call_status") == 2

    # Only one leg, however often the dialer looks.
    async with httpx.AsyncClient() as http:
        api = dialer.CarrierApi.from_settings(client._transport.app.state.settings)  # type: ignore[attr-defined]
        assert api is not None
        assert await dialer.dial_pending(db, None, http, api) == 0
    assert len(fake.calls) == 1


async def test_unanswered_call_fails_and_a_carrier_refusal_is_recorded(
    client, db, carrier, agent_user, clock, settings
):
    fake, _ = carrier
    _, headers, agent = await agent_user()
    customer = await contactable_customer(db, relationship_manager_id=agent.id)
    clock(SUMMER_NOON_UTC)
    made = await client.post("/api/interactions/outbound", json=outbound_body(customer), headers=headers)
    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE, api=fake)
    leg = sim.leg(fake.calls[0])
    await sim.status(leg, "ringing")
    assert (await sim.status(leg, "no-answer")).status_code == 200
    assert (await _get(db, made.json()["id"])).state is State.FAILED

    # A carrier that refuses (wrong credentials here): the call fails at once, with the reason.
    fake.auth_token = "rotated-by-someone"
    refused = await client.post("/api/interactions/outbound", json=outbound_body(customer), headers=headers)
    assert refused.status_code == 201, refused.text
    assert refused.json()["state"] == "failed"
    assert "call_leg_failed" in await _kinds(db, refused.json()["id"])
    async with db.sessionmaker() as s:  # no call sid was invented for it
        mapped = await s.scalar(
            select(func.count())
            .select_from(CarrierEvent)
            .where(
                CarrierEvent.interaction_id == uuid.UUID(refused.json()["id"]),
                CarrierEvent.kind == "interaction",
            )
        )
        await s.commit()
    assert mapped == 0


async def test_accepted_callback_is_dialled_bridged_and_wrapped_up_on_hang_up(
    routed,  # noqa: F811
    db,
    make_user,
    settings,
    carrier,
):
    fake, _ = carrier
    app, client = routed
    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE, api=fake)
    agent_user, agent_headers = await make_user(Role.AGENT)
    agent_id = await agent_in_queue(db, agent_user)

    call = await sim.incoming(CALLER)
    await sim.press(call, "1")
    await sim.press(call, "*")  # callback, please
    await sim.hang_up(call)
    async with db.sessionmaker() as s:
        callback = await s.scalar(select(Interaction).where(Interaction.callback_of_id.is_not(None)))
        await s.commit()
    assert callback is not None and callback.state is State.QUEUED

    api = dialer.CarrierApi.from_settings(settings)
    assert api is not None
    dialling = asyncio.create_task(dialer.run_dialer(settings, interval=0.1))
    try:
        await asyncio.sleep(0.3)
        assert fake.calls == []  # nobody has accepted it: nobody is rung

        await client.post("/api/routing/presence", json={"presence": "available"}, headers=agent_headers)

        async def offered() -> bool:
            return bool((await client.get("/api/routing/offers", headers=agent_headers)).json())

        await eventually(offered, what="the callback's offer")
        [offer] = (await client.get("/api/routing/offers", headers=agent_headers)).json()
        assert offer["interaction_id"] == str(callback.id)
        accepted = await client.post(f"/api/routing/offers/{offer['id']}/accept", headers=agent_headers)
        assert accepted.status_code == 200, accepted.text

        async def leg_placed() -> bool:
            return "call_leg_placed" in await _kinds(db, callback.id)

        await eventually(leg_placed, what="the callback's leg")
    finally:
        dialling.cancel()
        await asyncio.gather(dialling, return_exceptions=True)

    [placed] = fake.calls
    assert placed.to == CALLER
    leg = sim.leg(placed)
    await sim.status(leg, "ringing")
    await sim.answer(leg, placed)
    _bridged(fake, leg, agent_id)
    assert CALLBACK_GREETING in leg.said
    await sim.status(leg, "in-progress")
    assert (await sim.hang_up(leg)).status_code == 200

    async def wrapping_up() -> bool:
        return (await _get(db, callback.id)).state is State.WRAP_UP

    await eventually(wrapping_up, what="wrap-up after the customer hung up")
    assert (await sim.wait(leg)).status_code == 200 and leg.find("Hangup") is not None


async def test_agents_own_call_holds_capacity_and_wraps_up_through_routing(routed, db, make_user, carrier):
    """Routing never offered the agent's own call, yet it must count: while on it the agent gets no
    other voice work, and hanging up starts wrap-up, completed with a code like any other."""
    from interactions.voice.api import wall_clock

    fake, _ = carrier
    app, client = routed
    app.dependency_overrides[wall_clock] = lambda: SUMMER_NOON_UTC  # outside quiet hours
    agent_user, headers = await make_user(Role.AGENT)
    agent_id = await agent_in_queue(db, agent_user)
    await client.post("/api/routing/presence", json={"presence": "available"}, headers=headers)
    customer = await contactable_customer(db, relationship_manager_id=agent_id)

    made = await client.post("/api/interactions/outbound", json=outbound_body(customer), headers=headers)
    assert made.status_code == 201, made.text
    interaction_id = made.json()["id"]
    [placed] = fake.calls
    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE, api=fake)
    leg = sim.leg(placed)
    assert (await sim.answer(leg, placed)).status_code == 200
    _bridged(fake, leg, agent_id)
    host = app.state.engine_host

    async def counted() -> bool:
        # None while the host rebuilds (a lease renewal missed on a loaded machine): ask again.
        return host.engine is not None and host.engine.knows(interaction_id)

    await eventually(counted, what="the engine to count the agent's own call")

    # A caller arriving now waits: the agent's one voice slot is taken by their own call.
    inbound = await sim.incoming("+447400123456")
    await sim.press(inbound, "1")
    await engine_caught_up(host.client)  # the caller's chat enqueued and routed (or not)
    assert (await client.get("/api/routing/offers", headers=headers)).json() == []

    assert (await sim.hang_up(leg)).status_code == 200

    async def wrapping_up() -> bool:
        return (await _get(db, interaction_id)).state is State.WRAP_UP

    await eventually(wrapping_up, what="wrap-up after the customer hung up")
    coded = await client.put(
        f"/api/interactions/{interaction_id}/disposition", json={"disposition": "resolved"}, headers=headers
    )
    assert coded.status_code == 200, coded.text
    done = await client.post(f"/api/routing/interactions/{interaction_id}/complete", headers=headers)
    assert done.status_code == 200, done.text
    assert (await _get(db, interaction_id)).state is State.COMPLETED

    # Capacity is free again: the waiting caller is offered to the agent now.
    async def offered() -> bool:
        return bool((await client.get("/api/routing/offers", headers=headers)).json())

    await eventually(offered, what="the waiting caller's offer once the agent is free")


async def test_chat_escalated_to_a_call_from_the_desktop_is_one_thread(
    routed, db, make_user, carrier, redis_handle
):
    """The agent on a chat presses "Call the customer" in the 360 panel: the customer is rung, the call
    continues the chat's thread (follow-up link), and when they answer the engine adopts the call
    and the agent's desktop is told to open it."""
    import json

    from interactions.voice.api import wall_clock
    from switchboard.events import PREFIX, agent_topic

    fake, _ = carrier
    app, client = routed
    app.dependency_overrides[wall_clock] = lambda: SUMMER_NOON_UTC
    agent_user, headers = await make_user(Role.AGENT)
    agent_id = await agent_in_queue(db, agent_user)
    await client.post("/api/routing/presence", json={"presence": "available"}, headers=headers)
    _, supervisor = await make_user(Role.SUPERVISOR)
    chat = await client.post(
        "/api/interactions",
        json={"channel": "chat", "identity": {"kind": "phone", "value": CALLER}, "queue": "retail"},
        headers=supervisor,
    )
    assert chat.status_code == 201, chat.text
    chat_id = chat.json()["id"]
    async with db.sessionmaker() as s:  # the customer can also be emailed
        await add_identity(s, uuid.UUID(chat.json()["customer_id"]), IdentityKind.EMAIL, "edith@example.com")

    async def offered() -> bool:
        return bool((await client.get("/api/routing/offers", headers=headers)).json())

    await eventually(offered, what="the chat's offer")
    [offer] = (await client.get("/api/routing/offers", headers=headers)).json()
    assert (
        await client.post(f"/api/routing/offers/{offer['id']}/accept", headers=headers)
    ).status_code == 200

    pubsub = redis_handle.async_client().pubsub()
    await pubsub.subscribe(PREFIX + agent_topic(agent_id))
    try:
        pressed = await client.post(
            f"/desktop/interactions/{chat_id}/contact-customer",
            data={"channel": "voice", "reason": "Verify the card"},
            headers=headers,
        )
        assert pressed.status_code == 200 and "Calling the customer" in pressed.text, pressed.text
        [placed] = fake.calls
        assert placed.to == CALLER
        async with db.sessionmaker() as s:
            call = await s.scalar(
                select(Interaction).where(Interaction.follow_up_of_id == uuid.UUID(chat_id))
            )
            await s.commit()
        assert call is not None and call.channel.value == "voice" and call.subject == "Verify the card"
        assert call.agent_id == agent_id and call.state is State.CREATED

        leg = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE).leg(placed)
        assert (
            await CarrierSimulator(client, auth_token=TOKEN, base_url=BASE).answer(leg, placed)
        ).status_code == 200
        assert (await _get(db, call.id)).state is State.CONNECTED

        async def desktop_told() -> bool:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            return message is not None and json.loads(message["data"]) == {
                "type": "assigned",
                "interaction_id": str(call.id),
            }

        await eventually(desktop_told, what="the desktop to be told to open the call")

        # Then a follow-up by email from the same panel: connected at once (the agent writes it),
        # adopted by the engine, linked to the chat, and its tab opens.
        emailed = await client.post(
            f"/desktop/interactions/{chat_id}/contact-customer",
            data={"channel": "email", "reason": "Your new card"},
            headers=headers,
        )
        assert emailed.status_code == 200 and "Email opened" in emailed.text, emailed.text
        async with db.sessionmaker() as s:
            email = await s.scalar(
                select(Interaction).where(
                    Interaction.follow_up_of_id == uuid.UUID(chat_id), Interaction.channel == Channel.EMAIL
                )
            )
            await s.commit()
        assert email is not None and email.state is State.CONNECTED and email.agent_id == agent_id
        assert email.contact_identity == {"kind": "email", "value": "edith@example.com"}

        async def email_tab_opened() -> bool:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            return message is not None and json.loads(message["data"]) == {
                "type": "assigned",
                "interaction_id": str(email.id),
            }

        await eventually(email_tab_opened, what="the desktop to be told to open the email")
        assert app.state.engine_host.engine.knows(str(email.id))
    finally:
        await pubsub.aclose()

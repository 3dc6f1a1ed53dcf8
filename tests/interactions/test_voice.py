"""Voice end to end: the carrier simulator drives signed Twilio webhooks into the running app."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select

from customers.models import Customer
from demo.carrier import Call, CarrierSimulator
from interactions.models import Interaction, TimelineEvent
from interactions.states import Channel, Direction, State
from interactions.voice.models import CarrierEvent
from interactions.voice.twilio import SIGNATURE_HEADER, compute_signature
from switchboard.auth.models import Role
from switchboard.db import Database
from tests.factories import agent_in_queue, make_customer, make_queue
from tests.helpers import engine_caught_up, eventually

TOKEN = "test-carrier-token-0123456789"
CALLER = "+447911123456"
BASE = "http://testserver"
PROBLEM = "application/problem+json"


@pytest.fixture
def settings(settings):
    """The default test settings plus a carrier token and the queue IVR calls go to."""
    return settings.model_copy(update={"carrier_auth_token": TOKEN, "voice_queue": "retail"})


@pytest.fixture
def sim(client: AsyncClient) -> CarrierSimulator:
    return CarrierSimulator(client, auth_token=TOKEN, base_url=BASE)


@pytest.fixture
async def retail(db: Database) -> None:
    async with db.sessionmaker() as s:
        await make_queue(s, "retail")


async def _rows(db: Database) -> dict[str, int]:
    async with db.sessionmaker() as s:
        counts = {
            model.__tablename__: int(await s.scalar(select(func.count()).select_from(model)) or 0)
            for model in (CarrierEvent, Interaction, Customer, TimelineEvent)
        }
        await s.commit()
    return counts


async def _interaction(db: Database, call: Call) -> Interaction:
    async with db.sessionmaker() as s:
        found = await s.scalar(
            select(Interaction)
            .join(CarrierEvent, CarrierEvent.interaction_id == Interaction.id)
            .where(CarrierEvent.event_key == f"{call.call_sid}:interaction")
        )
        await s.commit()
    assert found is not None, "no interaction for the call"
    return found


async def _get(db: Database, interaction_id: uuid.UUID) -> Interaction:
    async with db.sessionmaker() as s:
        row = await s.get(Interaction, interaction_id)
        await s.commit()
    assert row is not None
    return row


async def _last_reason(db: Database, interaction_id: uuid.UUID) -> Any:
    async with db.sessionmaker() as s:
        event = await s.scalar(
            select(TimelineEvent)
            .where(TimelineEvent.interaction_id == interaction_id, TimelineEvent.kind == "state_changed")
            .order_by(TimelineEvent.id.desc())
            .limit(1)
        )
        await s.commit()
    return event.data.get("reason") if event else None


# ------------------------------------------------------------------ signature


def test_signature_matches_twilios_published_example():
    # The worked example in Twilio's security documentation (auth token "12345").
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert compute_signature("12345", url, list(params.items())) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


async def test_bad_signature_is_403_and_nothing_is_stored(client, sim, db, retail):
    before = await _rows(db)
    call = Call(call_sid="CA" + "a" * 32, caller=CALLER, to="+442071234567")
    params = sim.params(call)
    forged = await sim.post(sim.url("incoming"), params, signature="bm90LWEtc2lnbmF0dXJl")
    body, headers = sim.signed(sim.url("incoming"), params)
    tampered = await client.post(
        sim.url("incoming"), content=body.replace(b"%2B447911123456", b"%2B447911123999"), headers=headers
    )
    unsigned = await client.post(
        sim.url("gather"), content=body + b"&Digits=1", headers={"Content-Type": headers["Content-Type"]}
    )
    other_url = await client.post(sim.url("gather"), content=body + b"&Digits=1", headers=headers)
    for response in (forged, tampered, unsigned, other_url):
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == PROBLEM
    assert await _rows(db) == before


async def test_unconfigured_carrier_refuses_every_webhook(app, client, db):
    app.state.settings = app.state.settings.model_copy(update={"carrier_auth_token": None})
    sim = CarrierSimulator(client, auth_token="", base_url=BASE)
    response = await sim.post(sim.url("incoming"), {"CallSid": "CA" + "b" * 32, "From": CALLER})
    assert response.status_code == 403 and response.headers["content-type"] == PROBLEM
    assert (await _rows(db))["carrier_events"] == 0


# ------------------------------------------------------------------ malformed payloads


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("incoming", {"From": CALLER}, "body.CallSid"),
        ("incoming", {"CallSid": "CA-not-a-sid", "From": CALLER}, "body.CallSid"),
        ("incoming", {"CallSid": "CA" + "c" * 32, "From": "not a number"}, "body.From"),
        ("incoming", {"CallSid": "CA" + "c" * 32}, "body.From"),
        ("gather", {"CallSid": "CA" + "c" * 32, "From": CALLER, "Digits": "1x"}, "body.Digits"),
        ("gather?attempt=9", {"CallSid": "CA" + "c" * 32, "From": CALLER, "Digits": "1"}, "query.attempt"),
        ("queue-action", {"CallSid": "CA" + "c" * 32, "From": CALLER}, "body.Digits"),
        ("status", {"CallSid": "CA" + "c" * 32, "CallStatus": "exploded"}, "body.CallStatus"),
        ("status", {"CallSid": "CA" + "c" * 32}, "body.CallStatus"),
        (
            "status",
            {"CallSid": "CA" + "c" * 32, "CallStatus": "completed", "SequenceNumber": "x"},
            "body.SequenceNumber",
        ),
    ],
)
async def test_malformed_payload_is_422_naming_the_field(sim, db, retail, path, params, field):
    before = await _rows(db)
    response = await sim.post(sim.url(path), params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert await _rows(db) == before


async def test_signed_json_is_refused_naming_the_body(client, db):
    url = f"{BASE}/carrier/twilio/voice/incoming"
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: compute_signature(TOKEN, url, [])}
    response = await client.post(url, content=b'{"CallSid": "x"}', headers=headers)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "body"


# ------------------------------------------------------------------ IVR and idempotency


async def test_ivr_choice_creates_a_queued_voice_interaction_for_the_callers_customer(sim, db, retail):
    async with db.sessionmaker() as s:
        customer = await make_customer(s, bare=True, phone=CALLER, display_name="Ada Known", language="en")

    call = await sim.incoming("07911 123456")  # national format: resolved to the same E.164 number
    assert call.last.status_code == 200 and call.last.headers["content-type"].startswith("application/xml")
    assert call.find("Gather").attrib["action"].endswith("/carrier/twilio/voice/gather?attempt=1")

    await sim.press(call, "9")  # not on the menu: asked again, nothing queued
    assert "not an option" in call.said and call.find("Gather").attrib["action"].endswith("attempt=2")
    assert (await _rows(db))["interactions"] == 0

    await sim.press(call, "2")
    assert call.last.status_code == 200
    assert "number 1 in the queue" in call.said and call.find("Redirect").text.endswith("/voice/wait")
    interaction = await _interaction(db, call)
    assert interaction.customer_id == customer.id
    assert (interaction.channel, interaction.direction, interaction.state) == (
        Channel.VOICE,
        Direction.INBOUND,
        State.QUEUED,
    )
    assert (interaction.topic, interaction.language) == ("card_fraud", "en")
    assert interaction.contact_identity == {"kind": "phone", "value": CALLER}


async def test_silence_in_the_menu_reaches_a_person(sim, db, retail):
    call = await sim.incoming(CALLER)
    await sim.silence(call)  # no key: the <Redirect> posts without Digits
    interaction = await _interaction(db, call)
    assert interaction.state is State.QUEUED and interaction.topic == "general"


async def test_same_signed_webhook_twice_concurrently_creates_one_interaction(client, sim, db, retail):
    call = await sim.incoming(CALLER)
    action = call.find("Gather").attrib["action"]
    body, headers = sim.signed(action, sim.params(call, Digits="8"))
    first, second = await asyncio.gather(
        client.post(action, content=body, headers=headers), client.post(action, content=body, headers=headers)
    )
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    assert "number 1 in the queue" in first.text and "number 1 in the queue" in second.text
    rows = await _rows(db)
    assert rows["interactions"] == 1 and rows["customers"] == 1
    interaction = await _interaction(db, call)
    assert interaction.language == "zh"

    # The hang-up, also delivered twice at once, abandons once.
    body, headers = sim.signed(
        sim.url("status"), sim.params(call, CallStatus="completed", SequenceNumber="3")
    )
    replies = await asyncio.gather(
        *(client.post(sim.url("status"), content=body, headers=headers) for _ in range(2))
    )
    assert [r.status_code for r in replies] == [200, 200]
    assert (await _get(db, interaction.id)).state is State.ABANDONED
    async with db.sessionmaker() as s:
        abandoned = await s.scalar(
            select(func.count())
            .select_from(TimelineEvent)
            .where(TimelineEvent.interaction_id == interaction.id, TimelineEvent.kind == "state_changed")
        )
        await s.commit()
    assert abandoned == 2  # created -> queued, queued -> abandoned: nothing twice
    assert await _last_reason(db, interaction.id) == "caller hung up"


async def test_hang_up_during_the_menu_changes_nothing(sim, db, retail):
    call = await sim.incoming(CALLER)
    assert (await sim.hang_up(call)).status_code == 200
    assert (await _rows(db))["interactions"] == 0


async def test_a_menu_choice_that_arrives_after_the_hang_up_queues_nothing(client, sim, db, retail):
    """The caller pressed a key and hung up at once: the carrier's "completed" can be processed
    before the key press (both webhooks in flight together). The choice must not queue a caller
    who is gone: nobody would ever be offered more than a dead line (a ghost in the queue)."""
    call = await sim.incoming(CALLER)
    action = call.find("Gather").attrib["action"]
    assert (await sim.hang_up(call)).status_code == 200
    body, headers = sim.signed(action, sim.params(call, Digits="2"))
    late = await client.post(action, content=body, headers=headers)
    assert late.status_code == 200, late.text
    assert "<Hangup" in late.text and "queue" not in late.text
    async with db.sessionmaker() as s:
        waiting = await s.scalar(
            select(func.count())
            .select_from(Interaction)
            .where(Interaction.state.in_([State.QUEUED, State.OFFERED]))
        )
        await s.commit()
    assert waiting == 0


# ------------------------------------------------------------------ with the routing engine


async def test_call_is_offered_accepted_bridged_and_wrapped_up(routed, db, make_user):  # noqa: F811
    app, client = routed
    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE)
    agent_user, agent_headers = await make_user(Role.AGENT)
    agent_id = await agent_in_queue(db, agent_user)
    assert (
        await client.post("/api/routing/presence", json={"presence": "available"}, headers=agent_headers)
    ).status_code == 200

    call = await sim.incoming(CALLER)
    await sim.press(call, "1")
    interaction = await _interaction(db, call)

    async def offered() -> bool:
        return bool((await client.get("/api/routing/offers", headers=agent_headers)).json())

    await eventually(offered, what="an offer for the call")
    (offer,) = (await client.get("/api/routing/offers", headers=agent_headers)).json()
    assert offer["interaction_id"] == str(interaction.id)
    await sim.wait(call)  # still ringing at the desktop: the caller keeps holding
    assert call.agent_client is None and call.find("Gather") is not None

    accepted = await client.post(f"/api/routing/offers/{offer['id']}/accept", headers=agent_headers)
    assert accepted.status_code == 200, accepted.text
    await sim.wait(call)
    assert call.agent_client == str(agent_id)

    assert (await sim.status(call, "in-progress")).status_code == 200
    assert (await sim.hang_up(call)).status_code == 200

    async def wrapping_up() -> bool:
        return (await _get(db, interaction.id)).state is State.WRAP_UP

    await eventually(wrapping_up, what="wrap-up after the caller hung up")


async def test_transferred_caller_follows_the_child_interaction(routed, db, make_user):  # noqa: F811
    app, client = routed
    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE)
    agent_user, agent_headers = await make_user(Role.AGENT)
    await agent_in_queue(db, agent_user)
    await client.post("/api/routing/presence", json={"presence": "available"}, headers=agent_headers)
    call = await sim.incoming(CALLER)
    await sim.press(call, "4")
    parent = await _interaction(db, call)

    async def offered() -> bool:
        return bool((await client.get("/api/routing/offers", headers=agent_headers)).json())

    await eventually(offered, what="an offer for the call")
    (offer,) = (await client.get("/api/routing/offers", headers=agent_headers)).json()
    await client.post(f"/api/routing/offers/{offer['id']}/accept", headers=agent_headers)
    await sim.wait(call)
    assert call.agent_client is not None and call.find("Redirect").text.endswith("/voice/wait")

    moved = await client.post(
        f"/api/routing/interactions/{parent.id}/transfer",
        json={"to_queue": "retail", "note": "needs a mortgage specialist"},
        headers=agent_headers,
    )
    assert moved.status_code == 200, moved.text
    child_id = uuid.UUID(moved.json()["child_interaction_id"])
    await sim.wait(call)  # the first agent's leg ended: the caller holds for the next one
    assert call.find("Gather") is not None and call.agent_client is None
    await sim.hang_up(call)
    assert (await _get(db, child_id)).state is State.ABANDONED
    assert (await _get(db, parent.id)).state is State.TRANSFERRED


async def test_caller_follows_the_transfer_not_a_withdrawn_consult(routed, db, make_user):  # noqa: F811
    app, client = routed
    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE)
    agent_user, agent_headers = await make_user(Role.AGENT)
    await agent_in_queue(db, agent_user)
    await client.post("/api/routing/presence", json={"presence": "available"}, headers=agent_headers)
    call = await sim.incoming(CALLER)
    await sim.press(call, "4")
    parent = await _interaction(db, call)

    async def offered() -> bool:
        return bool((await client.get("/api/routing/offers", headers=agent_headers)).json())

    await eventually(offered, what="an offer for the call")
    (offer,) = (await client.get("/api/routing/offers", headers=agent_headers)).json()
    await client.post(f"/api/routing/offers/{offer['id']}/accept", headers=agent_headers)
    await sim.wait(call)

    # A warm transfer nobody can take yet, withdrawn: its child fails and the caller stays.
    consult = await client.post(
        f"/api/routing/interactions/{parent.id}/transfer",
        json={"to_queue": "retail", "mode": "warm", "note": "asked for a specialist"},
        headers=agent_headers,
    )
    assert consult.status_code == 200 and consult.json()["consult"] == "pending", consult.text
    withdrawn = await client.post(
        f"/api/routing/interactions/{parent.id}/transfer/cancel", headers=agent_headers
    )
    assert withdrawn.status_code == 200, withdrawn.text
    consult_child = uuid.UUID(consult.json()["child_interaction_id"])
    assert (await _get(db, consult_child)).state is State.FAILED

    # Then a blind transfer: the caller belongs to that child, not to the failed consult.
    moved = await client.post(
        f"/api/routing/interactions/{parent.id}/transfer", json={"to_queue": "retail"}, headers=agent_headers
    )
    assert moved.status_code == 200, moved.text
    child_id = uuid.UUID(moved.json()["child_interaction_id"])
    await sim.hang_up(call)
    assert (await _get(db, child_id)).state is State.ABANDONED
    assert (await _get(db, consult_child)).state is State.FAILED


async def test_hang_up_while_queued_abandons_and_is_never_offered(routed, db, make_user):  # noqa: F811
    app, client = routed
    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE)
    agent_user, agent_headers = await make_user(Role.AGENT)
    await agent_in_queue(db, agent_user)  # offline for now

    call = await sim.incoming(CALLER)
    await sim.press(call, "3")
    interaction = await _interaction(db, call)
    assert (await sim.hang_up(call)).status_code == 200
    after = await _get(db, interaction.id)
    assert after.state is State.ABANDONED and await _last_reason(db, interaction.id) == "caller hung up"

    await client.post("/api/routing/presence", json={"presence": "available"}, headers=agent_headers)
    await engine_caught_up(app.state.engine_host.client)  # it handled the agent going available
    assert (await client.get("/api/routing/offers", headers=agent_headers)).json() == []
    await sim.wait(call)
    assert call.find("Hangup") is not None


async def test_callback_keeps_its_place_in_line(routed, db, make_user):  # noqa: F811
    app, client = routed
    sim = CarrierSimulator(client, auth_token=TOKEN, base_url=BASE)
    agent_user, agent_headers = await make_user(Role.AGENT)
    await agent_in_queue(db, agent_user)  # offline: everyone waits
    _, supervisor = await make_user(Role.SUPERVISOR)

    call = await sim.incoming(CALLER)
    await sim.press(call, "1")
    first = await _interaction(db, call)
    later = await client.post(
        "/api/interactions",
        json={"channel": "voice", "queue": "retail", "identity": {"kind": "phone", "value": "+447911123457"}},
        headers=supervisor,
    )
    assert later.status_code == 201, later.text
    later_id = later.json()["id"]

    await sim.press(call, "*")  # from the hold loop's <Gather>
    assert "call you back" in call.said and call.find("Hangup") is not None
    assert (await _get(db, first.id)).state is State.ABANDONED
    assert await _last_reason(db, first.id) == "callback requested"
    async with db.sessionmaker() as s:
        callback = await s.scalar(select(Interaction).where(Interaction.callback_of_id == first.id))
        await s.commit()
    assert callback is not None
    assert (callback.channel, callback.direction, callback.state) == (
        Channel.VOICE,
        Direction.OUTBOUND,
        State.QUEUED,
    )
    assert callback.virtual_start_at == first.virtual_start_at
    assert callback.customer_id == first.customer_id and callback.topic == "cards"
    assert (await sim.hang_up(call)).status_code == 200  # the caller's line closes: nothing more changes
    assert (await _get(db, callback.id)).state is State.QUEUED

    await client.post("/api/routing/presence", json={"presence": "available"}, headers=agent_headers)

    async def offer() -> dict | None:
        offers = (await client.get("/api/routing/offers", headers=agent_headers)).json()
        return offers[0] if offers else None

    async def has_offer() -> bool:
        return await offer() is not None

    await eventually(has_offer, what="the first offer")
    first_offer = await offer()
    assert first_offer["interaction_id"] == str(callback.id), "the callback lost its place to a later caller"
    assert (
        await client.post(f"/api/routing/offers/{first_offer['id']}/accept", headers=agent_headers)
    ).status_code == 200
    wrap = await client.post(f"/api/routing/interactions/{callback.id}/wrap-up", headers=agent_headers)
    assert wrap.status_code == 200, wrap.text
    coded = await client.put(
        f"/api/interactions/{callback.id}/disposition",
        json={"disposition": "resolved"},
        headers=agent_headers,
    )
    assert coded.status_code == 200, coded.text
    done = await client.post(f"/api/routing/interactions/{callback.id}/complete", headers=agent_headers)
    assert done.status_code == 200, done.text
    await eventually(has_offer, what="the next offer")
    assert (await offer())["interaction_id"] == later_id


# ------------------------------------------------------------------ callback API


async def test_waiting_chat_customer_asks_for_a_callback(client, db, retail, make_user, customer_user):
    async with db.sessionmaker() as s:
        customer = await make_customer(s, bare=True, phone=CALLER, display_name="Chatty", language="en")
    _, supervisor = await make_user(Role.SUPERVISOR)
    chat = await client.post(
        "/api/interactions",
        json={"channel": "chat", "queue": "retail", "identity": {"kind": "phone", "value": CALLER}},
        headers=supervisor,
    )
    chat_id = chat.json()["id"]
    _, customer_headers = await customer_user(customer.id)

    stranger = await client.post(
        f"/api/interactions/{chat_id}/callback", json={"phone": "+447911123999"}, headers=customer_headers
    )
    assert stranger.status_code == 422 and stranger.json()["errors"][0]["field"] == "body.phone"

    made = await client.post(f"/api/interactions/{chat_id}/callback", json={}, headers=customer_headers)
    assert made.status_code == 201, made.text
    body = made.json()
    assert (
        body["callback_of_id"] == chat_id and body["channel"] == "voice" and body["direction"] == "outbound"
    )
    assert body["state"] == "queued" and body["customer_id"] == str(customer.id)
    assert body["virtual_start_at"] == chat.json()["virtual_start_at"]
    assert body["contact_identity"] == {"kind": "phone", "value": CALLER}

    again = await client.post(f"/api/interactions/{chat_id}/callback", json={}, headers=customer_headers)
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM

    _, other_headers = await make_user(Role.CUSTOMER)
    hidden = await client.post(f"/api/interactions/{body['id']}/callback", json={}, headers=other_headers)
    assert hidden.status_code == 404

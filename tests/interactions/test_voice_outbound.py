"""Agent-initiated outbound contact honours do-not-contact, consent and quiet hours (customer's zone)."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from customers.models import Customer
from interactions.voice.outbound import in_quiet_hours
from switchboard.auth.models import Role
from tests.factories import SUMMER_NOON_UTC, contactable_customer, make_customer, outbound_body

PROBLEM = "application/problem+json"
LONDON_QUIET = {"quiet_hours_start": time(21, 0), "quiet_hours_end": time(8, 0), "timezone": "Europe/London"}
# 22:30 in London (BST, UTC+1) on a summer evening; 06:30 the next morning in Shanghai.
SUMMER_EVENING_UTC = datetime(2026, 7, 1, 21, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "inside"),
    [
        (time(20, 59), False),
        (time(21, 0), True),
        (time(23, 59), True),
        (time(0, 0), True),
        (time(7, 59), True),
        (time(8, 0), False),
        (time(12, 0), False),
    ],
)
def test_quiet_hours_window_crosses_midnight(now, inside):
    assert in_quiet_hours(now, time(21, 0), time(8, 0)) is inside


def test_daytime_window_and_empty_window():
    assert in_quiet_hours(time(13, 0), time(12, 0), time(14, 0))
    assert not in_quiet_hours(time(14, 0), time(12, 0), time(14, 0))
    assert not in_quiet_hours(time(3, 0), time(9, 0), time(9, 0))


async def test_do_not_contact_customer_is_refused(client, db, agent_user, clock):
    clock(SUMMER_NOON_UTC)
    _, headers, agent = await agent_user()
    customer = await contactable_customer(db, do_not_contact=True, relationship_manager_id=agent.id)
    for channel in ("voice", "email"):
        response = await client.post(
            "/api/interactions/outbound", json=outbound_body(customer, channel), headers=headers
        )
        assert response.status_code == 409 and response.headers["content-type"] == PROBLEM
        body = response.json()
        assert body["rule"] == "do_not_contact" and "do_not_contact" in body["detail"]
        assert body["errors"][0]["field"] == "body.customer_id"
    listed = await client.get(f"/api/interactions?customer_id={customer.id}", headers=headers)
    assert listed.json()["items"] == []


async def test_call_within_quiet_hours_in_the_customers_zone_is_refused(client, db, agent_user, clock):
    _, headers, agent = await agent_user()
    customer = await contactable_customer(db, **LONDON_QUIET, relationship_manager_id=agent.id)
    clock(SUMMER_EVENING_UTC)
    refused = await client.post("/api/interactions/outbound", json=outbound_body(customer), headers=headers)
    assert refused.status_code == 409, refused.text
    assert refused.json()["rule"] == "quiet_hours"
    assert refused.json()["policy"] == "quiet_hours 21:00–08:00 Europe/London"
    assert "quiet_hours 21:00–08:00 Europe/London" in refused.json()["detail"]
    assert "22:30" in refused.json()["detail"]  # BST: local time, not UTC

    # An email does not ring at night: it waits in the inbox, so quiet hours do not hold it back.
    email = await client.post(
        "/api/interactions/outbound", json=outbound_body(customer, "email"), headers=headers
    )
    assert email.status_code == 201, email.text

    # The same instant is early morning in Shanghai.
    far = await contactable_customer(
        db,
        phone="+8613800138000",
        email=None,
        quiet_hours_start=time(22, 0),
        quiet_hours_end=time(7, 0),
        timezone="Asia/Shanghai",
        relationship_manager_id=agent.id,
    )
    refused = await client.post("/api/interactions/outbound", json=outbound_body(far), headers=headers)
    assert refused.status_code == 409 and refused.json()["policy"] == "quiet_hours 22:00–07:00 Asia/Shanghai"


async def test_call_outside_quiet_hours_is_created_and_attached_to_the_agent(client, db, agent_user, clock):
    _, headers, agent = await agent_user()
    customer = await contactable_customer(db, **LONDON_QUIET, relationship_manager_id=agent.id)
    clock(SUMMER_NOON_UTC)
    made = await client.post("/api/interactions/outbound", json=outbound_body(customer), headers=headers)
    assert made.status_code == 201, made.text
    body = made.json()
    assert made.headers["location"] == f"/api/interactions/{body['id']}"
    assert (body["channel"], body["direction"], body["state"]) == ("voice", "outbound", "created")
    assert body["agent_id"] == str(agent.id) and body["customer_id"] == str(customer.id)
    assert body["contact_identity"] == {"kind": "phone", "value": "+447911123456"}
    assert body["subject"] == "Card delivery check" and body["attributes"] == {
        "purpose": "service",
        "outbound_basis": "relationship_manager",
    }
    # The agent sees it (it is theirs) without anyone routing it.
    assert (await client.get(f"/api/interactions/{body['id']}", headers=headers)).status_code == 200


async def test_marketing_needs_consent(client, db, agent_user, clock):
    clock(SUMMER_NOON_UTC)
    _, headers, agent = await agent_user()
    customer = await contactable_customer(db, relationship_manager_id=agent.id)
    refused = await client.post(
        "/api/interactions/outbound", json=outbound_body(customer, purpose="marketing"), headers=headers
    )
    assert refused.status_code == 409 and refused.json()["rule"] == "marketing_consent"
    async with db.sessionmaker() as s:
        (await s.get(Customer, customer.id)).marketing_consent = True
        await s.commit()
    allowed = await client.post(
        "/api/interactions/outbound", json=outbound_body(customer, purpose="marketing"), headers=headers
    )
    assert allowed.status_code == 201


async def test_outbound_input_errors(client, db, agent_user, make_user, clock):
    clock(SUMMER_NOON_UTC)
    _, headers, agent = await agent_user()
    async with db.sessionmaker() as s:
        bare = await make_customer(
            s, bare=True, display_name="No Numbers", language="en", relationship_manager_id=agent.id
        )
    no_phone = await client.post("/api/interactions/outbound", json=outbound_body(bare), headers=headers)
    assert no_phone.status_code == 422 and no_phone.json()["errors"][0]["field"] == "body.channel"
    chat = await client.post("/api/interactions/outbound", json=outbound_body(bare, "chat"), headers=headers)
    assert chat.status_code == 422 and chat.json()["errors"][0]["field"] == "body.channel"
    unknown = await client.post(
        "/api/interactions/outbound",
        json={"customer_id": "6f1c1f0e-3a51-4f47-9f55-0a4f4f7d0b11", "channel": "voice", "reason": "x"},
        headers=headers,
    )
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["field"] == "body.customer_id"
    _, supervisor = await make_user(Role.SUPERVISOR)  # no agent profile: nobody to attach the call to
    assert (
        await client.post("/api/interactions/outbound", json=outbound_body(bare), headers=supervisor)
    ).status_code == 403

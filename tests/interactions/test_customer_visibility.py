"""Customer visibility for agents cannot be self-granted: an outbound contact needs a reason (work
of theirs with that customer now, a follow-up of their own earlier contact, being the customer's
relationship manager) or a supervisor; and every read of a customer outside the reader's held work
is in the audit log."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from interactions.models import Interaction
from interactions.states import State
from interactions.voice.api import wall_clock
from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from tests.factories import make_agent, make_customer, make_interaction

NOON = datetime(2026, 7, 1, 11, 0, tzinfo=UTC)


def _outbound(customer_id, **extra) -> dict:
    return {"customer_id": str(customer_id), "channel": "voice", "reason": "Checking in", **extra}


async def _reads(db, customer_id) -> list[tuple[str, dict]]:
    async with db.sessionmaker() as s:
        rows = (
            await s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "customer.read", AuditEntry.entity_id == str(customer_id))
                .order_by(AuditEntry.id)
            )
        ).all()
        await s.commit()
    return [(str(r.actor_id), r.data) for r in rows]


async def test_an_agent_cannot_grant_themselves_a_customer(app, client, db, agent_user) -> None:
    app.dependency_overrides[wall_clock] = lambda: NOON
    _, headers, _agent = await agent_user()
    async with db.sessionmaker() as s:
        stranger = await make_customer(
            s, phone="07400 177701", display_name="Rich Stranger", relationship_balance=9_000_000
        )
        await s.commit()
    refused = await client.post("/api/interactions/outbound", json=_outbound(stranger.id), headers=headers)
    assert refused.status_code == 403, refused.text
    assert refused.json()["errors"][0]["field"] == "body.customer_id"
    assert "Rich" not in refused.text
    # Nothing was created, so nothing became visible.
    assert (await client.get(f"/api/customers/{stranger.id}", headers=headers)).status_code == 404
    assert (await client.get(f"/api/customers/{stranger.id}/timeline", headers=headers)).status_code == 404
    async with db.sessionmaker() as s:
        made = (await s.scalars(select(Interaction).where(Interaction.customer_id == stranger.id))).all()
        await s.commit()
    assert made == []
    # Nor through the generic create with the customer's number.
    generic = {"channel": "voice", "direction": "outbound", "enqueue": False}
    sneaky = await client.post(
        "/api/interactions",
        json={**generic, "identity": {"kind": "phone", "value": "+447400177701"}},
        headers=headers,
    )
    assert sneaky.status_code == 403 and sneaky.json()["errors"][0]["field"] == "identity.value"
    assert (await client.get(f"/api/customers/{stranger.id}", headers=headers)).status_code == 404
    # A number nobody has is a new contact, as before.
    fresh = await client.post(
        "/api/interactions",
        json={**generic, "identity": {"kind": "phone", "value": "+447400177702"}},
        headers=headers,
    )
    assert fresh.status_code == 201, fresh.text
    app.dependency_overrides.pop(wall_clock, None)


async def test_reasons_that_allow_an_outbound_contact(app, client, db, agent_user, make_user) -> None:
    app.dependency_overrides[wall_clock] = lambda: NOON
    _, headers, agent = await agent_user()
    async with db.sessionmaker() as s:
        held_customer = await make_customer(s)
        await make_interaction(s, customer=held_customer, agent=agent)  # theirs, unfinished
        earlier_customer = await make_customer(s)
        earlier = await make_interaction(s, customer=earlier_customer, agent=agent)
        earlier.state = State.COMPLETED
        other_agent = await make_agent(s, name="Someone Else")
        others = await make_customer(s)
        not_mine = await make_interaction(s, customer=others, agent=other_agent)
        not_mine.state = State.COMPLETED
        await s.commit()
    held = await client.post("/api/interactions/outbound", json=_outbound(held_customer.id), headers=headers)
    assert held.status_code == 201 and held.json()["attributes"]["outbound_basis"] == "held"
    # A follow-up of their own earlier contact: allowed; without naming it, no reason.
    bare = await client.post(
        "/api/interactions/outbound", json=_outbound(earlier_customer.id), headers=headers
    )
    assert bare.status_code == 403
    follow_up = await client.post(
        "/api/interactions/outbound",
        json=_outbound(earlier_customer.id, follow_up_of_id=str(earlier.id)),
        headers=headers,
    )
    assert follow_up.status_code == 201 and follow_up.json()["attributes"]["outbound_basis"] == "follow_up"
    # Someone else's contact is no reason.
    stolen = await client.post(
        "/api/interactions/outbound",
        json=_outbound(others.id, follow_up_of_id=str(not_mine.id)),
        headers=headers,
    )
    assert stolen.status_code == 403
    # A supervisor (with an agent profile to attach the call to) needs no reason.
    supervisor, supervisor_headers = await make_user(Role.SUPERVISOR)
    async with db.sessionmaker() as s:
        await make_agent(s, user=supervisor, name="Sue Pervisor")
        await s.commit()
    placed = await client.post(
        "/api/interactions/outbound", json=_outbound(others.id), headers=supervisor_headers
    )
    assert placed.status_code == 201 and placed.json()["attributes"]["outbound_basis"] == "supervisor"
    app.dependency_overrides.pop(wall_clock, None)


async def test_reads_outside_held_work_are_audited(client, db, agent_user, make_user) -> None:
    user, headers, agent = await agent_user()
    supervisor, supervisor_headers = await make_user(Role.SUPERVISOR)
    async with db.sessionmaker() as s:
        held_customer = await make_customer(s)
        await make_interaction(s, customer=held_customer, agent=agent)
        past_customer = await make_customer(s)
        past = await make_interaction(s, customer=past_customer, agent=agent)
        past.state = State.COMPLETED
        await s.commit()
    # Inside held work: the job, not audited.
    assert (await client.get(f"/api/customers/{held_customer.id}", headers=headers)).status_code == 200
    assert (
        await client.get(f"/api/customers/{held_customer.id}/timeline", headers=headers)
    ).status_code == 200
    assert await _reads(db, held_customer.id) == []
    # Work that is over: still visible to the agent, and audited.
    assert (await client.get(f"/api/customers/{past_customer.id}", headers=headers)).status_code == 200
    assert (
        await client.get(f"/api/customers/{past_customer.id}/timeline", headers=headers)
    ).status_code == 200
    assert await _reads(db, past_customer.id) == [
        (str(user.id), {"basis": "offer or earlier work", "what": "profile"}),
        (str(user.id), {"basis": "offer or earlier work", "what": "timeline"}),
    ]
    # A supervisor sees everyone, every read audited.
    assert (
        await client.get(f"/api/customers/{held_customer.id}", headers=supervisor_headers)
    ).status_code == 200
    timeline = await client.get(f"/api/customers/{held_customer.id}/timeline", headers=supervisor_headers)
    assert timeline.status_code == 200
    assert await _reads(db, held_customer.id) == [
        (str(supervisor.id), {"basis": "supervisor", "what": "profile"}),
        (str(supervisor.id), {"basis": "supervisor", "what": "timeline"}),
    ]
    # A search reads every customer it shows.
    found = await client.get("/api/customers", params={"limit": 200}, headers=supervisor_headers)
    assert found.status_code == 200 and found.json()["total"] == 2
    assert (str(supervisor.id), {"basis": "supervisor", "what": "search"}) in await _reads(
        db, past_customer.id
    )


async def test_reading_an_interaction_outside_held_work_is_audited(client, db, agent_user, make_user) -> None:
    """An interaction's detail, messages and timeline are the customer's data too (the conversation,
    the customer's name): read outside held work (an agent's finished work, a supervisor), audited."""
    user, headers, agent = await agent_user()
    supervisor, supervisor_headers = await make_user(Role.SUPERVISOR)
    async with db.sessionmaker() as s:
        held_customer = await make_customer(s)
        held = await make_interaction(s, customer=held_customer, agent=agent)
        past_customer = await make_customer(s)
        past = await make_interaction(s, customer=past_customer, agent=agent)
        past.state = State.COMPLETED
        await s.commit()
    reads = ("", "/messages", "/timeline")
    for suffix in reads:
        response = await client.get(f"/api/interactions/{held.id}{suffix}", headers=headers)
        assert response.status_code == 200, response.text
    assert await _reads(db, held_customer.id) == []
    for suffix in reads:
        response = await client.get(f"/api/interactions/{past.id}{suffix}", headers=headers)
        assert response.status_code == 200, response.text
    assert await _reads(db, past_customer.id) == [
        (str(user.id), {"basis": "offer or earlier work", "what": what})
        for what in ("interaction", "messages", "interaction timeline")
    ]
    response = await client.get(f"/api/interactions/{held.id}/messages", headers=supervisor_headers)
    assert response.status_code == 200, response.text
    expected = [(str(supervisor.id), {"basis": "supervisor", "what": "messages"})]
    assert await _reads(db, held_customer.id) == expected

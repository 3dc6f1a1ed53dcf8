"""POST /api/interactions: happy path, and bad input that must leave no trace in the database."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import StatementError

from customers.models import Identity
from interactions import service
from interactions.models import TimelineEvent
from interactions.schemas import IdentityRef, InteractionCreate
from interactions.states import Channel, Direction, State
from switchboard.auth.models import Role
from tests.factories import PHONE, count_rows, make_queue

PROBLEM = "application/problem+json"


def payload(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "voice",
        "identity": {"kind": "phone", "value": PHONE},
        "subject": "Card declined abroad",
        "priority": 5,
        "required_skills": {"cards": 3},
    }
    body.update(overrides)
    return body


async def test_create_inbound_queues_and_returns_customer_summary(session, client, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    await make_queue(session, "cards")

    response = await client.post("/api/interactions", json=payload(queue="cards"), headers=headers)

    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/api/interactions/{body['id']}"
    assert body["state"] == "queued" and body["version"] == 2
    assert body["queue"] == "cards" and body["required_skills"] == {"cards": 3}
    assert body["contact_identity"] == {"kind": "phone", "value": "+447911123456"}
    assert body["customer"]["id"] == body["customer_id"]
    assert body["customer"]["value_tier"] == "standard"
    assert body["queued_at"] is not None
    fetched = await client.get(response.headers["location"], headers=headers)
    assert fetched.status_code == 200 and fetched.json()["id"] == body["id"]


async def test_same_phone_written_differently_is_one_customer(client, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    first = await client.post("/api/interactions", json=payload(), headers=headers)
    second = await client.post(
        "/api/interactions",
        json=payload(channel="chat", identity={"kind": "phone", "value": "07911 123456"}),
        headers=headers,
    )
    assert first.status_code == second.status_code == 201
    assert first.json()["customer_id"] == second.json()["customer_id"]


async def test_outbound_defaults_to_not_queued(client, make_user, agent_user):
    _, headers, agent = await agent_user()
    response = await client.post(
        "/api/interactions", json=payload(direction="outbound", required_skills={}), headers=headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["state"] == State.CREATED.value
    assert body["agent_id"] == str(agent.id)
    # The agent who created it can read it back.
    assert (await client.get(response.headers["location"], headers=headers)).status_code == 200


async def test_agent_cannot_create_inbound(client, agent_user):
    _, headers, _ = await agent_user()
    response = await client.post("/api/interactions", json=payload(), headers=headers)
    assert response.status_code == 403
    assert response.json()["errors"][0]["field"] == "direction"


async def test_customer_role_cannot_create(client, make_user):
    _, headers = await make_user(Role.CUSTOMER)
    response = await client.post("/api/interactions", json=payload(), headers=headers)
    assert response.status_code == 403


async def test_unauthenticated_is_401(client):
    response = await client.post("/api/interactions", json=payload())
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM


def _without(key: str) -> dict[str, Any]:
    body = payload()
    del body[key]
    return body


BAD_INPUTS = [
    pytest.param(_without("channel"), 422, "channel", id="missing-channel"),
    pytest.param(_without("identity"), 422, "identity", id="missing-identity"),
    pytest.param(payload(priority="high"), 422, "priority", id="wrong-type-priority"),
    pytest.param(payload(identity="+447911123456"), 422, "identity", id="wrong-type-identity"),
    pytest.param(payload(channel="fax"), 422, "channel", id="unknown-channel"),
    pytest.param(payload(identity={"kind": "pager", "value": "1"}), 422, "identity.kind", id="unknown-kind"),
    pytest.param(
        payload(identity={"kind": "phone", "value": "+44 12"}), 422, "identity.value", id="malformed-phone"
    ),
    pytest.param(
        payload(identity={"kind": "phone", "value": "call me"}), 422, "identity.value", id="not-a-phone"
    ),
    pytest.param(
        payload(channel="email", identity={"kind": "email", "value": "ann@@example"}),
        422,
        "identity.value",
        id="malformed-email",
    ),
    pytest.param(payload(queue="no-such-queue"), 422, "queue", id="unknown-queue"),
    pytest.param(payload(required_skills={"cards": 6}), 422, "required_skills.cards", id="skill-above-5"),
    pytest.param(payload(required_skills={"cards": 0}), 422, "required_skills.cards", id="skill-below-1"),
    pytest.param(payload(surprise=True), 422, "surprise", id="unknown-field"),
    pytest.param(payload(parent_id=str(uuid.uuid4())), 422, "parent_id", id="unknown-parent"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_INPUTS)
async def test_bad_input_is_problem_naming_field_and_writes_nothing(
    session, client, make_user, body, status, field
):
    _, headers = await make_user(Role.SUPERVISOR)
    await make_queue(session, "cards")
    before = await count_rows(session)

    response = await client.post("/api/interactions", json=body, headers=headers)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    fields = [e["field"].removeprefix("body.") for e in response.json()["errors"]]
    assert field in fields, fields
    assert await count_rows(session) == before


async def test_oversize_body_is_413_and_writes_nothing(session, client, make_user, settings):
    _, headers = await make_user(Role.SUPERVISOR)
    before = await count_rows(session)
    body = payload(attributes={"blob": "x" * (settings.max_body_bytes + 1)})

    response = await client.post("/api/interactions", json=body, headers=headers)

    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["field"] == "body"
    assert await count_rows(session) == before


async def test_malformed_json_is_422_problem(session, client, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    before = await count_rows(session)
    response = await client.post(
        "/api/interactions", content=b'{"channel": ', headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert await count_rows(session) == before


async def test_known_identity_reuses_customer_and_writes_no_identity(session, client, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    assert (await client.post("/api/interactions", json=payload(), headers=headers)).status_code == 201
    before = await count_rows(session)
    assert (await client.post("/api/interactions", json=payload(), headers=headers)).status_code == 201
    after = await count_rows(session)
    assert after["customers"] == before["customers"] and after["identities"] == before["identities"]
    assert after["interactions"] == before["interactions"] + 1
    assert after["timeline_events"] == before["timeline_events"] + 2  # created + queued
    identities = list(await session.scalars(select(Identity)))
    assert [i.value for i in identities] == ["+447911123456"]


async def test_create_events_name_the_actor(session, client, make_user):
    user, headers = await make_user(Role.SUPERVISOR)
    response = await client.post("/api/interactions", json=payload(), headers=headers)
    iid = uuid.UUID(response.json()["id"])
    events = list(
        await session.scalars(
            select(TimelineEvent).where(TimelineEvent.interaction_id == iid).order_by(TimelineEvent.id)
        )
    )
    assert [e.kind for e in events] == ["interaction_created", "state_changed"]
    assert {(e.actor_type.value, e.actor_id) for e in events} == {("supervisor", str(user.id))}


@pytest.mark.parametrize(
    "path",
    [
        "/api/interactions/not-a-uuid",
        "/api/interactions/not-a-uuid/messages",
        "/api/interactions/not-a-uuid/timeline",
    ],
)
async def test_malformed_path_id_is_422_naming_param(client, make_user, path):
    _, headers = await make_user(Role.SUPERVISOR)
    response = await client.get(path, headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["field"] == "path.interaction_id"


async def test_malformed_customer_id_is_422(client, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    response = await client.get("/api/customers/xyz/timeline", headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "path.customer_id"


async def test_unknown_interaction_is_404(client, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    response = await client.get(f"/api/interactions/{uuid.uuid4()}", headers=headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


async def test_agent_cannot_queue_own_outbound(client, agent_user):
    _, headers, _ = await agent_user()
    response = await client.post(
        "/api/interactions", json=payload(direction="outbound", enqueue=True), headers=headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "enqueue"


async def test_failure_after_customer_write_leaves_nothing_even_if_caller_commits(session):
    """The customer row is flushed before the interaction; a failure at the interaction INSERT
    must roll back to the SAVEPOINT, so even a caller that commits afterwards writes nothing."""
    before = await count_rows(session)
    # model_construct skips validation, so an unserialisable JSON value reaches the INSERT itself.
    data = InteractionCreate.model_construct(
        channel=Channel.VOICE,
        direction=Direction.INBOUND,
        priority=0,
        required_skills={"cards": object()},
        subject=None,
        topic=None,
        language=None,
        identity=IdentityRef(kind="phone", value=PHONE),
        customer_name=None,
        queue=None,
        attributes={},
        enqueue=True,
        parent_id=None,
        callback_of_id=None,
        follow_up_of_id=None,
    )
    with pytest.raises(StatementError):
        await service.create_interaction(
            session, data=data, actor=service.Actor.system(), default_region="GB"
        )
    await session.commit()
    assert await count_rows(session) == before

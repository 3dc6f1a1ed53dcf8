"""The API's lean create path (interactions.lean_create) against the ORM path it replaces.

On PostgreSQL ``POST /api/interactions`` is one SQL statement; these tests pin that it writes the
same rows and timeline events and answers the same body as ``service.create_interaction``, that
a failed check writes nothing, that races and merged customers still resolve to one profile, and
that the enqueue command and the live timeline message reach Redis. They run on both backends
(SQLite takes the ORM path, so there they pin the ORM path to the same expectations).
"""

from __future__ import annotations

import asyncio
import json
import typing
import uuid
from typing import Any

import pytest
from sqlalchemy import select, update

from customers.models import Customer, Identity
from interactions import lean_create, service
from interactions.models import Interaction, TimelineEvent
from interactions.schemas import InteractionCreate
from switchboard import commands as routing_commands
from switchboard.auth.models import Role
from switchboard.deps import RequireAgent
from switchboard.events import PREFIX, customer_topic
from tests.factories import count_rows, make_queue

VOLATILE = {"id", "customer_id", "created_at", "virtual_start_at", "queued_at", "updated_at"}


def _body(phone: str, **extra: Any) -> dict[str, Any]:
    return {
        "channel": "voice",
        "identity": {"kind": "phone", "value": phone},
        "queue": "cards",
        "subject": "Card declined abroad",
        "topic": "cards",
        "priority": 7,
        "required_skills": {"cards": 3, "fraud": 2},
        "attributes": {"ivr": {"path": [1, 4]}, "vip": True},
        "customer_name": "Ann Example",
        "language": "cy",
        **extra,
    }


def _columns(row: Any, skip: set[str]) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key not in skip}


async def _rows_of(session: Any, interaction_id: uuid.UUID) -> dict[str, Any]:
    interaction = await session.scalar(
        select(Interaction).where(Interaction.id == interaction_id).execution_options(populate_existing=True)
    )
    customer = await session.scalar(
        select(Customer)
        .where(Customer.id == interaction.customer_id)
        .execution_options(populate_existing=True)
    )
    identities = list(await session.scalars(select(Identity).where(Identity.customer_id == customer.id)))
    events = list(
        await session.scalars(
            select(TimelineEvent)
            .where(TimelineEvent.customer_id == customer.id)
            .order_by(TimelineEvent.id)
            .execution_options(populate_existing=True)
        )
    )
    await session.commit()
    return {
        "interaction": _columns(interaction, VOLATILE),
        "customer": _columns(customer, {"id", "created_at", "updated_at"}),
        "identities": [_columns(i, {"id", "customer_id", "created_at", "value"}) for i in identities],
        "events": [
            {
                **_columns(e, {"id", "customer_id", "interaction_id", "at", "actor_id"}),
                "for_interaction": e.interaction_id == interaction.id,
            }
            for e in events
        ],
        "event_ids": [e.id for e in events],
        "contact": interaction.contact_identity,
    }


async def test_api_create_writes_what_the_orm_path_writes(session, client, make_user, db, lean_outcomes):
    await make_queue(session)
    user, headers = await make_user(Role.SUPERVISOR)
    response = await client.post("/api/interactions", json=_body("+44 7911 100001"), headers=headers)
    assert response.status_code == 201, response.text
    assert lean_outcomes == ([] if db.is_sqlite else ["created"])
    api = response.json()
    through_api = await _rows_of(session, uuid.UUID(api["id"]))

    viewer_actor = service.Actor(service.ActorType.SUPERVISOR, str(user.id))
    data = InteractionCreate.model_validate(_body("+44 7911 100002"))
    orm = await service.create_interaction(session, data=data, actor=viewer_actor, default_region="GB")
    await session.commit()
    orm_read = (await service.read_models(session, [orm]))[0].model_dump(mode="json")
    through_orm = await _rows_of(session, orm.id)

    # Same columns on every row (ids, times and the phone number itself aside) ...
    assert {k: v for k, v in through_api["interaction"].items() if k != "contact_identity"} == {
        k: v for k, v in through_orm["interaction"].items() if k != "contact_identity"
    }
    assert through_api["customer"] == through_orm["customer"]
    assert through_api["identities"] == through_orm["identities"]
    assert through_api["contact"] == {"kind": "phone", "value": "+447911100001"}
    # ... the same events, in the same order (customer_created first) ...
    strip = [{k: v for k, v in e.items() if k != "data"} for e in through_api["events"]]
    assert strip == [{k: v for k, v in e.items() if k != "data"} for e in through_orm["events"]]
    assert [e["kind"] for e in through_api["events"]] == [
        "customer_created",
        "interaction_created",
        "state_changed",
    ]
    assert through_api["event_ids"] == sorted(through_api["event_ids"])
    datas_api = [json.dumps(e["data"], sort_keys=True) for e in through_api["events"]]
    datas_orm = [json.dumps(e["data"], sort_keys=True) for e in through_orm["events"]]
    assert [d.replace("100001", "X") for d in datas_api] == [d.replace("100002", "X") for d in datas_orm]
    # ... and the same response body.
    assert set(api) == set(orm_read)
    for key in set(api) - VOLATILE - {"customer", "contact_identity"}:
        assert api[key] == orm_read[key], key
    assert {k: v for k, v in api["customer"].items() if k != "id"} == {
        k: v for k, v in orm_read["customer"].items() if k != "id"
    }
    assert api["customer"]["id"] == api["customer_id"]
    assert api["queued_at"] == api["created_at"] == api["updated_at"]


async def test_known_customer_gets_two_events_and_no_new_rows(session, client, make_user):
    await make_queue(session)
    _, headers = await make_user(Role.SUPERVISOR)
    first = await client.post("/api/interactions", json=_body("+44 7911 100003"), headers=headers)
    before = await count_rows(session)
    second = await client.post(
        "/api/interactions",
        json=_body("07911 100003", customer_name="Ignored", language=None),
        headers=headers,
    )
    assert second.status_code == 201, second.text
    assert second.json()["customer_id"] == first.json()["customer_id"]
    assert second.json()["customer"]["display_name"] == "Ann Example"
    assert second.json()["language"] == "cy"  # the customer's, none was given
    after = await count_rows(session)
    assert after["customers"] == before["customers"] and after["identities"] == before["identities"]
    assert after["timeline_events"] == before["timeline_events"] + 2


@pytest.mark.parametrize("field", ["parent_id", "callback_of_id", "follow_up_of_id", "queue"])
async def test_failed_check_names_the_field_and_writes_nothing(
    session, client, make_user, field, db, lean_outcomes
):
    await make_queue(session)
    _, headers = await make_user(Role.SUPERVISOR)
    value = "no-such-queue" if field == "queue" else str(uuid.uuid4())
    before = await count_rows(session)
    response = await client.post(
        "/api/interactions", json=_body("+44 7911 100004", **{field: value}), headers=headers
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert await count_rows(session) == before
    assert lean_outcomes == ([] if db.is_sqlite else ["invalid"])


async def test_links_to_existing_interactions_are_kept(session, client, make_user):
    await make_queue(session)
    _, headers = await make_user(Role.SUPERVISOR)
    parent = (await client.post("/api/interactions", json=_body("+44 7911 100005"), headers=headers)).json()
    child = await client.post(
        "/api/interactions",
        json=_body("+44 7911 100005", parent_id=parent["id"], follow_up_of_id=parent["id"]),
        headers=headers,
    )
    assert child.status_code == 201, child.text
    assert child.json()["parent_id"] == parent["id"] and child.json()["follow_up_of_id"] == parent["id"]


async def test_concurrent_first_contacts_resolve_to_one_customer(
    session, client, make_user, db, lean_outcomes
):
    """A race on a brand-new identity: the unique index decides, the losers take the ORM path."""
    await make_queue(session)
    _, headers = await make_user(Role.SUPERVISOR)
    before = await count_rows(session)
    responses = await asyncio.gather(
        *(client.post("/api/interactions", json=_body("+44 7911 100006"), headers=headers) for _ in range(8))
    )
    assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
    assert len({r.json()["customer_id"] for r in responses}) == 1
    if not db.is_sqlite:
        assert len(lean_outcomes) == 8 and "created" in lean_outcomes
    after = await count_rows(session)
    assert after["customers"] == before["customers"] + 1
    assert after["identities"] == before["identities"] + 1
    assert after["interactions"] == before["interactions"] + 8
    assert after["timeline_events"] == before["timeline_events"] + 1 + 8 * 2


async def test_identity_of_a_merged_customer_resolves_to_the_survivor(
    session, client, make_user, db, lean_outcomes
):
    await make_queue(session)
    _, headers = await make_user(Role.SUPERVISOR)
    old = (await client.post("/api/interactions", json=_body("+44 7911 100007"), headers=headers)).json()
    survivor = (await client.post("/api/interactions", json=_body("+44 7911 100008"), headers=headers)).json()
    # An identity still pointing at a merged profile (merging re-points them; belt and braces).
    await session.execute(
        update(Customer)
        .where(Customer.id == uuid.UUID(old["customer_id"]))
        .values(merged_into_id=uuid.UUID(survivor["customer_id"]))
    )
    await session.commit()
    before = await count_rows(session)
    lean_outcomes.clear()
    response = await client.post("/api/interactions", json=_body("+44 7911 100007"), headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["customer_id"] == survivor["customer_id"]
    assert lean_outcomes == ([] if db.is_sqlite else ["fallback"])  # nothing written, ORM path decided
    after = await count_rows(session)
    assert after["customers"] == before["customers"] and after["identities"] == before["identities"]


async def test_enqueue_command_and_live_timeline_reach_redis(app, session, client, make_user, redis_sync):
    await make_queue(session)
    _, headers = await make_user(Role.SUPERVISOR)
    listener = redis_sync.pubsub(ignore_subscribe_messages=True)
    listener.psubscribe(PREFIX + "customer:*")
    try:
        response = await client.post("/api/interactions", json=_body("+44 7911 100009"), headers=headers)
        assert response.status_code == 201, response.text
        body = response.json()
        message = None
        for _ in range(50):
            message = listener.get_message(timeout=0.1)
            if message is not None:
                break
        assert message is not None, "no live timeline message"
    finally:
        listener.close()
    assert message["channel"].decode() == PREFIX + customer_topic(body["customer_id"])
    live = json.loads(message["data"])
    events = list(
        await session.scalars(
            select(TimelineEvent).where(TimelineEvent.customer_id == uuid.UUID(body["customer_id"]))
        )
    )
    await session.commit()
    assert live == {
        "type": "timeline",
        "customer_id": body["customer_id"],
        "event_ids": sorted(e.id for e in events),
        "interaction_ids": [body["id"]],
        "kinds": ["customer_created", "interaction_created", "state_changed"],
    }
    commands = [json.loads(f[b"c"]) for _, f in redis_sync.xrange(routing_commands.stream_key())]
    assert [(c["type"], c["interaction_id"]) for c in commands] == [("enqueue", body["id"])]


async def test_agent_outbound_through_the_api(session, client, agent_user):
    _, headers, agent = await agent_user()
    response = await client.post(
        "/api/interactions",
        json={
            "channel": "voice",
            "direction": "outbound",
            "identity": {"kind": "phone", "value": "+447911100010"},
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["agent_id"] == str(agent.id) and response.json()["state"] == "created"
    events = list(
        await session.scalars(
            select(TimelineEvent)
            .where(TimelineEvent.interaction_id == uuid.UUID(response.json()["id"]))
            .order_by(TimelineEvent.id)
        )
    )
    await session.commit()
    assert [e.kind for e in events] == ["interaction_created"]
    assert events[0].data["agent_id"] == str(agent.id) and events[0].actor_type.value == "agent"


async def test_shortcut_keeps_the_routes_checks(client, make_user, settings):
    """The create bypasses FastAPI's routing (interactions.api.CreateShortcut); what the route's
    dependencies enforced still holds, with the same problem+json."""
    user, headers = await make_user(Role.SUPERVISOR)
    body = _body("+44 7911 100011", queue=None)
    # A session cookie without the CSRF header is refused (cross-site form posts).
    token = headers["Authorization"].removeprefix("Bearer ")
    client.cookies.set("sb_session", token)
    try:
        refused = await client.post("/api/interactions", json=body)
    finally:
        client.cookies.clear()
    assert refused.status_code == 403, refused.text
    assert refused.json()["errors"][0]["field"] == "X-CSRF-Token"
    # Not JSON: a 422 naming the body, as FastAPI answers.
    wrong_type = await client.post(
        "/api/interactions", content=b"channel=voice", headers={**headers, "content-type": "text/plain"}
    )
    assert wrong_type.status_code == 422
    assert wrong_type.headers["content-type"] == "application/problem+json"
    assert wrong_type.json()["errors"][0]["field"] == "body"
    # A customer-role user: 403; no token: 401.
    _, customer_headers = await make_user(Role.CUSTOMER)
    assert (await client.post("/api/interactions", json=body, headers=customer_headers)).status_code == 403
    assert (await client.post("/api/interactions", json=body)).status_code == 401
    # The route is still documented.
    schema = (await client.get("/openapi.json")).json()
    assert "post" in schema["paths"]["/api/interactions"]


def _dependency_calls(dependant: Any) -> list[Any]:
    return [c for d in dependant.dependencies for c in (d.call, *_dependency_calls(d))]


def test_shortcut_runs_every_dependency_of_the_route(app) -> None:
    """CreateShortcut answers POST /api/interactions past FastAPI's dependency solving, doing
    itself what the route's dependencies do: read the JSON body into ``InteractionCreate`` and
    authenticate the user as ``RequireAgent`` (CSRF included). A dependency added to the route
    (or to its router, or the app) would silently not run: this fails first, naming it. Kept
    because it saves ~0.22 ms of the app's ~1.05 ms CPU per create (docs/benchmarks.md)."""
    contexts = [
        ctx
        for route in app.routes
        for ctx in getattr(route, "effective_route_contexts", lambda: [])()
        if getattr(ctx, "path", None) == "/api/interactions" and "POST" in ctx.methods
    ]
    assert len(contexts) == 1
    dependant = contexts[0].dependant or contexts[0].original_route.dependant
    require_agent = typing.get_args(RequireAgent)[1].dependency
    assert _dependency_calls(dependant) == [require_agent], "add it to interactions.api._shortcut"
    assert [(p.name, p.field_info.annotation) for p in dependant.body_params] == [("body", InteractionCreate)]
    assert dependant.request_param_name == "request"
    assert not (dependant.path_params or dependant.query_params or dependant.header_params)
    assert not dependant.cookie_params


async def test_held_connections_are_reused_replaced_when_closed_and_closed_on_dispose(database_url, session):
    """The lean statement's few held connections (PostgreSQL only)."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite takes the ORM path")
    from switchboard import fastsql
    from switchboard.db import Database
    from tests.helpers import db_schema_for

    await make_queue(session)
    own = Database(database_url, schema=db_schema_for(database_url))

    async def create(n: int) -> None:
        data = InteractionCreate.model_validate(_body(f"+44 7911 2000{n:02d}"))
        await lean_create.create(
            own.engine, data=data, actor_type=service.ActorType.SYSTEM, actor_id=None, default_region="GB"
        )

    try:
        await create(1)
        await create(2)
        held = fastsql._held[own.engine]
        assert len(held._all) == 1  # sequential statements share one connection
        (first,) = held._all
        first.driver.terminate()  # e.g. PostgreSQL dropped it while idle
        await create(3)
        assert first not in held._all and len(held._all) == 1
        (second,) = held._all
    finally:
        await own.dispose()
    assert second.driver.is_closed() and own.engine not in fastsql._held

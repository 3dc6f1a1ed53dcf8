"""Agents and supervisors drive routing through the API; a real engine host runs in the app."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from interactions.models import Interaction
from interactions.states import State
from switchboard.auth.models import Role
from tests.factories import agent_in_queue, agent_profile
from tests.helpers import accept_next, eventually
from workforce.models import Queue


async def test_agent_works_an_interaction_through_the_api(routed, db, make_user):
    app, client = routed
    agent_user, agent_headers = await make_user(Role.AGENT)
    agent_id = await agent_in_queue(db, agent_user)
    _, supervisor = await make_user(Role.SUPERVISOR)

    status = await client.post("/api/routing/presence", json={"presence": "available"}, headers=agent_headers)
    assert status.status_code == 200 and status.json()["presence"] == "available"

    created = await client.post(
        "/api/interactions",
        json={"channel": "chat", "queue": "retail", "identity": {"kind": "phone", "value": "+447911123499"}},
        headers=supervisor,
    )
    assert created.status_code == 201, created.text
    interaction_id = created.json()["id"]

    async def offered() -> bool:
        response = await client.get("/api/routing/offers", headers=agent_headers)
        return bool(response.json())

    await eventually(offered, what="an offer on the agent's list")
    (offer,) = (await client.get("/api/routing/offers", headers=agent_headers)).json()
    assert offer["interaction_id"] == interaction_id and offer["agent_id"] == str(agent_id)

    # Someone else's accept is refused and changes nothing.
    other_user, other_headers = await make_user(Role.AGENT)
    await agent_profile(db, other_user, name="Other")
    foreign = await client.post(f"/api/routing/offers/{offer['id']}/accept", headers=other_headers)
    assert foreign.status_code == 409 and foreign.headers["content-type"] == "application/problem+json"

    accepted = await client.post(f"/api/routing/offers/{offer['id']}/accept", headers=agent_headers)
    assert accepted.status_code == 200, accepted.text
    again = await client.post(f"/api/routing/offers/{offer['id']}/accept", headers=agent_headers)
    assert again.status_code == 409

    undisposed = await client.post(
        f"/api/routing/interactions/{interaction_id}/complete", headers=agent_headers
    )
    assert undisposed.status_code == 422 and undisposed.json()["errors"][0]["field"] == "disposition"
    coded = await client.put(
        f"/api/interactions/{interaction_id}/disposition",
        json={"disposition": "resolved"},
        headers=agent_headers,
    )
    assert coded.status_code == 200, coded.text
    early = await client.post(f"/api/routing/interactions/{interaction_id}/complete", headers=agent_headers)
    assert early.status_code == 409 and "wrap up" in early.json()["detail"]
    assert (
        await client.post(f"/api/routing/interactions/{interaction_id}/wrap-up", headers=agent_headers)
    ).status_code == 200
    assert (
        await client.post(f"/api/routing/interactions/{interaction_id}/complete", headers=agent_headers)
    ).status_code == 200
    async with db.sessionmaker() as s:
        assert (await s.get(Interaction, uuid.UUID(interaction_id))).state is State.COMPLETED

    # The wallboard figures came from the engine's own counters.
    async def stats_ready() -> bool:
        response = await client.get("/api/routing/stats", headers=supervisor)
        return (
            response.status_code == 200 and response.json()["queues"].get("retail", {}).get("completed") == 1
        )

    await eventually(stats_ready, what="stats with the completed interaction")


async def test_dry_run_explains_ranked_agents(routed, db, make_user):
    app, client = routed
    from demo.rules import DEFAULT_RULE_SET
    from tests.factories import demo_catalogue

    await demo_catalogue(db)
    _, supervisor = await make_user(Role.SUPERVISOR)
    body = DEFAULT_RULE_SET.model_dump(mode="json", exclude={"version"})
    assert (
        await client.post("/api/routing/rule-sets", json={"body": body}, headers=supervisor)
    ).status_code == 201
    assert (await client.post("/api/routing/rule-sets/1/publish", headers=supervisor)).status_code == 200
    agent_user, agent_headers = await make_user(Role.AGENT)
    await agent_in_queue(db, agent_user, "seniors")
    await client.post("/api/routing/presence", json={"presence": "available"}, headers=agent_headers)

    async def explained() -> dict | None:
        response = await client.post(
            "/api/routing/dry-run",
            json={
                "context": {"channel": "voice", "customer.segments": ["senior"], "customer.language": "en"}
            },
            headers=supervisor,
        )
        return response.json() if response.status_code == 200 else None

    await eventually(lambda: _truthy(explained), what="a dry-run answer")
    answer = await explained()
    assert answer["filter"] == "seniors" and answer["queue"] == "seniors"

    missing = await client.post("/api/routing/dry-run", json={"context": {}}, headers=supervisor)
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "body.context"


async def _truthy(fn) -> bool:
    return bool(await fn())


async def test_transfer_to_agent_keeps_place_and_carries_the_note(routed, db, make_user):
    _, client = routed
    first_user, first = await make_user(Role.AGENT)
    second_user, second = await make_user(Role.AGENT)
    await agent_in_queue(db, first_user)
    second_agent = await agent_in_queue(db, second_user)
    _, supervisor = await make_user(Role.SUPERVISOR)
    await client.post("/api/routing/presence", json={"presence": "available"}, headers=first)

    created = await client.post(
        "/api/interactions",
        json={"channel": "chat", "queue": "retail", "identity": {"kind": "phone", "value": "+447911123488"}},
        headers=supervisor,
    )
    parent_id = created.json()["id"]
    await accept_next(client, first)
    await client.post("/api/routing/presence", json={"presence": "available"}, headers=second)

    bad = await client.post(
        f"/api/routing/interactions/{parent_id}/transfer", json={"mode": "blind"}, headers=first
    )
    assert bad.status_code == 422  # neither a queue nor an agent
    foreign = await client.post(
        f"/api/routing/interactions/{parent_id}/transfer", json={"to_queue": "retail"}, headers=second
    )
    assert foreign.status_code == 404  # only the agent holding it may hand it on

    moved = await client.post(
        f"/api/routing/interactions/{parent_id}/transfer",
        json={
            "to_agent_id": str(second_agent),
            "mode": "warm",
            "note": "Card 4111 1111 1111 1111 blocked; wants a new one",
        },
        headers=first,
    )
    assert moved.status_code == 200, moved.text
    child_id = moved.json()["child_interaction_id"]
    offer = await accept_next(client, second)
    assert offer["interaction_id"] == child_id

    async with db.sessionmaker() as s:
        parent = await s.get(Interaction, uuid.UUID(parent_id))
        child = await s.get(Interaction, uuid.UUID(child_id))
        assert parent.state is State.TRANSFERRED
        assert child.state is State.CONNECTED and child.parent_id == parent.id
        assert child.virtual_start_at == parent.virtual_start_at  # its place in line is kept
        note = child.attributes["transfer"]["note"]
        assert "4111 1111 1111 1111" not in note and "1111" in note  # PII masked, context kept
        assert child.attributes["transfer"]["mode"] == "warm"

    # The transferring agent's capacity was released: they can take new work at once.
    again = await client.post(
        "/api/interactions",
        json={"channel": "chat", "queue": "retail", "identity": {"kind": "phone", "value": "+447911123477"}},
        headers=supervisor,
    )
    assert again.status_code == 201
    offer = await accept_next(client, first)
    assert offer["interaction_id"] == again.json()["id"]


async def test_interval_history_is_exact_and_validated(routed, db, make_user):
    _, client = routed
    agent_user, agent = await make_user(Role.AGENT)
    await agent_in_queue(db, agent_user)
    _, supervisor = await make_user(Role.SUPERVISOR)
    await client.post("/api/routing/presence", json={"presence": "available"}, headers=agent)
    for n, phone in enumerate(("+447911123461", "+447911123462")):
        created = await client.post(
            "/api/interactions",
            json={"channel": "chat", "queue": "retail", "identity": {"kind": "phone", "value": phone}},
            headers=supervisor,
        )
        offer = await accept_next(client, agent)
        iid = created.json()["id"]
        assert offer["interaction_id"] == iid
        if n == 0:
            await client.put(
                f"/api/interactions/{iid}/disposition", json={"disposition": "resolved"}, headers=agent
            )
            await client.post(f"/api/routing/interactions/{iid}/wrap-up", headers=agent)
            assert (
                await client.post(f"/api/routing/interactions/{iid}/complete", headers=agent)
            ).status_code == 200

    response = await client.get("/api/routing/stats/history", params={"queue": "retail"}, headers=supervisor)
    assert response.status_code == 200
    (row,) = response.json()["intervals"]
    assert (row["offered"], row["accepted"], row["completed"], row["rejected"]) == (2, 2, 1, 0)
    assert row["answered_within_sl"] == 2 and row["service_level"] == 1.0
    assert row["average_handle_seconds"] is not None

    naive = await client.get(
        "/api/routing/stats/history", params={"start": "2026-11-23T09:00:00"}, headers=supervisor
    )
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "query.start"
    backwards = await client.get(
        "/api/routing/stats/history",
        params={"start": "2026-11-23T09:00:00Z", "end": "2026-11-23T08:00:00Z"},
        headers=supervisor,
    )
    assert backwards.status_code == 422


async def test_publish_preview_and_explicit_reevaluation_keep_place(routed, db, make_user):
    """v1 sends everyone to retail; v2 (the default rules) sends seniors to the seniors queue.
    Publishing alone moves nothing; the preview names what would move; re-evaluation moves it."""
    _, client = routed
    from demo.rules import DEFAULT_RULE_SET
    from tests.factories import demo_catalogue

    await demo_catalogue(db)
    _, supervisor = await make_user(Role.SUPERVISOR)
    v1 = {
        "filters": [{"name": "cards", "when": 'interaction.topic == "cards"', "steps": [{"queue": "cards"}]}],
        "default_filter": {"name": "everyone", "steps": [{"queue": "retail"}]},
        "on_final_timeout": "retail",
    }
    assert (
        await client.post("/api/routing/rule-sets", json={"body": v1}, headers=supervisor)
    ).status_code == 201
    assert (await client.post("/api/routing/rule-sets/1/publish", headers=supervisor)).status_code == 200

    senior = await client.post(
        "/api/customers",
        json={
            "display_name": "Margaret Hale",
            "segments": ["senior"],
            "identities": [{"kind": "phone", "value": "+447911123455"}],
        },
        headers=supervisor,
    )
    assert senior.status_code == 201, senior.text
    ids = []
    for phone in ("+447911123455", "+447911123456"):  # the senior, then someone else
        created = await client.post(
            "/api/interactions",
            json={"channel": "voice", "identity": {"kind": "phone", "value": phone}},
            headers=supervisor,
        )
        ids.append(created.json()["id"])

    async def routed_to_retail() -> bool:
        async with db.sessionmaker() as s:
            rows = [await s.get(Interaction, uuid.UUID(i), populate_existing=True) for i in ids]
            return all(r.rule_set_version == 1 and r.queue_id is not None for r in rows)

    await eventually(routed_to_retail, what="both routed by v1")
    async with db.sessionmaker() as s:
        retail = await s.scalar(select(Queue.id).where(Queue.name == "retail"))
        seniors = await s.scalar(select(Queue.id).where(Queue.name == "seniors"))
        before = {i: (await s.get(Interaction, uuid.UUID(i))).virtual_start_at for i in ids}

    body = DEFAULT_RULE_SET.model_dump(mode="json", exclude={"version"})
    assert (
        await client.post("/api/routing/rule-sets", json={"body": body}, headers=supervisor)
    ).status_code == 201
    preview = await client.post("/api/routing/rule-sets/2/preview", headers=supervisor)
    assert preview.status_code == 200, preview.text
    moves = {m["interaction_id"]: m for m in preview.json()["moves"]}
    assert moves[ids[0]]["from"]["queue"] == "retail" and moves[ids[0]]["to"]["queue"] == "seniors"
    assert moves[ids[0]]["to"]["filter"] == "seniors"

    assert (await client.post("/api/routing/rule-sets/2/publish", headers=supervisor)).status_code == 200
    # A barrier instead of a pause: the dry run travels the same command stream after the
    # publish notice, so its answer means the engine has handled the publish.
    explained = await client.post("/api/routing/dry-run", json={"interaction_id": ids[0]}, headers=supervisor)
    assert explained.status_code == 200, explained.text
    async with db.sessionmaker() as s:
        assert (
            await s.get(Interaction, uuid.UUID(ids[0]))
        ).queue_id == retail  # publishing alone moves nothing

    moved = await client.post("/api/routing/rule-sets/reevaluate", headers=supervisor)
    assert moved.status_code == 200 and moved.json()["moved"] >= 1
    async with db.sessionmaker() as s:
        first = await s.get(Interaction, uuid.UUID(ids[0]), populate_existing=True)
        assert first.queue_id == seniors and first.rule_set_version == 2
        assert first.virtual_start_at == before[ids[0]]  # its place in line is kept

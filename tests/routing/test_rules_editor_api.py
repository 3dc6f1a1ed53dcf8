"""The rules editor's JSON routes against a real app with its engine: the condition check, the
dry-run of a described contact under a draft (agents by name, and why the others are not),
publish and roll back reaching the running engine, bad input as problem+json naming the field,
agents refused, and a refused publish leaving nothing half-saved."""

from __future__ import annotations

from sqlalchemy import func, select

from demo.rules import DEFAULT_RULE_SET
from routing import service as routing_service
from routing.models import RoutingPartition
from switchboard import commands
from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from tests.factories import demo_catalogue, make_agent
from tests.helpers import eventually
from workforce.models import Presence, Queue

CANTONESE_SENIORS = {
    "name": "cantonese-seniors",
    "when": '"senior" in customer.segments and customer.language == "yue"',
    "steps": [
        {
            "queue": "seniors",
            "target": "customer.language in languages",
            "required_skills": {"seniors_care": 2},
            "priority": 9,
            "timeout_seconds": None,
        }
    ],
}


def _body(*extra: dict) -> dict:
    body = DEFAULT_RULE_SET.model_dump(mode="json", exclude={"version"})
    body["filters"] = [*extra, *body["filters"]]
    return body


async def _seniors_floor(db, redis) -> dict[str, str]:
    """Three agents in "seniors": Mei (Cantonese, care 3), Lee (Cantonese, care 1), Pat (on a break);
    the engine is told, as the agent administration does."""
    async with db.sessionmaker() as s:
        queue = await s.scalar(select(Queue).where(Queue.name == "seniors"))
        ids = {}
        for name, langs, care, presence in (
            ("Mei Wong", ["yue", "en"], 3, Presence.AVAILABLE),
            ("Lee Chan", ["yue"], 1, Presence.AVAILABLE),
            ("Pat Reid", ["yue"], 4, Presence.BREAK),
        ):
            agent = await make_agent(
                s,
                name=name,
                presence=presence,
                languages=langs,
                skills={"seniors_care": care},
                queues=[queue],
            )
            ids[name] = str(agent.id)
    for agent_id in ids.values():
        await commands.send(redis, commands.AgentChanged(agent_id=agent_id))
    return ids


async def _published(client, headers, body: dict, comment: str = "") -> int:
    created = await client.post(
        "/api/routing/rule-sets", json={"body": body, "comment": comment}, headers=headers
    )
    assert created.status_code == 201, created.text
    version = created.json()["version"]
    assert (
        await client.post(f"/api/routing/rule-sets/{version}/publish", headers=headers)
    ).status_code == 200
    return version


async def test_condition_check_points_at_the_problem_and_completes(client, make_user):
    _, supervisor = await make_user(Role.SUPERVISOR)
    _, agent = await make_user(Role.AGENT)
    broken = await client.post(
        "/api/routing/conditions/validate",
        json={"text": 'interaction.topic = "card_fraud"', "kind": "when"},
        headers=supervisor,
    )
    assert broken.status_code == 200, broken.text
    assert broken.json() | {"completions": []} == {
        "valid": False,
        "message": "unexpected character '='",
        "position": 18,
        "column": 19,
        "completions": [],
    }
    typing = await client.post(
        "/api/routing/conditions/validate", json={"text": 'customer.tier == "pla'}, headers=supervisor
    )
    assert typing.json()["completions"] == ['customer.tier == "platinum"']
    attrs = (await client.get("/api/routing/conditions/attributes?kind=target", headers=supervisor)).json()
    assert "languages" in attrs["attributes"] and "customer.tier" in attrs["attributes"]
    assert attrs["values"]["customer.tier"] == ["platinum", "gold", "silver", "standard"]

    bad_kind = await client.post(
        "/api/routing/conditions/validate", json={"text": "true", "kind": "agent"}, headers=supervisor
    )
    assert bad_kind.status_code == 422
    assert bad_kind.headers["content-type"].startswith("application/problem+json")
    assert bad_kind.json()["errors"][0]["field"] == "body.kind"
    too_long = await client.post(
        "/api/routing/conditions/validate", json={"text": "x" * 2001}, headers=supervisor
    )
    assert too_long.status_code == 422 and too_long.json()["errors"][0]["field"] == "body.text"
    refused = await client.post("/api/routing/conditions/validate", json={"text": "true"}, headers=agent)
    assert refused.status_code == 403
    assert (await client.get("/api/routing/conditions/attributes", headers=agent)).status_code == 403


async def test_dry_run_of_a_described_contact_under_a_draft(routed, db, make_user):
    app, client = routed
    await demo_catalogue(db)
    _, supervisor = await make_user(Role.SUPERVISOR)
    _, agent_headers = await make_user(Role.AGENT)
    await _published(client, supervisor, _body(), "demo rules")
    ids = await _seniors_floor(db, app.state.redis_client)
    draft = await client.post(
        "/api/routing/rule-sets",
        json={"body": _body(CANTONESE_SENIORS), "comment": "Cantonese seniors"},
        headers=supervisor,
    )
    assert draft.status_code == 201, draft.text
    contact = {
        "tier": "platinum",
        "senior": True,
        "language": "yue",
        "channel": "voice",
        "topic": "card_fraud",
        "time": "18:05",
    }

    async def explained() -> dict:
        response = await client.post(
            "/api/routing/dry-run", json={"contact": contact, "version": 2}, headers=supervisor
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def knows_all_three() -> bool:  # the engine applies the agents' changes in its own time
        answer = await explained()
        return len(answer["agents"]) + answer["others_total"] == 3

    await eventually(knows_all_three, what="a dry-run naming the seniors agents")
    answer = await explained()
    assert answer["rule_set_version"] == 2
    assert (answer["filter"], answer["queue"], answer["priority"]) == ("cantonese-seniors", "seniors", 9)
    assert [(t["name"], t["outcome"]) for t in answer["trace"]] == [
        ("cantonese-seniors", "matched"),
        ("seniors", "active"),
    ]
    assert [(a["name"], a["rank"]) for a in answer["agents"]] == [("Mei Wong", 1)]
    assert {(o["name"], o["reason"]) for o in answer["others"]} == {
        ("Lee Chan", "skill too low: seniors_care=1, needs 2"),
        ("Pat Reid", "break"),
    }
    assert {a["agent_id"] for a in answer["agents"]} == {ids["Mei Wong"]}

    # The live version (1) still routes a platinum customer to private banking.
    live = await client.post("/api/routing/dry-run", json={"contact": contact}, headers=supervisor)
    assert (live.json()["rule_set_version"], live.json()["filter"]) == (1, "private-banking")

    for body, field in (
        ({"contact": {**contact, "tier": "diamond"}}, "body.contact.tier"),
        ({"contact": {**contact, "time": "25:00"}}, "body.contact.time"),
        ({"contact": contact, "version": 0}, "body.version"),
        ({"contact": contact, "version": 99}, "body.version"),
        ({"context": {}}, "body.context"),
    ):
        bad = await client.post("/api/routing/dry-run", json=body, headers=supervisor)
        assert bad.status_code == 422, (body, bad.text)
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert bad.json()["errors"][0]["field"] == field, bad.json()
    assert (
        await client.post("/api/routing/dry-run", json={"contact": contact}, headers=agent_headers)
    ).status_code == 403


async def test_publish_and_rollback_reach_the_running_engine(routed, db, make_user):
    app, client = routed
    await demo_catalogue(db)
    _, supervisor = await make_user(Role.SUPERVISOR)
    _, agent_headers = await make_user(Role.AGENT)
    await _published(client, supervisor, _body())
    await _published(client, supervisor, _body(CANTONESE_SENIORS), "Cantonese seniors")
    contact = {"contact": {"senior": True, "language": "yue"}}

    async def live_filter() -> str | None:
        response = await client.post("/api/routing/dry-run", json=contact, headers=supervisor)
        return response.json()["filter"] if response.status_code == 200 else None

    async def filter_is(name: str) -> bool:
        return await live_filter() == name

    await eventually(lambda: filter_is("cantonese-seniors"), what="the engine routing by version 2")
    back = await client.post("/api/routing/rule-sets/rollback", json={"to_version": 1}, headers=supervisor)
    assert back.status_code == 200 and back.json()["live"]
    await eventually(lambda: filter_is("seniors-own-language"), what="the engine back on version 1")

    for path, body in (
        ("/api/routing/rule-sets/rollback", {"to_version": 2}),
        ("/api/routing/rule-sets/2/publish", None),
    ):
        assert (await client.post(path, json=body, headers=agent_headers)).status_code == 403
    bad = await client.post("/api/routing/rule-sets/rollback", json={"to_version": 0}, headers=supervisor)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.to_version"
    missing = await client.post("/api/routing/rule-sets/rollback", json={"to_version": 9}, headers=supervisor)
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "version"
    path_bad = await client.post("/api/routing/rule-sets/0/publish", headers=supervisor)
    assert path_bad.status_code == 422 and path_bad.json()["errors"][0]["field"] == "path.version"


async def test_a_version_made_live_without_a_notice_is_followed_by_reconcile(routed, db, make_user):
    """SQL is the truth: a version put live while the engine could not be told (Redis down at the
    moment, a lost notice) routes new arrivals within a reconcile pass, without a restart."""
    app, client = routed
    await demo_catalogue(db)
    _, supervisor = await make_user(Role.SUPERVISOR)
    await _published(client, supervisor, _body())
    draft = await client.post(
        "/api/routing/rule-sets", json={"body": _body(CANTONESE_SENIORS)}, headers=supervisor
    )
    assert draft.status_code == 201
    async with db.sessionmaker() as s:  # live in SQL, and no RuleSetPublished sent
        await routing_service.publish(s, version=draft.json()["version"], actor_id=None)
        await s.commit()
    contact = {"contact": {"senior": True, "language": "yue"}}

    async def routes_by_the_new_version() -> bool:
        response = await client.post("/api/routing/dry-run", json=contact, headers=supervisor)
        return response.status_code == 200 and response.json()["filter"] == "cantonese-seniors"

    # The host's reconcile pass runs every 2 s; well within this without any notice.
    await eventually(routes_by_the_new_version, within=8, what="the engine to follow the live version")


async def test_a_refused_publish_leaves_nothing_half_saved(client, db, make_user):
    await demo_catalogue(db)
    _, supervisor = await make_user(Role.SUPERVISOR)
    await _published(client, supervisor, _body())
    draft = await client.post(
        "/api/routing/rule-sets", json={"body": _body(CANTONESE_SENIORS)}, headers=supervisor
    )
    assert draft.status_code == 201
    # The queue the draft needs is deleted after it was saved: publishing must refuse it whole.
    async with db.sessionmaker() as s:
        seniors = await s.scalar(select(Queue).where(Queue.name == "seniors"))
        for q in await s.scalars(select(Queue).where(Queue.overflow_queue_id == seniors.id)):
            q.overflow_queue_id = None
        await s.delete(seniors)
        await s.commit()
        audits_before = await s.scalar(select(func.count()).select_from(AuditEntry))
    refused = await client.post("/api/routing/rule-sets/2/publish", headers=supervisor)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert any(e["field"].endswith(".queue") for e in refused.json()["errors"])
    async with db.sessionmaker() as s:
        assert (await s.get(RoutingPartition, "default")).live_rule_set_version == 1
        assert await s.scalar(select(func.count()).select_from(AuditEntry)) == audits_before
    versions = (await client.get("/api/routing/rule-sets", headers=supervisor)).json()
    assert [(v["version"], v["status"], v["live"]) for v in versions] == [
        (2, "draft", False),
        (1, "published", True),
    ]

"""Rule-set versions through the API: validated on save, atomic publish, rollback, audit."""

from __future__ import annotations

import copy

from sqlalchemy import select

from demo.rules import DEFAULT_RULE_SET
from routing.models import RoutingPartition
from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from tests.factories import demo_catalogue
from workforce.models import Queue


def _body() -> dict:
    return DEFAULT_RULE_SET.model_dump(mode="json", exclude={"version"})


async def test_draft_publish_rollback_and_audit(client, db, make_user):
    await demo_catalogue(db)
    supervisor, headers = await make_user(Role.SUPERVISOR)

    first = await client.post(
        "/api/routing/rule-sets", json={"body": _body(), "comment": "v1"}, headers=headers
    )
    assert first.status_code == 201, first.text
    assert first.json()["version"] == 1 and first.json()["status"] == "draft" and not first.json()["live"]

    published = await client.post("/api/routing/rule-sets/1/publish", headers=headers)
    assert published.status_code == 200 and published.json()["live"]

    changed = _body()
    changed["default_filter"]["steps"][0]["priority"] = 1
    second = await client.post(
        "/api/routing/rule-sets", json={"body": changed, "comment": "v2"}, headers=headers
    )
    assert second.json()["version"] == 2
    assert (await client.post("/api/routing/rule-sets/2/publish", headers=headers)).json()["live"]

    # Published versions are frozen.
    frozen = await client.put("/api/routing/rule-sets/2", json={"body": _body()}, headers=headers)
    assert frozen.status_code == 409

    back = await client.post("/api/routing/rule-sets/rollback", json={"to_version": 1}, headers=headers)
    assert back.status_code == 200 and back.json()["version"] == 1 and back.json()["live"]

    history = (await client.get("/api/routing/rule-sets", headers=headers)).json()
    assert [(v["version"], v["live"]) for v in history] == [(2, False), (1, True)]
    async with db.sessionmaker() as s:
        actions = list(await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
        actors = set(await s.scalars(select(AuditEntry.actor_id).where(AuditEntry.entity_type == "rule_set")))
    assert actions == [
        "rule_set.draft_created",
        "rule_set.published",
        "rule_set.draft_created",
        "rule_set.published",
        "rule_set.rolled_back",
    ]
    assert actors == {supervisor.id}


async def test_invalid_rules_are_422_naming_the_path_and_nothing_changes(client, db, make_user):
    await demo_catalogue(db)
    _, headers = await make_user(Role.SUPERVISOR)
    assert (
        await client.post("/api/routing/rule-sets", json={"body": _body()}, headers=headers)
    ).status_code == 201
    assert (await client.post("/api/routing/rule-sets/1/publish", headers=headers)).status_code == 200

    cases = []
    unknown_attribute = _body()
    unknown_attribute["filters"][0]["when"] = 'customer.shoe_size == "9"'
    cases.append((unknown_attribute, "body.filters[0].when"))
    type_mismatch = _body()
    type_mismatch["filters"][0]["when"] = "customer.tier == 3"
    cases.append((type_mismatch, "body.filters[0].when"))
    negative = _body()
    negative["filters"][0]["steps"][0]["timeout_seconds"] = -5
    cases.append((negative, "body.filters[0].steps[0].timeout_seconds"))
    unknown_queue = _body()
    unknown_queue["default_filter"]["steps"][0]["queue"] = "atlantis"
    cases.append((unknown_queue, "body.default_filter.steps[0].queue"))
    wrong_type = _body()
    wrong_type["filters"][0]["steps"][0]["priority"] = "high"
    cases.append((wrong_type, "body.filters[0].steps[0].priority"))

    for body, path in cases:
        response = await client.post("/api/routing/rule-sets", json={"body": body}, headers=headers)
        assert response.status_code == 422, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        fields = [e["field"] for e in response.json()["errors"]]
        assert path in fields, (path, fields)
        check = await client.post("/api/routing/rule-sets/validate", json={"body": body}, headers=headers)
        assert check.json()["valid"] is False and path in [e["field"] for e in check.json()["errors"]]

    history = (await client.get("/api/routing/rule-sets", headers=headers)).json()
    assert [(v["version"], v["live"]) for v in history] == [(1, True)]


async def test_failed_publish_leaves_previous_version_live(client, db, make_user):
    """A draft valid when saved becomes invalid (its queue is deleted): publish fails, v1 stays live."""
    await demo_catalogue(db)
    _, headers = await make_user(Role.SUPERVISOR)
    await client.post("/api/routing/rule-sets", json={"body": _body()}, headers=headers)
    await client.post("/api/routing/rule-sets/1/publish", headers=headers)
    body = copy.deepcopy(_body())
    body["filters"][0]["steps"].append({"queue": "collections", "timeout_seconds": None})
    body["filters"][0]["steps"][-2]["timeout_seconds"] = 600
    draft = await client.post("/api/routing/rule-sets", json={"body": body}, headers=headers)
    assert draft.status_code == 201, draft.text
    async with db.sessionmaker() as s:
        await s.delete(await s.scalar(select(Queue).where(Queue.name == "collections")))
        await s.commit()

    failed = await client.post("/api/routing/rule-sets/2/publish", headers=headers)
    assert failed.status_code == 422
    async with db.sessionmaker() as s:
        assert (await s.get(RoutingPartition, "default")).live_rule_set_version == 1
    assert (await client.get("/api/routing/rule-sets/2", headers=headers)).json()["status"] == "draft"


async def test_agents_cannot_touch_rules(client, db, make_user):
    _, headers = await make_user(Role.AGENT)
    response = await client.post("/api/routing/rule-sets", json={"body": _body()}, headers=headers)
    assert response.status_code == 403

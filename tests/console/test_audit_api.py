"""GET /api/audit and its CSV export: before -> after of real changes (made through the app's own
routes), filters, keyset paging, validation as problem+json naming the field, role checks, and a
CSV export that is streamed in batches and safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from sqlalchemy import insert

from console.audit_api import EXPORT_BATCH
from customers.service import set_tier_policy
from customers.tier_policy import DEFAULT_TIER_POLICY, TierThresholds
from demo.rules import DEFAULT_RULE_SET
from switchboard.audit import AuditEntry, record_audit
from switchboard.auth.models import Role
from switchboard.db import utcnow
from tests.factories import demo_catalogue

PROBLEM_JSON = "application/problem+json"


def _body() -> dict:
    return DEFAULT_RULE_SET.model_dump(mode="json", exclude={"version"})


async def test_user_admin_changes_show_before_and_after(client, make_user):
    admin, admin_h = await make_user(Role.ADMIN, username="ops-admin")
    agent, _ = await make_user(Role.AGENT, username="agent-kim")
    supervisor, sup_h = await make_user(Role.SUPERVISOR)
    assert (await client.post(f"/api/auth/users/{agent.id}/disable", headers=admin_h)).status_code == 200
    changed = await client.patch(f"/api/auth/users/{agent.id}", json={"role": "supervisor"}, headers=admin_h)
    assert changed.status_code == 200, changed.text

    page = await client.get("/api/audit", params={"action": "user", "actor": "ops-admin"}, headers=sup_h)
    assert page.status_code == 200, page.text
    items = page.json()["items"]
    assert [(e["action"], e["actor"], e["entity_id"]) for e in items] == [
        ("user.role_changed", "ops-admin", str(agent.id)),
        ("user.disabled", "ops-admin", str(agent.id)),
    ]
    assert items[0]["changes"] == [{"field": "role", "before": "agent", "after": "supervisor"}]
    assert items[1]["changes"] == [{"field": "active", "before": True, "after": False}]
    assert page.json()["next_cursor"] is None

    # Someone else's actions, or another kind, are filtered out.
    other = await client.get("/api/audit", params={"actor": supervisor.username}, headers=sup_h)
    assert other.json()["items"] == []
    disabled_only = await client.get("/api/audit", params={"action": "user.disabled"}, headers=sup_h)
    assert [e["action"] for e in disabled_only.json()["items"]] == ["user.disabled"]
    # "user" is a kind (user.*), not a prefix of any action name ("username.x" would not match).
    assert (await client.get("/api/audit", params={"action": "use"}, headers=sup_h)).json()["items"] == []


async def test_rule_set_edits_and_publishing_show_before_and_after(client, db, make_user):
    await demo_catalogue(db)
    _, headers = await make_user(Role.SUPERVISOR)
    assert (
        await client.post("/api/routing/rule-sets", json={"body": _body(), "comment": "v1"}, headers=headers)
    ).status_code == 201
    assert (await client.post("/api/routing/rule-sets/1/publish", headers=headers)).status_code == 200
    assert (
        await client.post("/api/routing/rule-sets", json={"body": _body(), "comment": "v2"}, headers=headers)
    ).status_code == 201
    changed = _body()
    changed["default_filter"]["steps"][0]["priority"] = 7
    updated = await client.put(
        "/api/routing/rule-sets/2", json={"body": changed, "comment": "v2 urgent"}, headers=headers
    )
    assert updated.status_code == 200, updated.text
    assert (await client.post("/api/routing/rule-sets/2/publish", headers=headers)).status_code == 200

    items = (await client.get("/api/audit", params={"entity_type": "rule_set"}, headers=headers)).json()[
        "items"
    ]
    by_action = {e["action"]: e for e in reversed(items)}  # the newest of each action
    assert by_action["rule_set.published"]["changes"] == [{"field": "live_version", "before": 1, "after": 2}]
    edit = {c["field"]: c for c in by_action["rule_set.draft_updated"]["changes"]}
    assert edit["comment"] == {"field": "comment", "before": "v2", "after": "v2 urgent"}
    steps = edit["body.default_filter.steps"]
    assert steps["before"][0]["priority"] == 1 and steps["after"][0]["priority"] == 7
    assert set(edit) == {"comment", "body.default_filter.steps"}  # only what changed


async def test_time_range_and_keyset_paging(client, db, make_user):
    actor, headers = await make_user(Role.SUPERVISOR)
    now = utcnow()
    async with db.sessionmaker() as s:
        for n in range(5):
            entry = record_audit(s, actor_id=actor.id, action="x.changed", entity_type="x", entity_id=str(n))
            entry.at = now - timedelta(hours=5 - n)  # entity 0 is the oldest
        await s.commit()

    seen: list[str] = []
    params: dict[str, str | int] = {"entity_type": "x", "limit": 2}
    while True:
        page = (await client.get("/api/audit", params=params, headers=headers)).json()
        seen += [e["entity_id"] for e in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == ["4", "3", "2", "1", "0"]

    window = {
        "entity_type": "x",
        "since": (now - timedelta(hours=4, minutes=30)).isoformat(),
        "until": (now - timedelta(hours=1, minutes=30)).isoformat(),
    }
    ranged = (await client.get("/api/audit", params=window, headers=headers)).json()["items"]
    assert [e["entity_id"] for e in ranged] == ["3", "2", "1"]


async def test_bad_filters_are_problems_naming_the_field(client, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    cases = {
        "query.since": {"since": "yesterday"},
        "query.until": {"since": "2026-12-06T10:00:00Z", "until": "2026-12-06T09:00:00Z"},
        "query.limit": {"limit": "0"},
        "query.cursor": {"cursor": "-3"},
        "query.actor": {"actor": "a" * 81},
    }
    for field, params in cases.items():
        for path in ("/api/audit", "/api/audit/export.csv"):
            response = await client.get(path, params=params, headers=headers)
            assert response.status_code == 422, (path, params, response.text)
            assert response.headers["content-type"] == PROBLEM_JSON
            assert [e["field"] for e in response.json()["errors"]] == [field], response.json()


async def test_only_supervisors_and_admins_read_it(client, make_user):
    _, agent_h = await make_user(Role.AGENT)
    _, admin_h = await make_user(Role.ADMIN)
    for path in ("/api/audit", "/api/audit/export.csv", "/supervisor/audit"):
        anonymous = await client.get(path)
        assert anonymous.status_code == 401 and anonymous.headers["content-type"] == PROBLEM_JSON
        refused = await client.get(path, headers=agent_h)
        assert refused.status_code == 403 and refused.headers["content-type"] == PROBLEM_JSON
        assert (await client.get(path, headers=admin_h)).status_code == 200
    browser = await client.get("/supervisor/audit", headers={"accept": "text/html"})
    assert browser.status_code == 303 and browser.headers["location"] == "/login"


async def test_csv_export_is_streamed_in_batches_and_formula_safe(client, db, make_user):
    actor, headers = await make_user(Role.SUPERVISOR, username="sup-csv")
    total = EXPORT_BATCH * 2 + 7  # three batches, the last one short
    now = utcnow()
    async with db.sessionmaker() as s:
        await s.execute(
            insert(AuditEntry),
            [
                {
                    "at": now,
                    "actor_id": actor.id,
                    "action": "bulk.changed",
                    "entity_type": "bulk",
                    "entity_id": str(n),
                    "data": {"before": {"n": n}, "after": {"n": n + 1}},
                }
                for n in range(total)
            ],
        )
        record_audit(
            s,
            actor_id=actor.id,
            action="bulk.changed",
            entity_type="bulk",
            entity_id='=HYPERLINK("http://evil","x")',
            before={"note": "+1"},
            after={"note": "@SUM(A1)"},
        )
        await s.commit()

    response = await client.get("/api/audit/export.csv", params={"entity_type": "bulk"}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == total + 1
    evil = rows[0]
    assert evil["entity_id"] == '\'=HYPERLINK("http://evil","x")'
    assert evil["actor"] == "sup-csv" and evil["changes"] == "note: +1 -> @SUM(A1)"
    # Every entry once, newest first (ids fall across the batch boundaries).
    assert [r["entity_id"] for r in rows[1:]] == [str(n) for n in reversed(range(total))]
    assert rows[1]["changes"] == f"n: {total - 1} -> {total}"
    for row in rows:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row.values()), row


async def test_tier_policy_change_shows_the_thresholds_before_and_after(client, db, make_user):
    supervisor, headers = await make_user(Role.SUPERVISOR)
    stricter = DEFAULT_TIER_POLICY.model_copy(
        update={"thresholds": TierThresholds(platinum=150, gold=80, silver=40)}
    )
    async with db.sessionmaker() as s:
        await set_tier_policy(s, policy=stricter, actor_id=supervisor.id)
        await s.commit()
    items = (await client.get("/api/audit", params={"action": "tier_policy"}, headers=headers)).json()[
        "items"
    ]
    old = DEFAULT_TIER_POLICY.thresholds
    # (PostgreSQL's jsonb keeps its own key order.)
    assert sorted((c["field"], c["before"], c["after"]) for c in items[0]["changes"]) == [
        ("thresholds.gold", old.gold, 80),
        ("thresholds.platinum", old.platinum, 150),
        ("thresholds.silver", old.silver, 40),
    ]

"""The rules editor's pages over HTTP: saving through the form (validated, audited, nothing saved
when a field is wrong, each problem at its field), editing a draft, publishing and rolling back
from the version page (audited), and agents refused everywhere."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from console import rules_form
from interactions.models import Interaction
from routing.models import RoutingPartition, RuleSetVersion
from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from tests.factories import demo_catalogue, everything_to
from tests.helpers import eventually, rules_form_data
from workforce.models import Queue

BODY = {
    "filters": [
        {"name": "fraud", "when": 'interaction.topic == "card_fraud"', "steps": [{"queue": "cards"}]},
    ],
    "default_filter": {"name": "default", "steps": [{"queue": "retail"}]},
    "on_final_timeout": "callback",
}


def _form(body: dict, **changes: str) -> dict[str, str]:
    return rules_form_data(rules_form.body_to_state(body)) | {"comment": "by form", "op": "save"} | changes


async def _counts(db) -> tuple[int, int]:
    async with db.sessionmaker() as s:
        versions = await s.scalar(select(func.count()).select_from(RuleSetVersion))
        audits = await s.scalar(select(func.count()).select_from(AuditEntry))
    return versions, audits


async def test_saving_through_the_form(client, db, make_user):
    await demo_catalogue(db)
    _, supervisor = await make_user(Role.SUPERVISOR)
    html = {**supervisor, "accept": "text/html"}

    broken = _form(BODY, **{"f0.when": 'interaction.topic = "card_fraud"', "f0.s0.priority": "high"})
    refused = await client.post("/supervisor/rules/new", data=broken, headers=html)
    assert refused.status_code == 422
    page = refused.text
    assert 'id="f0-when"' in page and "unexpected character &#39;=&#39; at column 19" in page
    assert 'id="f0-s0-priority-error"' in page and "valid integer" in page
    assert 'aria-errormessage="f0-when-error"' in page
    assert await _counts(db) == (0, 0)  # nothing saved, nothing audited

    saved = await client.post("/supervisor/rules/new", data=_form(BODY), headers=html)
    assert saved.status_code == 303 and saved.headers["location"] == "/supervisor/rules/1?saved=1"
    async with db.sessionmaker() as s:
        row = await s.scalar(select(RuleSetVersion))
        assert row.body["filters"][0]["when"] == BODY["filters"][0]["when"] and row.comment == "by form"
        assert await s.scalar(select(AuditEntry.action)) == "rule_set.draft_created"

    # An editing button re-renders the form (nothing saved); the draft is changed by its own form.
    added = await client.post("/supervisor/rules/1/edit", data=_form(BODY, op="add-filter"), headers=html)
    assert added.status_code == 200 and 'id="f1-name"' in added.text and "autofocus" in added.text
    changed = _form(BODY, **{"f0.s0.priority": "7"})
    assert (await client.post("/supervisor/rules/1/edit", data=changed, headers=html)).status_code == 303
    async with db.sessionmaker() as s:
        row = await s.scalar(select(RuleSetVersion))
        assert row.body["filters"][0]["steps"][0]["priority"] == 7
    assert await _counts(db) == (1, 2)


async def test_publish_and_roll_back_from_the_version_page(client, db, make_user):
    await demo_catalogue(db)
    _, supervisor = await make_user(Role.SUPERVISOR)
    html = {**supervisor, "accept": "text/html"}
    for priority in ("1", "2"):
        await client.post(
            "/supervisor/rules/new", data=_form(BODY, **{"f0.s0.priority": priority}), headers=html
        )
        version = priority
        done = await client.post(f"/supervisor/rules/{version}/publish", headers=html)
        assert done.status_code == 303 and done.headers["location"].endswith("?done=published")
    page = await client.get("/supervisor/rules/1", headers=html)
    assert "Roll back to version 1" in page.text and "priority" in page.text  # the diff against live
    back = await client.post("/supervisor/rules/1/rollback", headers=html)
    assert back.status_code == 303
    async with db.sessionmaker() as s:
        assert (await s.get(RoutingPartition, "default")).live_rule_set_version == 1
        actions = list(await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions[-1] == "rule_set.rolled_back" and actions.count("rule_set.published") == 2

    # A draft that no longer validates is refused whole: the page says why, the live version stays.
    await client.post("/supervisor/rules/new", data=_form(BODY), headers=html)
    async with db.sessionmaker() as s:
        row = await s.scalar(select(RuleSetVersion).where(RuleSetVersion.version == 3))
        row.body = {**row.body, "on_final_timeout": "nowhere"}
        await s.commit()
    before = await _counts(db)
    refused = await client.post("/supervisor/rules/3/publish", headers=html)
    assert refused.status_code == 303 and "error=" in refused.headers["location"]
    assert "on_final_timeout" in (await client.get(refused.headers["location"], headers=html)).text
    assert await _counts(db) == before
    async with db.sessionmaker() as s:
        assert (await s.get(RoutingPartition, "default")).live_rule_set_version == 1


async def test_waiting_work_dry_run_preview_and_reevaluate(routed, db, make_user):
    app, client = routed
    await demo_catalogue(db)
    _, supervisor = await make_user(Role.SUPERVISOR)
    html = {**supervisor, "accept": "text/html"}
    await client.post("/supervisor/rules/new", data=_form(everything_to("retail")), headers=html)
    await client.post("/supervisor/rules/1/publish", headers=html)
    created = await client.post(
        "/api/interactions",
        json={
            "channel": "chat",
            "identity": {"kind": "phone", "value": "+447911123444"},
            "customer_name": "Wes Wait",
        },
        headers=supervisor,
    )
    assert created.status_code == 201, created.text
    waiting_id = created.json()["id"]

    async def waits_in_retail() -> bool:
        async with db.sessionmaker() as s:
            it = await s.get(Interaction, uuid.UUID(waiting_id))
            return it.rule_set_version == 1 and it.queue_id is not None

    await eventually(waits_in_retail, what="the chat routed by version 1")
    await client.post("/supervisor/rules/new", data=_form(everything_to("cards")), headers=html)
    page = await client.get("/supervisor/rules/2", headers=html)
    assert "Wes Wait" in page.text and waiting_id in page.text  # its dry-run button

    explained = await client.post(
        "/supervisor/rules/2/dry-run", data={"interaction_id": waiting_id}, headers=html
    )
    assert explained.status_code == 200 and "Goes to queue <strong>cards</strong>" in explained.text
    preview = await client.post("/supervisor/rules/2/preview", headers=html)
    assert "1 waiting interaction would move under version 2" in preview.text
    assert "retail" in preview.text and "cards" in preview.text

    await client.post("/supervisor/rules/2/publish", headers=html)
    moved = await client.post("/supervisor/rules/reevaluate", headers=html)
    assert "<strong>1</strong> waiting interaction moved" in moved.text, moved.text
    async with db.sessionmaker() as s:
        it = await s.get(Interaction, uuid.UUID(waiting_id))
        assert it.rule_set_version == 2
        assert (await s.get(Queue, it.queue_id)).name == "cards"
        assert await s.scalar(select(AuditEntry.data).where(AuditEntry.action == "rule_set.reevaluated")) == {
            "moved": 1
        }


async def test_agents_are_refused(client, db, make_user):
    await demo_catalogue(db)
    _, agent = await make_user(Role.AGENT)
    html = {**agent, "accept": "text/html"}
    for method, path in (
        ("GET", "/supervisor/rules"),
        ("GET", "/supervisor/rules/new"),
        ("POST", "/supervisor/rules/new"),
        ("POST", "/supervisor/rules/check"),
        ("POST", "/supervisor/rules/1/publish"),
        ("POST", "/supervisor/rules/1/rollback"),
        ("POST", "/supervisor/rules/1/dry-run"),
        ("POST", "/supervisor/rules/reevaluate"),
    ):
        response = await client.request(
            method, path, data={"field": "x"} if method == "POST" else None, headers=html
        )
        assert response.status_code == 403, (method, path, response.status_code)
    assert await _counts(db) == (0, 0)

"""Wrap-up codes and canned responses per queue (issue #11 item 4): administered as rows, kept
where the agent desktop reads them, placeholders checked when saved and filled when inserted."""

from __future__ import annotations

from sqlalchemy import select

from agent_desktop.work_service import dispositions_for
from interactions.queue_texts import DEFAULT_DISPOSITIONS, canned_for, fill
from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from tests.factories import make_queue
from workforce.models import Queue

PROBLEM = "application/problem+json"


async def _queue(db, name: str = "cards", **fields) -> Queue:
    async with db.sessionmaker() as s:
        return await make_queue(s, name, **fields)


async def _settings(db, queue_id) -> dict:
    async with db.sessionmaker() as s:
        return (await s.get(Queue, queue_id)).settings


async def test_wrap_up_codes_are_the_desktops_list(db, client, make_user):
    _, sup = await make_user(Role.SUPERVISOR)
    queue = await _queue(db)
    async with db.sessionmaker() as s:
        assert dispositions_for(await s.get(Queue, queue.id)) == DEFAULT_DISPOSITIONS
    bad = await client.post(
        "/api/wrap-up-codes", json={"queue_id": str(queue.id), "code": "Card Lost"}, headers=sup
    )
    assert bad.status_code == 422 and [e["field"] for e in bad.json()["errors"]] == ["body.code"]
    nowhere = await client.post(
        "/api/wrap-up-codes",
        json={"queue_id": "00000000-0000-0000-0000-000000000001", "code": "x1"},
        headers=sup,
    )
    assert nowhere.status_code == 422 and nowhere.json()["errors"][0]["field"] == "queue_id"

    made = []
    for code in ("card_replaced", "card_blocked"):
        created = await client.post(
            "/api/wrap-up-codes", json={"queue_id": str(queue.id), "code": code}, headers=sup
        )
        assert created.status_code == 201, created.text
        made.append(created.json())
    again = await client.post(
        "/api/wrap-up-codes", json={"queue_id": str(queue.id), "code": "card_blocked"}, headers=sup
    )
    assert again.status_code == 409 and again.json()["errors"][0]["field"] == "code"
    assert (await _settings(db, queue.id))["dispositions"] == ["card_replaced", "card_blocked"]
    async with db.sessionmaker() as s:
        assert dispositions_for(await s.get(Queue, queue.id)) == ("card_replaced", "card_blocked")

    renamed = await client.patch(
        f"/api/wrap-up-codes/{made[0]['id']}", json={"code": "card_reissued"}, headers=sup
    )
    assert renamed.status_code == 200 and renamed.json()["code"] == "card_reissued"
    moved = await client.patch(
        f"/api/wrap-up-codes/{renamed.json()['id']}", json={"queue_id": str(queue.id)}, headers=sup
    )
    assert moved.status_code == 422 and moved.json()["errors"][0]["field"] == "body.queue_id"
    assert (await client.delete(f"/api/wrap-up-codes/{made[1]['id']}", headers=sup)).status_code == 204
    assert (await _settings(db, queue.id))["dispositions"] == ["card_reissued"]
    async with db.sessionmaker() as s:
        actions = [
            (e.action, e.data.get("before"), e.data.get("after"))
            for e in await s.scalars(
                select(AuditEntry).where(AuditEntry.entity_type == "wrap_up_code").order_by(AuditEntry.id)
            )
        ]
    assert actions[2:] == [
        ("wrap_up_code.updated", {"code": "card_replaced"}, {"code": "card_reissued"}),
        ("wrap_up_code.deleted", {"queue_id": str(queue.id), "code": "card_blocked"}, {}),
    ]


async def test_canned_responses_with_placeholders(db, client, make_user):
    _, sup = await make_user(Role.SUPERVISOR)
    queue = await _queue(db, settings={"canned": [{"title": "Old", "body": "Kept as it was"}]})
    listed = await client.get("/api/canned-responses", headers=sup)
    (old,) = listed.json()["items"]
    assert (old["title"], old["queue"]) == ("Old", "Cards")

    body = {
        "queue_id": str(queue.id),
        "title": "Hello",
        "body": "Hello {customer_first_name}, I'm {agent_nme}.",
    }
    bad = await client.post("/api/canned-responses", json=body, headers=sup)
    assert bad.status_code == 422 and [e["field"] for e in bad.json()["errors"]] == ["body.body"]
    assert "{agent_nme}" in bad.text
    brace = await client.post("/api/canned-responses", json={**body, "body": "Hello {"}, headers=sup)
    assert brace.status_code == 422 and "brace" in brace.text
    assert len((await _settings(db, queue.id))["canned"]) == 1  # nothing half-saved

    created = await client.post(
        "/api/canned-responses",
        json={**body, "body": "Hello {customer_first_name}, I'm {agent_name}."},
        headers=sup,
    )
    assert created.status_code == 201, created.text
    changed = await client.patch(
        f"/api/canned-responses/{created.json()['id']}", json={"title": "Hi"}, headers=sup
    )
    assert changed.status_code == 200 and changed.json()["id"] == created.json()["id"]
    async with db.sessionmaker() as s:
        responses = canned_for(await s.get(Queue, queue.id))
    assert [(r.title, r.body) for r in responses] == [
        ("Old", "Kept as it was"),
        ("Hi", "Hello {customer_first_name}, I'm {agent_name}."),
    ]
    assert (
        fill(responses[1].body, {"customer_first_name": "Ada", "agent_name": "Kim"}) == "Hello Ada, I'm Kim."
    )
    assert fill("{customer_first_name}", {}) == "{customer_first_name}"


async def test_the_desktop_fills_a_responses_placeholders(db):
    from types import SimpleNamespace
    from typing import Any, cast

    from agent_desktop.canned import for_work
    from tests.factories import make_agent, make_customer

    queue = await _queue(
        db,
        settings={
            "canned": [{"title": "Hi", "body": "Hello {customer_first_name}, {agent_name} of {queue_name}."}]
        },
    )
    async with db.sessionmaker() as s:
        customer = await make_customer(s, display_name="Ada Lovelace")
        agent = await make_agent(s, name="Kim Desk")
        ctx = SimpleNamespace(
            interaction=SimpleNamespace(customer_id=customer.id), queue=await s.get(Queue, queue.id)
        )
        (hello,) = await for_work(s, cast(Any, ctx), agent.id)
    assert hello.body == "Hello Ada, Kim Desk of Cards."

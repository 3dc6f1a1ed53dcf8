"""Cross-channel customer timeline, list pagination, and who may see what (DESIGN §6)."""

from __future__ import annotations

import uuid

from interactions import service
from interactions.models import ActorType
from interactions.schemas import InteractionFilters
from interactions.states import State
from switchboard.auth.models import Role
from tests.factories import OTHER_PHONE, PHONE, new_interaction, walk_to


async def _all_pages(client, url: str, headers: dict[str, str], limit: int) -> list[dict]:
    items: list[dict] = []
    before = None
    for _ in range(100):
        params = {"limit": limit, **({"before_id": before} if before else {})}
        page = (await client.get(url, params=params, headers=headers)).json()
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        before = page["next_before_id"]
        if before is None:
            return items
    raise AssertionError("pagination did not end")


async def test_cross_channel_timeline_newest_first_and_paginated(session, client, make_user):
    """Voice and chat via the phone identity, email via an email identity later merged in: one history."""
    _, headers = await make_user(Role.SUPERVISOR)
    from customers.merge import merge_customers
    from interactions.customer_merge import MOVERS

    voice = await new_interaction(session, channel="voice", enqueue=True)
    chat = await new_interaction(session, channel="chat", enqueue=True)
    email = await new_interaction(
        session, channel="email", kind="email", value="ann@example.com", enqueue=True
    )
    assert voice.customer_id == chat.customer_id != email.customer_id
    customer_id, email_customer = voice.customer_id, email.customer_id
    await service.post_message(
        session, interaction_id=chat.id, sender="customer", author_id=None, body="hello"
    )
    await session.commit()
    await merge_customers(
        session, target_id=customer_id, source_id=email_customer, actor_id=None, movers=MOVERS
    )
    await session.commit()

    everything = await service.customer_timeline(session, customer_id=customer_id, limit=200)
    await session.commit()  # end the read (SQLite: BEGIN IMMEDIATE holds the write lock)
    pages = await _all_pages(client, f"/api/customers/{customer_id}/timeline", headers, limit=2)

    assert [e["id"] for e in pages] == [e.id for e in everything.items]
    ids = [e["id"] for e in pages]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    assert {e["channel"] for e in pages if e["interaction_id"]} == {"voice", "chat", "email"}
    # Events written before the merge keep their original customer_id (append-only) yet appear here.
    assert {e["customer_id"] for e in pages} == {str(customer_id), str(email_customer)}
    assert any(e["kind"] == "message" and e["data"]["preview"] == "hello" for e in pages)


async def test_list_interactions_keyset_pagination_and_filters(session, client, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    created = [await new_interaction(session, channel=c, enqueue=True) for c in ("voice", "chat") * 3]
    await new_interaction(session, value=OTHER_PHONE)  # another customer, state created

    seen: list[str] = []
    cursor = None
    while True:
        params: dict = {"limit": 4, "customer_id": str(created[0].customer_id)}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/interactions", params=params, headers=headers)).json()
        seen.extend(i["id"] for i in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(i.id) for i in reversed(created)]  # newest first, no gaps, no repeats

    chats = (await client.get("/api/interactions", params={"channel": "chat"}, headers=headers)).json()
    assert {i["channel"] for i in chats["items"]} == {"chat"} and len(chats["items"]) == 3
    fresh = (await client.get("/api/interactions", params={"state": "created"}, headers=headers)).json()
    assert len(fresh["items"]) == 1

    bad = await client.get("/api/interactions", params={"cursor": "!!!"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"
    unknown_queue = await client.get("/api/interactions", params={"queue": "nope"}, headers=headers)
    assert unknown_queue.status_code == 422 and unknown_queue.json()["errors"][0]["field"] == "queue"
    too_many = await client.get("/api/interactions", params={"limit": 201}, headers=headers)
    assert too_many.status_code == 422


async def test_list_service_same_created_at_ties_broken_by_id(session):
    from datetime import UTC, datetime

    from interactions.schemas import InteractionCreate

    at = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    made = []
    for _ in range(5):
        data = InteractionCreate.model_validate(
            {"channel": "chat", "identity": {"kind": "phone", "value": PHONE}}
        )
        made.append(
            await service.create_interaction(
                session, data=data, actor=service.Actor.system(), default_region="GB", now=at
            )
        )
    await session.commit()
    seen, cursor = [], None
    while True:
        page = await service.list_interactions(session, filters=InteractionFilters(), limit=2, cursor=cursor)
        seen.extend(i.id for i in page.items)
        if (cursor := page.next_cursor) is None:
            break
    assert seen == sorted((i.id for i in made), reverse=True)


async def test_agent_sees_only_own_interactions_and_customers(session, client, agent_user):
    _, headers_a, agent_a = await agent_user()
    _, headers_b, agent_b = await agent_user()
    mine = await walk_to(session, await new_interaction(session), State.CONNECTED, agent_id=agent_a.id)
    theirs = await walk_to(
        session, await new_interaction(session, value=OTHER_PHONE), State.OFFERED, agent_id=agent_b.id
    )

    assert (await client.get(f"/api/interactions/{mine.id}", headers=headers_a)).status_code == 200
    for path in ("", "/messages", "/timeline"):
        response = await client.get(f"/api/interactions/{theirs.id}{path}", headers=headers_a)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
    # Same answer as for an id that does not exist: existence does not leak.
    assert (await client.get(f"/api/interactions/{uuid.uuid4()}", headers=headers_a)).status_code == 404
    note = await client.post(f"/api/interactions/{theirs.id}/notes", json={"body": "x"}, headers=headers_a)
    assert note.status_code == 404

    listed = (await client.get("/api/interactions", headers=headers_a)).json()
    assert [i["id"] for i in listed["items"]] == [str(mine.id)]
    # Asking for someone else's work by filter still yields only your own.
    filtered = (
        await client.get("/api/interactions", params={"agent_id": str(agent_b.id)}, headers=headers_a)
    ).json()
    assert filtered["items"] == []

    assert (
        await client.get(f"/api/customers/{mine.customer_id}/timeline", headers=headers_a)
    ).status_code == 200
    foreign = await client.get(f"/api/customers/{theirs.customer_id}/timeline", headers=headers_a)
    assert foreign.status_code == 404
    assert (
        await client.get(f"/api/customers/{theirs.customer_id}/timeline", headers=headers_b)
    ).status_code == 200


async def test_agent_keeps_sight_of_an_interaction_offered_before(session, client, agent_user):
    _, headers_a, agent_a = await agent_user()
    interaction = await walk_to(session, await new_interaction(session), State.OFFERED, agent_id=agent_a.id)
    await service.transition(
        session,
        interaction_id=interaction.id,
        to_state=State.QUEUED,
        actor_type=ActorType.SYSTEM,
        actor_id=None,
        reason="offer timed out",
        changes={"agent_id": None},
    )
    await session.commit()
    response = await client.get(f"/api/interactions/{interaction.id}", headers=headers_a)
    assert response.status_code == 200 and response.json()["agent_id"] is None
    assert (
        await client.get(f"/api/customers/{interaction.customer_id}/timeline", headers=headers_a)
    ).status_code == 200


async def test_agent_without_profile_sees_nothing(session, client, make_user):
    _, headers = await make_user(Role.AGENT)
    interaction = await new_interaction(session, enqueue=True)
    assert (await client.get(f"/api/interactions/{interaction.id}", headers=headers)).status_code == 404
    assert (await client.get("/api/interactions", headers=headers)).json()["items"] == []


async def test_customer_role_sees_only_own(session, client, make_user, customer_user):
    _, staff = await make_user(Role.SUPERVISOR)
    own = await new_interaction(session, enqueue=True)
    other = await new_interaction(session, value=OTHER_PHONE, enqueue=True)
    _, headers = await customer_user(own.customer_id)
    note = await client.post(
        f"/api/interactions/{own.id}/notes", json={"body": "internal remark"}, headers=staff
    )
    assert note.status_code == 201

    assert (await client.get(f"/api/interactions/{own.id}", headers=headers)).status_code == 200
    assert (await client.get(f"/api/interactions/{other.id}", headers=headers)).status_code == 404
    listed = (await client.get("/api/interactions", headers=headers)).json()
    assert [i["id"] for i in listed["items"]] == [str(own.id)]
    own_timeline = await client.get(f"/api/customers/{own.customer_id}/timeline", headers=headers)
    assert own_timeline.status_code == 200
    kinds = {e["kind"] for e in own_timeline.json()["items"]}
    assert "note" not in kinds and "state_changed" in kinds  # internal notes stay internal
    interaction_kinds = {
        e["kind"]
        for e in (await client.get(f"/api/interactions/{own.id}/timeline", headers=headers)).json()["items"]
    }
    assert "note" not in interaction_kinds
    assert (
        await client.get(f"/api/customers/{other.customer_id}/timeline", headers=headers)
    ).status_code == 404
    # Customers cannot write staff messages or use the supervisor override.
    assert (
        await client.post(f"/api/interactions/{own.id}/messages", json={"body": "hi"}, headers=headers)
    ).status_code == 403
    assert (
        await client.post(
            f"/api/interactions/{own.id}/transition", json={"to_state": "abandoned"}, headers=headers
        )
    ).status_code == 403


async def test_transition_api_is_supervisor_only_and_honours_expected_version(
    session, client, make_user, agent_user
):
    _, agent_headers, agent = await agent_user()
    _, sup = await make_user(Role.SUPERVISOR)
    interaction = await walk_to(session, await new_interaction(session), State.CONNECTED, agent_id=agent.id)
    url, version = f"/api/interactions/{interaction.id}/transition", interaction.version
    assert (await client.post(url, json={"to_state": "wrap_up"}, headers=agent_headers)).status_code == 403
    stale = await client.post(url, json={"to_state": "wrap_up", "expected_version": 1}, headers=sup)
    assert stale.status_code == 409 and stale.json()["current_version"] == version
    ok = await client.post(
        url, json={"to_state": "wrap_up", "reason": "call dropped", "expected_version": version}, headers=sup
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["state"] == "wrap_up" and ok.json()["version"] == version + 1
    bad_state = await client.post(url, json={"to_state": "paused"}, headers=sup)
    assert bad_state.status_code == 422 and bad_state.json()["errors"][0]["field"] == "body.to_state"

"""``Idempotency-Key`` on the creates (interactions.idempotency): one key, one interaction.

Every test runs on SQLite and PostgreSQL; the API tests are table-driven over the two create paths
PostgreSQL has: the one-statement lean create (a new caller) and the ORM path the lean statement
hands back to (a caller whose identity still points at a merged profile). Counts come from SQL.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select, update

from customers.models import Customer
from interactions import chat, idempotency
from interactions.models import IdempotencyKey, Interaction
from interactions.states import Channel
from switchboard.app import create_app
from switchboard.auth.models import Role
from switchboard.db import utcnow
from switchboard.errors import NotFound
from tests.factories import make_queue
from tests.workers import run_burst_worker

PATHS = ["lean", "orm"]


def _body(phone: str, **extra: Any) -> dict[str, Any]:
    return {"channel": "voice", "identity": {"kind": "phone", "value": phone}, "queue": "cards", **extra}


async def _caller(path: str, client: AsyncClient, session: Any, headers: dict[str, str], phone: str) -> None:
    """Make ``phone`` a caller the given path serves on PostgreSQL (SQLite always takes the ORM)."""
    if path == "lean":
        return
    # An identity left on a merged profile: the lean statement writes nothing and hands back.
    old = (await client.post("/api/interactions", json=_body(phone), headers=headers)).json()
    survivor = (await client.post("/api/interactions", json=_body("+44 7911 200999"), headers=headers)).json()
    await session.execute(
        update(Customer)
        .where(Customer.id == uuid.UUID(old["customer_id"]))
        .values(merged_into_id=uuid.UUID(survivor["customer_id"]))
    )
    await session.commit()


async def _interactions_of(session: Any, subject: str) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Interaction).where(Interaction.subject == subject)
    )
    await session.commit()  # end the read transaction (SQLite takes a write lock at BEGIN)
    return int(count or 0)


async def _keys(session: Any) -> int:
    count = await session.scalar(select(func.count()).select_from(IdempotencyKey))
    await session.commit()
    return int(count or 0)


def _expected_path(path: str, db: Any) -> list[str]:
    if db.is_sqlite:
        return []
    return ["created"] if path == "lean" else ["fallback"]


@pytest.mark.parametrize("path", PATHS)
async def test_a_retry_with_the_same_key_returns_the_first_interaction(
    path, session, client, make_user, db, lean_outcomes
):
    await make_queue(session)
    _, headers = await make_user(Role.SUPERVISOR)
    await _caller(path, client, session, headers, "+44 7911 200001")
    lean_outcomes.clear()
    keyed = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    body = _body("+44 7911 200001", subject="retry-me")

    first = await client.post("/api/interactions", json=body, headers=keyed)
    assert first.status_code == 201, first.text
    assert lean_outcomes == _expected_path(path, db)
    assert idempotency.REPLAYED_HEADER not in first.headers
    # The client lost the answer (a fail-over, a timeout) and sends the same request again.
    again = await client.post("/api/interactions", json=body, headers=keyed)
    assert again.status_code == 201, again.text
    assert again.headers[idempotency.REPLAYED_HEADER] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert again.json()["state"] == "queued"
    assert lean_outcomes == _expected_path(path, db)  # the replay never ran the create
    assert await _interactions_of(session, "retry-me") == 1
    assert await _keys(session) == 1


@pytest.mark.parametrize("path", PATHS)
async def test_the_same_key_with_another_body_is_a_422_naming_the_header(
    path, session, client, make_user, db, lean_outcomes
):
    await make_queue(session)
    _, headers = await make_user(Role.SUPERVISOR)
    await _caller(path, client, session, headers, "+44 7911 200002")
    keyed = {**headers, "Idempotency-Key": "order-42-attempt"}
    first = await client.post(
        "/api/interactions", json=_body("+44 7911 200002", subject="one"), headers=keyed
    )
    assert first.status_code == 201, first.text

    other = await client.post(
        "/api/interactions", json=_body("+44 7911 200002", subject="two"), headers=keyed
    )
    assert other.status_code == 422, other.text
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["errors"][0]["field"] == "header.Idempotency-Key"
    assert "Idempotency-Key" in other.json()["detail"]
    assert await _interactions_of(session, "one") == 1
    assert await _interactions_of(session, "two") == 0


@pytest.mark.parametrize("path", PATHS)
async def test_concurrent_retries_create_one_interaction(
    path, app, redis_handle, session, client, make_user, db, lean_outcomes
):
    """Four copies at once through two app instances (two engines and pools, as two processes)."""
    await make_queue(session)
    user, headers = await make_user(Role.SUPERVISOR)
    await _caller(path, client, session, headers, "+44 7911 200003")
    lean_outcomes.clear()
    keyed = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    body = _body("+44 7911 200003", subject="racing")
    other_app = create_app(app.state.settings, redis_handle=redis_handle)
    async with (
        other_app.router.lifespan_context(other_app),
        AsyncClient(transport=ASGITransport(app=other_app), base_url="http://testserver") as other,
    ):
        responses = await asyncio.gather(
            *(c.post("/api/interactions", json=body, headers=keyed) for c in (client, other, client, other))
        )
    assert [r.status_code for r in responses] == [201] * 4, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get(idempotency.REPLAYED_HEADER) == "true" for r in responses) == 3
    assert await _interactions_of(session, "racing") == 1
    assert await _keys(session) == 1


async def test_keys_are_per_caller_and_validated(session, client, make_user):
    await make_queue(session)
    _, ann = await make_user(Role.SUPERVISOR)
    _, bob = await make_user(Role.SUPERVISOR)
    body = _body("+44 7911 200004", subject="per-caller")
    for headers in (ann, bob):
        response = await client.post(
            "/api/interactions", json=body, headers={**headers, "Idempotency-Key": "k1"}
        )
        assert response.status_code == 201 and idempotency.REPLAYED_HEADER not in response.headers
    assert await _interactions_of(session, "per-caller") == 2

    for bad in ("x" * 256, "", "caf\u00e9"):
        response = await client.post(
            "/api/interactions", json=body, headers={**ann, "Idempotency-Key": bad.encode()}
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "header.Idempotency-Key"
    assert await _interactions_of(session, "per-caller") == 2


async def test_an_expired_key_is_free_again_and_purged(session, client, make_user):
    await make_queue(session)
    _, headers = await make_user(Role.SUPERVISOR)
    keyed = {**headers, "Idempotency-Key": "daily-report"}
    first = await client.post(
        "/api/interactions", json=_body("+44 7911 200005", subject="old"), headers=keyed
    )
    assert first.status_code == 201
    await session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
    await session.commit()
    # Expired: the same key (even with another body) makes a new interaction.
    second = await client.post(
        "/api/interactions", json=_body("+44 7911 200005", subject="new"), headers=keyed
    )
    assert second.status_code == 201 and second.json()["id"] != first.json()["id"]
    assert idempotency.REPLAYED_HEADER not in second.headers
    assert await _keys(session) == 1

    assert await idempotency.purge_expired(session, now=utcnow() + idempotency.KEY_TTL) == 1
    assert await _keys(session) == 0
    assert await _interactions_of(session, "old") == 1 and await _interactions_of(session, "new") == 1


async def _chats(session: Any) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Interaction).where(Interaction.channel == Channel.CHAT)
    )
    await session.commit()
    return int(count or 0)


async def test_a_retried_chat_start_answers_the_same_chat_under_a_new_token(session, client):
    await make_queue(session)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"name": "Edith Moss", "contact": "+44 7911 200006", "topic": "cards"}
    first = await client.post("/chat/start", json=body, headers=key)
    assert first.status_code == 201, first.text
    again = await client.post("/chat/start", json=body, headers=key)
    assert again.status_code == 201, again.text
    assert again.headers[idempotency.REPLAYED_HEADER] == "true"
    assert again.json()["interaction_id"] == first.json()["interaction_id"]
    assert await _chats(session) == 1
    # The first answer's token was lost with it: the retry's token is the chat's now.
    chat_id = uuid.UUID(first.json()["interaction_id"])
    await chat.authorise(session, interaction_id=chat_id, token=again.json()["token"])
    with pytest.raises(NotFound):
        await chat.authorise(session, interaction_id=chat_id, token=first.json()["token"])
    await session.commit()

    other = await client.post("/chat/start", json={**body, "topic": "mortgages"}, headers=key)
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "header.Idempotency-Key"
    short = await client.post("/chat/start", json=body, headers={"Idempotency-Key": "guessable"})
    assert short.status_code == 422 and short.json()["errors"][0]["field"] == "header.Idempotency-Key"
    assert await _chats(session) == 1


async def test_a_retried_ticket_returns_the_first_ticket(session, client):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {
        "name": "Wang Fang",
        "email": "wang@example.com",
        "subject": "Statement",
        "message": "My statement is missing.",
    }
    first = await client.post("/api/tickets", json=body, headers=key)
    assert first.status_code == 201, first.text
    assert idempotency.REPLAYED_HEADER not in first.headers
    responses = await asyncio.gather(*(client.post("/api/tickets", json=body, headers=key) for _ in range(2)))
    for again in responses:
        assert again.status_code == 200, again.text
        assert again.headers[idempotency.REPLAYED_HEADER] == "true"
        assert again.json() == first.json()
    other = await client.post(
        "/api/tickets", json={**body, "message": "Another statement is missing."}, headers=key
    )
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "header.Idempotency-Key"
    count = await session.scalar(
        select(func.count()).select_from(Interaction).where(Interaction.channel == Channel.TICKET)
    )
    assert count == 1


async def test_the_worker_purges_expired_keys(session, client, make_user, settings, redis_sync):
    """The worker's maintenance pass queues the purge (interactions.jobs), a work horse runs it."""
    await make_queue(session)
    _, headers = await make_user(Role.SUPERVISOR)
    for key, subject in (("old-key", "expired"), ("new-key", "kept")):
        response = await client.post(
            "/api/interactions",
            json=_body("+44 7911 200007", subject=subject),
            headers={**headers, "Idempotency-Key": key},
        )
        assert response.status_code == 201
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.key == "old-key")
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    await session.commit()
    output = await run_burst_worker(settings)
    assert "expired idempotency keys deleted: 1" in output
    keys = (await session.scalars(select(IdempotencyKey.key))).all()
    await session.commit()
    assert keys == ["new-key"]
    assert await _interactions_of(session, "expired") == 1  # the interaction stays


async def test_the_header_is_in_the_api_description(client):
    spec = (await client.get("/openapi.json")).json()
    for path in ("/api/interactions", "/chat/start", "/api/tickets"):
        names = [p["name"] for p in spec["paths"][path]["post"].get("parameters", [])]
        assert idempotency.HEADER in names, path

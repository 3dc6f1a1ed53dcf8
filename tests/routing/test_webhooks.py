"""Outgoing webhooks: real SQL (SQLite and PostgreSQL), real Redis for the engine, and a real HTTP
receiver (``http.server`` on 127.0.0.1, a random port, in a thread) at the outer edge.

Time is injected into the dispatcher, so the backoff schedule is checked to the second without
sleeping through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from interactions.schemas import InteractionCreate
from interactions.service import Actor, create_interaction
from routing.engine.events import (
    AgentStatusChanged,
    Completed,
    Event,
)
from routing.host import DecisionRefused, EngineHost
from routing.models import Offer
from routing.webhooks import (
    EVENT_TYPES,
    DeliveryState,
    WebhookDelivery,
    WebhookDispatcher,
    WebhookSubscription,
    backoff,
    create_subscription,
    enqueue_webhook_deliveries,
    sign,
    subscription_cache,
)
from switchboard import commands
from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from switchboard.db import Database
from switchboard.egress import EgressPolicy
from tests.factories import make_agent, make_queue, make_staff_user
from tests.helpers import eventually
from workforce.models import Agent, Presence

PROBLEM_JSON = "application/problem+json"


# ---------------------------------------------------------------------- a real receiver


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """An HTTP endpoint on 127.0.0.1:<random>; ``status_for(n)`` answers the n-th POST (0-based)."""

    def __init__(self, status_for: Callable[[int], int]) -> None:
        self.status_for = status_for
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    n = len(receiver.requests)
                    receiver.requests.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status_for(n))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks"

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(status_for: Callable[[int], int] = lambda n: 200) -> Receiver:
        r = Receiver(status_for)
        r.thread.start()
        started.append(r)
        return r

    yield start
    for r in started:
        r.server.shutdown()
        r.server.server_close()


# The receivers below listen on loopback, which webhooks may reach only when the allow-list says so.
LOCAL = EgressPolicy.from_entries(["127.0.0.1"])


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"webhook_allowed_destinations": ["127.0.0.1"]})


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as c:
        yield c


# ---------------------------------------------------------------------- helpers


async def subscribe(
    db: Database, url: str, event_types: list[str], *, active: bool = True
) -> WebhookSubscription:
    async with db.sessionmaker() as s:
        sub = await create_subscription(
            s, url=url, event_types=event_types, active=active, actor_id=None, egress=LOCAL
        )
        await s.commit()
    subscription_cache.invalidate()
    return sub


async def deliveries(db: Database) -> list[WebhookDelivery]:
    async with db.sessionmaker() as s:
        rows = await s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at))
        return list(rows)


async def delivery_count(db: Database) -> int:
    async with db.sessionmaker() as s:
        return int(await s.scalar(select(func.count()).select_from(WebhookDelivery)) or 0)


async def enqueue(
    db: Database, event_type: str, payload: dict[str, Any], *, now: datetime | None = None
) -> int:
    async with db.sessionmaker() as s:
        n = await enqueue_webhook_deliveries(s, event_type=event_type, payload=payload, now=now)
        await s.commit()
    return n


def verifies(secret: str, got: Received) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, got.headers["x-switchboard-signature"])


async def seed_agent(
    db: Database, *, presence: Presence = Presence.OFFLINE, queue: str = "retail"
) -> uuid.UUID:
    async with db.sessionmaker() as s:
        q = await make_queue(s, queue, channels=["chat", "voice"])
        user = await make_staff_user(s, name="A", username=f"agent-{uuid.uuid4().hex[:6]}", password=None)
        return (await make_agent(s, user, presence=presence, queues=[q])).id


async def new_interaction(db: Database, n: int) -> uuid.UUID:
    async with db.sessionmaker() as s:
        data = InteractionCreate(
            channel="chat", queue="retail", identity={"kind": "phone", "value": f"+4479111{n:05d}"}
        )
        it = await create_interaction(s, data=data, actor=Actor.system(), default_region="GB")
        await s.commit()
        return it.id


# ---------------------------------------------------------------------- filtering and the outbox


def test_event_types_cover_every_engine_decision() -> None:
    kinds = {cls.kind for cls in Event.__subclasses__()} - {"command_rejected"}
    assert kinds == EVENT_TYPES
    assert len(EVENT_TYPES) == 16


async def test_filter_by_event_type(db: Database, receiver, http_client, redis_sync):
    r = receiver()
    offers = await subscribe(db, r.url, ["offer_created"])
    everything = await subscribe(db, r.url, [])
    completions = await subscribe(db, r.url, ["completed", "abandoned"])
    await subscribe(db, r.url, [], active=False)

    assert await enqueue(db, "offer_created", {"type": "offer_created", "offer_id": "o1"}) == 2
    assert await enqueue(db, "queued", {"type": "queued"}) == 1
    assert await enqueue(db, "completed", {"type": "completed"}) == 2
    assert await enqueue(db, "command_rejected", {"type": "command_rejected"}) == 0  # never a webhook

    rows = await deliveries(db)
    by_sub: dict[uuid.UUID, list[str]] = {}
    for row in rows:
        by_sub.setdefault(row.subscription_id, []).append(row.event_type)
    assert sorted(by_sub[offers.id]) == ["offer_created"]
    assert sorted(by_sub[everything.id]) == ["completed", "offer_created", "queued"]
    assert sorted(by_sub[completions.id]) == ["completed"]
    assert len(by_sub) == 3  # nothing for the inactive one
    # One event, one id, shared by its deliveries to several subscriptions.
    offer_rows = [row for row in rows if row.event_type == "offer_created"]
    assert len({row.event_id for row in offer_rows}) == 1

    dispatcher = WebhookDispatcher(db, egress=LOCAL, http_client=http_client)
    assert await dispatcher.dispatch_due() == 5
    got = r.received()
    assert sorted(g.headers["x-switchboard-event"] for g in got) == [
        "completed",
        "completed",
        "offer_created",
        "offer_created",
        "queued",
    ]
    assert {row.state for row in await deliveries(db)} == {DeliveryState.DELIVERED}


async def test_no_subscribers_costs_no_sql_per_event(db: Database):
    """The hot path: with nobody subscribed, a cached empty answer, not a query per event."""
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # noqa: ANN001 - SQLAlchemy event signature
        statements.append(statement)

    from sqlalchemy import event as sa_event

    sa_event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        subscription_cache.invalidate()
        async with db.sessionmaker() as s:
            for _ in range(50):
                assert await enqueue_webhook_deliveries(s, event_type="queued", payload={}) == 0
            await s.commit()
    finally:
        sa_event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert len([st for st in statements if "webhook_subscriptions" in st]) == 1


async def test_delivery_row_is_written_in_the_decisions_transaction(db: Database, redis_handle, redis_sync):
    agent_id = await seed_agent(db)
    interaction_id = await new_interaction(db, 1)
    sub = await subscribe(db, "http://127.0.0.1:9/never-called", ["agent_status_changed"])
    client = redis_handle.async_client()
    host = EngineHost(db, client)
    try:
        lease = await host.leases.try_acquire(min_epoch=0)
        assert lease is not None
        leader = await host.take_lead(lease)

        # SQL refuses the second decision (a queued interaction cannot complete): the whole
        # transaction rolls back, so neither the presence change nor its delivery is written.
        async with db.sessionmaker() as s:
            with pytest.raises(DecisionRefused):
                await leader.commit_events(
                    s,
                    [
                        AgentStatusChanged(agent_id=str(agent_id), presence="break", reason="lunch"),
                        Completed(interaction_id=str(interaction_id), agent_id=str(agent_id)),
                    ],
                    context="test",
                )
        assert await delivery_count(db) == 0
        async with db.sessionmaker() as s:
            assert (await s.get(Agent, agent_id)).presence is Presence.OFFLINE

        # The same decision alone commits, and its delivery with it.
        async with db.sessionmaker() as s:
            await leader.commit_events(
                s,
                [AgentStatusChanged(agent_id=str(agent_id), presence="break", reason="lunch")],
                context="test",
            )
        (row,) = await deliveries(db)
        assert row.subscription_id == sub.id
        assert row.state is DeliveryState.PENDING and row.attempts == 0
        occurred_at = row.payload.pop("occurred_at")
        assert datetime.fromisoformat(occurred_at).tzinfo is not None
        assert row.payload == {
            "type": "agent_status_changed",
            "agent_id": str(agent_id),
            "presence": "break",
            "reason": "lunch",
        }
        async with db.sessionmaker() as s:
            assert (await s.get(Agent, agent_id)).presence is Presence.BREAK
    finally:
        await host.leases.release()
        await client.aclose()


async def test_engine_decisions_reach_the_receiver(
    db: Database, redis_handle, redis_sync, receiver, http_client
):
    """End to end: the live engine offers work; only the subscribed type reaches the receiver."""
    r = receiver()
    sub = await subscribe(db, r.url, ["offer_created"])
    agent_id = await seed_agent(db, presence=Presence.AVAILABLE)
    client = redis_handle.async_client()
    host = EngineHost(db, client, lease_ttl_ms=600, tick_seconds=0.05, reconcile_seconds=0.3)
    dispatcher = WebhookDispatcher(db, egress=LOCAL, http_client=http_client, poll_seconds=0.05)
    tasks = [asyncio.create_task(host.run()), asyncio.create_task(dispatcher.run())]
    try:
        await asyncio.wait_for(host.is_leader.wait(), 10)
        interaction_id = await new_interaction(db, 2)
        await commands.notify_enqueued(client, interaction_id)

        async def offered() -> bool:
            return any(g.headers["x-switchboard-event"] == "offer_created" for g in r.received())

        await eventually(offered, what="an offer_created webhook")
    finally:
        await host.stop()
        await dispatcher.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        await client.aclose()

    (got,) = r.received()  # "queued" happened too, but nobody asked for it
    body = got.json()
    assert body["type"] == "offer_created"
    assert body["interaction_id"] == str(interaction_id)
    assert body["agent_id"] == str(agent_id)
    assert body["queue"] == "retail"
    assert verifies(sub.secret, got)
    # The durable SQL offer id, not the engine's per-leader counter.
    async with db.sessionmaker() as s:
        offer = await s.get(Offer, uuid.UUID(body["offer_id"]))
    assert offer is not None and offer.interaction_id == interaction_id


# ---------------------------------------------------------------------- signing and retries


async def test_signature_and_headers(db: Database, receiver, http_client):
    r = receiver()
    sub = await subscribe(db, r.url, [])
    await enqueue(db, "assigned", {"type": "assigned", "interaction_id": "i1"})
    (row,) = await deliveries(db)

    assert await WebhookDispatcher(db, egress=LOCAL, http_client=http_client).dispatch_due() == 1
    (got,) = r.received()
    assert got.headers["x-switchboard-event"] == "assigned"
    assert got.headers["x-switchboard-delivery"] == str(row.id)
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-switchboard-signature"] == sign(sub.secret, got.body)
    assert verifies(sub.secret, got)
    assert not verifies("not-the-secret", got)
    assert got.json() == {"event_id": str(row.event_id), "type": "assigned", "interaction_id": "i1"}


async def test_fails_twice_then_delivered_with_backoff(db: Database, receiver, http_client):
    r = receiver(lambda n: 500 if n == 0 else 503 if n == 1 else 204)
    await subscribe(db, r.url, [])
    clock = FakeClock()
    t0 = clock.now
    await enqueue(db, "completed", {"type": "completed"}, now=t0)
    dispatcher = WebhookDispatcher(db, egress=LOCAL, http_client=http_client, clock=clock)

    assert await dispatcher.dispatch_due() == 1
    (row,) = await deliveries(db)
    assert (row.state, row.attempts, row.last_status) == (DeliveryState.PENDING, 1, 500)
    assert row.next_attempt_at == t0 + timedelta(seconds=1)

    clock.advance(0.5)
    assert await dispatcher.dispatch_due() == 0  # not due yet
    clock.advance(0.5)
    assert await dispatcher.dispatch_due() == 1
    (row,) = await deliveries(db)
    assert (row.state, row.attempts, row.last_status) == (DeliveryState.PENDING, 2, 503)
    assert row.next_attempt_at == t0 + timedelta(seconds=1 + 2)

    clock.advance(1.9)
    assert await dispatcher.dispatch_due() == 0
    clock.advance(0.1)
    assert await dispatcher.dispatch_due() == 1
    (row,) = await deliveries(db)
    assert (row.state, row.attempts, row.last_status, row.last_error) == (
        DeliveryState.DELIVERED,
        3,
        204,
        None,
    )
    assert row.delivered_at == t0 + timedelta(seconds=3)

    clock.advance(3600)
    assert await dispatcher.dispatch_due() == 0  # delivered is final
    got = r.received()
    assert len(got) == 3
    # Every attempt is the same delivery, byte for byte: the receiver can de-duplicate on the id.
    assert len({g.headers["x-switchboard-delivery"] for g in got}) == 1
    assert len({g.body for g in got}) == 1


async def test_always_failing_receiver_gives_up_after_max_attempts(db: Database, receiver, http_client):
    r = receiver(lambda n: 500)
    await subscribe(db, r.url, [])
    clock = FakeClock()
    t0 = clock.now
    await enqueue(db, "abandoned", {"type": "abandoned"}, now=t0)
    dispatcher = WebhookDispatcher(db, egress=LOCAL, http_client=http_client, clock=clock)

    waits = []
    for attempt in range(1, 9):
        assert await dispatcher.dispatch_due() == 1, attempt
        (row,) = await deliveries(db)
        assert row.attempts == attempt
        if attempt < 8:
            assert row.state is DeliveryState.PENDING
            waits.append((row.next_attempt_at - clock.now).total_seconds())
            clock.now = row.next_attempt_at
    assert waits == [1, 2, 4, 8, 16, 32, 64]
    assert (row.state, row.last_status, row.last_error) == (DeliveryState.FAILED, 500, "HTTP 500")
    clock.advance(86400)
    assert await dispatcher.dispatch_due() == 0  # failed is final
    assert len(r.received()) == 8


async def test_unreachable_receiver_is_a_failed_attempt(db: Database, http_client):
    await subscribe(db, "http://127.0.0.1:9/closed-port", [])
    clock = FakeClock()
    await enqueue(db, "queued", {"type": "queued"}, now=clock.now)
    assert await WebhookDispatcher(db, egress=LOCAL, http_client=http_client, clock=clock).dispatch_due() == 1
    (row,) = await deliveries(db)
    assert (row.state, row.attempts, row.last_status) == (DeliveryState.PENDING, 1, None)
    assert row.last_error == "could not connect"
    assert row.next_attempt_at == clock.now + timedelta(seconds=1)


def test_backoff_is_exponential_and_capped() -> None:
    assert [backoff(n).total_seconds() for n in range(1, 6)] == [1, 2, 4, 8, 16]
    assert backoff(9) == timedelta(minutes=4, seconds=16)
    assert backoff(10) == backoff(30) == timedelta(minutes=5)


async def test_two_dispatchers_never_send_one_delivery_twice(db: Database, receiver, http_client):
    r = receiver()
    await subscribe(db, r.url, [])
    for n in range(30):
        await enqueue(db, "queued", {"type": "queued", "n": n})
    a = WebhookDispatcher(db, egress=LOCAL, http_client=http_client, batch_size=7)
    b = WebhookDispatcher(db, egress=LOCAL, http_client=http_client, batch_size=7)
    while sum(await asyncio.gather(a.dispatch_due(), b.dispatch_due())):
        pass
    ids = [g.headers["x-switchboard-delivery"] for g in r.received()]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert {row.state for row in await deliveries(db)} == {DeliveryState.DELIVERED}


async def test_inactive_subscription_pauses_its_deliveries(db: Database, receiver, http_client):
    r = receiver()
    sub = await subscribe(db, r.url, [])
    await enqueue(db, "queued", {"type": "queued"})
    async with db.sessionmaker() as s:
        (await s.get(WebhookSubscription, sub.id)).active = False
        await s.commit()
    subscription_cache.invalidate()
    dispatcher = WebhookDispatcher(db, egress=LOCAL, http_client=http_client)
    assert await dispatcher.dispatch_due() == 0
    assert await enqueue(db, "queued", {"type": "queued"}) == 0  # and no new ones are queued
    async with db.sessionmaker() as s:
        (await s.get(WebhookSubscription, sub.id)).active = True
        await s.commit()
    subscription_cache.invalidate()
    assert await dispatcher.dispatch_due() == 1
    assert len(r.received()) == 1


# ---------------------------------------------------------------------- API


async def test_api_create_list_get_patch_delete_and_ping(client, make_user, db: Database, receiver):
    r = receiver()
    user, headers = await make_user(Role.SUPERVISOR)

    created = await client.post(
        "/api/routing/webhooks",
        json={"url": r.url, "event_types": ["offer_created", "completed", "offer_created"]},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["secret"]
    assert len(secret) >= 32
    assert body["event_types"] == ["offer_created", "completed"]  # duplicates dropped
    assert body["active"] is True and body["created_by_id"] == str(user.id)
    sub_id = body["id"]

    # The secret is shown once: never listed, never read back, never audited.
    listed = await client.get("/api/routing/webhooks", headers=headers)
    assert listed.status_code == 200
    assert [w["id"] for w in listed.json()] == [sub_id]
    assert "secret" not in listed.json()[0]
    detail = await client.get(f"/api/routing/webhooks/{sub_id}", headers=headers)
    assert detail.status_code == 200
    assert "secret" not in detail.json() and detail.json()["recent_deliveries"] == []

    patched = await client.patch(
        f"/api/routing/webhooks/{sub_id}", json={"event_types": [], "active": False}, headers=headers
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["event_types"], patched.json()["active"]) == ([], False)
    # An inactive subscription is not pinged (its deliveries would only wait).
    refused = await client.post(f"/api/routing/webhooks/{sub_id}/test", headers=headers)
    assert refused.status_code == 409 and refused.headers["content-type"] == PROBLEM_JSON
    patched = await client.patch(f"/api/routing/webhooks/{sub_id}", json={"active": True}, headers=headers)
    assert patched.status_code == 200

    ping = await client.post(f"/api/routing/webhooks/{sub_id}/test", headers=headers)
    assert ping.status_code == 202, ping.text
    assert ping.json()["event_type"] == "ping" and ping.json()["state"] == "pending"

    async def ping_delivered() -> bool:
        got = await client.get(f"/api/routing/webhooks/{sub_id}", headers=headers)
        return [d["state"] for d in got.json()["recent_deliveries"]] == ["delivered"]

    await eventually(ping_delivered, what="the ping delivered by the app's dispatcher")
    (got,) = r.received()
    assert got.headers["x-switchboard-event"] == "ping"
    assert got.headers["x-switchboard-delivery"] == ping.json()["id"]
    assert verifies(secret, got)
    assert got.json()["subscription_id"] == sub_id

    deleted = await client.delete(f"/api/routing/webhooks/{sub_id}", headers=headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/api/routing/webhooks/{sub_id}", headers=headers)
    assert gone.status_code == 404 and gone.headers["content-type"] == PROBLEM_JSON
    assert await delivery_count(db) == 0

    async with db.sessionmaker() as s:
        audit = list(
            await s.scalars(select(AuditEntry).where(AuditEntry.entity_id == sub_id).order_by(AuditEntry.id))
        )
    assert [a.action for a in audit] == [
        "webhook.created",
        "webhook.updated",
        "webhook.updated",
        "webhook.tested",
        "webhook.deleted",
    ]
    assert all(a.actor_id == user.id for a in audit)
    assert secret not in json.dumps([a.data for a in audit])


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"url": "ftp://example.com/x", "event_types": []}, "body.url"),
        ({"url": "example.com/hook", "event_types": []}, "body.url"),
        ({"url": "https://user:pw@example.com/hook", "event_types": []}, "body.url"),
        ({"url": "https://example.com:99999/hook", "event_types": []}, "body.url"),
        ({"url": "https://example.com/" + "x" * 2000, "event_types": []}, "body.url"),
        ({"url": "https://example.com/hook", "event_types": ["queued", "offer_made"]}, "body.event_types[1]"),
        ({"url": "https://example.com/hook", "event_types": ["command_rejected"]}, "body.event_types[0]"),
        ({"url": "https://example.com/hook", "event_types": "queued"}, "body.event_types"),
        ({"event_types": []}, "body.url"),
        ({"url": "https://example.com/hook", "secret": "mine"}, "body.secret"),
    ],
)
async def test_api_bad_input_is_422_naming_the_field(client, make_user, payload, field):
    _, headers = await make_user(Role.SUPERVISOR)
    response = await client.post("/api/routing/webhooks", json=payload, headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_api_patch_bad_input_is_422_naming_the_field(client, make_user):
    _, headers = await make_user(Role.SUPERVISOR)
    created = await client.post(
        "/api/routing/webhooks", json={"url": "https://example.com/hook"}, headers=headers
    )
    sub_id = created.json()["id"]
    for payload, field in [
        ({"url": "javascript:alert(1)"}, "body.url"),
        ({"event_types": ["assigned", "completed", "nope"]}, "body.event_types[2]"),
        ({"active": None}, "body.active"),
        ({"active": "sometimes"}, "body.active"),
    ]:
        response = await client.patch(f"/api/routing/webhooks/{sub_id}", json=payload, headers=headers)
        assert response.status_code == 422, (payload, response.text)
        assert field in [e["field"] for e in response.json()["errors"]], (payload, response.json())
    unchanged = await client.get(f"/api/routing/webhooks/{sub_id}", headers=headers)
    assert unchanged.json()["url"] == "https://example.com/hook"
    assert unchanged.json()["event_types"] == []


async def test_api_agent_is_refused(client, make_user):
    _, supervisor = await make_user(Role.SUPERVISOR)
    _, agent = await make_user(Role.AGENT)
    created = await client.post(
        "/api/routing/webhooks", json={"url": "https://example.com/h"}, headers=supervisor
    )
    sub_id = created.json()["id"]
    calls = [
        ("POST", "/api/routing/webhooks", {"url": "https://example.com/h"}),
        ("GET", "/api/routing/webhooks", None),
        ("GET", f"/api/routing/webhooks/{sub_id}", None),
        ("PATCH", f"/api/routing/webhooks/{sub_id}", {"active": False}),
        ("DELETE", f"/api/routing/webhooks/{sub_id}", None),
        ("POST", f"/api/routing/webhooks/{sub_id}/test", None),
    ]
    for method, path, body in calls:
        response = await client.request(method, path, json=body, headers=agent)
        assert response.status_code == 403, (method, path, response.status_code)
        assert response.headers["content-type"] == PROBLEM_JSON
    still = await client.get(f"/api/routing/webhooks/{sub_id}", headers=supervisor)
    assert still.status_code == 200 and still.json()["active"] is True

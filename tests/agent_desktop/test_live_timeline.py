"""The timeline goes live: committed events reach the customer's topic; rolled-back ones never do."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from customers.timeline import append_event, publish_after_commit
from interactions.models import ActorType
from switchboard.db import Database
from switchboard.events import PREFIX, customer_topic
from tests.factories import make_customer


async def _drain(pubsub: Any, *, wait_s: float = 0.5) -> list[dict[str, Any]]:
    """Every message the subscription receives until ``wait_s`` passes without one."""
    out: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    quiet_until = loop.time() + wait_s
    while loop.time() < quiet_until:
        # None also comes back at once for a (skipped) subscribe confirmation: keep listening.
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if message is not None:
            out.append(json.loads(message["data"]))
            quiet_until = loop.time() + wait_s
    return out


@pytest.fixture
async def live_db(db: Database, redis_handle, redis_sync):
    client = redis_handle.async_client()
    publish_after_commit(db, client)
    yield db, client
    await client.aclose()


async def test_committed_events_are_published_to_the_customer_topic(live_db) -> None:
    db, client = live_db
    async with db.sessionmaker() as s:
        customer = await make_customer(s)
        await s.commit()
    pubsub = client.pubsub()
    await pubsub.subscribe(PREFIX + customer_topic(customer.id))
    await _drain(pubsub, wait_s=0.3)  # the customer's own creation event, if it came late
    try:
        async with db.sessionmaker() as s:
            ev = append_event(
                s, customer_id=customer.id, kind="note", actor_type=ActorType.AGENT, channel="voice"
            )
            await s.flush()
            assert await _drain(pubsub, wait_s=0.2) == []  # flushed is not committed
            await s.commit()
        got = await _drain(pubsub)
        assert got == [
            {
                "type": "timeline",
                "customer_id": str(customer.id),
                "event_ids": [ev.id],
                "interaction_ids": [],
                "kinds": ["note"],
            }
        ]
    finally:
        await pubsub.aclose()


async def test_rolled_back_events_are_never_published(live_db) -> None:
    db, client = live_db
    async with db.sessionmaker() as s:
        customer = await make_customer(s)
        await s.commit()
    pubsub = client.pubsub()
    await pubsub.subscribe(PREFIX + customer_topic(customer.id))
    await _drain(pubsub, wait_s=0.3)
    try:
        async with db.sessionmaker() as s:
            append_event(s, customer_id=customer.id, kind="rolled_back", actor_type=ActorType.SYSTEM)
            await s.flush()
            await s.rollback()
            # A SAVEPOINT that rolls back takes its event with it; the outer commit announces the rest.
            try:
                async with s.begin_nested():
                    append_event(s, customer_id=customer.id, kind="in_savepoint", actor_type=ActorType.SYSTEM)
                    await s.flush()
                    raise RuntimeError("undo the savepoint")
            except RuntimeError:
                pass
            kept = append_event(s, customer_id=customer.id, kind="kept", actor_type=ActorType.SYSTEM)
            await s.commit()
        got = await _drain(pubsub)
        assert [(m["kinds"], m["event_ids"]) for m in got] == [(["kept"], [kept.id])]
    finally:
        await pubsub.aclose()


async def test_a_factory_without_a_publisher_stays_silent(db: Database, redis_handle, redis_sync) -> None:
    client = redis_handle.async_client()
    async with db.sessionmaker() as s:
        customer = await make_customer(s)
        await s.commit()
    pubsub = client.pubsub()
    await pubsub.subscribe(PREFIX + customer_topic(customer.id))
    await _drain(pubsub, wait_s=0.3)
    try:
        async with db.sessionmaker() as s:
            append_event(s, customer_id=customer.id, kind="quiet", actor_type=ActorType.SYSTEM)
            await s.commit()
        await asyncio.sleep(0.1)
        assert await _drain(pubsub, wait_s=0.3) == []
    finally:
        await pubsub.aclose()
        await client.aclose()


async def test_one_message_per_customer_per_commit(live_db) -> None:
    db, client = live_db
    async with db.sessionmaker() as s:
        first = await make_customer(s)
        second = await make_customer(s)
        await s.commit()
    pubsub = client.pubsub()
    await pubsub.subscribe(PREFIX + customer_topic(first.id), PREFIX + customer_topic(second.id))
    await _drain(pubsub, wait_s=0.3)
    try:
        async with db.sessionmaker() as s:
            a = append_event(s, customer_id=first.id, kind="state_changed", actor_type=ActorType.SYSTEM)
            b = append_event(s, customer_id=second.id, kind="note", actor_type=ActorType.AGENT)
            c = append_event(s, customer_id=first.id, kind="offer_created", actor_type=ActorType.SYSTEM)
            await s.commit()
        got = {m["customer_id"]: (m["event_ids"], m["kinds"]) for m in await _drain(pubsub)}
        assert got == {
            str(first.id): ([a.id, c.id], ["state_changed", "offer_created"]),
            str(second.id): ([b.id], ["note"]),
        }
    finally:
        await pubsub.aclose()

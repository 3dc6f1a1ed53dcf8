"""The transactional outbox: a decision's deliveries are written in the decision's own transaction.

The engine host calls ``enqueue_webhook_deliveries`` inside the SAME SQL transaction that persists
the decision, so a decision that rolls back leaves no delivery and a committed one cannot lose it.
``subscription_cache`` keeps that hot path from reading every subscription per decision (a short
TTL, re-checked in SQL, invalidated by the subscription service on every change).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession

from routing.engine.events import Event
from routing.webhooks.models import EVENT_TYPES, DeliveryState, WebhookDelivery, WebhookSubscription
from switchboard.db import new_id, utcnow

# ---------------------------------------------------------------------- active-subscription cache


@dataclass(frozen=True, slots=True)
class ActiveSubscription:
    id: uuid.UUID
    event_types: frozenset[str]  # empty: every type

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class SubscriptionCache:
    """Active subscriptions per database, reused for ``ttl`` seconds.

    The engine calls ``enqueue_webhook_deliveries`` for every decision; with nobody subscribed that
    must cost no SQL. A change made in this process invalidates the cache at once; one made in
    another process is seen within ``ttl``.
    """

    def __init__(self, ttl: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        # Keyed by engine: tests (and RQ jobs) open several databases in one process.
        self._entries: weakref.WeakKeyDictionary[Engine, tuple[float, tuple[ActiveSubscription, ...]]] = (
            weakref.WeakKeyDictionary()
        )

    async def active(self, session: AsyncSession) -> tuple[ActiveSubscription, ...]:
        key = session.get_bind()
        if not isinstance(key, Engine):  # bound to a connection: do not cache
            return await self._load(session)
        hit = self._entries.get(key)
        now = self.clock()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        subs = await self._load(session)
        self._entries[key] = (now, subs)
        return subs

    async def _load(self, session: AsyncSession) -> tuple[ActiveSubscription, ...]:
        rows = await session.execute(
            select(WebhookSubscription.id, WebhookSubscription.event_types).where(
                WebhookSubscription.active.is_(True)
            )
        )
        return tuple(ActiveSubscription(id=i, event_types=frozenset(t or ())) for i, t in rows)

    def invalidate(self) -> None:
        self._entries.clear()


subscription_cache = SubscriptionCache()


# ---------------------------------------------------------------------- outbox


def event_payload(event: Event, *, occurred_at: datetime) -> dict[str, Any]:
    """The JSON a receiver gets for an engine event: its type, its fields, when it was decided."""
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}  # no ClassVar "kind"
    return {"type": event.kind, **fields, "occurred_at": occurred_at.isoformat()}


async def enqueue_webhook_deliveries(
    session: AsyncSession, *, event_type: str, payload: dict[str, Any], now: datetime | None = None
) -> int:
    """Add one pending delivery per matching active subscription to the caller's transaction.

    Returns how many were added. The caller commits (or rolls back) them with its own change.
    """
    if event_type not in EVENT_TYPES:
        return 0
    wanted = [s.id for s in await subscription_cache.active(session) if s.wants(event_type)]
    if not wanted:
        return 0
    # Re-check in SQL: the cache may be up to ttl old. FOR KEY SHARE (PostgreSQL) makes a concurrent
    # DELETE of the subscription wait for us instead of failing our insert's foreign key, which
    # would roll back the engine's decision. SQLite's BEGIN IMMEDIATE already serialises writers.
    live = list(
        await session.scalars(
            select(WebhookSubscription.id)
            .where(WebhookSubscription.id.in_(wanted), WebhookSubscription.active.is_(True))
            .with_for_update(read=True, key_share=True)
        )
    )
    if not live:
        return 0
    at = now or utcnow()
    event_id = uuid.uuid4()
    await session.execute(
        insert(WebhookDelivery),
        [
            {
                "id": new_id(),
                "subscription_id": sub_id,
                "event_id": event_id,
                "event_type": event_type,
                "payload": payload,
                "attempts": 0,
                "next_attempt_at": at,
                "state": DeliveryState.PENDING,
                "created_at": at,
            }
            for sub_id in live
        ],
    )
    return len(live)

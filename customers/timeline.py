"""Appending to the timeline: the only write path for TimelineEvent rows.

It is also where the timeline goes live: every appended event is published to its customer's
topic (``switchboard.events.customer_topic``) once, and only once, its transaction has committed,
so a desktop showing that customer's 360 re-reads SQL that already holds the event. A rolled-back
event (or one written inside a SAVEPOINT that rolled back) is never announced.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import bindparam, insert, inspect
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from customers.timeline_models import ActorType, TimelineEvent
from switchboard.db import Database, utcnow
from switchboard.events import customer_topic, publish
from switchboard.fastsql import FastStatement

log = logging.getLogger(__name__)

# Session.info keys: the Redis client to publish with (set per sessionmaker), and the events
# appended in the session's current transaction.
PUBLISHER_KEY = "sb_timeline_publisher"
PENDING_KEY = "sb_timeline_pending"
ROWS_PENDING_KEY = "sb_timeline_rows_pending"  # events written by insert_events (no ORM objects)

_in_flight: set[asyncio.Task[None]] = set()  # strong references until each publish finishes


def append_event(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    kind: str,
    actor_type: ActorType,
    actor_id: str | uuid.UUID | None = None,
    interaction_id: uuid.UUID | None = None,
    channel: str | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> TimelineEvent:
    """Add an event to the caller's transaction; it commits (or rolls back) with the change it records."""
    event = TimelineEvent(
        **event_row(
            customer_id=customer_id,
            interaction_id=interaction_id,
            kind=kind,
            channel=channel,
            actor_type=actor_type,
            actor_id=actor_id,
            data=data,
            at=at,
        )
    )
    session.add(event)
    if PUBLISHER_KEY in session.info:
        session.info.setdefault(PENDING_KEY, []).append(event)
    return event


@dataclass(frozen=True, slots=True)
class InsertedEvent:
    """What the live announcement needs of an event written without an ORM object."""

    id: int
    customer_id: uuid.UUID
    interaction_id: uuid.UUID | None
    kind: str


def event_row(
    *,
    customer_id: uuid.UUID,
    kind: str,
    actor_type: ActorType,
    actor_id: str | uuid.UUID | None = None,
    interaction_id: uuid.UUID | None = None,
    channel: str | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """One event as ``insert_events`` takes it: the same columns ``append_event`` fills."""
    return {
        "customer_id": customer_id,
        "interaction_id": interaction_id,
        "kind": kind,
        "channel": channel,
        "actor_type": actor_type,
        "actor_id": str(actor_id) if actor_id is not None else None,
        "data": data or {},
        "at": at or utcnow(),
    }


async def insert_events(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Append several events (``event_row``) in ONE multi-row INSERT, without ORM objects.

    For hot paths (the routing engine's decisions): the same rows as ``append_event`` and the same
    announcement after commit. Pending ORM writes are flushed first, so events keep the order in
    which they were appended. Not for use inside a SAVEPOINT that may roll back on its own: its
    events would still be announced (harmless, subscribers re-read SQL, but wrong).
    """
    if not rows:
        return
    ids: list[int]
    if len(rows) <= FEW_ROWS and session.bind is not None and session.bind.dialect.name == "postgresql":
        ids = [(await _INSERT_ONE.rows(session, row))[0].id for row in rows]
    else:
        table = TimelineEvent.__table__
        result = await session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
        )
        ids = list(result.scalars())
    if PUBLISHER_KEY in session.info:
        session.info.setdefault(ROWS_PENDING_KEY, []).extend(
            InsertedEvent(event_id, row["customer_id"], row["interaction_id"], row["kind"])
            for event_id, row in zip(ids, rows, strict=True)
        )


# A decision writes one to three events: one prebuilt INSERT each (switchboard.fastsql, ~0.1 ms of
# CPU) costs less than the ORM's multi-row INSERT (~0.5 ms, measured with two rows). A take-over's
# install writes thousands: those go in multi-row INSERTs.
FEW_ROWS = 4
_TABLE: Any = TimelineEvent.__table__
_INSERT_ONE = FastStatement(  # every column but the id, as ``event_row`` fills them; typed: masks, encodes
    insert(_TABLE)
    .values({c.name: bindparam(c.name, type_=c.type) for c in _TABLE.c if not c.primary_key})
    .returning(_TABLE.c.id)
)


def publish_after_commit(db: Database, client: aioredis.Redis) -> None:
    """Make every session of ``db`` announce its committed timeline events on ``client``.

    Called once per process by whoever owns the database and a Redis client (the app factory's
    ``wire_sessions``, the SMTP listener). A database without it (RQ jobs, scripts) writes the same
    rows silently.
    """
    db.set_session_info(PUBLISHER_KEY, client)
    sa_event.listen(db.session_class, "after_commit", _after_commit)
    sa_event.listen(db.session_class, "after_rollback", _after_rollback)


def live_payloads(events: Sequence[TimelineEvent | InsertedEvent]) -> list[dict[str, Any]]:
    """One message per customer per commit (a routing decision appends several events at once):
    what a subscriber needs to decide what to re-read; the content itself stays in SQL."""
    by_customer: dict[uuid.UUID, list[TimelineEvent | InsertedEvent]] = {}
    for event in events:
        by_customer.setdefault(event.customer_id, []).append(event)
    return [
        {
            "type": "timeline",
            "customer_id": str(customer_id),
            "event_ids": [ev.id for ev in group],
            "interaction_ids": sorted({str(ev.interaction_id) for ev in group if ev.interaction_id}),
            "kinds": [ev.kind for ev in group],
        }
        for customer_id, group in by_customer.items()
    ]


def _after_commit(session: Session) -> None:
    pending: list[TimelineEvent] = session.info.pop(PENDING_KEY, None) or []
    inserted: list[InsertedEvent] = session.info.pop(ROWS_PENDING_KEY, None) or []
    client = session.info.get(PUBLISHER_KEY)
    if not (pending or inserted) or client is None:
        return
    # Persistent now = really committed: an event added inside a SAVEPOINT that rolled back is
    # transient again (expire_on_commit is off, so reading the columns does no I/O).
    payloads = live_payloads([ev for ev in pending if inspect(ev).persistent] + inserted)
    if not payloads:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # a synchronous caller (no loop): nothing to publish with
        return
    task = loop.create_task(_publish(client, payloads), name="timeline-publish")
    _in_flight.add(task)
    task.add_done_callback(_in_flight.discard)


def _after_rollback(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)
    session.info.pop(ROWS_PENDING_KEY, None)


async def _publish(client: aioredis.Redis, payloads: list[dict[str, Any]]) -> None:
    # Best effort, like all pub/sub here: a desktop that misses one re-reads on its next resync.
    for payload in payloads:
        try:
            await publish(client, customer_topic(payload["customer_id"]), payload)
        except (aioredis.RedisError, OSError, RuntimeError) as exc:
            log.warning("timeline events %s not published live: %s", payload["event_ids"], exc)
            return

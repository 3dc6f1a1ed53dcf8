"""Outgoing event webhooks: subscriptions, a transactional outbox and a retrying dispatcher.

Intent is recorded exactly once, delivery is at least once:

* the engine host calls ``enqueue_webhook_deliveries`` inside the SAME SQL transaction that persists
  the decision, so a decision that rolls back leaves no delivery and a committed one cannot lose it;
* ``WebhookDispatcher`` claims due rows (a short SQL transaction), POSTs them outside any
  transaction, then records the outcome with compare-and-set. A dispatcher that dies mid-flight
  leaves its claim to lapse and the row is sent again, so receivers de-duplicate on
  ``X-Switchboard-Delivery``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Uuid, delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from routing.engine.events import Event
from switchboard.audit import record_audit
from switchboard.db import Base, Database, JSONType, UTCDateTime, new_id, utcnow
from switchboard.egress import DestinationRefused, EgressPolicy
from switchboard.errors import Conflict, Invalid, NotFound
from switchboard.types import str_enum

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Every engine decision a receiver may subscribe to (the public contract: listed, not derived, so a
# new engine event is published only on purpose). CommandRejected is a reply to a caller that lost a
# race, not a decision, so it is never sent.
EVENT_TYPES: frozenset[str] = frozenset(
    {
        "offer_created",
        "assigned",
        "offer_rejected",
        "offer_expired",
        "offer_rescinded",
        "queued",
        "requeued",
        "escalated",
        "diverted",
        "agent_status_changed",
        "wrap_up_started",
        "completed",
        "abandoned",
        "transferred",
        "reprioritised",  # a supervisor raised or lowered waiting work's priority
        "consult_ended",  # a warm transfer's outcome: accepted, or why the customer stayed
    }
)
PING = "ping"  # sent only by the "test" endpoint, to one subscription

MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0
TIMEOUT_SECONDS = 5.0
RECENT_DELIVERIES = 20


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


# ---------------------------------------------------------------------- models


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    url: Mapped[str] = mapped_column(String(2000))
    # Empty means every event type.
    event_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Kept in clear: HMAC signing needs it. Returned once, on create; never listed or audited.
    secret: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event for one subscription: the outbox row and its delivery record."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The dispatcher's claim: due pending rows, oldest first.
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_subscription", "subscription_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    # Shared by the deliveries of one event to several subscriptions.
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[DeliveryState] = mapped_column(str_enum(DeliveryState), default=DeliveryState.PENDING)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


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


# ---------------------------------------------------------------------- service (API)


def check_url(url: str, *, field: str = "body.url") -> str:
    """http(s) with a host; no credentials (every supervisor can read the URL back)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise Invalid(f"Not a valid URL: {exc}", field=field) from exc
    if parts.scheme not in ("http", "https"):
        raise Invalid("The URL must start with http:// or https://", field=field)
    if not parts.hostname:
        raise Invalid("The URL has no host", field=field)
    if parts.username or parts.password:
        raise Invalid("Put no credentials in the URL; verify the signature instead", field=field)
    if any(c.isspace() for c in url):
        raise Invalid("The URL contains whitespace", field=field)
    return url


async def check_destination(url: str, egress: EgressPolicy, *, field: str = "body.url") -> str:
    """``check_url``, then refuse loopback, private, link-local and multicast destinations (after
    DNS resolution) that the allow-list does not name; the dispatcher checks again on every send."""
    url = check_url(url, field=field)
    try:
        await egress.check(url)
    except DestinationRefused as exc:
        raise Invalid(f"Destination refused: {exc}", field=field) from None
    return url


def check_event_types(event_types: Iterable[str], *, field: str = "body.event_types") -> list[str]:
    """Known types only, duplicates dropped, order kept. Every unknown entry is reported."""
    types = list(event_types)
    errors = [
        {"field": f"{field}[{i}]", "message": f"unknown event type {t!r}"}
        for i, t in enumerate(types)
        if t not in EVENT_TYPES
    ]
    if errors:
        known = ", ".join(sorted(EVENT_TYPES))
        raise Invalid(f"{errors[0]['message']}; known: {known}", field=errors[0]["field"], errors=errors)
    return list(dict.fromkeys(types))


async def create_subscription(
    session: AsyncSession,
    *,
    url: str,
    event_types: list[str],
    active: bool = True,
    actor_id: uuid.UUID | None,
    egress: EgressPolicy,
) -> WebhookSubscription:
    sub = WebhookSubscription(
        url=await check_destination(url, egress),
        event_types=check_event_types(event_types),
        secret=secrets.token_urlsafe(32),
        active=active,
        created_by_id=actor_id,
        created_at=utcnow(),
    )
    session.add(sub)
    await session.flush()
    record_audit(
        session,
        actor_id=actor_id,
        action="webhook.created",
        entity_type="webhook_subscription",
        entity_id=sub.id,
        data={"url": sub.url, "event_types": sub.event_types, "active": sub.active},
    )
    return sub


async def list_subscriptions(session: AsyncSession) -> list[WebhookSubscription]:
    return list(
        await session.scalars(
            select(WebhookSubscription).order_by(WebhookSubscription.created_at, WebhookSubscription.id)
        )
    )


async def get_subscription(session: AsyncSession, *, subscription_id: uuid.UUID) -> WebhookSubscription:
    sub = await session.get(WebhookSubscription, subscription_id)
    if sub is None:
        raise NotFound("No such webhook subscription", field="subscription_id")
    return sub


async def recent_deliveries(
    session: AsyncSession, *, subscription_id: uuid.UUID, limit: int = RECENT_DELIVERIES
) -> list[WebhookDelivery]:
    return list(
        await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.subscription_id == subscription_id)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
            .limit(limit)
        )
    )


async def update_subscription(
    session: AsyncSession,
    *,
    subscription_id: uuid.UUID,
    changes: dict[str, Any],
    actor_id: uuid.UUID | None,
    egress: EgressPolicy,
) -> WebhookSubscription:
    """Apply ``changes`` (any of url, event_types, active). Null is not a value for any of them."""
    sub = await get_subscription(session, subscription_id=subscription_id)
    for name, value in changes.items():
        if value is None:
            raise Invalid(f"{name} cannot be null", field=f"body.{name}")
    if "url" in changes:
        sub.url = await check_destination(changes["url"], egress)
    if "event_types" in changes:
        sub.event_types = check_event_types(changes["event_types"])
    if "active" in changes:
        sub.active = bool(changes["active"])
    record_audit(
        session,
        actor_id=actor_id,
        action="webhook.updated",
        entity_type="webhook_subscription",
        entity_id=sub.id,
        data={"changes": {k: getattr(sub, k) for k in changes}},
    )
    return sub


async def delete_subscription(
    session: AsyncSession, *, subscription_id: uuid.UUID, actor_id: uuid.UUID | None
) -> None:
    """Delete it and its deliveries (pending ones are never sent)."""
    sub = await get_subscription(session, subscription_id=subscription_id)
    record_audit(
        session,
        actor_id=actor_id,
        action="webhook.deleted",
        entity_type="webhook_subscription",
        entity_id=sub.id,
        data={"url": sub.url, "event_types": sub.event_types},
    )
    # Explicit rather than relying on ON DELETE CASCADE: SQLite enforces it only with the pragma on.
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.subscription_id == sub.id))
    await session.delete(sub)


async def enqueue_ping(
    session: AsyncSession, *, subscription_id: uuid.UUID, actor_id: uuid.UUID | None
) -> WebhookDelivery:
    """A "ping" delivery to this subscription only, sent like any other (signed, retried)."""
    sub = await get_subscription(session, subscription_id=subscription_id)
    if not sub.active:
        # Deliveries of an inactive subscription wait until it is reactivated; a ping would too.
        raise Conflict("Activate the subscription before testing it", field="active")
    now = utcnow()
    delivery = WebhookDelivery(
        subscription_id=sub.id,
        event_id=uuid.uuid4(),
        event_type=PING,
        payload={"type": PING, "subscription_id": str(sub.id), "occurred_at": now.isoformat()},
        attempts=0,
        next_attempt_at=now,
        state=DeliveryState.PENDING,
        created_at=now,
    )
    session.add(delivery)
    await session.flush()
    record_audit(
        session,
        actor_id=actor_id,
        action="webhook.tested",
        entity_type="webhook_subscription",
        entity_id=sub.id,
        data={"delivery_id": str(delivery.id)},
    )
    return delivery


# ---------------------------------------------------------------------- delivery


def _failure(exc: Exception) -> str:
    """A delivery failure in fixed words, whatever the exception says."""
    if isinstance(exc, httpx.ConnectError | ConnectionError):
        return "could not connect"
    if isinstance(exc, httpx.TransportError):  # reset, closed, or bytes that are not HTTP
        return "no valid HTTP answer"
    return "request failed"


def sign(secret: str, body: bytes) -> str:
    """The ``X-Switchboard-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(
    attempts: int, *, base: float = BACKOFF_BASE_SECONDS, cap: float = BACKOFF_CAP_SECONDS
) -> timedelta:
    """Delay after the ``attempts``-th failure: base, 2·base, 4·base … capped."""
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), cap))


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: uuid.UUID
    attempts: int  # before this attempt; the compare-and-set token when recording the outcome
    url: str
    secret: str
    event_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int | None
    error: str | None


class WebhookDispatcher:
    """Claims due deliveries and POSTs them; one per app process, all processes may run one.

    Runs on the app's event loop beside the engine but never touches the engine: its only shared
    resource is SQL, held for short claim/record transactions, never across an HTTP call.
    """

    def __init__(
        self,
        db: Database,
        *,
        http_client: httpx.AsyncClient | None = None,
        clock: Clock = utcnow,
        poll_seconds: float = 0.5,
        batch_size: int = 50,
        max_in_flight: int = 32,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_base: float = BACKOFF_BASE_SECONDS,
        backoff_cap: float = BACKOFF_CAP_SECONDS,
        timeout_seconds: float = TIMEOUT_SECONDS,
        claim_seconds: float = 60.0,
        cache: SubscriptionCache | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        self.db = db
        # Strict unless the app passes the allow-list from its settings.
        self.egress = egress or EgressPolicy()
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.timeout_seconds = timeout_seconds
        # A claimed row is invisible to other dispatchers this long; must exceed the HTTP timeout.
        self.claim_seconds = max(claim_seconds, timeout_seconds * 2)
        self.cache = cache or subscription_cache
        self._http = http_client
        self._owns_http = http_client is None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                claimed: list[ClaimedDelivery] = []
                free = self.max_in_flight - len(in_flight)
                if free > 0:
                    try:
                        claimed = await self.claim(limit=min(free, self.batch_size))
                    except Exception:  # noqa: BLE001 - SQL unavailable: retry next poll
                        log.exception("webhooks: claiming deliveries failed")
                for item in claimed:
                    task = asyncio.create_task(self.deliver(item), name=f"webhook-{item.id}")
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if len(in_flight) >= self.max_in_flight:
                    # Saturated (slow receivers): wait for a slot rather than claim more.
                    await asyncio.wait(
                        set(in_flight), timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED
                    )
                elif claimed and len(claimed) == min(free, self.batch_size):
                    continue  # a full batch: more may be due right now
                else:
                    await self._sleep(self.poll_seconds)
        finally:
            if in_flight:
                await asyncio.wait(in_flight, timeout=self.timeout_seconds + 1)
                for task in list(in_flight):
                    task.cancel()
            await self.aclose()

    async def stop(self) -> None:
        self._stopping.set()

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll (e.g. after a ping)."""
        self._wake.set()

    async def aclose(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _sleep(self, seconds: float) -> None:
        stop = asyncio.ensure_future(self._stopping.wait())
        wake = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({stop, wake}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            wake.cancel()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            # No redirects: a 3xx is the receiver's misconfiguration, not a reason to POST elsewhere.
            self._http = httpx.AsyncClient(timeout=self.timeout_seconds, follow_redirects=False)
        return self._http

    # ------------------------------------------------------------------ steps

    async def dispatch_due(self) -> int:
        """Claim what is due now and deliver it all; returns how many were attempted (tests, CLI)."""
        claimed = await self.claim(limit=self.batch_size)
        await asyncio.gather(*(self.deliver(item) for item in claimed))
        return len(claimed)

    async def claim(self, *, limit: int) -> list[ClaimedDelivery]:
        """Take due pending deliveries of active subscriptions by pushing their next attempt out."""
        async with self.db.sessionmaker() as session:
            if not await self.cache.active(session):
                await session.commit()
                return []
            now = self.clock()
            rows = list(
                await session.scalars(
                    select(WebhookDelivery)
                    .where(
                        WebhookDelivery.state == DeliveryState.PENDING,
                        WebhookDelivery.next_attempt_at <= now,
                        WebhookDelivery.subscription_id.in_(
                            select(WebhookSubscription.id).where(WebhookSubscription.active.is_(True))
                        ),
                    )
                    .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                    .limit(limit)
                    # PostgreSQL: concurrent dispatchers take disjoint rows (SQLite renders nothing;
                    # its BEGIN IMMEDIATE transaction already serialises them).
                    .with_for_update(skip_locked=True)
                )
            )
            if not rows:
                await session.commit()
                return []
            subs = {
                s.id: s
                for s in await session.scalars(
                    select(WebhookSubscription).where(
                        WebhookSubscription.id.in_({r.subscription_id for r in rows})
                    )
                )
            }
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_([r.id for r in rows]))
                .values(next_attempt_at=now + timedelta(seconds=self.claim_seconds))
            )
            claimed = [
                ClaimedDelivery(
                    id=r.id,
                    attempts=r.attempts,
                    url=subs[r.subscription_id].url,
                    secret=subs[r.subscription_id].secret,
                    event_type=r.event_type,
                    body=json.dumps(
                        {"event_id": str(r.event_id), **r.payload}, separators=(",", ":"), default=str
                    ).encode(),
                )
                for r in rows
            ]
            await session.commit()
        return claimed

    async def deliver(self, item: ClaimedDelivery) -> Outcome:
        outcome = await self.post(item)
        try:
            await self.record(item, outcome)
        except Exception:  # noqa: BLE001 - the claim lapses and the row is sent again
            log.exception("webhooks: recording delivery %s failed", item.id)
        return outcome

    async def post(self, item: ClaimedDelivery) -> Outcome:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Switchboard-Webhooks/1",
            "X-Switchboard-Event": item.event_type,
            "X-Switchboard-Delivery": str(item.id),
            "X-Switchboard-Signature": sign(item.secret, item.body),
        }
        try:
            # Resolved and checked on every attempt (DNS may have changed since the subscription
            # was made), and the connection goes to the address that was checked.
            target = await self.egress.resolve(item.url)
        except DestinationRefused as exc:
            return Outcome(ok=False, status=None, error=f"destination refused: {exc}"[:500])
        headers["Host"] = target.host_header
        try:
            # One deadline for the whole exchange (httpx's timeout is per phase); the body is
            # never read, so a receiver cannot make us buffer a large response. Redirects are
            # not followed (the client is built so): a 3xx is recorded, never a POST elsewhere.
            async with asyncio.timeout(self.timeout_seconds):
                async with self._client().stream(
                    "POST",
                    target.url,
                    content=item.body,
                    headers=headers,
                    extensions={"sni_hostname": target.server_name},
                ) as r:
                    status = r.status_code
        except (httpx.TimeoutException, TimeoutError):
            return Outcome(ok=False, status=None, error="timed out")
        except (httpx.HTTPError, OSError) as exc:
            # Our words only: an exception's text can quote what the target sent (a banner, a
            # malformed status line), which would make the status page a port scanner's reader.
            return Outcome(ok=False, status=None, error=_failure(exc))
        if 200 <= status < 300:
            return Outcome(ok=True, status=status, error=None)
        return Outcome(ok=False, status=status, error=f"HTTP {status}")

    async def record(self, item: ClaimedDelivery, outcome: Outcome) -> None:
        now = self.clock()
        attempts = item.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status": outcome.status,
            "last_error": outcome.error,
        }
        if outcome.ok:
            values |= {"state": DeliveryState.DELIVERED, "delivered_at": now}
        elif attempts >= self.max_attempts:
            values |= {"state": DeliveryState.FAILED}
        else:
            values["next_attempt_at"] = now + backoff(attempts, base=self.backoff_base, cap=self.backoff_cap)
        async with self.db.sessionmaker() as session:
            # Compare-and-set on attempts: a slower twin (claim lapsed) cannot overwrite the outcome.
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == item.id,
                    WebhookDelivery.state == DeliveryState.PENDING,
                    WebhookDelivery.attempts == item.attempts,
                )
                .values(**values)
            )
            await session.commit()
        if not outcome.ok:
            log.info(
                "webhooks: delivery %s attempt %d failed (%s)%s",
                item.id,
                attempts,
                outcome.error,
                "; giving up" if attempts >= self.max_attempts else "",
            )

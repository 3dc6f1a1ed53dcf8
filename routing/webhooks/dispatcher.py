"""The retrying dispatcher: claims due deliveries, POSTs them signed, records the outcome.

``WebhookDispatcher`` claims due rows (a short SQL transaction), POSTs them outside any
transaction, then records the outcome with compare-and-set. A dispatcher that dies mid-flight
leaves its claim to lapse and the row is sent again, so receivers de-duplicate on
``X-Switchboard-Delivery``. Failures back off exponentially (``backoff``) up to ``MAX_ATTEMPTS``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from routing.webhooks.models import DeliveryState, WebhookDelivery, WebhookSubscription
from routing.webhooks.outbox import SubscriptionCache, subscription_cache
from switchboard.db import Database, utcnow
from switchboard.egress import DestinationRefused, EgressPolicy

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0
TIMEOUT_SECONDS = 5.0


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
        in_flight: set[asyncio.Task[Outcome]] = set()
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

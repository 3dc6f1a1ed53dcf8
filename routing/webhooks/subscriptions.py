"""The subscription service behind /api/routing/webhooks: create, list, change, delete, test.

URLs are checked twice: for shape (``check_url``: http(s), a host, no credentials) and against the
egress policy (``check_destination``: no private or loopback address). Every change is audited and
invalidates ``subscription_cache``; the secret is returned once, on create.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from routing.webhooks.models import EVENT_TYPES, PING, DeliveryState, WebhookDelivery, WebhookSubscription
from switchboard.audit import record_audit
from switchboard.db import utcnow
from switchboard.egress import DestinationRefused, EgressPolicy
from switchboard.errors import Conflict, Invalid, NotFound

RECENT_DELIVERIES = 20


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

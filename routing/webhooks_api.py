"""Webhook subscriptions (supervisors): create, list, inspect deliveries, change, delete, ping."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from routing import webhooks
from routing.webhooks import DeliveryState
from switchboard.deps import DbSession, RequireSupervisor
from switchboard.egress import EgressPolicy

router = APIRouter(prefix="/api/routing/webhooks", tags=["routing", "webhooks"])


# ---------------------------------------------------------------------- shapes


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="http:// or https:// endpoint that receives the POSTs")
    event_types: list[str] = Field(
        default_factory=list, max_length=50, description="Engine event types to send; empty: every type"
    )
    active: bool = True


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2000)
    event_types: list[str] | None = Field(default=None, max_length=50)
    active: bool | None = None


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    event_types: list[str]
    active: bool
    created_by_id: uuid.UUID | None
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="HMAC-SHA256 key for X-Switchboard-Signature; shown only now")


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    subscription_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class WebhookDetail(WebhookRead):
    recent_deliveries: list[DeliveryRead]


# ---------------------------------------------------------------------- routes


def _egress(request: Request) -> EgressPolicy:
    return EgressPolicy.from_entries(request.app.state.settings.webhook_allowed_destinations)


@router.post("", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED)
async def create_webhook(
    body: WebhookCreate, request: Request, session: DbSession, user: RequireSupervisor
) -> WebhookCreated:
    """Subscribe a URL. The signing secret is in this response only: store it now. Loopback,
    private, link-local and multicast destinations are refused unless the allow-list names them."""
    sub = await webhooks.create_subscription(
        session,
        url=body.url,
        event_types=body.event_types,
        active=body.active,
        actor_id=user.id,
        egress=_egress(request),
    )
    await session.commit()
    webhooks.subscription_cache.invalidate()
    return WebhookCreated.model_validate(sub)


@router.get("", response_model=list[WebhookRead])
async def list_webhooks(session: DbSession, _user: RequireSupervisor) -> list[WebhookRead]:
    return [WebhookRead.model_validate(s) for s in await webhooks.list_subscriptions(session)]


@router.get("/{subscription_id}", response_model=WebhookDetail)
async def get_webhook(
    subscription_id: uuid.UUID, session: DbSession, _user: RequireSupervisor
) -> WebhookDetail:
    """The subscription and its most recent deliveries, newest first."""
    sub = await webhooks.get_subscription(session, subscription_id=subscription_id)
    deliveries = await webhooks.recent_deliveries(session, subscription_id=sub.id)
    return WebhookDetail(
        **WebhookRead.model_validate(sub).model_dump(),
        recent_deliveries=[DeliveryRead.model_validate(d) for d in deliveries],
    )


@router.patch("/{subscription_id}", response_model=WebhookRead)
async def update_webhook(
    subscription_id: uuid.UUID,
    body: WebhookUpdate,
    request: Request,
    session: DbSession,
    user: RequireSupervisor,
) -> WebhookRead:
    """Change url, event_types or active. Deactivating pauses pending deliveries; they resume after."""
    sub = await webhooks.update_subscription(
        session,
        subscription_id=subscription_id,
        changes=body.model_dump(exclude_unset=True),
        actor_id=user.id,
        egress=_egress(request),
    )
    await session.commit()
    webhooks.subscription_cache.invalidate()
    return WebhookRead.model_validate(sub)


@router.delete("/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(subscription_id: uuid.UUID, session: DbSession, user: RequireSupervisor) -> Response:
    """Delete the subscription and its deliveries; pending ones are never sent."""
    await webhooks.delete_subscription(session, subscription_id=subscription_id, actor_id=user.id)
    await session.commit()
    webhooks.subscription_cache.invalidate()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{subscription_id}/test", response_model=DeliveryRead, status_code=status.HTTP_202_ACCEPTED)
async def test_webhook(
    subscription_id: uuid.UUID, request: Request, session: DbSession, user: RequireSupervisor
) -> DeliveryRead:
    """Queue a signed "ping" delivery; follow it with GET /{id} (recent_deliveries)."""
    delivery = await webhooks.enqueue_ping(session, subscription_id=subscription_id, actor_id=user.id)
    await session.commit()
    dispatcher = getattr(request.app.state, "webhook_dispatcher", None)
    if dispatcher is not None:
        dispatcher.wake()
    return DeliveryRead.model_validate(delivery)

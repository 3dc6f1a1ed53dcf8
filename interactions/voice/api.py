"""JSON routes for callbacks and agent-initiated outbound contact (thin: the work is in services)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import httpx
from fastapi import APIRouter, Body, Depends, Request, Response, status

from interactions import service
from interactions.schemas import InteractionRead
from interactions.states import Channel
from interactions.visibility import viewer_for, visible_interaction
from interactions.voice import callback as callback_service
from interactions.voice import dialer
from interactions.voice import outbound as outbound_service
from interactions.voice.calls import notify_routing
from interactions.voice.schemas import CallbackRequest, OutboundCreate
from switchboard.commands import Abandon, Enqueue
from switchboard.db import utcnow
from switchboard.deps import AppSettings, CurrentUser, DbSession, RequireAgent
from workforce.deps import agent_id_for_user

router = APIRouter(tags=["voice"])


def wall_clock() -> datetime:
    """Now, as a dependency: tests override it to check quiet hours at any hour."""
    return utcnow()


Clock = Annotated[datetime, Depends(wall_clock)]


@router.post(
    "/api/interactions/outbound",
    response_model=InteractionRead,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "Refused by the customer's contact policy; `rule` names it"}},
)
async def create_outbound(
    body: OutboundCreate,
    request: Request,
    response: Response,
    session: DbSession,
    settings: AppSettings,
    user: RequireAgent,
    now: Clock,
) -> InteractionRead:
    """Contact a customer by voice or email; the interaction is attached to the calling agent.

    Refused with 409 when the customer is do-not-contact, has not consented (marketing), or it
    is within their quiet hours in their own time zone (voice).
    """
    # Outbound contact is made by an agent: the interaction is attached to them.
    agent_id = await agent_id_for_user(session, user.id)
    viewer = await viewer_for(session, user)
    interaction = await outbound_service.create_outbound(
        session,
        customer_id=body.customer_id,
        channel=Channel(body.channel),
        reason=body.reason,
        purpose=body.purpose,
        agent_id=agent_id,
        actor=viewer.actor,
        default_region=settings.default_phone_region,
        default_timezone=settings.default_timezone,
        now=now,
        follow_up_of_id=body.follow_up_of_id,
        supervisor=viewer.sees_all,
    )
    await session.commit()
    if interaction.channel is Channel.VOICE:
        # The agent asked for this call: ring the customer now (after the commit, no transaction
        # open while the carrier answers). A refusal marks the interaction failed, on its timeline.
        api = dialer.CarrierApi.from_settings(settings)
        if api is not None:
            async with httpx.AsyncClient() as http:
                await dialer.place_leg(
                    request.app.state.db, request.app.state.redis_client, http, api, interaction.id
                )
            interaction = await service.get_interaction(session, interaction.id)
            await session.commit()
    response.headers["Location"] = f"/api/interactions/{interaction.id}"
    return (await service.read_models(session, [interaction]))[0]


@router.post(
    "/api/interactions/{interaction_id}/callback",
    response_model=InteractionRead,
    status_code=status.HTTP_201_CREATED,
)
async def request_callback(
    interaction_id: uuid.UUID,
    request: Request,
    response: Response,
    session: DbSession,
    settings: AppSettings,
    user: CurrentUser,
    body: Annotated[CallbackRequest | None, Body()] = None,
) -> InteractionRead:
    """A waiting voice or chat customer asks to be called back, keeping their place in line.

    The waiting interaction ends (abandoned, "callback requested"); the answer is the new
    outbound voice interaction (``callback_of_id``), queued with the same virtual start time.
    """
    viewer = await viewer_for(session, user)
    await visible_interaction(session, viewer, interaction_id)
    original, callback = await callback_service.request_callback(
        session,
        interaction_id=interaction_id,
        actor=viewer.actor,
        default_region=settings.default_phone_region,
        phone=body.phone if body else None,
    )
    await session.commit()
    # After the commit: the engine drops the old wait and queues the callback in its place.
    await notify_routing(
        request.app.state.redis_client,
        [
            Abandon(interaction_id=str(original.id)),
            Enqueue(interaction_id=str(callback.id)),
        ],
    )
    response.headers["Location"] = f"/api/interactions/{callback.id}"
    return (await service.read_models(session, [callback]))[0]

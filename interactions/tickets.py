"""Ticket REST: public submissions (the web form's JSON twin) and agent replies sent by email."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi import APIRouter, Request, Response, status

from interactions import idempotency
from interactions.api import _require_assigned_or_supervisor
from interactions.email import outbound
from interactions.email import service as email_service
from interactions.email.inbound import id_domain
from interactions.email.schemas import ReplyCreate, TicketCreate, TicketCreated
from interactions.schemas import MessageRead
from interactions.states import State
from interactions.visibility import viewer_for, visible_interaction
from switchboard import commands as routing_commands
from switchboard.deps import AppSettings, DbSession, RequireAgent
from switchboard.errors import Conflict
from switchboard.throttle import client_address, throttle_of

router = APIRouter(tags=["tickets"])


async def submit_ticket(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    data: TicketCreate,
    claim: idempotency.Claim | None = None,
    also: Callable[[email_service.Ingested], None] | None = None,
) -> email_service.Ingested:
    """Shared by the JSON route, the HTML form and a chat customer's left message: store, commit,
    then tell routing. A retry is recognised by ``data.submission_id`` (the form's) or ``claim``
    (an ``Idempotency-Key``). Throttled per address and per email (429). ``also`` adds the caller's
    own rows for the new ticket to the same commit (a left message ends its chat with it)."""
    await throttle_of(request).intake(kind="ticket", address=client_address(request), contacts=[data.email])

    async def create() -> tuple[email_service.Ingested, uuid.UUID]:
        result = await email_service.create_web_ticket(
            session,
            data=data,
            default_region=settings.default_phone_region,
            id_domain=id_domain(settings.smtp_from),
        )
        if also is not None and result.opened:
            also(result)
        return result, result.interaction.id

    async def replay(interaction_id: uuid.UUID) -> email_service.Ingested:
        return await email_service.submitted_ticket(session, interaction_id)

    result, _ = await idempotency.once(session, claim, create, replay)
    if result.opened and result.interaction.state is State.QUEUED:
        await routing_commands.notify_enqueued(request.app.state.redis_client, result.interaction.id)
    return result


@router.post(
    "/api/tickets",
    response_model=TicketCreated,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=idempotency.openapi(idempotency.PUBLIC_MIN_CHARS),
)
async def create_ticket(
    body: TicketCreate, request: Request, response: Response, session: DbSession, settings: AppSettings
) -> TicketCreated:
    """Public: file a ticket (no sign-in). The answer comes by email to ``email``.

    A repeated ``submission_id``, or ``Idempotency-Key`` (16+ characters; the same key with another
    body is a 422), returns the first ticket (200, ``Idempotent-Replayed: true``) instead of
    filing another.
    """
    claim = idempotency.claim_from(
        request.headers,
        scope="tickets",
        owner=idempotency.PUBLIC,
        body=body,
        min_chars=idempotency.PUBLIC_MIN_CHARS,
    )
    result = await submit_ticket(request, session, settings, body, claim)
    if result.duplicate:
        response.status_code = status.HTTP_200_OK
        response.headers[idempotency.REPLAYED_HEADER] = "true"
    return TicketCreated(
        id=result.interaction.id, reference=result.reference, channel=result.interaction.channel
    )


@router.post(
    "/api/interactions/{interaction_id}/reply",
    response_model=MessageRead,
    status_code=status.HTTP_201_CREATED,
)
async def reply_by_email(
    interaction_id: uuid.UUID,
    body: ReplyCreate,
    session: DbSession,
    settings: AppSettings,
    user: RequireAgent,
) -> MessageRead:
    """Answer an email or ticket interaction: sent through the SMTP relay, then stored in the thread.

    The agent holding it (connected), or a supervisor. Sent first, stored second: a relay failure
    is a 503 and nothing is stored, so the thread never shows a reply the customer did not get.
    """
    viewer = await viewer_for(session, user)
    interaction = await visible_interaction(session, viewer, interaction_id)
    _require_assigned_or_supervisor(viewer, interaction.agent_id, "reply here")
    if not viewer.sees_all and interaction.state is not State.CONNECTED:
        raise Conflict(
            f"Agents reply only on connected interactions, this one is {interaction.state.value}",
            field="interaction_id",
            state=interaction.state.value,
        )
    draft = await email_service.prepare_reply(session, interaction=interaction)
    await session.commit()  # no transaction (nor SQLite write lock) held while the relay talks
    message_id = outbound.new_message_id(settings.smtp_from)
    email = outbound.build_reply(
        draft=draft, body=body.body, from_address=settings.smtp_from, message_id=message_id
    )
    await outbound.send(email, outbound.Relay.from_settings(settings))
    message = await email_service.record_reply(
        session,
        draft=draft,
        author_id=user.id,
        body=body.body,
        message_id=message_id,
        from_address=settings.smtp_from,
    )
    await session.commit()
    return MessageRead.model_validate(message)

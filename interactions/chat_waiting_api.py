"""The chat customer's ways out of a long wait (public; the chat's access token authorises):
``POST /chat/{id}/callback`` and ``POST /chat/{id}/message``. Thin: the work is in
``interactions.chat_waiting``; the ticket goes through the ticket intake (``tickets.submit_ticket``).

Each ends the waiting chat and creates its successor in ONE commit (a refusal anywhere leaves the
chat waiting and nothing else written), then tells routing: the chat leaves the queue, the callback
or ticket joins it.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request, status

from interactions import chat, chat_waiting, tickets
from interactions.chat_pages import refuse_foreign_origin
from interactions.email.service import Ingested
from interactions.voice.calls import notify_routing
from switchboard import commands as routing_commands
from switchboard.deps import AppSettings, DbSession
from switchboard.throttle import client_address, throttle_of

router = APIRouter(tags=["chat"])


@router.post("/chat/{interaction_id}/callback", status_code=status.HTTP_201_CREATED)
async def callback(
    interaction_id: uuid.UUID,
    body: chat_waiting.CallbackAsk,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    x_chat_token: Annotated[str, Header(max_length=200)] = "",
) -> dict:
    """Call me back instead of waiting: the chat ends and a call is queued in its place in line."""
    refuse_foreign_origin(request, settings)
    row = await chat.authorise(session, interaction_id=interaction_id, token=x_chat_token)
    contact: list[str | None] = [body.phone]
    await throttle_of(request).intake(kind="chat", address=client_address(request), contacts=contact)
    original, call = await chat_waiting.request_callback(
        session, chat=row, data=body, default_region=settings.default_phone_region
    )
    chat_waiting.record_outcome(session, chat=original, kind="chat_callback_requested", follow_up=call)
    await session.commit()
    await notify_routing(
        request.app.state.redis_client,
        [
            routing_commands.Abandon(interaction_id=str(original.id)),
            routing_commands.Enqueue(interaction_id=str(call.id)),
        ],
    )
    return {"status": "callback_requested", "callback_id": str(call.id)}


@router.post("/chat/{interaction_id}/message", status_code=status.HTTP_201_CREATED)
async def leave_message(
    interaction_id: uuid.UUID,
    body: chat_waiting.MessageLeave,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    x_chat_token: Annotated[str, Header(max_length=200)] = "",
) -> dict:
    """Leave a message instead of waiting: the chat ends and the message becomes an email ticket
    (answered by email to ``email``)."""
    refuse_foreign_origin(request, settings)
    row = await chat.authorise(session, interaction_id=interaction_id, token=x_chat_token)
    ended = await chat_waiting.leave_message(session, chat=row)

    def on_the_chat(ticket: Ingested) -> None:
        chat_waiting.record_outcome(
            session, chat=ended, kind="chat_message_left", follow_up=ticket.interaction
        )

    ticket = chat_waiting.ticket_for(body, chat_id=ended.id)
    result = await tickets.submit_ticket(request, session, settings, ticket, also=on_the_chat)
    await routing_commands.send(
        request.app.state.redis_client, routing_commands.Abandon(interaction_id=str(ended.id))
    )
    return {"status": "message_left", "reference": result.reference}

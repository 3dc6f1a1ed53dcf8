"""The conversation in a tab: the linked thread (all legs), the email reply, attachment downloads.

The email reply goes through the ticket API's own handler (``interactions.tickets.reply_by_email``:
read headers, commit, send through the SMTP relay, then store), so the desktop and API clients
share one path; the new message comes back to the tab through the customer's topic like any other.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from agent_desktop import threads, work_service
from agent_desktop.service import HELD_STATES
from customers.service import merged_customer_ids
from interactions.email.schemas import ReplyCreate
from interactions.models import Interaction
from interactions.schemas import MAX_MESSAGE_CHARS
from interactions.tickets import reply_by_email
from switchboard.deps import AppSettings, DbSession, RequireAgent
from switchboard.errors import NotFound
from switchboard.templating import templates
from workforce.deps import CurrentAgent

router = APIRouter(prefix="/desktop", tags=["pages"], include_in_schema=False)


def _render(name: str, **context: Any) -> str:
    return templates.get_template(f"agent_desktop/{name}").render(**context)


@router.get("/interactions/{interaction_id}/thread", response_class=HTMLResponse)
async def thread(interaction_id: uuid.UUID, session: DbSession, agent: CurrentAgent) -> HTMLResponse:
    """The whole conversation of a held interaction, every linked leg with its messages."""
    interaction = await work_service.held_interaction(
        session, interaction_id=interaction_id, agent_id=agent.id
    )
    result = await threads.thread_for(session, interaction)
    await session.commit()
    return HTMLResponse(_render("_thread.html", iid=interaction_id, thread=result))


@router.post("/interactions/{interaction_id}/email-reply", response_class=HTMLResponse)
async def email_reply(
    interaction_id: uuid.UUID,
    session: DbSession,
    settings: AppSettings,
    user: RequireAgent,
    agent: CurrentAgent,
    body: Annotated[str, Form(min_length=1, max_length=MAX_MESSAGE_CHARS)],
) -> HTMLResponse:
    """Send the reply by email; answer with the emptied form and the thread that now holds it."""
    await work_service.held_interaction(session, interaction_id=interaction_id, agent_id=agent.id)
    await reply_by_email(interaction_id, ReplyCreate(body=body), session, settings, user)
    interaction = await work_service.held_interaction(
        session, interaction_id=interaction_id, agent_id=agent.id
    )
    result = await threads.thread_for(session, interaction)
    await session.commit()
    return HTMLResponse(
        _render("_email_reply.html", iid=interaction_id, sent=True)
        + _render("_thread.html", iid=interaction_id, thread=result, oob=True)
    )


@router.get("/attachments/{attachment_id}")
async def download_attachment(attachment_id: uuid.UUID, session: DbSession, agent: CurrentAgent) -> Response:
    """An email attachment, for an agent holding an interaction with that customer.

    Always a download (``attachment`` disposition, octet-stream, nosniff): a customer's file is
    never rendered in the desktop's origin, whatever type it claims to be.
    """
    customers: set[uuid.UUID] = set()
    for customer_id in await session.scalars(
        select(Interaction.customer_id)
        .where(Interaction.agent_id == agent.id, Interaction.state.in_(HELD_STATES))
        .distinct()
    ):
        customers |= set(await merged_customer_ids(session, customer_id))
    found = await threads.attachment_for_customers(
        session, attachment_id=attachment_id, customer_ids=customers
    )
    await session.commit()
    if found is None:
        raise NotFound("No such attachment on a customer you are serving", field="attachment_id")
    safe_name = (
        "".join(c if c.isalnum() or c in "._- " else "_" for c in found.filename)[:120] or "attachment"
    )
    return Response(
        content=found.content,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{safe_name}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )

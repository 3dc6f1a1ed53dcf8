"""The agent's side of web chat: transcript fragment, reply (htmx) and typing, plus the fragments
the desktop socket pushes when the customer writes, types or leaves.

Chat events reach the desktop on the agent's own topic (``interactions.chat.publish_chat_event``
adds it), so the desktop socket needs only one hook: hand ``chat_*`` events to ``render_event``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interactions import chat
from interactions.models import Interaction, Message, MessageSender
from interactions.schemas import MAX_MESSAGE_CHARS
from interactions.service import list_messages, post_message
from interactions.states import Channel, State
from switchboard.deps import DbSession
from switchboard.errors import NotFound
from switchboard.templating import templates
from workforce.deps import CurrentAgent
from workforce.identity import AgentRef

router = APIRouter(prefix="/desktop", tags=["pages"], include_in_schema=False)

TRANSCRIPT_LIMIT = 200  # messages a panel opens with; the socket appends the rest
EVENT_TYPES = frozenset({"chat_message", "chat_typing", "chat_left"})
HELD_STATES = (State.CONNECTED, State.WRAP_UP)


def _render(name: str, **context: Any) -> str:
    return templates.get_template(f"agent_desktop/{name}").render(**context)


async def _held_chat(session: AsyncSession, interaction_id: uuid.UUID, agent: AgentRef) -> Interaction:
    """A chat this agent holds now; anything else is 404 (an agent sees only their own work)."""
    interaction = await session.scalar(
        select(Interaction).where(
            Interaction.id == interaction_id,
            Interaction.agent_id == agent.id,
            Interaction.channel == Channel.CHAT,
            Interaction.state.in_(HELD_STATES),
        )
    )
    if interaction is None:
        await session.commit()
        raise NotFound("No such chat held by this agent", field="interaction_id")
    return interaction


@router.get("/interactions/{interaction_id}/chat", response_class=HTMLResponse)
async def transcript(interaction_id: uuid.UUID, session: DbSession, agent: CurrentAgent) -> Response:
    """The transcript so far (the panel loads it once; the socket appends what follows)."""
    interaction = await _held_chat(session, interaction_id, agent)
    messages = await list_messages(session, interaction_id=interaction.id, limit=TRANSCRIPT_LIMIT)
    await session.commit()
    return HTMLResponse(_render("_chat_log.html", interaction_id=interaction.id, messages=messages))


@router.post("/interactions/{interaction_id}/messages", response_class=HTMLResponse)
async def reply(
    interaction_id: uuid.UUID,
    request: Request,
    session: DbSession,
    agent: CurrentAgent,
    body: Annotated[str, Form(min_length=1, max_length=MAX_MESSAGE_CHARS)],
) -> Response:
    """Send a reply. The line reaches this transcript through the socket, like the customer's; the
    response is the emptied reply box, so a slow socket never shows a line twice."""
    interaction = await _held_chat(session, interaction_id, agent)
    message = await post_message(
        session,
        interaction_id=interaction.id,
        sender=MessageSender.AGENT,
        author_id=interaction.agent_id,
        body=body,
    )
    root_id = await chat.chat_root(session, interaction_id=interaction.id)
    await session.commit()
    await chat.publish_chat_event(
        request.app.state.redis_client,
        interaction_id=interaction.id,
        root_id=root_id,
        agent_id=interaction.agent_id,
        kind="chat_message",
        message_id=message.id,
    )
    return HTMLResponse(_render("_chat_reply.html", interaction_id=interaction.id))


@router.post("/interactions/{interaction_id}/typing", status_code=status.HTTP_204_NO_CONTENT)
async def typing(
    interaction_id: uuid.UUID, request: Request, session: DbSession, agent: CurrentAgent
) -> Response:
    """The agent is typing (the reply box posts this at most every two seconds)."""
    interaction = await _held_chat(session, interaction_id, agent)
    root_id = await chat.chat_root(session, interaction_id=interaction.id)
    await session.commit()
    await chat.publish_chat_event(
        request.app.state.redis_client,
        interaction_id=interaction.id,
        root_id=root_id,
        agent_id=None,  # nothing to show on the agent's own screen
        kind="chat_typing",
        sender="agent",
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ------------------------------------------------------------------ desktop socket pushes


async def render_event(session: AsyncSession, *, agent_id: uuid.UUID, event: dict[str, Any]) -> str:
    """Out-of-band fragments for one chat event, or "" when it is not this agent's held chat."""
    interaction_id = uuid.UUID(str(event["interaction_id"]))
    held = await session.scalar(
        select(Interaction.id).where(
            Interaction.id == interaction_id,
            Interaction.agent_id == agent_id,
            Interaction.state.in_(HELD_STATES),
        )
    )
    if held is None:
        return ""
    kind = event.get("type")
    if kind == "chat_message":
        message = await session.get(Message, int(event["message_id"]))
        if message is None or message.interaction_id != interaction_id:
            return ""
        line = _render("_chat_message.html", message=message)
        # A new line also clears "typing…": the customer has finished that thought.
        return f'<div hx-swap-oob="beforeend:#chat-log-{interaction_id}">{line}</div>' + _render(
            "_chat_typing.html", interaction_id=interaction_id, text=""
        )
    if kind == "chat_typing" and event.get("sender") == "customer":
        return _render("_chat_typing.html", interaction_id=interaction_id, text="Customer is typing…")
    if kind == "chat_left":
        return _render(
            "_chat_typing.html", interaction_id=interaction_id, text="The customer has left the chat."
        )
    return ""

"""What one held interaction's panel shows beside its 360, read once when the socket opens its tab.

The panel used to arrive with three placeholders the browser then loaded (``hx-trigger="load"``:
tools, chat transcript, thread), each an HTTP request with its own authentication, agent lookup,
session and transaction: ~11 ms of app CPU per contact plus the three requests' ASGI cost (desktop
bench, docs/benchmarks.md). The socket already holds a session while it renders the tab; it reads
the same things there and sends them in the panel. Pages and resyncs (many tabs at once) still send
the placeholders, which the same routes fill.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agent_desktop import chat, threads, work
from agent_desktop.service import WorkItem
from interactions.service import list_messages
from interactions.states import Channel


async def panel_context(session: AsyncSession, item: WorkItem, *, agent_id: uuid.UUID) -> dict[str, Any]:
    """The template context that fills the panel's tools, transcript (chats) and thread in place."""
    interaction = item.interaction
    context = await work.tools_context(
        session, interaction_id=interaction.id, agent_id=agent_id, held=interaction
    )
    thread = context["thread"] = await threads.thread_for(session, interaction)
    if interaction.channel is Channel.CHAT:
        leg = thread.current
        bound = min(threads.MESSAGES_PER_LEG, chat.TRANSCRIPT_LIMIT)
        if thread.shows_legs and leg is not None and len(leg.messages) < bound:
            # The thread read every message of this leg (fewer than either bound): the same rows,
            # in the same order, as the transcript's own query.
            context["transcript"] = [m.message for m in leg.messages]
        else:
            context["transcript"] = await list_messages(
                session, interaction_id=interaction.id, limit=chat.TRANSCRIPT_LIMIT
            )
    return context

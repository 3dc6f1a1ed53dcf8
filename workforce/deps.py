"""FastAPI dependencies for the agent behind a request: ``CurrentAgent`` and ``MaybeAgent``.

``CurrentAgent`` is for every route that acts as an agent (answers offers, holds work, sets a
status): a staff user without an agent profile gets one answer everywhere, 403
``no-agent-profile`` naming ``agent``. ``MaybeAgent`` is only for the few routes that have
something to show a supervisor who takes no contacts (the desktop page, the live offers list).

Both give who the agent is (``AgentRef``: id and user), from the process's cache
(``workforce.identity``), not the ``Agent`` row: presence, capacity, skills and teams change under
the engine and admins, so a route that decides on them reads the row itself.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.deps import RequireAgent
from switchboard.errors import Forbidden
from workforce.identity import AgentRef, agent_ref_for_user
from workforce.models import Agent


class NoAgentProfile(Forbidden):
    """The user may be staff, but has no agent profile, so cannot act as an agent."""

    type_slug = "no-agent-profile"

    def __init__(self, detail: str = "This user has no agent profile: only agents take contacts") -> None:
        super().__init__(detail, field="agent")


async def get_agent_profile(request: Request, user: RequireAgent) -> AgentRef | None:
    """Staff member's agent profile, or None (a supervisor who does not take contacts)."""
    return await agent_ref_for_user(request.app.state, user.id)


async def get_current_agent(request: Request, user: RequireAgent) -> AgentRef:
    agent = await get_agent_profile(request, user)
    if agent is None:
        raise NoAgentProfile()
    return agent


CurrentAgent = Annotated[AgentRef, Depends(get_current_agent)]
MaybeAgent = Annotated[AgentRef | None, Depends(get_agent_profile)]


async def agent_id_for_user(session: AsyncSession, user_id: uuid.UUID) -> uuid.UUID:
    """For routes open to every staff member that need a profile only when the user acts as an
    agent (an agent creating an interaction, anyone placing an outbound contact)."""
    agent_id = await session.scalar(select(Agent.id).where(Agent.user_id == user_id))
    if agent_id is None:
        raise NoAgentProfile()
    return agent_id

"""Canned responses: short approved texts per queue, searchable from the desktop.

Stored in the queue's settings and administered by supervisors (``interactions.queue_texts``, which
also has the bank-wide defaults for queues without any).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer
from interactions.queue_texts import DEFAULT_CANNED, CannedResponse, canned_for, fill
from switchboard.fastsql import FastStatement
from workforce.models import Agent

if TYPE_CHECKING:
    from agent_desktop.work_service import WorkContext

MAX_RESULTS = 8
MAX_QUERY = 80
_AGENT_NAME = FastStatement(
    select(Agent.__table__.c.display_name).where(Agent.__table__.c.id == bindparam("agent_id"))
)

__all__ = ["DEFAULT_CANNED", "CannedResponse", "canned_for", "search"]


async def for_work(
    session: AsyncSession, ctx: WorkContext, agent_id: uuid.UUID
) -> tuple[CannedResponse, ...]:
    """The queue's responses with their placeholders filled for this conversation (one the
    desktop cannot fill, e.g. an anonymous visitor's name, stays as written for the agent to edit)."""
    customer = await session.get(Customer, ctx.interaction.customer_id)
    name = customer.display_name.strip() if customer is not None and customer.display_name else ""
    agent = await _AGENT_NAME.first(session, {"agent_id": agent_id})
    values = {
        "customer_name": name,
        "customer_first_name": name.split()[0] if name else "",
        "agent_name": (agent.display_name if agent is not None else None) or "",
        "queue_name": ctx.queue.display_name if ctx.queue is not None else "",
    }
    filled = {key: value for key, value in values.items() if value}
    return tuple(CannedResponse(c.title, fill(c.body, filled)) for c in canned_for(ctx.queue))


def search(responses: tuple[CannedResponse, ...], query: str) -> list[CannedResponse]:
    """Case-insensitive match of every word of the query in title or body; titles matching first."""
    words = query.casefold().split()[:8]
    if not words:
        return list(responses[:MAX_RESULTS])
    hits = [r for r in responses if all(w in f"{r.title} {r.body}".casefold() for w in words)]
    hits.sort(key=lambda r: not all(w in r.title.casefold() for w in words))
    return hits[:MAX_RESULTS]

"""Which agent leg sits in which interaction's conference: carrier-event rows, no new table.

The row keyed ``<interaction>:agent:<agent>`` is claimed FIRST (the same unique index that makes
webhooks idempotent), so two turns of the hold loop never ring the agent twice; its ``call_sid``
is the agent's leg once the carrier has answered (empty while the request is in flight), and its
payload keeps the conference's name and sid for the participant updates that follow, and the
leg's progress as the carrier reports it (``answered``, or ``ended`` unanswered: see
``agent_leg.py``).
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from interactions.voice.calls import claim_event
from interactions.voice.control import AgentLeg, Conference, conference_name
from interactions.voice.models import CarrierEvent

KIND = "agent_leg"


def _key(interaction_id: uuid.UUID, agent_id: uuid.UUID) -> str:
    return f"{interaction_id}:agent:{agent_id}"


async def claim_agent_leg(
    session: AsyncSession, *, provider: str, interaction_id: uuid.UUID, agent_id: uuid.UUID
) -> CarrierEvent | None:
    """The right to add this agent to this interaction's conference; None if already taken."""
    return await claim_event(
        session,
        provider=provider,
        event_key=_key(interaction_id, agent_id),
        call_sid="",
        kind=KIND,
        payload={"conference": conference_name(interaction_id), "agent_id": str(agent_id)},
        interaction_id=interaction_id,
    )


async def record_agent_leg(
    session: AsyncSession, *, provider: str, interaction_id: uuid.UUID, agent_id: uuid.UUID, leg: AgentLeg
) -> None:
    row = await _row(session, provider=provider, interaction_id=interaction_id, agent_id=agent_id)
    if row is None:
        return
    row.call_sid = leg.call_sid
    row.payload = {**row.payload, "conference_sid": leg.conference_sid}


async def release_agent_leg(
    session: AsyncSession, *, provider: str, interaction_id: uuid.UUID, agent_id: uuid.UUID
) -> None:
    """The carrier would not add the agent: free the claim so the next turn of the loop retries."""
    await session.execute(
        delete(CarrierEvent).where(
            CarrierEvent.provider == provider, CarrierEvent.event_key == _key(interaction_id, agent_id)
        )
    )


async def agent_leg_row(
    session: AsyncSession, *, provider: str, interaction_id: uuid.UUID, agent_id: uuid.UUID
) -> CarrierEvent | None:
    """The claim of this agent's leg in this interaction's conference (None: never added)."""
    return await _row(session, provider=provider, interaction_id=interaction_id, agent_id=agent_id)


def mark_leg(row: CarrierEvent, **fields: str) -> None:
    """Note the leg's progress on its row (``answered``: the call sid that answered; ``ended``:
    the status it ended with unanswered). A new dict, so the JSON column is seen as changed."""
    row.payload = {**row.payload, **fields}


def ended_unanswered(row: CarrierEvent | None) -> str | None:
    """The status the agent's leg ended with before anyone answered it (no-answer, busy, ...)."""
    if row is None or row.payload.get("answered"):
        return None
    ended = row.payload.get("ended")
    return str(ended) if ended else None


async def agent_leg(
    session: AsyncSession, *, provider: str, interaction_id: uuid.UUID, agent_id: uuid.UUID
) -> tuple[str, Conference] | None:
    """(the agent's call sid, the conference) once the agent has been added; else None."""
    row = await _row(session, provider=provider, interaction_id=interaction_id, agent_id=agent_id)
    if row is None or not row.call_sid:
        return None
    sid = row.payload.get("conference_sid")
    name = str(row.payload.get("conference") or conference_name(interaction_id))
    return row.call_sid, Conference(name=name, sid=str(sid) if sid else None)


async def _row(
    session: AsyncSession, *, provider: str, interaction_id: uuid.UUID, agent_id: uuid.UUID
) -> CarrierEvent | None:
    return await session.scalar(
        select(CarrierEvent).where(
            CarrierEvent.provider == provider, CarrierEvent.event_key == _key(interaction_id, agent_id)
        )
    )

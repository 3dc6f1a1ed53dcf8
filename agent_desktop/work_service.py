"""After-contact work for the desktop: notes, wrap-up codes, the ACW clock and transfer targets.

Plain async functions (session first, keyword-only, no FastAPI) behind ``agent_desktop/work.py``.
Every function that takes an interaction first proves the agent holds it (connected or in
wrap-up): an agent sees only their own work (DESIGN §6), so anything else is "not found".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from interactions import service as interactions_service
from interactions.models import ActorType, Interaction, TimelineEvent
from interactions.queue_texts import codes_for
from interactions.states import State
from routing import transfer as transfers
from switchboard.errors import Conflict, Invalid, NotFound
from switchboard.fastsql import FastStatement
from workforce.models import Agent, Presence, Queue, QueueMember

HELD_STATES = (State.CONNECTED, State.WRAP_UP)
NOTES_SHOWN = 50


@dataclass(frozen=True)
class WorkContext:
    """What the tools beside one held interaction need: its queue's codes and ACW budget."""

    interaction: Interaction
    queue: Queue | None
    dispositions: tuple[str, ...]
    wrap_up_seconds: int
    acw_deadline: datetime | None  # set once wrap-up started
    transfer_note: str | None  # the note a previous agent handed over with this interaction
    transferred_from: str | None
    # A warm transfer of this interaction waiting for its target: who it waits for (agent or queue).
    # Looked up only before wrap-up, the only time the desktop shows it (beside the transfer dialog).
    consult_target: str | None = None
    # The last warm transfer ended without the target taking it: why, for the sender.
    consult_notice: str | None = None

    @property
    def in_wrap_up(self) -> bool:
        return self.interaction.state is State.WRAP_UP


# The queue's codes (its settings, or the defaults), shared with their administration.
dispositions_for = codes_for


async def held_interaction(
    session: AsyncSession, *, interaction_id: uuid.UUID, agent_id: uuid.UUID
) -> Interaction:
    interaction = await session.scalar(
        select(Interaction)
        .where(
            Interaction.id == interaction_id,
            Interaction.agent_id == agent_id,
            Interaction.state.in_(HELD_STATES),
        )
        .execution_options(populate_existing=True)
    )
    if interaction is None:
        raise NotFound("No such interaction held by this agent", field="interaction_id")
    return interaction


async def work_context(
    session: AsyncSession,
    *,
    interaction_id: uuid.UUID,
    agent_id: uuid.UUID,
    held: Interaction | None = None,
) -> WorkContext:
    """``held``: the interaction as this session has just read it held by this agent (the socket's
    ``work_item``), not read a second time."""
    if (
        held is not None
        and held.id == interaction_id
        and held.agent_id == agent_id
        and held.state in HELD_STATES
    ):
        interaction = held
    else:
        interaction = await held_interaction(session, interaction_id=interaction_id, agent_id=agent_id)
    queue = await session.get(Queue, interaction.queue_id) if interaction.queue_id else None
    wrap_up_seconds = queue.wrap_up_seconds if queue is not None else 60
    deadline = None
    if interaction.state is State.WRAP_UP and interaction.wrap_up_at is not None:
        deadline = interaction.wrap_up_at + timedelta(seconds=wrap_up_seconds)
    transfer = (interaction.attributes or {}).get("transfer") or {}
    from_agent = None
    if transfer.get("from_agent_id"):
        sender = await session.get(Agent, uuid.UUID(transfer["from_agent_id"]))
        from_agent = sender.display_name if sender is not None else None
    return WorkContext(
        interaction=interaction,
        queue=queue,
        dispositions=dispositions_for(queue),
        wrap_up_seconds=wrap_up_seconds,
        acw_deadline=deadline,
        transfer_note=transfer.get("note") or None,
        transferred_from=from_agent,
        **({} if interaction.state is State.WRAP_UP else await _consult(session, interaction)),
    )


# Why a warm transfer came back to its sender (the engine's consult outcomes), said at once.
CONSULT_ENDED: dict[str, str] = {
    "rejected": "{target} declined the warm transfer",
    "missed": "{target} did not answer the warm transfer in time",
    "expired": "{target} did not answer the warm transfer in time",
    "agent_offline": "{target} went offline before taking the warm transfer",
    "timed_out": "Nobody in {target} was free to take the warm transfer",
    "abandoned": "The warm transfer to {target} was dropped",
}


async def _consult(session: AsyncSession, interaction: Interaction) -> dict[str, str | None]:
    """``consult_target``: the name a pending warm transfer waits for; ``consult_notice``: why the
    last one ended without its target (not when the sender withdrew it)."""
    found = await transfers.consult_status(session, parent_id=interaction.id)
    if found is None or found[1] not in ("pending", "cancelled"):
        return {}
    child, status, outcome = found
    if status == "cancelled" and outcome not in CONSULT_ENDED:
        return {}
    target = ((child.attributes or {}).get("transfer") or {}).get("to_agent_id")
    name = None
    if target:
        name = await session.scalar(select(Agent.display_name).where(Agent.id == uuid.UUID(target)))
    if name is None:
        queue = await session.get(Queue, child.queue_id) if child.queue_id else None
        name = queue.display_name if queue is not None else "the queue"
    if status == "pending":
        return {"consult_target": name}
    return {
        "consult_notice": CONSULT_ENDED[str(outcome)].format(target=name)
        + ": the customer is still with you."
    }


# ------------------------------------------------------------------ notes


async def add_note(
    session: AsyncSession, *, interaction_id: uuid.UUID, agent_id: uuid.UUID, body: str
) -> TimelineEvent:
    await held_interaction(session, interaction_id=interaction_id, agent_id=agent_id)
    actor = interactions_service.Actor(ActorType.AGENT, str(agent_id))
    # The hub masks card numbers and enforces the length; notes are never shown to the customer.
    return await interactions_service.add_note(
        session, interaction_id=interaction_id, actor=actor, body=body.strip()
    )


@dataclass(frozen=True, slots=True)
class NoteLine:
    at: datetime
    body: str


def _notes_statement() -> FastStatement:
    events: Any = TimelineEvent.__table__.c
    return FastStatement(
        select(events.at, events.data)
        .where(events.interaction_id == bindparam("interaction_id"), events.kind == "note")
        .order_by(events.id.desc())
        .limit(NOTES_SHOWN)
    )


# Prebuilt (switchboard.fastsql): every tab opening reads them, and most contacts have none.
_NOTES = _notes_statement()


async def notes(session: AsyncSession, *, interaction_id: uuid.UUID) -> list[NoteLine]:
    """This interaction's notes, newest first (the hub's timeline rows of kind "note")."""
    rows = await _NOTES.rows(session, {"interaction_id": interaction_id})
    return [NoteLine(row.at, str((row.data or {}).get("body") or "")) for row in rows]


# ------------------------------------------------------------------ wrap-up


async def set_wrap_up_code(
    session: AsyncSession,
    *,
    interaction_id: uuid.UUID,
    agent_id: uuid.UUID,
    disposition: str,
    completing: bool = False,
) -> Interaction:
    """Validate the code against the interaction's queue, then record it (hub compare-and-set).

    Completion is refused without this: the caller records the code first and only then asks the
    routing engine to complete, so a completed interaction always carries a code.
    """
    context = await work_context(session, interaction_id=interaction_id, agent_id=agent_id)
    if completing and not context.in_wrap_up:
        # The engine completes only after wrap-up; refuse before writing anything.
        raise Conflict("End the conversation (wrap up) before completing", field="interaction_id")
    code = disposition.strip()
    if not code:
        raise Invalid("Choose a wrap-up code before completing", field="disposition")
    if code not in context.dispositions:
        raise Invalid(
            f"Unknown wrap-up code {code!r} for this queue; choose one of: {', '.join(context.dispositions)}",
            field="disposition",
        )
    actor = interactions_service.Actor(ActorType.AGENT, str(agent_id))
    return await interactions_service.set_disposition(
        session, interaction_id=interaction_id, disposition=code, actor=actor, read=context.interaction
    )


# ------------------------------------------------------------------ transfer targets


@dataclass(frozen=True)
class TransferTarget:
    agent_id: uuid.UUID
    display_name: str


async def transfer_queues(session: AsyncSession) -> list[Queue]:
    return list(await session.scalars(select(Queue).order_by(Queue.display_name)))


async def available_agents(
    session: AsyncSession, *, queue_name: str, exclude_agent_id: uuid.UUID
) -> list[TransferTarget]:
    """Agents available now who serve the queue: explicit members or holders of its skills.

    Mirrors the engine's membership rule; the engine still decides at transfer time (a named
    agent who just went on break gets the child when they come back, it is never lost).
    """
    queue = await session.scalar(select(Queue).where(Queue.name == queue_name))
    if queue is None:
        raise Invalid(f"Unknown queue {queue_name!r}", field="to_queue")
    members = set(await session.scalars(select(QueueMember.agent_id).where(QueueMember.queue_id == queue.id)))
    agents = await session.scalars(
        select(Agent)
        .where(Agent.presence == Presence.AVAILABLE, Agent.id != exclude_agent_id)
        .order_by(Agent.display_name)
    )
    required = queue.required_skills or {}

    def serves(agent: Agent) -> bool:
        if agent.id in members:
            return True
        if not required:
            return False
        levels = agent.skill_levels()
        return all(levels.get(skill, 0) >= level for skill, level in required.items())

    return [TransferTarget(a.id, a.display_name) for a in agents.all() if serves(a)]

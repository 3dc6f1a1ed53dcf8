"""What a supervisor does to the floor from the console (issue #11 item 2): set an agent's state
(with a reason), sign out a desktop that vanished, and end a stuck interaction.

Each goes through the routing engine, like the agents' own actions (``routing.actions``): a state
change is the agent's presence saved and ``AgentChanged`` sent (offers stop or are rescinded at
once); ending work is the engine's own ``Abandon`` (waiting or offered) or ``WrapUp`` + ``Complete``
on behalf of the holder (connected or in wrap-up). Every action is audited with the supervisor's
reason in the transaction of its change, and an ended interaction says so on its timeline.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from customers.timeline import append_event
from customers.timeline_models import ActorType
from interactions.models import Interaction
from interactions.states import State
from routing import actions
from routing.actions import EngineLink, call_engine, verdict
from routing.schemas import CommandResult
from switchboard import commands
from switchboard.audit import record_audit
from switchboard.auth.models import User
from switchboard.errors import Conflict, NotFound
from workforce.identity import AgentRef
from workforce.models import Agent, Presence

# The wrap-up code an interaction ended by a supervisor carries (Complete needs one).
ENDED_BY_SUPERVISOR = "ended_by_supervisor"
ENDABLE = (State.QUEUED, State.OFFERED, State.CONNECTED, State.WRAP_UP)


async def set_agent_state(
    session: AsyncSession,
    engine: EngineLink,
    *,
    agent_id: uuid.UUID,
    presence: Presence,
    reason: str,
    actor: User,
) -> Agent:
    """Put an agent in ``presence`` (offline signs out a vanished desktop: its offers go back)."""
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("No such agent", field="agent_id")
    before = {"presence": agent.presence.value, "reason": agent.presence_reason}

    def audit(changed: Agent) -> None:
        record_audit(
            session,
            actor_id=actor.id,
            action="agent.state_set",
            entity_type="agent",
            entity_id=changed.id,
            data={"before": before, "after": {"presence": presence.value, "reason": reason}},
        )

    ref = AgentRef(id=agent.id, user_id=agent.user_id)
    return await actions.set_presence(
        session, engine, ref, presence=presence.value, reason=reason, before_commit=audit
    )


async def end_interaction(
    session: AsyncSession, engine: EngineLink, *, interaction_id: uuid.UUID, reason: str, actor: User
) -> CommandResult:
    """End work that is stuck: the customer's contact leaves routing and the holder's capacity is
    freed. Recorded (timeline + audit) before the engine is asked, so the reason is on record
    whatever the engine answers; the engine's refusal (already ended meanwhile) is a 409."""
    interaction = await session.get(Interaction, interaction_id)
    if interaction is None:
        raise NotFound("No such interaction", field="interaction_id")
    if interaction.state not in ENDABLE:
        raise Conflict(
            f"The interaction is {interaction.state.value}; nothing to end", field="interaction_id"
        )
    state, holder = interaction.state, interaction.agent_id
    append_event(
        session,
        customer_id=interaction.customer_id,
        interaction_id=interaction.id,
        kind="ended_by_supervisor",
        channel=interaction.channel.value,
        actor_type=ActorType.SUPERVISOR,
        actor_id=actor.id,
        data={"reason": reason, "state": state.value},
    )
    record_audit(
        session,
        actor_id=actor.id,
        action="interaction.ended",
        entity_type="interaction",
        entity_id=interaction.id,
        data={"reason": reason, "state": state.value, "agent_id": str(holder) if holder else None},
    )
    if state in (State.CONNECTED, State.WRAP_UP) and not interaction.disposition:
        interaction.disposition = ENDED_BY_SUPERVISOR
    await session.commit()
    iid = str(interaction.id)
    if state in (State.QUEUED, State.OFFERED) or holder is None:
        reply = await call_engine(engine, commands.Abandon(interaction_id=iid), owner=actor.id)
        return verdict(reply, subject="Cannot end the interaction")
    if state == State.CONNECTED:
        reply = await call_engine(
            engine, commands.WrapUp(interaction_id=iid, agent_id=str(holder)), owner=actor.id
        )
        verdict(reply, subject="Cannot end the interaction")
    reply = await call_engine(
        engine, commands.Complete(interaction_id=iid, agent_id=str(holder)), owner=actor.id
    )
    return verdict(reply, subject="Cannot end the interaction")


MOVABLE = (State.QUEUED, State.OFFERED)


async def _movable(session: AsyncSession, interaction_id: uuid.UUID) -> Interaction:
    interaction = await session.get(Interaction, interaction_id)
    await session.commit()
    if interaction is None:
        raise NotFound("No such interaction", field="interaction_id")
    if interaction.state not in MOVABLE:
        raise Conflict(
            f"The interaction is {interaction.state.value}; only waiting work can be moved",
            field="interaction_id",
        )
    return interaction


async def move_interaction(
    session: AsyncSession,
    engine: EngineLink,
    *,
    interaction_id: uuid.UUID,
    to_queue: str | None,
    to_agent_id: uuid.UUID | None,
    reason: str,
    actor: User,
) -> CommandResult:
    """Move waiting (or offered) work to another queue or to a named agent; it keeps its place."""
    interaction = await _movable(session, interaction_id)
    command = commands.Move(
        interaction_id=str(interaction.id),
        actor_id=str(actor.id),
        reason=reason,
        to_queue=to_queue,
        to_agent_id=str(to_agent_id) if to_agent_id else None,
    )
    return verdict(await call_engine(engine, command, owner=actor.id), subject="Cannot move the interaction")


async def set_priority(
    session: AsyncSession,
    engine: EngineLink,
    *,
    interaction_id: uuid.UUID,
    priority: int,
    reason: str,
    actor: User,
) -> CommandResult:
    """Raise or lower waiting work's priority: its place in the queue moves at once."""
    interaction = await _movable(session, interaction_id)
    command = commands.Reprioritise(
        interaction_id=str(interaction.id), actor_id=str(actor.id), reason=reason, priority=priority
    )
    return verdict(await call_engine(engine, command, owner=actor.id), subject="Cannot change the priority")

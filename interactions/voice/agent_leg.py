"""The agent's device in the call's conference: what its progress means for the caller.

The agent is added to the interaction's conference through the carrier's REST API with a ring
timeout and a status callback (``control.add_agent``). A leg that ends before anyone answered it
(``no-answer`` once the ring timeout passed, ``busy``, ``failed``, ``canceled``) while the
interaction is still that agent's and the two are not yet talking would leave the caller in the
conference, on wait music, for nobody. So, as Twilio Flex does with a reservation whose call the
worker never picks up:

* the timeline says so ("the agent's phone did not answer"), with the carrier's status;
* the agent is marked not responding, by the rule an expired offer follows in the engine: only an
  agent who is available and holds no other work (a desktop without a working phone must not be
  handed the next call to miss as well);
* the interaction goes back to its queue keeping its place, never to be offered to that agent
  again: the engine's blind transfer to the same queue (``switchboard.commands.Transfer``; the
  voice flow already follows a transfer's child), with a note the next agent sees;
* the caller is returned to the flow (``control.return_to_flow``: the hold loop), once the engine
  has answered, so the loop finds them queued again.

Plain functions, session first; they flush but never commit. The commands (and the caller's call
to redirect) are RETURNED, to be acted on after the commit. The webhook's claim of the carrier
event (``calls.claim_event``) makes a retried callback change nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from customers.timeline import append_event
from interactions import service
from interactions.models import ActorType, Interaction
from interactions.states import State
from interactions.voice import conference
from interactions.voice.adapter import CallStatus
from interactions.voice.models import CarrierEvent
from switchboard import commands
from switchboard.db import utcnow
from workforce.models import Agent, Presence

# The leg ended and nobody had answered it (Twilio's terminal CallStatus values but "completed").
UNANSWERED = frozenset({CallStatus.NO_ANSWER, CallStatus.BUSY, CallStatus.FAILED, CallStatus.CANCELED})
NOT_ANSWERED = "The agent's phone did not answer"
NOT_RESPONDING_REASON = "phone did not answer"
TRANSFER_NOTE = "Returned to the queue: the previous adviser's phone did not answer."
# Work the agent holds (besides this call): then they are busy, not absent (the engine's rule).
HELD = (State.CONNECTED, State.WRAP_UP)
MAX_PARENT_HOPS = 16


@dataclass
class LegOutcome:
    """What to do after the commit: tell the engine (``agent_changed`` first: the urgent lane, so
    the agent is out of the availability index before the transfer frees their capacity), move the
    interaction back (``requeue``, waiting for the engine's answer), then redirect ``caller``."""

    agent_changed: commands.AgentChanged | None = None
    requeue: commands.Transfer | None = None
    caller_call_sid: str | None = None
    notes: list[str] = field(default_factory=list)


async def apply_agent_leg_status(
    session: AsyncSession,
    *,
    provider: str,
    interaction_id: uuid.UUID,
    agent_id: uuid.UUID,
    call_sid: str,
    status: CallStatus,
    now: datetime | None = None,
) -> LegOutcome:
    """Drive the interaction from its agent leg's progress (``initiated``/``ringing`` change
    nothing; ``in-progress`` marks the leg answered; an unanswered end hands the caller back)."""
    outcome = LegOutcome()
    row = await conference.agent_leg_row(
        session, provider=provider, interaction_id=interaction_id, agent_id=agent_id
    )
    if row is None or (row.call_sid and row.call_sid != call_sid):
        outcome.notes.append("not a leg we added")  # or an older leg's late news
        return outcome
    if status is CallStatus.IN_PROGRESS:
        if not row.payload.get("answered"):
            conference.mark_leg(row, answered=call_sid)
            interaction = await service.get_interaction(session, interaction_id)
            _record(session, interaction, "agent_leg_answered", provider, agent_id, call_sid, status)
        return outcome
    if status not in UNANSWERED or row.payload.get("answered") or row.payload.get("ended"):
        return outcome
    conference.mark_leg(row, ended=status.value)
    interaction = await service.get_interaction(session, interaction_id)
    still_ringing = interaction.state is State.CONNECTED and interaction.agent_id == agent_id
    _record(
        session,
        interaction,
        "agent_leg_unanswered",
        provider,
        agent_id,
        call_sid,
        status,
        text=NOT_ANSWERED,
        returned_to_queue=still_ringing,
    )
    await session.flush()
    if not still_ringing:
        outcome.notes.append(f"the interaction is {interaction.state.value}; nothing to hand back")
        return outcome
    if await _mark_not_responding(session, agent_id=agent_id, interaction_id=interaction_id, now=now):
        outcome.agent_changed = commands.AgentChanged(agent_id=str(agent_id))
    outcome.requeue = commands.Transfer(
        interaction_id=str(interaction_id), agent_id=str(agent_id), mode="blind", note=TRANSFER_NOTE
    )
    outcome.caller_call_sid = await caller_call_sid(session, interaction)
    return outcome


def _record(
    session: AsyncSession,
    interaction: Interaction,
    kind: str,
    provider: str,
    agent_id: uuid.UUID,
    call_sid: str,
    status: CallStatus,
    **extra: object,
) -> None:
    append_event(
        session,
        customer_id=interaction.customer_id,
        interaction_id=interaction.id,
        kind=kind,
        channel=interaction.channel.value,
        actor_type=ActorType.SYSTEM,
        actor_id=f"carrier:{provider}",
        data={"status": status.value, "agent_id": str(agent_id), "call_sid": call_sid, **extra},
    )


async def _mark_not_responding(
    session: AsyncSession, *, agent_id: uuid.UUID, interaction_id: uuid.UUID, now: datetime | None
) -> bool:
    """Available and holding nothing else: not responding (as after a missed offer). A status the
    agent chose (a break) or other work in hand is left alone. Returns whether it changed."""
    other = await session.scalar(
        select(Interaction.id)
        .where(
            Interaction.agent_id == agent_id,
            Interaction.id != interaction_id,
            Interaction.state.in_(HELD),
        )
        .limit(1)
    )
    if other is not None:
        return False
    result = await session.execute(
        update(Agent)
        .where(Agent.id == agent_id, Agent.presence == Presence.AVAILABLE)
        .values(
            presence=Presence.NOT_RESPONDING,
            presence_reason=NOT_RESPONDING_REASON,
            presence_since=now or utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def caller_call_sid(session: AsyncSession, interaction: Interaction) -> str | None:
    """The customer's call: the ``<CallSid>:interaction`` claim of this interaction or, for a
    transfer's child, of the interaction the call started as."""
    current: Interaction | None = interaction
    for _ in range(MAX_PARENT_HOPS):
        if current is None:
            break
        sid = await session.scalar(
            select(CarrierEvent.call_sid)
            .where(CarrierEvent.interaction_id == current.id, CarrierEvent.kind == "interaction")
            .limit(1)
        )
        if sid:
            return str(sid)
        if current.parent_id is None:
            break
        current = await session.get(Interaction, current.parent_id)
    return None

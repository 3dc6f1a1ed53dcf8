"""The provider-neutral call flow: carrier events in, interaction changes and instructions out.

Plain async functions, session first; they flush but never commit (the webhook owns the
transaction). Engine commands that must follow a change are RETURNED, to be sent after the
commit: the routing engine must never hear of a change SQL does not hold yet.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from customers.identity import normalise_phone
from customers.models import IdentityKind
from customers.timeline import append_event
from interactions import service
from interactions.models import ActorType, Interaction
from interactions.schemas import IdentityRef, InteractionCreate
from interactions.states import Channel, State
from interactions.voice.adapter import CALL_ENDED, Bridge, CallStatus, HangUp, Hold, Instruction
from interactions.voice.callback import WAITING
from interactions.voice.ivr import IvrOption
from interactions.voice.models import CarrierEvent
from switchboard import commands
from switchboard.errors import Invalid

log = logging.getLogger(__name__)

HUNG_UP_REASON = "caller hung up"
GOODBYE = "Thank you for calling. Goodbye."
CALLBACK_GOODBYE = "Thank you. We will call you back on this number, and you keep your place in line."

RoutingCommand = commands.Command
MAX_TRANSFER_HOPS = 16  # guards against a corrupt parent cycle


def carrier_actor(provider: str) -> service.Actor:
    return service.Actor(ActorType.SYSTEM, f"carrier:{provider}")


def caller_number(raw: str | None, *, default_region: str, field: str = "body.From") -> str:
    """The caller's number in E.164; Invalid (naming ``field``) when missing or not a number."""
    if not raw:
        raise Invalid("The caller's number is required", field=field)
    return normalise_phone(raw, default_region=default_region, field=field)


async def hold_call(session: AsyncSession, *, provider: str, call_sid: str) -> None:
    """Take the call's webhooks one at a time: lock its first event row (``incoming``) for this
    transaction. A key press and the hang-up right after it are both in flight at once; without
    this the hang-up could find no interaction yet while the key press queues one (a caller who is
    gone, waiting for an agent). SQLite serialises writers anyway; the lock is PostgreSQL's."""
    await session.execute(
        select(CarrierEvent.id)
        .where(CarrierEvent.provider == provider, CarrierEvent.event_key == f"{call_sid}:incoming")
        .with_for_update()
    )


async def mark_call_ended(session: AsyncSession, *, provider: str, call_sid: str) -> None:
    """The carrier said the call ended: from now on nothing queues it (``call_ended``)."""
    await claim_event(
        session, provider=provider, event_key=f"{call_sid}:ended", call_sid=call_sid, kind="ended"
    )


async def call_ended(session: AsyncSession, *, provider: str, call_sid: str) -> bool:
    found = await session.scalar(
        select(CarrierEvent.id).where(
            CarrierEvent.provider == provider, CarrierEvent.event_key == f"{call_sid}:ended"
        )
    )
    return found is not None


async def claim_event(
    session: AsyncSession,
    *,
    provider: str,
    event_key: str,
    call_sid: str,
    kind: str,
    payload: dict[str, Any] | None = None,
    interaction_id: uuid.UUID | None = None,
) -> CarrierEvent | None:
    """Record a carrier event, or return None if it was already processed.

    Insert first, inside a SAVEPOINT: the unique (provider, event_key) index decides between a
    webhook and its retry even when both arrive at once (PostgreSQL makes the second insert wait
    for the first transaction, then fail; SQLite serialises writers), and the loser's transaction
    stays usable for reading what the winner did.
    """
    row = CarrierEvent(
        provider=provider,
        event_key=event_key,
        call_sid=call_sid,
        kind=kind,
        payload=payload or {},
        interaction_id=interaction_id,
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        return None
    return row


def _call_key(call_sid: str) -> str:
    return f"{call_sid}:interaction"


async def interaction_for_call(session: AsyncSession, *, provider: str, call_sid: str) -> Interaction | None:
    interaction_id = await session.scalar(
        select(CarrierEvent.interaction_id).where(
            CarrierEvent.provider == provider, CarrierEvent.event_key == _call_key(call_sid)
        )
    )
    if interaction_id is None:
        return None
    interaction = await service.get_interaction(session, interaction_id)
    # A transfer ends the interaction and a child carries on: the caller is the child's now. A
    # warm transfer's withdrawn or refused consults are children too (failed): skip them; the
    # newest other child is the leg that took the caller over.
    for _ in range(MAX_TRANSFER_HOPS):
        if interaction.state is not State.TRANSFERRED:
            break
        child = await session.scalar(
            select(Interaction)
            .where(Interaction.parent_id == interaction.id, Interaction.state != State.FAILED)
            .order_by(Interaction.created_at.desc(), Interaction.id.desc())
            .limit(1)
        )
        if child is None:
            break
        interaction = child
    return interaction


async def start_call_interaction(
    session: AsyncSession,
    *,
    provider: str,
    call_sid: str,
    caller: str,
    option: IvrOption,
    queue: str | None,
    default_region: str,
    now: datetime | None = None,
) -> tuple[Interaction, bool]:
    """The call's voice interaction, created and queued once; returns (interaction, created).

    The ``<CallSid>:interaction`` claim makes "one call, one interaction" a database fact, even
    if two different webhooks for the call (a replay with other digits) race each other.
    """
    claim = await claim_event(
        session, provider=provider, event_key=_call_key(call_sid), call_sid=call_sid, kind="interaction"
    )
    if claim is None:
        existing = await interaction_for_call(session, provider=provider, call_sid=call_sid)
        assert existing is not None  # the claim row is written with its interaction
        return existing, False
    data = InteractionCreate(
        channel=Channel.VOICE,
        identity=IdentityRef(kind=IdentityKind.PHONE, value=caller),
        topic=option.topic,
        language=option.language,
        queue=queue,
        attributes={"provider": provider, "call_sid": call_sid, "ivr_digit": option.digit},
    )
    interaction = await service.create_interaction(
        session, data=data, actor=carrier_actor(provider), default_region=default_region, now=now
    )
    claim.interaction_id = interaction.id
    await session.flush()
    return interaction, True


async def queue_position(session: AsyncSession, interaction: Interaction) -> int:
    """1 + waiting work ahead in the same queue (higher priority, or same priority and older).

    An estimate for the announcement: the engine's real order also ages priorities over time.
    """
    ahead = (
        select(func.count())
        .select_from(Interaction)
        .where(
            Interaction.state.in_(WAITING),
            Interaction.id != interaction.id,
            or_(
                Interaction.priority > interaction.priority,
                (Interaction.priority == interaction.priority)
                & (Interaction.virtual_start_at < interaction.virtual_start_at),
            ),
        )
    )
    if interaction.queue_id is not None:
        ahead = ahead.where(Interaction.queue_id == interaction.queue_id)
    return 1 + int(await session.scalar(ahead) or 0)


async def instruction_for(session: AsyncSession, interaction: Interaction) -> Instruction:
    """What the caller should hear now, from the interaction's state alone (so replays agree)."""
    if interaction.state in WAITING:
        return Hold(position=await queue_position(session, interaction))
    if interaction.state is State.CONNECTED and interaction.agent_id is not None:
        return Bridge(agent_id=interaction.agent_id)
    if interaction.state is State.ABANDONED and await _callback_requested(session, interaction):
        return HangUp(CALLBACK_GOODBYE)
    return HangUp(GOODBYE)


async def _callback_requested(session: AsyncSession, interaction: Interaction) -> bool:
    found = await session.scalar(
        select(Interaction.id).where(Interaction.callback_of_id == interaction.id).limit(1)
    )
    return found is not None


async def apply_call_status(
    session: AsyncSession,
    *,
    provider: str,
    interaction: Interaction,
    status: CallStatus,
    call_sid: str,
    now: datetime | None = None,
) -> list[RoutingCommand]:
    """Drive the interaction from a call-progress event; returns the routing commands to send.

    * still waiting when the call ends: the caller gave up -> abandoned (in SQL here, durably;
      the engine is told to drop it and count it);
    * talking to an agent when the call ends: the conversation is over -> the engine starts
      wrap-up (it owns capacity, so it must make that move);
    * an outbound call that never connected (busy, no-answer, failed) -> failed.
    """
    append_event(
        session,
        customer_id=interaction.customer_id,
        interaction_id=interaction.id,
        kind="call_status",
        channel=interaction.channel.value,
        actor_type=ActorType.SYSTEM,
        actor_id=f"carrier:{provider}",
        data={"status": status.value, "call_sid": call_sid},
        at=now,
    )
    await session.flush()
    if status is CallStatus.IN_PROGRESS:
        connected = await answered(session, provider=provider, interaction=interaction, now=now)
        return adopt_commands(connected)
    if status not in CALL_ENDED:
        return []
    actor = carrier_actor(provider)
    if interaction.state in WAITING:
        reason = HUNG_UP_REASON if status in (CallStatus.COMPLETED, CallStatus.CANCELED) else f"call {status}"
        await service.transition(
            session,
            interaction_id=interaction.id,
            to_state=State.ABANDONED,
            actor_type=actor.type,
            actor_id=actor.id,
            reason=reason,
            now=now,
        )
        return [commands.Abandon(interaction_id=str(interaction.id))]
    if interaction.state is State.CONNECTED and interaction.agent_id is not None:
        return [commands.WrapUp(interaction_id=str(interaction.id), agent_id=str(interaction.agent_id))]
    if interaction.state is State.CREATED:
        await service.transition(
            session,
            interaction_id=interaction.id,
            to_state=State.FAILED,
            actor_type=actor.type,
            actor_id=actor.id,
            reason=f"call {status}",
            now=now,
        )
    return []


async def answered(
    session: AsyncSession, *, provider: str, interaction: Interaction, now: datetime | None = None
) -> Interaction:
    """The customer picked up an outbound leg: the agent's own call is now connected.

    (A callback was connected when the agent accepted it; the answer only bridges.) Both the
    ``answer`` webhook and the ``in-progress`` status callback land here, in either order.
    """
    if interaction.state is State.CREATED and interaction.agent_id is not None:
        actor = carrier_actor(provider)
        interaction = await service.transition(
            session,
            interaction_id=interaction.id,
            to_state=State.CONNECTED,
            actor_type=actor.type,
            actor_id=actor.id,
            reason="the customer answered",
            now=now,
        )
    return interaction


def adopt_commands(interaction: Interaction) -> list[RoutingCommand]:
    """An agent's own call just connected: routing never offered it, so tell the engine to count it
    against the agent's capacity (and to accept its wrap-up and completion later)."""
    if (
        interaction.state is State.CONNECTED
        and interaction.agent_id is not None
        and interaction.callback_of_id is None
    ):
        return [commands.Adopt(interaction_id=str(interaction.id))]
    return []


async def notify_routing(client: aioredis.Redis, routing_commands: list[RoutingCommand]) -> None:
    """Send commands to the engine after the commit. Best effort: SQL already holds the change,
    and the engine's reconcile pass finds work queued, or ended, without it hearing."""
    for command in routing_commands:
        try:
            await commands.send(client, command)
        except (aioredis.ConnectionError, OSError):
            log.warning("could not tell the routing engine %s; reconcile will", command)

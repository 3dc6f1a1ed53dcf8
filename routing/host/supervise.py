"""A supervisor's moves of waiting work (``Move``, ``Reprioritise``), each in one fenced
transaction with the engine's decision: the SQL row, the timeline event naming the supervisor and
their reason, and the audit entry commit together, or none of them does."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.timeline import append_event
from customers.timeline_models import ActorType
from interactions.models import Interaction
from routing.engine.events import CommandRejected, Event
from routing.host.leader import Leader
from switchboard.audit import record_audit
from switchboard.commands import Move, Reprioritise
from workforce.models import Queue


def _record(
    session: AsyncSession, interaction: Interaction, kind: str, actor_id: str, data: dict[str, Any]
) -> None:
    append_event(
        session,
        customer_id=interaction.customer_id,
        interaction_id=interaction.id,
        kind=kind,
        channel=interaction.channel.value,
        actor_type=ActorType.SUPERVISOR,
        actor_id=actor_id,
        data=data,
    )
    record_audit(
        session,
        actor_id=uuid.UUID(actor_id),
        action=f"interaction.{kind}",
        entity_type="interaction",
        entity_id=interaction.id,
        data=data,
    )


def _refused(events: list[Event]) -> str | None:
    return next((e.reason for e in events if isinstance(e, CommandRejected)), None)


async def move(leader: Leader, command: Move) -> dict[str, Any]:
    engine = leader.engine
    if (command.to_queue is None) == (command.to_agent_id is None):
        return {"ok": False, "reason": "name exactly one of a queue or an agent"}
    if command.to_agent_id is not None and not engine.has_agent(command.to_agent_id):
        return {"ok": False, "reason": "unknown agent"}
    refused: list[str] = []

    async def apply(session: AsyncSession) -> list[Event]:
        interaction = await session.get(
            Interaction, uuid.UUID(command.interaction_id), populate_existing=True
        )
        if interaction is None:
            refused.append("unknown interaction")
            return []
        before = {"queue_id": str(interaction.queue_id) if interaction.queue_id else None}
        if command.to_queue is not None:
            queue_id = await session.scalar(select(Queue.id).where(Queue.name == command.to_queue))
            if queue_id is None:
                refused.append(f"unknown queue {command.to_queue!r}")
                return []
            interaction.queue_id = queue_id
        try:
            events = engine.transfer(
                leader.host.clock(),
                command.interaction_id,
                to_queue=command.to_queue,
                to_agent=command.to_agent_id,
            )
        except ValueError as exc:
            refused.append(str(exc))
            return []
        reason = _refused(events)
        if reason is not None:
            refused.append(reason)
            return []  # nothing is committed: the queue change above goes with the session
        _record(
            session,
            interaction,
            "moved",
            command.actor_id,
            {
                "reason": command.reason,
                "to_queue": command.to_queue,
                "to_agent_id": command.to_agent_id,
                **before,
            },
        )
        return events

    await leader.apply_in_session(apply, context=f"move {command.interaction_id}")
    return {"ok": False, "reason": refused[0]} if refused else {"ok": True}


async def reprioritise(leader: Leader, command: Reprioritise) -> dict[str, Any]:
    refused: list[str] = []

    async def apply(session: AsyncSession) -> list[Event]:
        interaction = await session.get(
            Interaction, uuid.UUID(command.interaction_id), populate_existing=True
        )
        if interaction is None:
            refused.append("unknown interaction")
            return []
        before = interaction.priority
        events = leader.engine.reprioritise(leader.host.clock(), command.interaction_id, command.priority)
        reason = _refused(events)
        if reason is not None:
            refused.append(reason)
            return []
        interaction.priority = command.priority
        _record(
            session,
            interaction,
            "reprioritised",
            command.actor_id,
            {"reason": command.reason, "priority": command.priority, "before": before},
        )
        return events

    await leader.apply_in_session(apply, context=f"reprioritise {command.interaction_id}")
    return {"ok": False, "reason": refused[0]} if refused else {"ok": True}

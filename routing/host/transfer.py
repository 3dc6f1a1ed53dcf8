"""The transfer command: blind or warm, to a queue or a named agent, in one transaction."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interactions.models import Interaction
from routing.context import context_for
from routing.engine.events import Event
from routing.host.floor import dt
from routing.host.leader import Leader
from routing.transfer import transfer_in_sql
from switchboard.commands import Transfer
from workforce.models import Queue


async def transfer(leader: Leader, command: Transfer) -> dict[str, Any]:
    """Transfer to a queue or a named agent, the note travelling with it, in one transaction.

    Blind: the parent ends now and the child is queued. Warm: a consult — the sender keeps the
    parent until the child is accepted (see ``routing.engine.hosted``)."""
    engine = leader.engine
    parent_id, agent_id = command.interaction_id, command.agent_id
    if command.mode not in ("blind", "warm"):
        return {"ok": False, "reason": f"unknown transfer mode {command.mode!r}"}
    mode: Literal["blind", "warm"] = "warm" if command.mode == "warm" else "blind"
    if engine.holder_of(parent_id) != agent_id or engine.in_wrap_up(parent_id):
        return {"ok": False, "reason": "only the connected agent can transfer this interaction"}
    if engine.consult_child(parent_id) is not None:
        return {"ok": False, "reason": "a warm transfer is already in progress; cancel it first"}
    to_agent = command.to_agent_id
    if to_agent is not None and not engine.has_agent(to_agent):
        return {"ok": False, "reason": "unknown agent"}
    if to_agent == agent_id:
        return {"ok": False, "reason": "cannot transfer to yourself"}
    child_id: list[str] = []

    async def hand_over(session: AsyncSession) -> list[Event]:
        now = leader.host.clock()
        parent = await session.get(Interaction, uuid.UUID(parent_id), populate_existing=True)
        if parent is None:
            raise ValueError(f"unknown interaction {parent_id}")
        to_queue_id = None
        if command.to_queue:
            to_queue_id = await session.scalar(select(Queue.id).where(Queue.name == command.to_queue))
            if to_queue_id is None:
                raise ValueError(f"unknown queue {command.to_queue!r}")
        child = await transfer_in_sql(
            session,
            parent=parent,
            from_agent_id=uuid.UUID(agent_id),
            to_queue_id=to_queue_id,
            to_agent_id=uuid.UUID(to_agent) if to_agent else None,
            mode=mode,
            note=command.note,
            now=dt(now),
        )
        child_id.append(str(child.id))
        child_queue = await session.get(Queue, child.queue_id) if child.queue_id else None
        queue_name = command.to_queue or (child_queue.name if child_queue else None)
        if mode == "warm":
            # The sender stays connected (capacity held) until the target accepts the child.
            return engine.start_consult(
                now,
                parent_id,
                str(child.id),
                child.channel.value,
                sender=agent_id,
                queue=queue_name,
                priority=child.priority,
                virtual_start=child.virtual_start_at.timestamp(),
                required_skills=child.required_skills or None,
                to_agent=to_agent,
                context=await context_for(session, child),
            )
        events = engine.end_leg_for_transfer(now, parent_id)
        # To a named agent: only them for a minute, then anyone in the queue.
        events += engine.enqueue(
            now,
            str(child.id),
            child.channel.value,
            queue=queue_name,
            priority=child.priority,
            virtual_start=child.virtual_start_at.timestamp(),
            required_skills=child.required_skills or None,
            preferred_agent=to_agent,
            preferred_until=now + 60 if to_agent else None,
            preferred_required=bool(to_agent),
            context=await context_for(session, child),
            declined={agent_id},
        )
        return events

    await leader.apply_in_session(hand_over, context=f"transfer {parent_id}")
    return {
        "ok": True,
        "child_interaction_id": child_id[0] if child_id else None,
        "consult": "pending" if mode == "warm" else None,
    }

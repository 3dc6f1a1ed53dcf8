"""Transfers in SQL.

Blind: the interaction ends as ``transferred`` at once and a child carries on. Warm (a consult):
the parent stays connected to the sending agent and the child is offered to the target; only
when the child is accepted does the parent end as ``transferred`` (``end_consult_in_sql``), and
any other outcome cancels the child (``failed``, its ``transfer.consult`` says "cancelled") while
the customer stays with the sender. The child keeps the parent's virtual start time (its place in
line), customer, channel and context, and carries the note, so the next agent never has to ask
the customer again.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from customers.timeline import append_event
from interactions import service as interactions_service
from interactions.links import linked_from
from interactions.models import ActorType, Interaction
from interactions.states import State
from switchboard.desktop_messages import Assigned, Completed
from switchboard.pii import mask_card_numbers

TransferMode = Literal["blind", "warm"]


async def transfer_in_sql(
    session: AsyncSession,
    *,
    parent: Interaction,
    from_agent_id: uuid.UUID,
    to_queue_id: uuid.UUID | None,
    to_agent_id: uuid.UUID | None,
    mode: TransferMode,
    note: str | None,
    now: datetime,
) -> Interaction:
    safe_note = mask_card_numbers(note) if note else None
    if mode == "blind":
        await interactions_service.transition(
            session,
            interaction_id=parent.id,
            to_state=State.TRANSFERRED,
            actor_type=ActorType.AGENT,
            actor_id=str(from_agent_id),
            reason=f"{mode} transfer",
            now=now,
        )
    transfer: dict[str, Any] = {
        "from_agent_id": str(from_agent_id),
        "to_agent_id": str(to_agent_id) if to_agent_id else None,
        "mode": mode,
        "note": safe_note,
    }
    if mode == "warm":
        transfer["consult"] = "pending"  # the parent stays with the sender until it is accepted
    child = Interaction(
        customer_id=parent.customer_id,
        channel=parent.channel,
        direction=parent.direction,
        state=State.QUEUED,
        priority=parent.priority,
        queue_id=to_queue_id or parent.queue_id,
        required_skills=dict(parent.required_skills or {}),
        subject=parent.subject,
        topic=parent.topic,
        language=parent.language,
        contact_identity=dict(parent.contact_identity or {}),
        attributes={**(parent.attributes or {}), "transfer": transfer},
        parent_id=parent.id,
        created_at=now,
        virtual_start_at=parent.virtual_start_at,  # keeps its place in line
        queued_at=now,
        updated_at=now,
    )
    session.add(child)
    await session.flush()
    parent_kind = "transferred" if mode == "blind" else "consult_started"
    for interaction, kind in ((parent, parent_kind), (child, "interaction_created")):
        append_event(
            session,
            customer_id=parent.customer_id,
            interaction_id=interaction.id,
            kind=kind,
            channel=parent.channel.value,
            actor_type=ActorType.AGENT,
            actor_id=str(from_agent_id),
            data={**transfer, "parent_id": str(parent.id), "child_id": str(child.id)},
            at=now,
        )
    return child


ConsultStatus = Literal["pending", "accepted", "cancelled"]


async def end_consult_in_sql(
    session: AsyncSession,
    *,
    parent_id: uuid.UUID,
    child_id: uuid.UUID,
    from_agent_id: uuid.UUID,
    outcome: str,
    to_agent_id: uuid.UUID | None,
    now: datetime,
) -> list[tuple[str, dict[str, Any]]]:
    """Record how a consult ended; returns what to publish once the transaction commits.

    ``accepted`` (the child is already connected to the target, same transaction): the parent
    ends as ``transferred``. Otherwise the child (queued again by then) is cancelled and the
    sender keeps the customer. Both timelines say so."""
    child = await session.get(Interaction, child_id, populate_existing=True)
    parent = await session.get(Interaction, parent_id, populate_existing=True)
    if child is None or parent is None:
        return []
    accepted = outcome == "accepted"
    transfer = dict((child.attributes or {}).get("transfer") or {})
    transfer.update(consult="accepted" if accepted else "cancelled", consult_outcome=outcome)
    attributes = {**(child.attributes or {}), "transfer": transfer}
    by_agent = outcome in ("accepted", "cancelled", "parent_ended")
    actor_id = str(to_agent_id if accepted else from_agent_id) if by_agent else "routing"
    actor_type = ActorType.AGENT if by_agent else ActorType.SYSTEM
    data = {
        "parent_id": str(parent_id),
        "child_id": str(child_id),
        "from_agent_id": str(from_agent_id),
        "to_agent_id": transfer.get("to_agent_id"),
        "mode": "warm",
        "outcome": outcome,
        "note": transfer.get("note"),
    }
    if accepted:
        await session.execute(
            update(Interaction).where(Interaction.id == child_id).values(attributes=attributes)
        )
        await interactions_service.transition(
            session,
            interaction_id=parent_id,
            to_state=State.TRANSFERRED,
            actor_type=actor_type,
            actor_id=actor_id,
            reason="warm transfer accepted",
            now=now,
        )
        data["accepted_by"] = str(to_agent_id) if to_agent_id else None
        kinds = ((parent, "transferred"), (child, "consult_accepted"))
        # The sender's desktop drops the tab: the parent is no longer theirs to work.
        notice: Assigned | Completed = Completed(interaction_id=str(parent_id))
    else:
        if child.state not in (State.FAILED, State.ABANDONED):
            await interactions_service.transition(
                session,
                interaction_id=child_id,
                to_state=State.FAILED,
                actor_type=actor_type,
                actor_id=actor_id,
                reason=f"consult {outcome}",
                changes={"attributes": attributes, "agent_id": None},
                now=now,
            )
        else:
            await session.execute(
                update(Interaction).where(Interaction.id == child_id).values(attributes=attributes)
            )
        data["customer_stays_with"] = str(from_agent_id)
        kinds = ((parent, "consult_cancelled"), (child, "consult_cancelled"))
        # The sender's desktop shows (again) the customer it still holds.
        notice = Assigned(interaction_id=str(parent_id))
    for interaction, kind in kinds:
        append_event(
            session,
            customer_id=parent.customer_id,
            interaction_id=interaction.id,
            kind=kind,
            channel=parent.channel.value,
            actor_type=actor_type,
            actor_id=actor_id,
            data=data,
            at=now,
        )
    return [notice.to(from_agent_id)]


async def consult_status(
    session: AsyncSession, *, parent_id: uuid.UUID
) -> tuple[Interaction, ConsultStatus | None, str | None] | None:
    """The latest transfer child of ``parent_id`` with its consult status (None for a blind one)
    and outcome; None when the interaction was never transferred."""
    if not (await linked_from(session, parent_id)).transferred:
        return None  # the common case, in one prebuilt read instead of an ORM query of whole rows
    child = await session.scalar(
        select(Interaction)
        .where(Interaction.parent_id == parent_id)
        .order_by(Interaction.created_at.desc(), Interaction.id.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    if child is None:
        return None
    transfer = (child.attributes or {}).get("transfer") or {}
    return child, transfer.get("consult"), transfer.get("consult_outcome")

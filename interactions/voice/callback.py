"""Callbacks: a waiting customer hangs up (or leaves the chat) without losing their place in line.

The waiting interaction ends as ``abandoned`` with reason "callback requested" (it did leave the
queue, and the queue's figures should say so), and a new OUTBOUND voice interaction linked by
``callback_of_id`` is queued with the SAME ``virtual_start_at``: the engine orders by virtual
start, so the callback is served exactly when the customer would have been. Both writes share
one transaction: there is never a moment where the customer is neither waiting nor owed a call.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.identity import normalise_phone
from customers.models import Identity, IdentityKind
from interactions import service
from interactions.models import Interaction
from interactions.schemas import IdentityRef, InteractionCreate
from interactions.states import Channel, Direction, State
from switchboard.db import utcnow
from switchboard.errors import Conflict, Invalid
from workforce.models import Queue

CALLBACK_REASON = "callback requested"
CALLBACK_CHANNELS = frozenset({Channel.VOICE, Channel.CHAT})
WAITING = frozenset({State.QUEUED, State.OFFERED})


async def request_callback(
    session: AsyncSession,
    *,
    interaction_id: uuid.UUID,
    actor: service.Actor,
    default_region: str,
    phone: str | None = None,
    now: datetime | None = None,
) -> tuple[Interaction, Interaction]:
    """End the waiting interaction and queue its callback; returns (original, callback).

    409 when the interaction is not waiting (already with an agent, or ended: a second request
    for the same wait is refused, never doubled); 422 when there is no number to call.
    """
    now = now or utcnow()
    original = await service.get_interaction(session, interaction_id)
    check_waiting(original)
    number = await number_to_call(session, original, phone=phone, default_region=default_region)
    return await queue_callback(
        session, original=original, number=number, actor=actor, default_region=default_region, now=now
    )


def check_waiting(original: Interaction) -> None:
    """409 unless ``original`` is a waiting voice or chat interaction (422 for another channel)."""
    if original.channel not in CALLBACK_CHANNELS:
        raise Invalid(
            f"A {original.channel.value} interaction cannot ask for a callback", field="interaction_id"
        )
    if original.state not in WAITING:
        raise Conflict(
            f"Only a waiting customer can ask for a callback; this interaction is {original.state.value}",
            field="interaction_id",
            state=original.state.value,
        )


async def queue_callback(
    session: AsyncSession,
    *,
    original: Interaction,
    number: str,
    actor: service.Actor,
    default_region: str,
    now: datetime,
) -> tuple[Interaction, Interaction]:
    """End the waiting ``original`` and queue the call to ``number`` in its place (one transaction,
    the caller's); ``number`` is already checked by the caller. Returns (original, callback)."""
    # A queue the interaction was explicitly given travels with it; one the rules chose is chosen
    # again by the rules (from the same virtual start, so escalation steps resume where they were).
    queue_name = None
    if original.queue_id is not None and original.rule_set_version is None:
        queue_name = await session.scalar(select(Queue.name).where(Queue.id == original.queue_id))

    await service.transition(
        session,
        interaction_id=original.id,
        to_state=State.ABANDONED,
        actor_type=actor.type,
        actor_id=actor.id,
        reason=CALLBACK_REASON,
        now=now,
    )
    data = InteractionCreate(
        channel=Channel.VOICE,
        direction=Direction.OUTBOUND,
        enqueue=True,  # unlike an agent's own outbound call, a callback waits its turn for anyone
        identity=IdentityRef(kind=IdentityKind.PHONE, value=number),
        priority=original.priority,
        required_skills=dict(original.required_skills or {}),
        subject=original.subject,
        topic=original.topic,
        language=original.language,
        queue=queue_name,
        callback_of_id=original.id,
        attributes={"callback": True, "requested_on": original.channel.value},
    )
    callback = await service.create_interaction(
        session, data=data, actor=actor, default_region=default_region, now=now
    )
    callback.virtual_start_at = original.virtual_start_at  # its place in line
    await session.flush()
    return await service.get_interaction(session, original.id), callback


async def number_to_call(
    session: AsyncSession, original: Interaction, *, phone: str | None, default_region: str
) -> str:
    """A number on THIS customer's profile: the one they called from, or one they already gave.

    A new number is refused rather than resolved, because resolving an unknown number would
    create (or find) a different customer and the callback would leave this customer's history.
    """
    known = set(
        await session.scalars(
            select(Identity.value).where(
                Identity.customer_id == original.customer_id, Identity.kind == IdentityKind.PHONE
            )
        )
    )
    if phone is not None:
        number = normalise_phone(phone, default_region=default_region, field="body.phone")
        if number not in known:
            raise Invalid(
                "That number is not on the customer's profile; add it as an identity first",
                field="body.phone",
            )
        return number
    contact = original.contact_identity or {}
    if contact.get("kind") == IdentityKind.PHONE.value and contact.get("value") in known:
        return str(contact["value"])
    if known:
        return sorted(known)[0]
    raise Invalid("The customer has no phone number to call back; give one", field="body.phone")

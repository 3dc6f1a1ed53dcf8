"""Queue settings a supervisor changes live: the offer policy (issue #10) and when a waiting chat
customer is offered a callback or a message, through ``GET /api/workforce/queues`` and
``PATCH /api/workforce/queues/{id}`` and the console page ``/supervisor/queues`` (both call
``set_offer_policy`` and ``set_chat_wait_threshold``).

A change is saved with its audit row, then the routing engine is told (``QueuesChanged``): it
re-reads the queues and offers again to agents who may now take more. If Redis refuses the
command the change is undone (503), so routing never acts on one policy while the page shows
another.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard import commands
from switchboard.audit import record_audit
from switchboard.auth.models import User
from switchboard.deps import DbSession, RequireSupervisor
from switchboard.errors import OUTAGE_ERRORS, Invalid, NotFound, ServiceUnavailable
from workforce.models import CHAT_WAIT_OFFER_KEY, OfferPolicy, Queue

CHAT_WAIT_MIN_S = 30
CHAT_WAIT_MAX_S = 3600

# What each policy means, for the page and the API's documentation.
POLICY_LABELS = {
    OfferPolicy.ONE_AT_A_TIME: "One offer at a time (the next after an answer or expiry)",
    OfferPolicy.UP_TO_CAPACITY: "Up to capacity (every free place offered at once)",
}


class QueueSettingsRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    display_name: str
    channels: list[str]
    offer_policy: OfferPolicy
    chat_wait_offer_after_seconds: int


class QueueSettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offer_policy: OfferPolicy | None = Field(
        default=None,
        description="one_at_a_time: an agent holds at most one pending offer of this queue's work; "
        "up_to_capacity: as many as free capacity allows",
    )
    chat_wait_offer_after_seconds: int | None = Field(
        default=None,
        ge=CHAT_WAIT_MIN_S,
        le=CHAT_WAIT_MAX_S,
        description="A waiting chat customer whose estimated wait passes this is offered a callback "
        "or to leave a message (always when nobody is online)",
    )


async def set_chat_wait_threshold(
    session: AsyncSession, *, queue_id: uuid.UUID, seconds: int, actor: User
) -> Queue:
    """Save the threshold with its audit row (the caller commits); the chat pages read it live."""
    if not CHAT_WAIT_MIN_S <= seconds <= CHAT_WAIT_MAX_S:
        raise Invalid(
            f"Between {CHAT_WAIT_MIN_S} and {CHAT_WAIT_MAX_S} seconds", field="chat_wait_offer_after_seconds"
        )
    queue = await session.get(Queue, queue_id)
    if queue is None:
        raise NotFound("No such queue", field="queue_id")
    before = queue.chat_wait_offer_after_seconds
    if before != seconds:
        queue.settings = {**(queue.settings or {}), CHAT_WAIT_OFFER_KEY: seconds}  # a new dict: saved
        record_audit(
            session,
            actor_id=actor.id,
            action="queue.chat_wait_threshold_changed",
            entity_type="queue",
            entity_id=queue.id,
            data={"queue": queue.name},
            before={CHAT_WAIT_OFFER_KEY: before},
            after={CHAT_WAIT_OFFER_KEY: seconds},
        )
        await session.flush()
    return queue


async def list_queues(session: AsyncSession) -> list[Queue]:
    return list((await session.scalars(select(Queue).order_by(Queue.display_name))).all())


async def set_offer_policy(
    session: AsyncSession, redis: Redis, *, queue_id: uuid.UUID, policy: OfferPolicy, actor: User
) -> Queue:
    """Save the policy (audited), then tell routing; undone with a 503 if routing cannot be told."""
    queue = await session.get(Queue, queue_id)
    if queue is None:
        raise NotFound("No such queue", field="queue_id")
    before = queue.offer_policy
    if before is policy:
        await session.commit()
        return queue
    queue.offer_policy = policy
    record_audit(
        session,
        actor_id=actor.id,
        action="queue.offer_policy_changed",
        entity_type="queue",
        entity_id=queue.id,
        data={"queue": queue.name},
        before={"offer_policy": before.value},
        after={"offer_policy": policy.value},
    )
    await session.commit()
    try:
        await commands.send(redis, commands.QueuesChanged())
    except OUTAGE_ERRORS as exc:
        await session.execute(
            update(Queue)
            .where(Queue.id == queue_id, Queue.offer_policy == policy)
            .values(offer_policy=before)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        raise ServiceUnavailable("Routing is unavailable: the queue was not changed. Retry shortly.") from exc
    return queue


router = APIRouter(prefix="/api/workforce/queues", tags=["workforce"])


@router.get("", response_model=list[QueueSettingsRead])
async def queues(session: DbSession, _: RequireSupervisor) -> list[Queue]:
    found = await list_queues(session)
    await session.commit()
    return found


@router.patch("/{queue_id}", response_model=QueueSettingsRead)
async def update_queue(
    queue_id: uuid.UUID,
    body: QueueSettingsUpdate,
    request: Request,
    session: DbSession,
    user: RequireSupervisor,
) -> Queue:
    """Change a queue's offer policy (routing applies it at once) and/or its chat wait threshold."""
    if body.offer_policy is None and body.chat_wait_offer_after_seconds is None:
        raise Invalid("Give offer_policy or chat_wait_offer_after_seconds", field="body")
    queue = None
    if body.chat_wait_offer_after_seconds is not None:
        queue = await set_chat_wait_threshold(
            session, queue_id=queue_id, seconds=body.chat_wait_offer_after_seconds, actor=user
        )
    if body.offer_policy is not None:  # commits (with the threshold), then tells routing
        return await set_offer_policy(
            session, request.app.state.redis_client, queue_id=queue_id, policy=body.offer_policy, actor=user
        )
    await session.commit()
    assert queue is not None
    return queue

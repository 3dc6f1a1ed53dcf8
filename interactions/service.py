"""The interactions hub: create, move through the state machine, converse, annotate, list, history.

Plain async functions (no FastAPI): the API, the routing engine, RQ jobs and websocket handlers
all call these. They flush but never commit: the caller owns the transaction, so e.g. the engine
can make an offer and check the agent's load in one commit.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from customers.models import Customer
from customers.service import merged_customer_ids, resolve_or_insert_customer
from customers.timeline import append_event
from interactions import idempotency
from interactions.create_plan import CreatePlan, plan_create
from interactions.models import ActorType, IdempotencyKey, Interaction, Message, MessageSender, TimelineEvent
from interactions.schemas import (
    MAX_MESSAGE_CHARS,
    MAX_NOTE_CHARS,
    PREVIEW_CHARS,
    InteractionCreate,
    InteractionCustomer,
    InteractionFilters,
    InteractionRead,
)
from interactions.states import TERMINAL_STATES, State, can_transition, transition_data
from switchboard.db import utcnow
from switchboard.errors import Conflict, Invalid, NotFound
from switchboard.pii import mask_card_numbers
from workforce.models import Queue

MAX_PAGE = 200

# Which timestamp column records entry into each state (terminal states share ended_at).
STATE_TIMESTAMP: dict[State, str] = {
    State.QUEUED: "queued_at",
    State.OFFERED: "offered_at",
    State.CONNECTED: "connected_at",
    State.WRAP_UP: "wrap_up_at",
    **{s: "ended_at" for s in TERMINAL_STATES},
}

# Columns a caller of transition() may change in the same compare-and-set (e.g. the engine sets
# agent_id with "offered" and clears it with "queued"). State, version and timestamps are ours.
TRANSITION_CHANGEABLE = frozenset(
    {
        "agent_id",
        "queue_id",
        "priority",
        "required_skills",
        "rule_set_version",
        "virtual_start_at",
        "disposition",
        "subject",
        "topic",
        "language",
        "attributes",
    }
)

# Disposition (wrap-up code) is set while the agent still works the interaction.
DISPOSITION_STATES = frozenset({State.CONNECTED, State.WRAP_UP})


@dataclass(frozen=True)
class Actor:
    """Who did something, as recorded on the timeline."""

    type: ActorType
    id: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(ActorType.SYSTEM)


# --------------------------------------------------------------------------------------------
# Create


async def create_interaction(
    session: AsyncSession,
    *,
    data: InteractionCreate,
    actor: Actor,
    default_region: str,
    agent_id: uuid.UUID | None = None,
    now: datetime | None = None,
    savepoint: bool = True,
    claim: idempotency.Claim | None = None,
) -> Interaction:
    """Resolve the customer, create the interaction and (by default for inbound) queue it: the
    plan of ``interactions.create_plan``, executed here (``execute_plan``).

    ``agent_id`` attaches an agent from the start (an agent-initiated outbound contact);
    ``claim``: the request's Idempotency-Key, stored with the interaction.
    """
    plan = plan_create(
        data,
        actor_type=actor.type,
        actor_id=actor.id,
        default_region=default_region,
        agent_id=agent_id,
        now=now,
        claim=claim,
    )
    return await execute_plan(session, plan, savepoint=savepoint)


async def execute_plan(session: AsyncSession, plan: CreatePlan, *, savepoint: bool = True) -> Interaction:
    """The ORM writer of a create plan (every database; lean_create is PostgreSQL's other one).

    The references are checked before any write, and all writes happen inside a SAVEPOINT, so a
    failure leaves neither a half-written interaction nor an orphan customer, whatever the caller
    does next. ``savepoint=False`` is for a caller that rolls its whole transaction back on any
    error (the API: it commits only on success), which saves the SAVEPOINT / RELEASE round trips.
    """
    queue: Queue | None = None
    if plan.queue is not None:
        # The row, not just its id: it stays in the session, so read_models needs no query for it.
        queue = await session.scalar(select(Queue).where(Queue.name == plan.queue))
    for ref in plan.references:
        if ref.model is Queue:
            found: Any = (
                queue
                if ref.value == plan.queue
                else await session.scalar(select(Queue).where(Queue.name == ref.value))
            )
        else:
            found = await session.get(ref.model, ref.value)
        if found is None:
            raise Invalid(ref.message, field=ref.field)

    async with session.begin_nested() if savepoint else contextlib.nullcontext():
        customer, _, created = await resolve_or_insert_customer(
            session,
            kind=plan.kind,
            value=plan.identity_value,
            new_customer=plan.new_customer_row(),
            new_identity=plan.new_identity_row(plan.new_customer_id),
        )
        row = plan.interaction_row(customer.id, queue.id if queue is not None else None)
        row["language"] = plan.language(customer.language)
        # The id up front: the events can then reference the row in the same flush (the unit of
        # work inserts interactions before timeline_events, by their foreign key).
        interaction = Interaction(**row)
        session.add(interaction)
        for event in plan.events:
            if event.only_for_a_new_customer and not created:
                continue
            append_event(
                session,
                customer_id=customer.id,
                interaction_id=interaction.id if event.of_interaction else None,
                kind=event.kind,
                channel=event.channel,
                actor_type=event.actor_type,
                actor_id=event.actor_id,
                data=event.data,
                at=plan.now,
            )
        await session.flush()
        if plan.key_row is not None:
            # After the interaction's flush: a foreign key alone does not order a flush.
            session.add(IdempotencyKey(**plan.key_row))
            await session.flush()
    _keep(session, customer, *([queue] if queue is not None else []))
    return interaction


# --------------------------------------------------------------------------------------------
# State machine


async def get_interaction(session: AsyncSession, interaction_id: uuid.UUID) -> Interaction:
    """The interaction as committed now (refreshes any stale copy in the session)."""
    interaction = await session.scalar(
        select(Interaction).where(Interaction.id == interaction_id).execution_options(populate_existing=True)
    )
    if interaction is None:
        raise NotFound(f"No interaction {interaction_id}", field="interaction_id")
    return interaction


async def transition(
    session: AsyncSession,
    *,
    interaction_id: uuid.UUID,
    to_state: State | str,
    actor_type: ActorType,
    actor_id: str | uuid.UUID | None,
    reason: str | None = None,
    expected_version: int | None = None,
    changes: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Interaction:
    """Move an interaction to ``to_state`` with a compare-and-set on (version, state).

    Raises Conflict (409) for an illegal move (body: from_state, to_state), for a stale
    ``expected_version``, and when another writer got there first. ``changes`` are extra columns
    written in the same UPDATE (see TRANSITION_CHANGEABLE). Appends exactly one "state_changed"
    timeline event. Returns the updated Interaction.
    """
    now = now or utcnow()
    target = _parse_state(to_state)
    values = _checked_changes(changes)
    await session.flush()  # the caller's pending writes go first; we re-read below
    current = await get_interaction(session, interaction_id)
    from_state = current.state
    if expected_version is not None and expected_version != current.version:
        raise Conflict(
            f"Interaction {interaction_id} is at version {current.version}, not {expected_version}",
            field="expected_version",
            current_version=current.version,
            expected_version=expected_version,
        )
    if not can_transition(from_state, target):
        raise Conflict(
            f"Illegal transition from {from_state.value} to {target.value}",
            field="to_state",
            from_state=from_state.value,
            to_state=target.value,
        )
    version = current.version
    values.update(state=target, version=version + 1, updated_at=now)
    values[STATE_TIMESTAMP[target]] = now
    result = await session.execute(
        update(Interaction)
        .where(
            Interaction.id == interaction_id, Interaction.version == version, Interaction.state == from_state
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        # Someone committed between our read and our write (PostgreSQL READ COMMITTED re-checks the
        # WHERE after waiting for their row lock), so our decision was made on stale data.
        raise Conflict(
            f"Interaction {interaction_id} changed concurrently; re-read and retry",
            from_state=from_state.value,
            to_state=target.value,
            expected_version=version,
        )
    agent_after = values.get("agent_id", current.agent_id)
    append_event(
        session,
        customer_id=current.customer_id,
        interaction_id=interaction_id,
        kind="state_changed",
        channel=current.channel.value,
        actor_type=actor_type,
        actor_id=actor_id,
        data=transition_data(from_state, target, reason, version + 1, changes or {}, agent_after),
        at=now,
    )
    await session.flush()
    return await get_interaction(session, interaction_id)


async def set_disposition(
    session: AsyncSession,
    *,
    interaction_id: uuid.UUID,
    disposition: str,
    actor: Actor,
    expected_version: int | None = None,
    now: datetime | None = None,
    read: Interaction | None = None,
) -> Interaction:
    """Record the wrap-up code; only while connected or in wrap-up. Also a compare-and-set.

    ``read``: the row as the caller's transaction has just read it (the desktop's ownership check),
    not read again; the compare-and-set on its version refuses it if it has moved since."""
    now = now or utcnow()
    disposition = disposition.strip()
    if not 1 <= len(disposition) <= 80:
        raise Invalid("A disposition is 1-80 characters", field="disposition")
    await session.flush()
    if read is not None and read.id == interaction_id:
        current = read
    else:
        current = await get_interaction(session, interaction_id)
    if current.state not in DISPOSITION_STATES:
        raise Conflict(
            f"A disposition can be set only while connected or in wrap-up, not {current.state.value}",
            field="disposition",
            state=current.state.value,
        )
    version = expected_version if expected_version is not None else current.version
    result = await session.execute(
        update(Interaction)
        .where(
            Interaction.id == interaction_id,
            Interaction.version == version,
            Interaction.state.in_(DISPOSITION_STATES),
        )
        .values(disposition=disposition, version=version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(
            f"Interaction {interaction_id} changed concurrently; re-read and retry",
            field="expected_version",
            current_version=current.version,
            expected_version=version,
        )
    _event(
        session,
        current,
        "disposition_set",
        actor,
        {"disposition": disposition, "previous": current.disposition, "version": version + 1},
        now,
    )
    await session.flush()
    # The row is now exactly what was read plus these columns (the compare-and-set proved it).
    for column, value in (("disposition", disposition), ("version", version + 1), ("updated_at", now)):
        set_committed_value(current, column, value)
    return current


# --------------------------------------------------------------------------------------------
# Messages and notes


async def post_message(
    session: AsyncSession,
    *,
    interaction_id: uuid.UUID,
    sender: MessageSender | str,
    author_id: str | uuid.UUID | None,
    body: str,
    content_type: str = "text/plain",
    external_id: str | None = None,
    now: datetime | None = None,
) -> Message:
    """Add a message to the thread plus a "message" timeline event, together.

    Terminal interactions refuse messages (409). A repeated ``external_id`` on the same interaction
    (a carrier or mail server retrying) returns the stored message instead of a duplicate.
    """
    now = now or utcnow()
    sender = MessageSender(sender)
    if not 1 <= len(body) <= MAX_MESSAGE_CHARS or not body.strip():
        raise Invalid(f"A message body is 1-{MAX_MESSAGE_CHARS} characters", field="body")
    interaction = await get_interaction(session, interaction_id)
    if interaction.state in TERMINAL_STATES:
        raise Conflict(
            f"Interaction {interaction_id} is {interaction.state.value}; it takes no more messages",
            field="interaction_id",
            state=interaction.state.value,
        )
    if external_id is not None:
        existing = await session.scalar(
            select(Message).where(
                Message.interaction_id == interaction_id, Message.external_id == external_id
            )
        )
        if existing is not None:
            return existing
    masked = mask_card_numbers(body)
    message = Message(
        interaction_id=interaction_id,
        sender=sender,
        author_id=str(author_id) if author_id is not None else None,
        body=masked,
        content_type=content_type,
        external_id=external_id,
        at=now,
    )
    session.add(message)
    await session.flush()  # the event carries the message id
    preview = masked if len(masked) <= PREVIEW_CHARS else masked[: PREVIEW_CHARS - 1] + "…"
    _event(
        session,
        interaction,
        "message",
        Actor(ActorType(sender.value), message.author_id),
        {"message_id": message.id, "sender": sender.value, "preview": preview},
        now,
    )
    await session.flush()
    return message


async def list_messages(
    session: AsyncSession, *, interaction_id: uuid.UUID, after_id: int | None = None, limit: int = 100
) -> list[Message]:
    """The thread oldest first (a transcript reads top-down); page with ``after_id``."""
    limit = _clamp(limit)
    stmt = select(Message).where(Message.interaction_id == interaction_id)
    if after_id is not None:
        stmt = stmt.where(Message.id > after_id)
    rows = await session.scalars(stmt.order_by(Message.id).limit(limit))
    return list(rows)


async def add_note(
    session: AsyncSession,
    *,
    interaction_id: uuid.UUID,
    actor: Actor,
    body: str,
    now: datetime | None = None,
) -> TimelineEvent:
    """An internal note (never shown to the customer); allowed in any state, after-call notes included."""
    if not 1 <= len(body) <= MAX_NOTE_CHARS or not body.strip():
        raise Invalid(f"A note is 1-{MAX_NOTE_CHARS} characters", field="body")
    interaction = await get_interaction(session, interaction_id)
    event = _event(session, interaction, "note", actor, {"body": mask_card_numbers(body)}, now or utcnow())
    await session.flush()
    return event


# --------------------------------------------------------------------------------------------
# Reading


@dataclass
class Page:
    items: list[Interaction]
    next_cursor: str | None


async def list_interactions(
    session: AsyncSession,
    *,
    filters: InteractionFilters | None = None,
    limit: int = 50,
    cursor: str | None = None,
    scope: ColumnElement[bool] | None = None,
) -> Page:
    """Newest first, keyset-paginated on (created_at, id). ``scope`` is a visibility predicate."""
    filters = filters or InteractionFilters()
    limit = _clamp(limit)
    stmt = select(Interaction)
    if scope is not None:
        stmt = stmt.where(scope)
    conditions: list[ColumnElement[bool]] = []
    if filters.state is not None:
        conditions.append(Interaction.state == filters.state)
    if filters.channel is not None:
        conditions.append(Interaction.channel == filters.channel)
    if filters.direction is not None:
        conditions.append(Interaction.direction == filters.direction)
    if filters.customer_id is not None:
        ids = await merged_customer_ids(session, filters.customer_id)
        conditions.append(Interaction.customer_id.in_(ids))
    if filters.agent_id is not None:
        conditions.append(Interaction.agent_id == filters.agent_id)
    if filters.queue is not None:
        queue_id = await session.scalar(select(Queue.id).where(Queue.name == filters.queue))
        if queue_id is None:
            raise Invalid(f"Unknown queue {filters.queue!r}", field="queue")
        conditions.append(Interaction.queue_id == queue_id)
    if filters.created_after is not None:
        conditions.append(Interaction.created_at >= filters.created_after)
    if filters.created_before is not None:
        conditions.append(Interaction.created_at < filters.created_before)
    if cursor is not None:
        at, last_id = _decode_cursor(cursor)
        conditions.append(
            or_(Interaction.created_at < at, and_(Interaction.created_at == at, Interaction.id < last_id))
        )
    if conditions:
        stmt = stmt.where(*conditions)
    stmt = stmt.order_by(Interaction.created_at.desc(), Interaction.id.desc()).limit(limit + 1)
    rows = list(await session.scalars(stmt))
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


@dataclass
class TimelineSlice:
    items: list[TimelineEvent]
    next_before_id: int | None


async def customer_timeline(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    limit: int = 50,
    before_id: int | None = None,
    exclude_kinds: Sequence[str] = (),
) -> TimelineSlice:
    """The customer's cross-channel history, newest first, over every profile merged into it."""
    if await session.get(Customer, customer_id) is None:
        raise NotFound(f"No customer {customer_id}", field="customer_id")
    ids = await merged_customer_ids(session, customer_id)
    return await _timeline(
        session,
        TimelineEvent.customer_id.in_(ids),
        limit=limit,
        before_id=before_id,
        exclude_kinds=exclude_kinds,
    )


async def interaction_timeline(
    session: AsyncSession,
    *,
    interaction_id: uuid.UUID,
    limit: int = 50,
    before_id: int | None = None,
    exclude_kinds: Sequence[str] = (),
) -> TimelineSlice:
    """One interaction's events, newest first (same paging as the customer timeline)."""
    return await _timeline(
        session,
        TimelineEvent.interaction_id == interaction_id,
        limit=limit,
        before_id=before_id,
        exclude_kinds=exclude_kinds,
    )


async def read_models(session: AsyncSession, interactions: Sequence[Interaction]) -> list[InteractionRead]:
    """InteractionRead with the customer summary and queue name, in two batched queries."""
    customer_ids = {i.customer_id for i in interactions}
    queue_ids = {i.queue_id for i in interactions if i.queue_id is not None}
    # Rows this request already loaded or wrote (e.g. create) are taken from the session's
    # identity map: the create hot path then answers without reading back what it just wrote.
    customers: dict[uuid.UUID, Customer] = _in_session(session, Customer, customer_ids)
    missing = customer_ids - customers.keys()
    if missing:
        rows = await session.scalars(select(Customer).where(Customer.id.in_(missing)))
        customers.update({c.id: c for c in rows})
    queues = {qid: q.name for qid, q in _in_session(session, Queue, queue_ids).items()}
    missing = queue_ids - queues.keys()
    if missing:
        result = await session.execute(select(Queue.id, Queue.name).where(Queue.id.in_(missing)))
        queues.update({qid: name for qid, name in result})
    out = []
    for interaction in interactions:
        read = InteractionRead.model_validate(interaction)
        customer = customers.get(interaction.customer_id)
        read.customer = InteractionCustomer.model_validate(customer) if customer else None
        read.queue = queues.get(interaction.queue_id) if interaction.queue_id else None
        out.append(read)
    return out


# --------------------------------------------------------------------------------------------
# Helpers


def _keep(session: AsyncSession, *rows: Any) -> None:
    """Hold rows for the session's lifetime (one request): its identity map only holds clean rows
    weakly, so without this they may be collected before read_models looks for them."""
    session.info.setdefault("read_back", []).extend(rows)


def _in_session(session: AsyncSession, model: Any, ids: set[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """The rows of ``model`` with these ids that the session already holds (no query)."""
    found = {}
    for row_id in ids:
        row = session.identity_map.get(identity_key(model, row_id))
        if row is not None:
            found[row_id] = row
    return found


def _parse_state(value: State | str) -> State:
    try:
        return State(value)
    except ValueError as exc:
        raise Invalid(f"Unknown state {value!r}", field="to_state") from exc


def _checked_changes(changes: dict[str, Any] | None) -> dict[str, Any]:
    if not changes:
        return {}
    for key in changes:
        if key not in TRANSITION_CHANGEABLE:
            raise Invalid(f"{key!r} cannot be changed by a transition", field=f"changes.{key}")
    return dict(changes)


def _event(
    session: AsyncSession,
    interaction: Interaction,
    kind: str,
    actor: Actor,
    data: dict[str, Any],
    at: datetime,
) -> TimelineEvent:
    return append_event(
        session,
        customer_id=interaction.customer_id,
        interaction_id=interaction.id,
        kind=kind,
        channel=interaction.channel.value,
        actor_type=actor.type,
        actor_id=actor.id,
        data=data,
        at=at,
    )


async def _timeline(
    session: AsyncSession,
    where: ColumnElement[bool],
    *,
    limit: int,
    before_id: int | None,
    exclude_kinds: Sequence[str],
) -> TimelineSlice:
    limit = _clamp(limit)
    stmt = select(TimelineEvent).where(where)
    if exclude_kinds:
        stmt = stmt.where(TimelineEvent.kind.not_in(list(exclude_kinds)))
    if before_id is not None:
        stmt = stmt.where(TimelineEvent.id < before_id)
    # Ids grow with insertion, so id order is commit-independent "newest first" and a stable keyset.
    rows = list(await session.scalars(stmt.order_by(TimelineEvent.id.desc()).limit(limit + 1)))
    next_before = rows[limit - 1].id if len(rows) > limit else None
    return TimelineSlice(items=rows[:limit], next_before_id=next_before)


def _clamp(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit must be 1-{MAX_PAGE}", field="limit")
    return limit


def _encode_cursor(last: Interaction) -> str:
    raw = json.dumps([last.created_at.isoformat(), str(last.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at_text, id_text = json.loads(base64.urlsafe_b64decode(padded.encode()))
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None:
            raise ValueError("naive cursor time")
        return at, uuid.UUID(id_text)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise Invalid("Malformed cursor", field="cursor") from exc

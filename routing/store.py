"""The SQL safety net under the routing engine (DESIGN §3).

Every engine decision is written here as a compare-and-set inside one transaction:
* the partition epoch fences stale engines (a lapsed lease holder cannot commit),
* the interaction moves state by CAS on (version, state) through ``interactions.service.transition``,
* the partial unique index allows one live offer per interaction,
* the agent's load is checked in the same transaction.
So even two engines during a hand-over cannot double-assign. Functions take a session and do not
commit; the caller (the engine host) commits or rolls back the whole decision.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer
from customers.timeline import event_row, insert_events
from interactions import service as interactions_service
from interactions.models import ActorType, Interaction
from interactions.service import transition_data
from interactions.states import Channel, State, can_transition
from routing.capacity import DEFAULT_CHANNEL_COST, VOICE
from routing.history import COUNTERS, SUMS, interval_start
from routing.models import Offer, OfferState, RoutingPartition
from routing.offer_checks import OFFER_CHECKS, OfferCheck, OfferFacts, allowed_sql, first_refusal
from switchboard.db import new_id
from switchboard.errors import Conflict, NotFound
from switchboard.fastsql import FastStatement, PgStatement
from workforce.models import Agent, Queue

# States in which an interaction occupies its agent's capacity (released only after wrap-up).
OCCUPYING_STATES = (State.OFFERED, State.CONNECTED, State.WRAP_UP)


# The hot statements are built once: constructing a statement costs more CPU than running it.
_partitions = RoutingPartition.__table__
_FENCE = FastStatement(
    update(_partitions)
    .where(_partitions.c.name == bindparam("partition"), _partitions.c.epoch <= bindparam("epoch"))
    .values(epoch=bindparam("epoch"))
)


class StaleEngine(Conflict):
    """A newer engine holds the partition: this one must stop writing and stand by."""


async def fence(session: AsyncSession, *, partition: str, epoch: int) -> None:
    """Raise StaleEngine unless ``epoch`` is the newest this partition has seen (and record it).

    The UPDATE also takes the partition row lock on PostgreSQL, serialising engine writes.
    """
    if await _FENCE.rowcount(session, {"partition": partition, "epoch": epoch}) == 1:
        return
    if await session.get(RoutingPartition, partition) is None:
        try:
            async with session.begin_nested():
                session.add(RoutingPartition(name=partition, epoch=epoch))
            return
        except IntegrityError:
            pass  # another engine created it first; fall through to the re-check
        return await fence(session, partition=partition, epoch=epoch)
    raise StaleEngine(f"engine epoch {epoch} is stale for partition {partition!r}")


async def declined_agent_ids(session: AsyncSession, interaction_id: uuid.UUID) -> set[uuid.UUID]:
    """Agents who rejected or missed this interaction: it is never offered to them again."""
    rows = await session.scalars(
        select(Offer.agent_id).where(
            Offer.interaction_id == interaction_id, Offer.state.in_((OfferState.REJECTED, OfferState.EXPIRED))
        )
    )
    return set(rows)


@dataclass(frozen=True, slots=True)
class OfferMade:
    """A live offer just written, with what the desktop's offer card shows (no second read)."""

    id: uuid.UUID
    interaction_id: uuid.UUID
    agent_id: uuid.UUID
    expires_at: datetime
    channel: str
    queue_id: uuid.UUID | None
    virtual_start_at: datetime
    topic: str | None
    subject: str | None
    customer_id: uuid.UUID
    customer_name: str
    tier: str
    segments: list[str]

    @classmethod
    def of(
        cls,
        offer_id: uuid.UUID,
        interaction_id: uuid.UUID,
        agent_id: uuid.UUID,
        expires_at: datetime,
        channel: str,
        written: dict[str, Any],
    ) -> OfferMade:
        """From what the offer's write returned (the interaction's and customer's columns)."""
        tier, segments = written["value_tier"], written["segments"]
        return cls(
            id=offer_id,
            interaction_id=interaction_id,
            agent_id=agent_id,
            expires_at=expires_at,
            channel=channel,
            queue_id=written["queue_id"],
            virtual_start_at=written["virtual_start_at"],
            topic=written["topic"],
            subject=written["subject"],
            customer_id=written["customer_id"],
            customer_name=written["display_name"],
            tier=getattr(tier, "value", tier),  # an enum through SQLAlchemy, text straight from asyncpg
            segments=list(json.loads(segments) if isinstance(segments, str) else segments or []),
        )


# The only state an offer can be made from (checked against the state machine at import).
_OFFERABLE = tuple(s for s in State if can_transition(s, State.OFFERED))
assert _OFFERABLE == (State.QUEUED,), _OFFERABLE


def _offer_statements() -> tuple[FastStatement, FastStatement, FastStatement]:
    """create_offer's three statements (bound per call: interaction_id, agent_id, now)."""
    it, ag, of, cu = Interaction.__table__.c, Agent.__table__.c, Offer.__table__.c, Customer.__table__.c
    qu = Queue.__table__.c
    interaction_id, agent_id = bindparam("interaction_id"), bindparam("agent_id")
    held = select(func.count()).where(it.agent_id == agent_id, it.state.in_(OCCUPYING_STATES))
    declined = (
        select(of.id)
        .where(
            of.interaction_id == interaction_id,
            of.agent_id == agent_id,
            of.state.in_((OfferState.REJECTED, OfferState.EXPIRED)),
        )
        .exists()
    )
    checks = select(
        ag.capacity_units,
        ag.channel_max,
        declined.label("declined"),
        select(it.channel).where(it.id == interaction_id).scalar_subquery().label("work_channel"),
        # The offer policy of the queue the work is placed in, and the agent's pending offers.
        select(qu.offer_policy)
        .where(qu.id == select(it.queue_id).where(it.id == interaction_id).scalar_subquery())
        .scalar_subquery()
        .label("offer_policy"),
        held.where(it.state == State.OFFERED).scalar_subquery().label("pending_offers"),
        # What the agent holds now, per channel (the capacity it has left).
        *(held.where(it.channel == channel).scalar_subquery().label(channel.value) for channel in Channel),
    ).where(ag.id == agent_id)
    now = bindparam("now")
    make_offered = (
        update(Interaction.__table__)
        .where(it.id == interaction_id, it.state.in_(_OFFERABLE))
        .values(
            state=State.OFFERED, agent_id=agent_id, version=it.version + 1, offered_at=now, updated_at=now
        )
        .returning(
            it.version,
            it.customer_id,
            it.queue_id,
            it.virtual_start_at,
            it.topic,
            it.subject,
            # Subqueries, not UPDATE ... FROM: SQLite's RETURNING cannot name a FROM table.
            *(
                select(cu[name]).where(cu.id == it.customer_id).scalar_subquery().label(name)
                for name in ("display_name", "value_tier", "segments")
            ),
        )
    )
    return FastStatement(checks), FastStatement(make_offered), FastStatement(insert(Offer.__table__))


_OFFER_CHECKS, _MAKE_OFFERED, _INSERT_OFFER = _offer_statements()


async def create_offer(
    session: AsyncSession,
    *,
    partition: str,
    epoch: int,
    interaction_id: uuid.UUID,
    agent_id: uuid.UUID,
    now: datetime,
    ttl: timedelta,
    costs: dict[str, int] = DEFAULT_CHANNEL_COST,
    fenced: bool = False,
    events: list[dict[str, Any]] | None = None,
) -> OfferMade:
    """Offer the interaction to the agent (fenced, capacity and decliners re-checked in SQL).

    The engine's hottest write, so it is SQLAlchemy Core in three round trips after the fence:
    one read (the agent's capacity, its load per channel, whether it declined this work), the
    compare-and-set UPDATE queued -> offered (joined to the customer so it returns the offer
    card's data) and the offer INSERT, whose partial unique index allows one live offer per
    interaction. ``fenced=True``: the caller already ran ``fence`` in this transaction (its row
    lock is held until commit). ``events``: the caller collects the timeline rows and writes them
    in one INSERT with the rest of its decision (``insert_events``); by default they are written here.
    """
    if not fenced:
        await fence(session, partition=partition, epoch=epoch)
    params = {"interaction_id": interaction_id, "agent_id": agent_id}
    checks = await _OFFER_CHECKS.first(session, params)
    if checks is None:
        raise NotFound("No such agent", field="agent_id")
    if checks.work_channel is None:
        raise NotFound("No such interaction", field="interaction_id")
    channel = Channel(checks.work_channel).value
    facts = OfferFacts.of(
        channel=channel,
        load_by_channel={c.value: getattr(checks, c.value) for c in Channel},
        pending=checks.pending_offers,
        capacity_units=checks.capacity_units,
        channel_max=checks.channel_max,
        offer_policy=checks.offer_policy,
        declined=bool(checks.declined),
        costs=costs,
    )
    refused = first_refusal(facts, OFFER_CHECKS)
    if refused is not None:
        raise Conflict(refused.refusal, field="agent_id")

    offered = await _MAKE_OFFERED.first(session, {**params, "now": now})
    if offered is None:
        state = await session.scalar(select(Interaction.state).where(Interaction.id == interaction_id))
        raise Conflict(
            f"Illegal transition from {State(state).value} to offered",
            field="to_state",
            from_state=State(state).value,
            to_state=State.OFFERED.value,
        )
    offer_id, expires_at = new_id(), now + ttl
    try:
        await _INSERT_OFFER.rowcount(
            session,
            {
                "id": offer_id,
                "interaction_id": interaction_id,
                "agent_id": agent_id,
                "state": OfferState.LIVE,
                "created_at": now,
                "expires_at": expires_at,
                "engine_epoch": epoch,
            },
        )
    except IntegrityError as exc:
        # No SAVEPOINT: a Conflict always rolls the caller's whole decision back.
        raise Conflict("The interaction already has a live offer", field="interaction_id") from exc
    common = {
        "customer_id": offered.customer_id,
        "interaction_id": interaction_id,
        "channel": channel,
        "actor_type": ActorType.SYSTEM,
        "actor_id": "routing",
        "at": now,
    }
    rows = [
        event_row(
            kind="state_changed",
            data=transition_data(
                _OFFERABLE[0], State.OFFERED, "offered", offered.version, {"agent_id": agent_id}, agent_id
            ),
            **common,
        ),
        event_row(
            kind="offer_created",
            data={"offer_id": str(offer_id), "agent_id": str(agent_id), "expires_at": expires_at.isoformat()},
            **common,
        ),
    ]
    if events is None:
        await insert_events(session, rows)
    else:
        events.extend(rows)
    return OfferMade.of(offer_id, interaction_id, agent_id, expires_at, channel, offered._asdict())


def _offer_in_one_statement_sql(
    costs: dict[str, int], checks: tuple[OfferCheck, ...] = OFFER_CHECKS
) -> PgStatement:
    """``create_offer`` (with the fence, the placement the engine chose and the interval counter)
    as ONE PostgreSQL statement: it runs in autocommit, so the whole write is one round trip
    instead of ten (BEGIN, fence, place, checks, offer, events, counters, COMMIT...). Same checks,
    same rows, same events as the portable path; each CTE below names the step it replaces."""
    unit_cost = " ".join(f"WHEN '{channel}' THEN {int(cost)}" for channel, cost in sorted(costs.items()))
    occupying = ", ".join(f"'{state.value}'" for state in OCCUPYING_STATES)
    allowed = allowed_sql(
        channel=":channel",
        channel_cost=":channel_cost",
        offer_policy="policy.offer_policy",
        interaction_id=":interaction_id",
        agent_id=":agent_id",
        checks=checks,
    )
    counters = ", ".join((*COUNTERS, *SUMS))
    counter_values = ", ".join("1" if name == "offered" else "0" for name in (*COUNTERS, *SUMS))
    return PgStatement(
        f"""
        WITH fence AS (  -- fence(): a stale engine writes nothing
            UPDATE routing_partitions SET epoch = :epoch
            WHERE name = :partition AND epoch <= :epoch
            RETURNING epoch
        ), held AS (  -- what the agent holds now
            SELECT count(*) AS total, count(*) FILTER (WHERE channel = '{VOICE}') AS voice,
                   count(*) FILTER (WHERE channel = :channel) AS same_channel,
                   count(*) FILTER (WHERE state = '{State.OFFERED.value}') AS pending,
                   coalesce(sum(CASE channel {unit_cost} ELSE 0 END), 0) AS units
            FROM interactions
            WHERE agent_id = :agent_id AND state IN ({occupying})
        ), policy AS (  -- the offer policy of the queue the work is placed in
            SELECT (SELECT offer_policy FROM queues
                    WHERE queues.id = coalesce(:queue_id::uuid, interactions.queue_id)) AS offer_policy
            FROM interactions WHERE interactions.id = :interaction_id
        ), allowed AS (  -- routing.offer_checks: every check the portable path makes
            SELECT 1 AS ok FROM fence, held, agents, policy
            WHERE agents.id = :agent_id
              AND {allowed}
        ), placed AS (  -- where the engine placed it, and the compare-and-set queued -> offered
            UPDATE interactions
            SET state = '{State.OFFERED.value}', agent_id = :agent_id, version = version + 1,
                offered_at = :now, updated_at = :now,
                queue_id = coalesce(:queue_id::uuid, queue_id),
                priority = coalesce(:priority::int, priority),
                rule_set_version = coalesce(:rule_set_version::int, rule_set_version)
            WHERE id = :interaction_id AND state = '{State.QUEUED.value}' AND channel = :channel
              AND EXISTS (SELECT 1 FROM allowed)
            RETURNING customer_id, version, queue_id, virtual_start_at, topic, subject
        ), offer AS (  -- the partial unique index: one live offer per interaction
            INSERT INTO offers (id, interaction_id, agent_id, state, created_at, expires_at, engine_epoch)
            SELECT :offer_id, :interaction_id, :agent_id, '{OfferState.LIVE.value}', :now, :expires_at, :epoch
            FROM placed
            RETURNING id
        ), events AS (  -- the timeline: routed (when it was just placed), state_changed, offer_created
            INSERT INTO timeline_events
                (customer_id, interaction_id, at, kind, channel, actor_type, actor_id, data)
            SELECT placed.customer_id, :interaction_id, :now, e.kind, :channel,
                   '{ActorType.SYSTEM.value}', 'routing', e.data
            FROM placed CROSS JOIN LATERAL (VALUES
                (0, 'routed', :routed_data::jsonb),
                (1, 'state_changed', jsonb_build_object(
                    'from', 'queued', 'to', 'offered', 'reason', 'offered', 'version', placed.version,
                    'changes', jsonb_build_object('agent_id', :agent_text::text),
                    'agent_id', :agent_text::text)),
                (2, 'offer_created', :offer_data::jsonb)
            ) AS e(n, kind, data)
            WHERE e.data IS NOT NULL
            ORDER BY e.n
            RETURNING id
        ), counted AS (  -- history.bump(offered=1)
            INSERT INTO queue_intervals (queue_name, interval_start, {counters})
            SELECT :queue_name::text, :interval_start, {counter_values}
            FROM placed WHERE :queue_name::text IS NOT NULL
            ON CONFLICT (queue_name, interval_start) DO UPDATE SET offered = queue_intervals.offered + 1
        )
        SELECT (SELECT count(*) FROM fence) AS fenced, (SELECT count(*) FROM allowed) AS allowed,
               (SELECT count(*) FROM offer) AS offers,
               placed.customer_id, placed.version, placed.queue_id, placed.virtual_start_at,
               placed.topic, placed.subject,
               customers.display_name, customers.value_tier, customers.segments,
               (SELECT array_agg(id ORDER BY id) FROM events) AS event_ids
        FROM (SELECT 1) AS one
        LEFT JOIN placed ON true
        LEFT JOIN customers ON customers.id = placed.customer_id
        """
    )


_OFFER_IN_ONE_STATEMENT = _offer_in_one_statement_sql(DEFAULT_CHANNEL_COST)


async def offer_in_one_statement(
    driver: Any,
    *,
    partition: str,
    epoch: int,
    interaction_id: uuid.UUID,
    channel: str,
    agent_id: uuid.UUID,
    now: datetime,
    ttl: timedelta,
    placement: dict[str, Any] | None = None,
    routed_data: dict[str, Any] | None = None,
    queue_name: str | None = None,
) -> tuple[OfferMade, list[int]]:
    """``fence`` + the placement + ``create_offer`` + ``history.bump(offered=1)`` in one statement
    (PostgreSQL; ``driver``: a held asyncpg connection, autocommit). ``placement``: queue_id,
    priority, rule_set_version the engine chose (None keeps a column); ``routed_data``: the
    "routed" event's data when the engine placed it in this decision. Returns the offer and the
    timeline event ids (for the live announcement, which the caller publishes)."""
    offer_id, expires_at = new_id(), now + ttl
    placement = placement or {}
    try:
        row = await _OFFER_IN_ONE_STATEMENT.fetchrow_on(
            driver,
            {
                "partition": partition,
                "epoch": epoch,
                "interaction_id": interaction_id,
                "channel": channel,
                "channel_cost": DEFAULT_CHANNEL_COST.get(channel, 0),
                "agent_id": agent_id,
                "agent_text": str(agent_id),
                "now": now,
                "expires_at": expires_at,
                "offer_id": offer_id,
                "queue_id": placement.get("queue_id"),
                "priority": placement.get("priority"),
                "rule_set_version": placement.get("rule_set_version"),
                "routed_data": json.dumps(routed_data) if routed_data is not None else None,
                "offer_data": json.dumps(
                    {
                        "offer_id": str(offer_id),
                        "agent_id": str(agent_id),
                        "expires_at": expires_at.isoformat(),
                    }
                ),
                "queue_name": queue_name,
                "interval_start": interval_start(now),
            },
        )
    except IntegrityError as exc:  # as create_offer: the partial unique index refused a second live offer
        raise Conflict("The interaction already has a live offer", field="interaction_id") from exc
    if not row["fenced"]:
        raise StaleEngine(f"engine epoch {epoch} is stale for partition {partition!r}")
    if not row["allowed"]:
        raise Conflict("The agent has no capacity for this channel, or declined it", field="agent_id")
    if row["customer_id"] is None or not row["offers"]:
        raise Conflict("The interaction is no longer waiting", field="interaction_id")
    offer = OfferMade.of(offer_id, interaction_id, agent_id, expires_at, channel, dict(row))
    return offer, list(row["event_ids"] or [])


def _offers_set_based_sql(
    costs: dict[str, int], checks: tuple[OfferCheck, ...] = OFFER_CHECKS
) -> PgStatement:
    """``offer_in_one_statement`` for many offers at once (a take-over makes one per free agent):
    the same checks, rows and events, set-based over arrays, in the caller's transaction. An agent
    appears at most once per call: its load is read once, before any of the call's offers."""
    unit_cost = " ".join(f"WHEN '{channel}' THEN {int(cost)}" for channel, cost in sorted(costs.items()))
    occupying = ", ".join(f"'{state.value}'" for state in OCCUPYING_STATES)
    allowed = allowed_sql(
        channel="work.channel",
        channel_cost="work.channel_cost",
        offer_policy="work.offer_policy",
        interaction_id="work.interaction_id",
        agent_id="work.agent_id",
        checks=checks,
    )
    counters = ", ".join((*COUNTERS, *SUMS))
    counter_values = ", ".join("count(*)" if name == "offered" else "0" for name in (*COUNTERS, *SUMS))
    return PgStatement(
        f"""
        WITH input AS (
            SELECT * FROM unnest(
                :offer_ids::uuid[], :interaction_ids::uuid[], :agent_ids::uuid[], :expires::timestamptz[],
                :queue_ids::uuid[], :priorities::int[], :versions::int[], :routed::text[],
                :offer_data::text[], :queue_names::text[]
            ) WITH ORDINALITY AS t(
                offer_id, interaction_id, agent_id, expires_at, queue_id, priority, rule_set_version,
                routed_data, offer_data, queue_name, n)
        ), work AS (  -- each offer's channel and its cost, and its queue's offer policy
            SELECT input.*, w.channel, CASE w.channel {unit_cost} ELSE 0 END AS channel_cost,
                   (SELECT offer_policy FROM queues
                    WHERE queues.id = coalesce(input.queue_id, w.queue_id)) AS offer_policy
            FROM input JOIN interactions w ON w.id = input.interaction_id
        ), fence AS (
            UPDATE routing_partitions SET epoch = :epoch
            WHERE name = :partition AND epoch <= :epoch
            RETURNING epoch
        ), held AS (
            SELECT work.n, count(it.id) AS total,
                   count(it.id) FILTER (WHERE it.channel = '{VOICE}') AS voice,
                   count(it.id) FILTER (WHERE it.channel = work.channel) AS same_channel,
                   count(it.id) FILTER (WHERE it.state = '{State.OFFERED.value}') AS pending,
                   coalesce(sum(CASE it.channel {unit_cost} ELSE 0 END), 0) AS units
            FROM work LEFT JOIN interactions it ON it.agent_id = work.agent_id AND it.state IN ({occupying})
            GROUP BY work.n
        ), allowed AS (
            SELECT work.* FROM work JOIN held ON held.n = work.n
            JOIN agents ON agents.id = work.agent_id CROSS JOIN fence
            WHERE {allowed}  -- routing.offer_checks
        ), placed AS (
            UPDATE interactions
            SET state = '{State.OFFERED.value}', agent_id = allowed.agent_id,
                version = interactions.version + 1, offered_at = :now, updated_at = :now,
                queue_id = coalesce(allowed.queue_id, interactions.queue_id),
                priority = coalesce(allowed.priority, interactions.priority),
                rule_set_version = coalesce(allowed.rule_set_version, interactions.rule_set_version)
            FROM allowed
            WHERE interactions.id = allowed.interaction_id AND interactions.state = '{State.QUEUED.value}'
              AND interactions.channel = allowed.channel
            RETURNING interactions.id, interactions.customer_id, interactions.version, interactions.queue_id,
                      interactions.virtual_start_at, interactions.topic, interactions.subject,
                      allowed.n, allowed.offer_id, allowed.agent_id, allowed.expires_at, allowed.channel,
                      allowed.routed_data, allowed.offer_data, allowed.queue_name
        ), offer AS (
            INSERT INTO offers (id, interaction_id, agent_id, state, created_at, expires_at, engine_epoch)
            SELECT offer_id, id, agent_id, '{OfferState.LIVE.value}', :now, expires_at, :epoch FROM placed
            RETURNING id
        ), events AS (
            INSERT INTO timeline_events
                (customer_id, interaction_id, at, kind, channel, actor_type, actor_id, data)
            SELECT placed.customer_id, placed.id, :now, e.kind, placed.channel,
                   '{ActorType.SYSTEM.value}', 'routing', e.data
            FROM placed CROSS JOIN LATERAL (VALUES
                (0, 'routed', placed.routed_data::jsonb),
                (1, 'state_changed', jsonb_build_object(
                    'from', 'queued', 'to', 'offered', 'reason', 'offered', 'version', placed.version,
                    'changes', jsonb_build_object('agent_id', placed.agent_id::text),
                    'agent_id', placed.agent_id::text)),
                (2, 'offer_created', placed.offer_data::jsonb)
            ) AS e(k, kind, data)
            WHERE e.data IS NOT NULL
            ORDER BY placed.n, e.k
            RETURNING id, interaction_id, kind
        ), counted AS (
            INSERT INTO queue_intervals (queue_name, interval_start, {counters})
            SELECT queue_name, :interval_start, {counter_values}
            FROM placed WHERE queue_name IS NOT NULL GROUP BY queue_name
            ON CONFLICT (queue_name, interval_start)
            DO UPDATE SET offered = queue_intervals.offered + excluded.offered
        )
        SELECT (SELECT count(*) FROM fence) AS fenced, (SELECT count(*) FROM offer) AS offers,
               placed.n, placed.channel, placed.customer_id, placed.version, placed.queue_id,
               placed.virtual_start_at, placed.topic, placed.subject,
               customers.display_name, customers.value_tier, customers.segments,
               (SELECT array_agg(events.id ORDER BY events.id) FROM events
                WHERE events.interaction_id = placed.id) AS event_ids,
               (SELECT array_agg(events.kind ORDER BY events.id) FROM events
                WHERE events.interaction_id = placed.id) AS event_kinds
        FROM (SELECT 1) AS one
        LEFT JOIN placed ON true
        LEFT JOIN customers ON customers.id = placed.customer_id
        """
    )


_OFFERS_SET_BASED = _offers_set_based_sql(DEFAULT_CHANNEL_COST)


@dataclass(frozen=True, slots=True)
class OfferWanted:
    """One offer for ``offers_set_based``: what the engine decided, and where it placed the work."""

    interaction_id: uuid.UUID
    agent_id: uuid.UUID
    expires_at: datetime
    placement: dict[str, Any] | None = None  # queue_id, priority, rule_set_version (None keeps)
    routed_data: dict[str, Any] | None = None  # the "routed" event when placed in this decision
    queue_name: str | None = None  # the interval counter's queue (None: not counted)


async def offers_set_based(
    session: AsyncSession, *, partition: str, epoch: int, now: datetime, wanted: list[OfferWanted]
) -> list[tuple[OfferMade, list[int], list[str]] | None]:
    """Write ``wanted`` in ONE statement inside the session's transaction (PostgreSQL through
    asyncpg): per offer, as ``offer_in_one_statement`` checks and writes it, the offer made with
    its timeline event ids and kinds, or None where SQL refused it (capacity, decliner, no longer
    queued). At most one offer per agent. Raises StaleEngine when fenced out, Conflict when an
    interaction already has a live offer (the unique index fails the whole statement)."""
    assert len({w.agent_id for w in wanted}) == len(wanted), "one offer per agent per statement"
    offer_ids = [new_id() for _ in wanted]
    placements = [w.placement or {} for w in wanted]
    params = {
        "partition": partition,
        "epoch": epoch,
        "now": now,
        "interval_start": interval_start(now),
        "offer_ids": offer_ids,
        "interaction_ids": [w.interaction_id for w in wanted],
        "agent_ids": [w.agent_id for w in wanted],
        "expires": [w.expires_at for w in wanted],
        "queue_ids": [p.get("queue_id") for p in placements],
        "priorities": [p.get("priority") for p in placements],
        "versions": [p.get("rule_set_version") for p in placements],
        "routed": [json.dumps(w.routed_data) if w.routed_data is not None else None for w in wanted],
        "offer_data": [
            json.dumps(
                {"offer_id": str(o), "agent_id": str(w.agent_id), "expires_at": w.expires_at.isoformat()}
            )
            for o, w in zip(offer_ids, wanted, strict=True)
        ],
        "queue_names": [w.queue_name for w in wanted],
    }
    try:
        rows = await _OFFERS_SET_BASED.fetch_in(session, params)
    except IntegrityError as exc:
        raise Conflict("An interaction already has a live offer", field="interaction_id") from exc
    if not rows[0]["fenced"]:
        raise StaleEngine(f"engine epoch {epoch} is stale for partition {partition!r}")
    made: list[tuple[OfferMade, list[int], list[str]] | None] = [None] * len(wanted)
    for row in rows:
        if row["n"] is None:
            continue  # nothing placed
        n = row["n"] - 1
        w = wanted[n]
        offer = OfferMade.of(
            offer_ids[n], w.interaction_id, w.agent_id, w.expires_at, row["channel"], dict(row)
        )
        made[n] = (offer, list(row["event_ids"] or []), list(row["event_kinds"] or []))
    return made


async def _live_offer(session: AsyncSession, offer_id: uuid.UUID) -> Offer:
    offer = await session.get(Offer, offer_id, populate_existing=True, with_for_update=True)
    if offer is None:
        raise NotFound("No such offer", field="offer_id")
    if offer.state is not OfferState.LIVE:
        raise Conflict(
            f"The offer is already {offer.state.value}", field="offer_id", offer_state=offer.state.value
        )
    return offer


async def accept_offer(
    session: AsyncSession,
    *,
    partition: str,
    epoch: int,
    offer_id: uuid.UUID,
    agent_id: uuid.UUID,
    now: datetime,
    received_at: datetime | None = None,
) -> Offer:
    """Offer live, the agent's own and answered in time → accepted, interaction offered → connected.

    "In time" is judged by when the API received the accept (``received_at``; ``now`` when not
    known), as the engine judges it: an accept clicked before the expiry but processed after it
    is honoured, as long as the offer is still live (fencing and the live-state check stand)."""
    await fence(session, partition=partition, epoch=epoch)
    offer = await _live_offer(session, offer_id)
    if offer.agent_id != agent_id:
        raise Conflict("This offer belongs to another agent", field="offer_id")
    if (received_at or now) > offer.expires_at:
        raise Conflict("The offer has expired", field="offer_id", offer_state="expired")
    offer.state, offer.decided_at, offer.reason = OfferState.ACCEPTED, now, "accepted"
    await session.flush()
    await interactions_service.transition(
        session,
        interaction_id=offer.interaction_id,
        to_state=State.CONNECTED,
        actor_type=ActorType.AGENT,
        actor_id=str(agent_id),
        reason="offer accepted",
        now=now,
    )
    return offer


# ---------------------------------------------------------------------- lean compare-and-set moves
#
# The engine's commonest writes after offers (accept, wrap-up, complete) as ONE Core statement
# each instead of the ORM's read-check-write-flush (five round trips): the compare-and-set is the
# WHERE clause, RETURNING gives what the timeline row and the counters need, and the timeline row
# is collected for the caller's one INSERT. ``None`` means the move did not apply: the caller
# takes the portable path, which re-reads SQL and raises the precise Conflict (or finds the move
# already made).


def _held_columns(it: Any) -> tuple[Any, ...]:
    """What a move of held work (accept, wrap-up, complete) returns: one row shape for all three."""
    return (
        it.id,
        it.version,
        it.customer_id,
        it.channel,
        it.agent_id,
        it.queue_id,
        it.connected_at,
        it.virtual_start_at,
    )


def _held_move(from_state: State, to_state: State) -> FastStatement:
    it = Interaction.__table__.c
    now: Any = bindparam("now")
    return FastStatement(
        update(cast(Table, Interaction.__table__))
        .where(it.id == bindparam("interaction_id"), it.state == from_state)
        .values(
            state=to_state,
            version=it.version + 1,
            updated_at=now,
            **{interactions_service.STATE_TIMESTAMP[to_state]: now},
        )
        .returning(*_held_columns(it))
    )


_MOVES = {
    (State.CONNECTED, State.WRAP_UP): _held_move(State.CONNECTED, State.WRAP_UP),
    (State.WRAP_UP, State.COMPLETED): _held_move(State.WRAP_UP, State.COMPLETED),
}


def _accepted_statements() -> tuple[FastStatement, FastStatement]:
    of, it = Offer.__table__.c, Interaction.__table__.c
    now: Any = bindparam("now")
    accept = (
        update(cast(Table, Offer.__table__))
        .where(
            of.id == bindparam("offer_id"),
            of.state == OfferState.LIVE,
            of.agent_id == bindparam("holder"),  # not a column's name: SQLite's path would SET it
            of.expires_at >= bindparam("answered_at"),
        )
        .values(state=OfferState.ACCEPTED, decided_at=now, reason="accepted")
        .returning(of.interaction_id)
    )
    connect = (
        update(cast(Table, Interaction.__table__))
        .where(
            it.id == bindparam("interaction_id"),
            it.state == State.OFFERED,
            it.agent_id == bindparam("holder"),
        )
        .values(state=State.CONNECTED, version=it.version + 1, updated_at=now, connected_at=now)
        .returning(*_held_columns(it))
    )
    return FastStatement(accept), FastStatement(connect)


_ACCEPT_LIVE, _CONNECT_OFFERED = _accepted_statements()


def _moved_row(
    moved: Any, from_state: State, to_state: State, reason: str, actor: tuple[ActorType, str], now: datetime
) -> dict[str, Any]:
    """The ``state_changed`` timeline row ``interactions.service.transition`` would append."""
    return event_row(
        customer_id=moved.customer_id,
        interaction_id=moved.id,
        kind="state_changed",
        channel=Channel(moved.channel).value,
        actor_type=actor[0],
        actor_id=actor[1],
        data=transition_data(from_state, to_state, reason, moved.version, {}, moved.agent_id),
        at=now,
    )


async def move_held(
    session: AsyncSession,
    *,
    interaction_id: uuid.UUID,
    from_state: State,
    to_state: State,
    reason: str,
    now: datetime,
    events: list[dict[str, Any]],
) -> Any | None:
    """connected -> wrap_up or wrap_up -> completed in one statement (the caller fenced); the
    moved row (version, customer_id, channel, agent_id, queue_id, connected_at, virtual_start_at),
    or None if the interaction was not in ``from_state``. Its timeline row goes into ``events``."""
    params = {"interaction_id": interaction_id, "now": now}
    moved = await _MOVES[(from_state, to_state)].first(session, params)
    if moved is not None:
        events.append(_moved_row(moved, from_state, to_state, reason, (ActorType.SYSTEM, "routing"), now))
    return moved


async def accept_live_offer(
    session: AsyncSession,
    *,
    offer_id: uuid.UUID,
    agent_id: uuid.UUID,
    now: datetime,
    received_at: datetime | None,
    events: list[dict[str, Any]],
) -> Any | None:
    """``accept_offer`` in two statements (the caller fenced): the offer live, the agent's own and
    answered in time -> accepted; its interaction offered to that agent -> connected. Returns the
    connected interaction's row (as ``move_held``), or None when the offer did not qualify (nothing
    written: ``accept_offer`` says why). Raises Conflict if the interaction was not offered."""
    params = {"offer_id": offer_id, "holder": agent_id, "now": now, "answered_at": received_at or now}
    accepted = await _ACCEPT_LIVE.first(session, params)
    if accepted is None:
        return None
    moved = await _CONNECT_OFFERED.first(
        session, {"interaction_id": accepted.interaction_id, "holder": agent_id, "now": now}
    )
    if moved is None:
        raise Conflict("The offered interaction moved on", field="offer_id")
    actor = (ActorType.AGENT, str(agent_id))
    events.append(_moved_row(moved, State.OFFERED, State.CONNECTED, "offer accepted", actor, now))
    return moved


async def close_offer(
    session: AsyncSession,
    *,
    partition: str,
    epoch: int,
    offer_id: uuid.UUID,
    outcome: OfferState,
    now: datetime,
    reason: str,
    requeue: bool = True,
) -> Offer:
    """Reject, expire (missed) or rescind a live offer; the interaction returns to its queue.

    The interaction keeps its virtual start time, so it keeps its place in line. With
    ``requeue=False`` (the customer hung up) the caller moves the interaction on itself.
    """
    if outcome not in (OfferState.REJECTED, OfferState.EXPIRED, OfferState.RESCINDED):
        raise ValueError(f"not a closing outcome: {outcome}")
    await fence(session, partition=partition, epoch=epoch)
    offer = await _live_offer(session, offer_id)
    offer.state, offer.decided_at, offer.reason = outcome, now, reason
    await session.flush()
    if requeue:
        await interactions_service.transition(
            session,
            interaction_id=offer.interaction_id,
            to_state=State.QUEUED,
            actor_type=ActorType.SYSTEM,
            actor_id="routing",
            reason=f"offer {outcome.value}: {reason}",
            changes={"agent_id": None},
            now=now,
        )
    return offer

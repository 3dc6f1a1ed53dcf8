"""The offer writers for PostgreSQL: ``create_offer`` as ONE statement (one round trip).

``offer_in_one_statement`` (autocommit, one offer) and ``offers_set_based`` (a take-over: many
offers in the caller's transaction) do what ``routing.store.offers.create_offer`` does, plus the
fence, the placement the engine chose and the interval counter, as CTEs of one SQL statement.
The same list of checks (``routing.offer_checks``) runs in every writer; the tests in
tests/routing/test_offer_one_statement.py hold them to the same rows and events.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from interactions.models import ActorType
from interactions.states import State
from routing.capacity import DEFAULT_CHANNEL_COST, VOICE
from routing.history import COUNTERS, SUMS, interval_start
from routing.models import OfferState
from routing.offer_checks import OFFER_CHECKS, OfferCheck, allowed_sql
from routing.store.fence import StaleEngine
from routing.store.offers import OCCUPYING_STATES, OfferMade
from switchboard.db import new_id
from switchboard.errors import Conflict
from switchboard.fastsql import PgStatement


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
            RETURNING customer_id, version, queue_id, virtual_start_at, topic, subject,
                      (attributes -> 'transfer') IS NOT NULL AS transferred  -- the toast says so
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
               placed.topic, placed.subject, placed.transferred,
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
                      (interactions.attributes -> 'transfer') IS NOT NULL AS transferred,
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
        ), made AS (  -- each offer made, then every event as a row of its own (joining them to
            -- their offers was quadratic: the planner takes a CTE for one row, so a nested loop)
            SELECT placed.n, placed.channel, placed.customer_id, placed.version, placed.queue_id,
                   placed.virtual_start_at, placed.topic, placed.subject, placed.transferred,
                   customers.display_name, customers.value_tier, customers.segments,
                   NULL::bigint AS event_id, NULL::uuid AS event_of, NULL::text AS event_kind
            FROM placed LEFT JOIN customers ON customers.id = placed.customer_id
            UNION ALL
            SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                   events.id, events.interaction_id, events.kind
            FROM events
        )
        SELECT (SELECT count(*) FROM fence) AS fenced, (SELECT count(*) FROM offer) AS offers, made.*
        FROM (SELECT 1) AS one
        LEFT JOIN made ON true
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
    logged: dict[uuid.UUID, list[tuple[int, str]]] = {}
    for row in rows:
        if row["event_id"] is not None:
            logged.setdefault(row["event_of"], []).append((row["event_id"], row["event_kind"]))
    made: list[tuple[OfferMade, list[int], list[str]] | None] = [None] * len(wanted)
    for row in rows:
        if row["n"] is None:
            continue  # nothing placed, or an event's row
        n = row["n"] - 1
        w = wanted[n]
        offer = OfferMade.of(
            offer_ids[n], w.interaction_id, w.agent_id, w.expires_at, row["channel"], dict(row)
        )
        events = sorted(logged.get(w.interaction_id, []))
        made[n] = (offer, [i for i, _ in events], [kind for _, kind in events])
    return made

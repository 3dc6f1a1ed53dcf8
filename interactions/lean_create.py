"""The API's create path: ``POST /api/interactions`` without ORM objects.

On PostgreSQL the whole create is ONE SQL statement in autocommit (a single statement is atomic on
its own, so no BEGIN / COMMIT round trips): data-modifying CTEs check the queue, the linked
interactions and the agent, resolve the customer through its identity or insert customer +
identity, insert the interaction (already queued when it is to be queued, as
``service.create_interaction`` does) and its timeline events, and return what the response needs.
If any check fails nothing is written; a unique-key race on a new identity (or an identity whose
customer was merged) makes the statement fail as a whole, and that request then takes the ORM path
(``service.create_interaction``), which handles both. Same rows, same events, same response body
as the ORM path (tests/interactions/test_lean_create.py compares them).

After it: the routing engine's enqueue command and the live timeline announcement go to Redis in
one pipelined round trip. SQLite and agents' outbound contacts take the ORM path.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from customers.identity import normalise_identity
from customers.models import IdentityKind
from customers.service import _placeholder_name
from customers.timeline import live_payloads
from interactions import idempotency
from interactions.models import ActorType
from interactions.schemas import InteractionCreate, InteractionRead
from interactions.service import AGENT_KEY, transition_data
from interactions.states import Direction, State
from switchboard import commands as routing_commands
from switchboard.db import new_id, utcnow
from switchboard.errors import Invalid
from switchboard.events import PREFIX, customer_topic
from switchboard.fastsql import FastStatement, PgStatement, held_connection
from workforce.deps import NoAgentProfile
from workforce.models import Agent

log = logging.getLogger(__name__)


# The checks run in the statement, reported in the order service.create_interaction checks them.
_CHECKS = (
    ("queue_ok", "queue"),
    ("parent_ok", "parent_id"),
    ("callback_ok", "callback_of_id"),
    ("follow_up_ok", "follow_up_of_id"),
    ("agent_ok", "agent_id"),
)

_CREATE_SQL = """
WITH
q AS (SELECT id FROM queues WHERE name = CAST(:queue AS varchar)),
chk AS (
  SELECT
    (CAST(:queue AS varchar) IS NULL OR EXISTS (SELECT 1 FROM q)) AS queue_ok,
    (CAST(:parent_id AS uuid) IS NULL
      OR EXISTS (SELECT 1 FROM interactions WHERE id = CAST(:parent_id AS uuid))) AS parent_ok,
    (CAST(:callback_of_id AS uuid) IS NULL
      OR EXISTS (SELECT 1 FROM interactions WHERE id = CAST(:callback_of_id AS uuid))) AS callback_ok,
    (CAST(:follow_up_of_id AS uuid) IS NULL
      OR EXISTS (SELECT 1 FROM interactions WHERE id = CAST(:follow_up_of_id AS uuid))) AS follow_up_ok,
    (CAST(:agent_id AS uuid) IS NULL
      OR EXISTS (SELECT 1 FROM agents WHERE id = CAST(:agent_id AS uuid))) AS agent_ok
),
ok AS (
  SELECT 1 AS one FROM chk WHERE queue_ok AND parent_ok AND callback_ok AND follow_up_ok AND agent_ok
),
found AS (
  SELECT c.id, c.display_name, c.language, c.value_tier, c.segments
  FROM identities i JOIN customers c ON c.id = i.customer_id
  WHERE i.kind = CAST(:kind AS varchar) AND i.value = CAST(:value AS varchar)
    AND c.merged_into_id IS NULL
),
new_customer AS (
  INSERT INTO customers (
    id, display_name, language, timezone, segments, relationship_balance, products_held,
    annual_profit, cost_to_serve, value_tier, tier_breakdown, do_not_contact, marketing_consent,
    created_at, updated_at)
  SELECT CAST(:new_customer_id AS uuid), CAST(:new_display_name AS varchar),
    CAST(:new_language AS varchar), 'Europe/London', CAST('[]' AS jsonb), 0, 0, 0, 0, 'standard',
    CAST('{}' AS jsonb), false, false, CAST(:now AS timestamptz), CAST(:now AS timestamptz)
  FROM ok WHERE NOT EXISTS (SELECT 1 FROM found)
  RETURNING id, display_name, language, value_tier, segments
),
new_identity AS (
  INSERT INTO identities (id, customer_id, kind, value, verified, created_at)
  SELECT CAST(:new_identity_id AS uuid), id, CAST(:kind AS varchar), CAST(:value AS varchar), false,
    CAST(:now AS timestamptz)
  FROM new_customer
  RETURNING id
),
customer AS (SELECT * FROM found UNION ALL SELECT * FROM new_customer),
created AS (
  INSERT INTO interactions (
    id, customer_id, channel, direction, state, version, priority, queue_id, required_skills,
    agent_id, subject, topic, language, contact_identity, attributes, parent_id, callback_of_id,
    follow_up_of_id, created_at, virtual_start_at, queued_at, updated_at)
  SELECT CAST(:interaction_id AS uuid), customer.id, CAST(:channel AS varchar),
    CAST(:direction AS varchar), CAST(:state AS varchar), CAST(:version AS integer),
    CAST(:priority AS integer), (SELECT id FROM q), CAST(:required_skills AS jsonb),
    CAST(:agent_id AS uuid), CAST(:subject AS varchar), CAST(:topic AS varchar),
    COALESCE(CAST(:language AS varchar), customer.language), CAST(:contact_identity AS jsonb),
    CAST(:attributes AS jsonb), CAST(:parent_id AS uuid), CAST(:callback_of_id AS uuid),
    CAST(:follow_up_of_id AS uuid), CAST(:now AS timestamptz), CAST(:now AS timestamptz),
    CAST(:queued_at AS timestamptz), CAST(:now AS timestamptz)
  FROM customer, ok
  RETURNING id, customer_id, queue_id
),
events AS (
  INSERT INTO timeline_events (customer_id, interaction_id, at, kind, channel, actor_type, actor_id, data)
  SELECT customer_id, interaction_id, at, kind, channel, actor_type, actor_id, data FROM (
    SELECT 1 AS n, id AS customer_id, CAST(NULL AS uuid) AS interaction_id,
      CAST(:now AS timestamptz) AS at, 'customer_created' AS kind, CAST(NULL AS varchar) AS channel,
      'system' AS actor_type, CAST(NULL AS varchar) AS actor_id,
      CAST(:customer_created_data AS jsonb) AS data
    FROM new_customer
    UNION ALL
    SELECT 2, customer_id, id, CAST(:now AS timestamptz), 'interaction_created',
      CAST(:channel AS varchar), CAST(:actor_type AS varchar), CAST(:actor_id AS varchar),
      CAST(:created_data AS jsonb)
    FROM created
    UNION ALL
    SELECT 3, customer_id, id, CAST(:now AS timestamptz), 'state_changed', CAST(:channel AS varchar),
      CAST(:actor_type AS varchar), CAST(:actor_id AS varchar), CAST(:queued_data AS jsonb)
    FROM created WHERE CAST(:queued_data AS jsonb) IS NOT NULL
  ) e ORDER BY n
  RETURNING id, kind
),
-- The client's Idempotency-Key, with the interaction (interactions.idempotency): a twin request
-- holding the same key fails this whole statement on the primary key and replays.
key_row AS (
  INSERT INTO idempotency_keys (scope, owner, key, request_hash, interaction_id, created_at, expires_at)
  SELECT CAST(:key_scope AS varchar), CAST(:key_owner AS varchar), CAST(:key_key AS varchar),
    CAST(:key_request_hash AS varchar), id, CAST(:now AS timestamptz), CAST(:key_expires_at AS timestamptz)
  FROM created WHERE CAST(:key_key AS varchar) IS NOT NULL
)
SELECT chk.queue_ok, chk.parent_ok, chk.callback_ok, chk.follow_up_ok, chk.agent_ok,
  customer.id AS customer_id, customer.display_name, customer.language, customer.value_tier,
  customer.segments,
  EXISTS (SELECT 1 FROM new_customer) AS customer_created,
  (SELECT queue_id FROM created) AS queue_id,
  (SELECT array_agg(id ORDER BY id) FROM events) AS event_ids,
  (SELECT array_agg(kind ORDER BY id) FROM events) AS event_kinds
FROM chk LEFT JOIN customer ON true
"""

CREATE_STATEMENT = PgStatement(_CREATE_SQL)
AGENT_OF_USER = FastStatement(select(Agent.id).where(Agent.user_id == bindparam("user_id")))


@functools.lru_cache(maxsize=8192)
def normalised_identity(kind: IdentityKind, raw: str, default_region: str) -> str:
    """``customers.identity.normalise_identity`` (pure), remembered: phone parsing is costly and a
    contact centre sees the same callers again. Invalid input raises (and is not remembered)."""
    return normalise_identity(kind, raw, default_region=default_region, field="identity.value")


@dataclass(frozen=True, slots=True)
class _Event:
    """What ``live_payloads`` reads of an event."""

    id: int
    customer_id: uuid.UUID
    interaction_id: uuid.UUID | None
    kind: str


@dataclass
class Created:
    """A committed create: the response body and what must be announced after it."""

    body: bytes
    interaction_id: uuid.UUID
    customer_id: uuid.UUID
    queued: bool
    events: list[_Event]


class Fallback(Exception):
    """The lean statement could not decide (a race on a new identity, a merged customer): the
    caller takes the ORM path, which handles both."""


_NO_KEY = {f"key_{name}": None for name in ("scope", "owner", "key", "request_hash", "expires_at")}


def _key_params(claim: idempotency.Claim | None, interaction_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    """The key row's values as the statement's ``:key_*`` parameters (the same row ``record``
    inserts on the ORM path); all None without a key, and the CTE then inserts nothing."""
    if claim is None:
        return _NO_KEY
    row = idempotency.row_params(claim, interaction_id, now)
    return {f"key_{name}": row[name] for name in ("scope", "owner", "key", "request_hash", "expires_at")}


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


async def agent_of_user(engine: AsyncEngine, user_id: uuid.UUID) -> uuid.UUID | None:
    async with held_connection(engine) as driver:
        row = await AGENT_OF_USER.first_on(driver, engine.dialect, {"user_id": user_id})
    return None if row is None else uuid.UUID(bytes=row.id.bytes)


async def create(
    engine: AsyncEngine,
    *,
    data: InteractionCreate,
    actor_type: ActorType,
    actor_id: str,
    default_region: str,
    agent_id: uuid.UUID | None = None,
    now: datetime | None = None,
    claim: idempotency.Claim | None = None,
) -> Created:
    """One statement on PostgreSQL; raises Invalid (nothing written) or Fallback (nothing written,
    e.g. ``claim``'s key taken by a twin request meanwhile: the ORM path then replays it)."""
    now = now or utcnow()
    kind = data.identity.kind
    value = normalised_identity(kind, data.identity.value, default_region)
    enqueue = data.enqueue if data.enqueue is not None else data.direction is Direction.INBOUND
    state, version = (State.QUEUED, 2) if enqueue else (State.CREATED, 1)
    interaction_id = new_id()
    contact_identity = {"kind": kind.value, "value": value}
    created_data: dict[str, Any] = {
        "channel": data.channel.value,
        "direction": data.direction.value,
        "identity": contact_identity,
        "queue": data.queue,
        "priority": data.priority,
    }
    if agent_id is not None:
        created_data[AGENT_KEY] = str(agent_id)
    # The created -> queued event, as create_interaction and transition() write it.
    queued_data = transition_data(State.CREATED, State.QUEUED, None, 2, {}, agent_id) if enqueue else None
    params = {
        "queue": data.queue,
        "parent_id": data.parent_id,
        "callback_of_id": data.callback_of_id,
        "follow_up_of_id": data.follow_up_of_id,
        "agent_id": agent_id,
        "kind": kind.value,
        "value": value,
        "new_customer_id": new_id(),
        "new_display_name": data.customer_name or _placeholder_name(kind, value),
        "new_language": data.language or "en",
        "new_identity_id": new_id(),
        "now": now,
        "interaction_id": interaction_id,
        "channel": data.channel.value,
        "direction": data.direction.value,
        "state": state.value,
        "version": version,
        "priority": data.priority,
        "required_skills": _json(data.required_skills),
        "subject": data.subject,
        "topic": data.topic,
        "language": data.language,
        "contact_identity": _json(contact_identity),
        "attributes": _json(data.attributes),
        "queued_at": now if enqueue else None,
        "customer_created_data": _json({"identity": contact_identity}),
        "actor_type": actor_type.value,
        "actor_id": actor_id,
        "created_data": _json(created_data),
        "queued_data": _json(queued_data) if queued_data is not None else None,
        **_key_params(claim, interaction_id, now),
    }
    try:
        # Autocommit on a held connection: one round trip, atomic as a single statement.
        async with held_connection(engine) as driver:
            row = await CREATE_STATEMENT.fetchrow_on(driver, params)
    except IntegrityError as exc:
        raise Fallback(str(exc.orig)) from exc
    assert row is not None
    for column, field in _CHECKS:
        if not row[column]:
            linked = getattr(data, field) if field != "agent_id" else agent_id
            if field == "queue":
                raise Invalid(f"Unknown queue {data.queue!r}", field="queue")
            raise Invalid(f"No {'agent' if field == 'agent_id' else 'interaction'} {linked}", field=field)
    if row["customer_id"] is None or not row["event_ids"]:  # pragma: no cover - the checks passed
        raise Fallback("the statement wrote nothing")
    customer_id = uuid.UUID(bytes=row["customer_id"].bytes)  # asyncpg's UUID -> the stdlib's
    queue_id = row["queue_id"]
    body = {
        "channel": data.channel,
        "direction": data.direction,
        "priority": data.priority,
        "required_skills": data.required_skills,
        "subject": data.subject,
        "topic": data.topic,
        "language": data.language or row["language"],
        "id": interaction_id,
        "customer_id": customer_id,
        "customer": {
            "id": customer_id,
            "display_name": row["display_name"],
            "language": row["language"],
            "value_tier": row["value_tier"],
            "segments": row["segments"],
        },
        "state": state,
        "version": version,
        "queue_id": None if queue_id is None else uuid.UUID(bytes=queue_id.bytes),
        "queue": data.queue,
        "agent_id": agent_id,
        "rule_set_version": None,
        "disposition": None,
        "contact_identity": contact_identity,
        "attributes": data.attributes,
        "parent_id": data.parent_id,
        "callback_of_id": data.callback_of_id,
        "follow_up_of_id": data.follow_up_of_id,
        "created_at": now,
        "virtual_start_at": now,
        "queued_at": now if enqueue else None,
        "offered_at": None,
        "connected_at": None,
        "wrap_up_at": None,
        "ended_at": None,
        "updated_at": now,
    }
    events = [
        _Event(event_id, customer_id, None if ev_kind == "customer_created" else interaction_id, ev_kind)
        for event_id, ev_kind in zip(row["event_ids"], row["event_kinds"], strict=True)
    ]
    return Created(
        body=InteractionRead.model_validate(body).model_dump_json().encode(),
        interaction_id=interaction_id,
        customer_id=customer_id,
        queued=enqueue,
        events=events,
    )


async def announce(client: aioredis.Redis, created: Created) -> None:
    """After the commit, in ONE round trip: the enqueue command to the routing engine (as
    ``switchboard.commands.notify_enqueued``) and the live timeline message (as the timeline's
    after-commit publish). Best effort like both: the interaction is committed either way, the
    engine's reconcile routes it and a desktop re-reads on its next resync."""
    try:
        async with client.pipeline(transaction=False) as pipe:
            if created.queued:
                _, command = routing_commands.encode(
                    routing_commands.Enqueue(interaction_id=str(created.interaction_id))
                )
                pipe.xadd(
                    routing_commands.stream_key(),
                    {"c": command},
                    maxlen=routing_commands.STREAM_MAXLEN,
                    approximate=True,
                )
            for payload in live_payloads(created.events):  # type: ignore[arg-type]
                pipe.publish(PREFIX + customer_topic(payload["customer_id"]), json.dumps(payload))
            await pipe.execute()
    except (aioredis.RedisError, OSError) as exc:
        log.warning(
            "interaction %s: enqueue / timeline not announced (%s); reconcile will route it",
            created.interaction_id,
            exc,
        )


def agent_required(agent_id: uuid.UUID | None) -> uuid.UUID:
    if agent_id is None:
        raise NoAgentProfile()
    return agent_id

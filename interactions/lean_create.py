"""The API's create path on PostgreSQL: a create plan (``interactions.create_plan``) in ONE statement.

The plan decides; this module only executes it, as ``service.execute_plan`` does through the ORM.
The whole create is ONE SQL statement in autocommit (a single statement is atomic on its own, so
no BEGIN / COMMIT round trips): data-modifying CTEs check the plan's references, resolve the
customer through its identity or insert the plan's customer + identity rows, insert the plan's
interaction row, its timeline events and its Idempotency-Key row, and return what the response
needs. The rows go in as records (``jsonb_populate_record``) of the very dicts the ORM writer
builds its objects from, so no column is listed twice. If a reference is missing nothing is
written; a unique-key race on a new identity, an identity whose customer was merged, or a twin
request's key make the statement fail as a whole, and the caller then executes the same plan on
the ORM path (``Fallback``), which handles all three. tests/interactions/test_create_equivalence.py
runs both writers over a table of create shapes.

After it: the routing engine's enqueue command and the live timeline announcement go to Redis in
one pipelined round trip. SQLite and agents' own contacts take the ORM path.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from customers.timeline import live_payloads
from interactions import idempotency
from interactions.create_plan import CreatePlan, Reference, plan_create
from interactions.models import ActorType
from interactions.schemas import InteractionCreate, InteractionRead
from switchboard import commands as routing_commands
from switchboard.errors import Invalid
from switchboard.events import PREFIX, customer_topic
from switchboard.fastsql import PgStatement, held_connection

log = logging.getLogger(__name__)

# Each record is built by a function in FROM, called once: ``SELECT (f(...)).*`` would call it once
# per column of the table (PostgreSQL expands the star into one call per field), which doubled the
# create's PostgreSQL CPU (bench/interactions_create.py).
_CREATE_SQL = """
WITH
q AS (SELECT id FROM queues WHERE name = CAST(:queue AS varchar)),
chk AS (SELECT CAST(ARRAY[{checks}] AS boolean[]) AS ok),
ok AS (SELECT 1 AS one FROM chk WHERE true = ALL (chk.ok)),
found AS (
  SELECT c.id, c.display_name, c.language, c.value_tier, c.segments
  FROM identities i JOIN customers c ON c.id = i.customer_id
  WHERE i.kind = CAST(:kind AS varchar) AND i.value = CAST(:value AS varchar)
    AND c.merged_into_id IS NULL
),
new_customer AS (
  INSERT INTO customers
  SELECT r.* FROM ok, jsonb_populate_record(NULL::customers, CAST(:new_customer AS jsonb)) AS r
  WHERE NOT EXISTS (SELECT 1 FROM found)
  RETURNING id, display_name, language, value_tier, segments
),
new_identity AS (
  INSERT INTO identities
  SELECT r.* FROM new_customer, jsonb_populate_record(NULL::identities, CAST(:new_identity AS jsonb)) AS r
  RETURNING id
),
customer AS (SELECT * FROM found UNION ALL SELECT * FROM new_customer),
created AS (
  INSERT INTO interactions
  SELECT r.* FROM customer, ok, LATERAL jsonb_populate_record(NULL::interactions,
    CAST(:interaction AS jsonb) || jsonb_build_object(
      'customer_id', customer.id,
      'queue_id', (SELECT id FROM q),
      'language', COALESCE(CAST(:language AS varchar),
                           CASE WHEN CAST(:language_from_customer AS boolean) THEN customer.language END)
    )) AS r
  RETURNING id, customer_id, queue_id, language
),
events AS (
  INSERT INTO timeline_events (customer_id, interaction_id, at, kind, channel, actor_type, actor_id, data)
  SELECT created.customer_id, CASE WHEN e.of_interaction THEN created.id END, CAST(:now AS timestamptz),
    e.kind, e.channel, e.actor_type, e.actor_id, e.data
  FROM created, jsonb_to_recordset(CAST(:events AS jsonb)) AS e(
    n integer, kind varchar, of_interaction boolean, only_new boolean, channel varchar,
    actor_type varchar, actor_id varchar, data jsonb)
  WHERE NOT e.only_new OR EXISTS (SELECT 1 FROM new_customer)
  ORDER BY e.n
  RETURNING id, kind, interaction_id
),
-- The client's Idempotency-Key, with the interaction (interactions.idempotency): a twin request
-- holding the same key fails this whole statement on the primary key and replays.
key_row AS (
  INSERT INTO idempotency_keys
  SELECT r.* FROM created, jsonb_populate_record(NULL::idempotency_keys, CAST(:key_row AS jsonb)) AS r
  WHERE CAST(:key_row AS jsonb) IS NOT NULL
)
SELECT chk.ok,
  customer.id AS customer_id, customer.display_name, customer.language, customer.value_tier,
  customer.segments,
  (SELECT queue_id FROM created) AS queue_id,
  (SELECT language FROM created) AS interaction_language,
  (SELECT array_agg(id ORDER BY id) FROM events) AS event_ids,
  (SELECT array_agg(kind ORDER BY id) FROM events) AS event_kinds,
  (SELECT array_agg(interaction_id IS NOT NULL ORDER BY id) FROM events) AS event_of_interaction
FROM chk LEFT JOIN customer ON true
"""

_CAST = {"id": "uuid", "name": "varchar"}


@functools.lru_cache(maxsize=64)
def _statement(references: tuple[tuple[str, str], ...]) -> PgStatement:
    """The statement for a plan whose references are these (table, column) pairs, in order: one
    EXISTS each (a handful of variants, each prepared once per connection)."""
    checks = ", ".join(
        f"EXISTS (SELECT 1 FROM {table} WHERE {column} = CAST(:ref_{i} AS {_CAST[column]}))"
        for i, (table, column) in enumerate(references)
    )
    return PgStatement(_CREATE_SQL.replace("{checks}", checks))


def statement_for(references: list[Reference]) -> PgStatement:
    return _statement(tuple((ref.table, ref.column) for ref in references))


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
    """The statement could not decide (a race on a new identity, a merged customer, a twin
    request's key): nothing was written, and the caller executes the plan on the ORM path."""


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"not JSON: {value!r}")


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=_plain, separators=(",", ":"))


async def create(
    engine: AsyncEngine,
    *,
    data: InteractionCreate,
    actor_type: ActorType,
    actor_id: str | None,
    default_region: str,
    agent_id: uuid.UUID | None = None,
    now: datetime | None = None,
    claim: idempotency.Claim | None = None,
) -> Created:
    """Plan the create and execute it here (see ``execute``)."""
    plan = plan_create(
        data,
        actor_type=actor_type,
        actor_id=actor_id,
        default_region=default_region,
        agent_id=agent_id,
        now=now,
        claim=claim,
    )
    return await execute(engine, plan)


async def execute(engine: AsyncEngine, plan: CreatePlan) -> Created:
    """One statement on PostgreSQL; raises Invalid (nothing written) or Fallback (nothing written)."""
    row_without = plan.interaction_row(None, None)
    params: dict[str, Any] = {
        "queue": plan.queue,
        **{f"ref_{i}": ref.value for i, ref in enumerate(plan.references)},
        "kind": plan.kind.value,
        "value": plan.identity_value,
        "new_customer": _json(plan.new_customer_row()),
        "new_identity": _json(plan.new_identity_row(plan.new_customer_id)),
        "interaction": _json({k: v for k, v in row_without.items() if k not in ("customer_id", "queue_id")}),
        "language": plan.data.language,
        "language_from_customer": plan.language_from_customer,
        "now": plan.now,
        "events": _json(
            [
                {
                    "n": n,
                    "kind": e.kind,
                    "of_interaction": e.of_interaction,
                    "only_new": e.only_for_a_new_customer,
                    "channel": e.channel,
                    "actor_type": e.actor_type.value,
                    "actor_id": e.actor_id,
                    "data": e.data,
                }
                for n, e in enumerate(plan.events)
            ]
        ),
        "key_row": _json(plan.key_row),
    }
    try:
        # Autocommit on a held connection: one round trip, atomic as a single statement.
        async with held_connection(engine) as driver:
            row = await statement_for(plan.references).fetchrow_on(driver, params)
    except IntegrityError as exc:
        raise Fallback(str(exc.orig)) from exc
    assert row is not None
    for ref, ok in zip(plan.references, row["ok"], strict=True):
        if not ok:  # the first missing reference, in the plan's order
            raise Invalid(ref.message, field=ref.field)
    if row["customer_id"] is None:  # pragma: no cover - every reference was there
        raise Fallback("the statement wrote nothing")
    customer_id = uuid.UUID(bytes=row["customer_id"].bytes)  # asyncpg's UUID -> the stdlib's
    queue_id = None if row["queue_id"] is None else uuid.UUID(bytes=row["queue_id"].bytes)
    body = {
        **row_without,
        "customer_id": customer_id,
        "queue_id": queue_id,
        "language": row["interaction_language"],
        "customer": {
            "id": customer_id,
            "display_name": row["display_name"],
            "language": row["language"],
            "value_tier": row["value_tier"],
            "segments": row["segments"],
        },
        "queue": plan.queue if queue_id is not None else None,
    }
    events = [
        _Event(event_id, customer_id, plan.interaction_id if of_interaction else None, kind)
        for event_id, kind, of_interaction in zip(
            row["event_ids"] or (), row["event_kinds"] or (), row["event_of_interaction"] or (), strict=True
        )
    ]
    return Created(
        body=InteractionRead.model_validate(body).model_dump_json().encode(),
        interaction_id=plan.interaction_id,
        customer_id=customer_id,
        queued=plan.enqueue,
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

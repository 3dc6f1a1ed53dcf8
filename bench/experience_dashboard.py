"""The experience dashboard over a year of data (issue #12 item 2: "under a second over a year"):
PostgreSQL, one process, the real app in-process.

    python bench/experience_dashboard.py [--interactions 1000000] [--reps 7] [--keep-schema]

Generates, in its own schema (made by the migrations, dropped at the end), with set-based SQL
(``INSERT ... SELECT`` over ``generate_series``, never ORM rows): a supervisor, agents with their
users and home teams, 20 queues (5 per channel), customers (one per 5 contacts, tiers weighted),
``--interactions`` contacts over 365 UTC days (07:00-20:00, channels and queues weighted, 92 %
reaching an agent), customer answers on a fifth of the completed ones (CSAT always, NPS on 60 %,
CES on 40 %), agents' interaction pulses on 15 % (a third tagged), end-of-shift check-ins (each
agent on ~43 % of days) and the engine's 15-minute queue intervals. Every foreign key and check
holds (the constraints stay on; secondary indexes are dropped for the load and rebuilt after it,
as a bulk load would).

Then it times the rollup (``experience.rollup.run_rollup``) over the whole year, adds one more
day of data and times the incremental rollup, and times each ``/api/experience/...`` query over
the whole year and the ``/supervisor/experience`` page through the app (httpx on the ASGI app, a
supervisor's Bearer token from ``/api/auth/token``): p50 / p99 of ``--reps`` after one warm-up.
The page also shows first-contact resolution per queue and agent, summed from its own daily
rollup (``experience.resolution_rollup``: the first run backfills 92 days, later runs rebuild the
last 8), whose runs are timed too; the page's default view (30 days) and a quarter are timed
apart (``--fcr-reps``).

Needs PostgreSQL (BENCH_PG_URL, default postgresql+asyncpg://postgres@127.0.0.1:5432/test) and Redis
(BENCH_REDIS_URL, default redis://127.0.0.1:6379/12).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from argon2 import PasswordHasher  # noqa: E402
from httpx import ASGITransport, AsyncClient  # noqa: E402
from sqlalchemy import text  # noqa: E402

from agent_desktop.ex_service import PULSE_TAGS  # noqa: E402
from bench.common import load_context, percentile, print_figures  # noqa: E402
from experience.resolution_rollup import rebuild_resolution  # noqa: E402
from experience.rollup import run_rollup  # noqa: E402
from switchboard.app import create_app  # noqa: E402
from switchboard.db import Database, utcnow  # noqa: E402
from switchboard.settings import Settings  # noqa: E402

PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
PASSWORD = "bench-supervisor-password"
DAYS = 365
QUEUES = 20  # queue q serves CHANNELS[q % 4]
CHANNELS = ("voice", "chat", "email", "ticket")
TOPICS = ("card_lost", "payment", "mortgage", "fraud", "balance", "loan", "address", "statement")
TARGET_MS = 1000.0
# Tables the load fills: their secondary indexes are rebuilt after it (a bulk load's usual way).
LOADED = ("customers", "interactions", "customer_feedback", "agent_pulses")
MEASURED = (
    "customers",
    "users",
    "agents",
    "interactions",
    "customer_feedback",
    "agent_pulses",
    "queue_intervals",
    "experience_daily",
    "experience_respondents",
    "experience_respondents_monthly",
    "experience_tag_daily",
    "experience_resolution_daily",
)


async def migrate(schema: str) -> None:
    db = Database(PG_URL)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
    await db.dispose()
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["url"] = PG_URL
    cfg.attributes["schema"] = schema
    await asyncio.to_thread(command.upgrade, cfg, "head")


def _sql_list(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


# ------------------------------------------------------------------------------------ data
# Ids are md5 of a prefix and a number cast to uuid, so a row names its customer, agent or queue
# without a join (k-th customer: md5('c' || k)::uuid).


def _people_sql(agents: int, teams: int, customers: int, now: datetime) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            """INSERT INTO users (id, username, display_name, role, password_hash, is_active, created_at,
                                  token_version)
               SELECT md5('u' || k)::uuid, 'xb-agent-' || lpad(k::text, 5, '0'), 'Agent ' || k, 'agent',
                      'not-a-hash', TRUE, :now, 0
               FROM generate_series(1, :agents) AS k""",
            {"agents": agents, "now": now},
        ),
        (
            """INSERT INTO teams (id, name, display_name, description, created_at)
               SELECT md5('t' || k)::uuid, 'team-' || lpad(k::text, 2, '0'), 'Team ' || k, '', :now
               FROM generate_series(1, :teams) AS k""",
            {"teams": teams, "now": now},
        ),
        (
            """INSERT INTO agents (id, user_id, display_name, languages, teams, capacity_units, channel_max,
                                   presence, presence_since, created_at)
               SELECT md5('a' || k)::uuid, md5('u' || k)::uuid, 'Agent ' || k, '["en"]',
                      jsonb_build_array('team-' || lpad((1 + k % :teams)::text, 2, '0')), 100,
                      '{"voice": 1, "chat": 2, "email": 5, "ticket": 5}', 'offline', :now, :now
               FROM generate_series(1, :agents) AS k""",
            {"agents": agents, "teams": teams, "now": now},
        ),
        (
            f"""INSERT INTO queues (id, name, display_name, channels, sl_target_percent, sl_threshold_seconds,
                                   strategy, required_skills, wrap_up_seconds, settings, created_at,
                                   offer_policy)
               SELECT md5('q' || k)::uuid,
                      'q' || lpad(k::text, 2, '0') || '-' || ({_sql_list(CHANNELS)})[1 + k % 4],
                      'Queue ' || k, jsonb_build_array(({_sql_list(CHANNELS)})[1 + k % 4]),
                      CASE WHEN k % 4 = 0 THEN 80 ELSE 90 END, CASE WHEN k % 4 = 0 THEN 20 ELSE 60 END,
                      'longest_idle', '{{}}', 30, '{{}}', :now, 'one_at_a_time'
               FROM generate_series(0, {QUEUES - 1}) AS k""",
            {"now": now},
        ),
        (
            """INSERT INTO customers (id, display_name, language, timezone, segments, relationship_balance,
                                      products_held, annual_profit, cost_to_serve, value_tier, tier_breakdown,
                                      do_not_contact, marketing_consent, created_at, updated_at)
               SELECT md5('c' || k)::uuid, 'Customer ' || k, 'en', 'Europe/London',
                      CASE WHEN r < 0.3 THEN '["retail"]'::jsonb ELSE '[]'::jsonb END,
                      round((r * 200000)::numeric, 2), 1 + (r * 5)::int, round((r * 3000)::numeric, 2),
                      round((r * 200)::numeric, 2),
                      CASE WHEN r < 0.03 THEN 'platinum' WHEN r < 0.15 THEN 'gold' WHEN r < 0.45 THEN 'silver'
                           ELSE 'standard' END, '{}', FALSE, FALSE, :now, :now
               FROM (SELECT k, random() AS r FROM generate_series(1, :customers) AS k OFFSET 0) AS s""",
            {"customers": customers, "now": now},
        ),
    ]


def _days_sql(
    first: int, last: int, start: date, days: int, agents: int, customers: int, seed: float
) -> list[tuple[str, dict[str, Any]]]:
    """Interactions first..last spread evenly over ``days`` days from ``start``, and everything
    that hangs off them and those days (answers, pulses, check-ins, queue intervals)."""
    # Our own numbers and days, written into the SQL (asyncpg cannot type a bare parameter in
    # "parameter + interval").
    t0 = f"TIMESTAMPTZ '{start.isoformat()} 00:00:00+00'"
    d0 = f"DATE '{start.isoformat()}'"
    count = last - first + 1
    span: dict[str, Any] = {}
    channel = f"({_sql_list(CHANNELS)})"
    topics = f"({_sql_list(TOPICS)})"
    tags = f"({_sql_list(PULSE_TAGS)})"
    return [
        ("SELECT setseed(:seed)", {"seed": seed}),
        (
            # One draw per property (OFFSET 0 keeps each random() evaluated once per row).
            f"""INSERT INTO interactions (id, customer_id, channel, direction, state, version, priority,
                                   queue_id, required_skills, agent_id, topic, language, disposition,
                                   contact_identity, attributes, created_at, virtual_start_at, queued_at,
                                   offered_at, connected_at, wrap_up_at, ended_at, updated_at)
               SELECT md5('i' || g)::uuid, md5('c' || (1 + floor(rc * {customers})::int))::uuid,
                      {channel}[1 + ch], CASE WHEN rd < 0.05 THEN 'outbound' ELSE 'inbound' END,
                      CASE WHEN connected THEN 'completed' ELSE 'abandoned' END, 6, 0,
                      md5('q' || (ch + 4 * floor(rq * 5)::int))::uuid, '{{}}',
                      CASE WHEN connected THEN md5('a' || (1 + floor(ra * {agents})::int))::uuid END,
                      {topics}[1 + floor(rt * {len(TOPICS)})::int], 'en',
                      CASE WHEN connected THEN 'resolved' END, '{{}}', '{{}}',
                      at, at, at,
                      CASE WHEN connected THEN at + wait END, CASE WHEN connected THEN at + wait END,
                      CASE WHEN connected THEN at + wait + handle END, at + wait + handle, at + wait + handle
               FROM (
                   SELECT g, random() AS rc, random() AS rd, random() AS rq, random() AS ra, random() AS rt,
                          random() < 0.92 AS connected,
                          CASE WHEN rch < 0.45 THEN 0 WHEN rch < 0.75 THEN 1 WHEN rch < 0.9 THEN 2
                               ELSE 3 END AS ch,
                          {t0} + ((g::bigint - {first}) * {days} / {count}) * interval '1 day'
                              + interval '7 hours' + random() * interval '13 hours' AS at,
                          random() * interval '3 minutes' AS wait, random() * interval '20 minutes' AS handle
                   FROM (SELECT g, random() AS rch FROM generate_series({first}, {last}) AS g OFFSET 0) AS s0
                   OFFSET 0
               ) AS s""",
            span,
        ),
        (
            f"""INSERT INTO customer_feedback (id, interaction_id, customer_id, csat, nps, ces, comment,
                                                created_at)
               SELECT md5('f' || i.id::text)::uuid, i.id, i.customer_id,
                      LEAST(5, 1 + floor(r1 * 5.6)::int),
                      CASE WHEN r2 < 0.6 THEN LEAST(10, floor(r1 * 11.5)::int) END,
                      CASE WHEN r3 < 0.4 THEN 1 + floor(random() * 7)::int END,
                      CASE WHEN r3 > 0.97 THEN 'Thanks' END,
                      i.ended_at + interval '5 minutes' + r2 * interval '55 minutes'
               FROM (SELECT i.*, random() AS r1, random() AS r2, random() AS r3, random() AS pick
                     FROM interactions i
                     WHERE i.state = 'completed' AND i.created_at >= {t0}
                       AND i.created_at < {t0} + {days} * interval '1 day' OFFSET 0) AS i
               WHERE pick < 0.2""",
            span,
        ),
        (
            f"""INSERT INTO agent_pulses (id, agent_id, interaction_id, kind, score, tags, queue, team, day,
                                   created_at)
               SELECT md5('p' || i.id::text)::uuid, i.agent_id, i.id, 'interaction', 1 + floor(r1 * 5)::int,
                      CASE WHEN r2 < 0.25
                                THEN jsonb_build_array({tags}[1 + floor(r3 * {len(PULSE_TAGS)})::int])
                           WHEN r2 < 0.33 THEN jsonb_build_array({tags}[1 + floor(r3 * 2)::int],
                                                                 {tags}[3 + floor(r1 * 3)::int])
                           ELSE '[]'::jsonb END,
                      q.name, a.teams ->> 0, CAST(i.ended_at AT TIME ZONE 'UTC' AS DATE),
                      i.ended_at + interval '1 minute'
               FROM (SELECT i.*, random() AS r1, random() AS r2, random() AS r3, random() AS pick
                     FROM interactions i
                     WHERE i.state = 'completed' AND i.created_at >= {t0}
                       AND i.created_at < {t0} + {days} * interval '1 day' OFFSET 0) AS i
               JOIN agents a ON a.id = i.agent_id JOIN queues q ON q.id = i.queue_id
               WHERE pick < 0.15""",
            span,
        ),
        (
            f"""INSERT INTO agent_pulses (id, agent_id, interaction_id, kind, score, workload, tags, team,
                                         day, created_at)
               SELECT md5('s' || a.id::text || ({d0} + k)::text)::uuid, a.id, NULL, 'shift',
                      1 + floor(random() * 5)::int,
                      1 + floor(random() * 5)::int, '[]', a.teams ->> 0, {d0} + k,
                      CAST({d0} + k AS timestamp) AT TIME ZONE 'UTC' + interval '18 hours'
                          + random() * interval '2 hours'
               FROM agents a CROSS JOIN generate_series(0, {days} - 1) AS k
               WHERE random() < 0.43""",
            span,
        ),
        (
            # 07:00-21:00 in 15-minute intervals; volumes as the interactions' (per queue), SL 60-98 %.
            f"""INSERT INTO queue_intervals (queue_name, interval_start, offered, accepted, rejected, missed,
                                            abandoned, abandoned_within_sl, answered_within_sl, completed,
                                            transferred, answer_wait_seconds, handle_seconds)
               SELECT name, t, n + 1, n, 0, 0, 1, 0, floor(n * (0.6 + random() * 0.38))::int, n, 0,
                      n * 40.0, n * 600.0
               FROM (SELECT q.name, t, floor(random() * 2 * {count} / ({days} * 56.0 * {QUEUES}))::int AS n
                     FROM queues q
                     CROSS JOIN generate_series({t0} + interval '7 hours',
                                                {t0} + ({days} - 1) * interval '1 day'
                                                    + interval '20 hours 45 minutes',
                                                interval '15 minutes') AS t
                     OFFSET 0) AS v
               WHERE CAST(t AT TIME ZONE 'UTC' AS time) BETWEEN '07:00' AND '20:45'""",
            span,
        ),
    ]


async def run_sql(db: Database, statements: list[tuple[str, dict[str, Any]]]) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("SET LOCAL synchronous_commit = off"))
        await conn.execute(text("SET LOCAL work_mem = '64MB'"))
        for sql, params in statements:
            await conn.execute(text(sql), params)


async def secondary_indexes(db: Database, schema: str) -> list[tuple[str, str]]:
    """(name, definition) of the loaded tables' indexes that back no constraint."""
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text(
                """SELECT i.indexname, i.indexdef FROM pg_indexes i
                   WHERE i.schemaname = :schema AND i.tablename = ANY(:tables)
                     AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                                     WHERE c.conname = i.indexname
                                       AND c.connamespace = CAST(:schema AS regnamespace))"""
            ),
            {"schema": schema, "tables": list(LOADED)},
        )
        return [(name, definition) for name, definition in rows.all()]


async def table_sizes(db: Database, schema: str) -> dict[str, dict[str, Any]]:
    sizes = {}
    async with db.engine.connect() as conn:
        for table in MEASURED:
            rows, total = (
                await conn.execute(
                    text(f"SELECT (SELECT count(*) FROM {table}), pg_total_relation_size('{schema}.{table}')")
                )
            ).one()
            sizes[table] = {"rows": int(rows), "mb": round(total / 2**20, 1)}
    return sizes


async def generate(
    db: Database, schema: str, interactions: int, agents: int, teams: int, customers: int, start: date
) -> float:
    started = time.perf_counter()
    indexes = await secondary_indexes(db, schema)
    async with db.engine.begin() as conn:
        for name, _ in indexes:
            await conn.execute(text(f"DROP INDEX {name}"))
    await run_sql(db, _people_sql(agents, teams, customers, utcnow()))
    await run_sql(db, _days_sql(1, interactions, start, DAYS, agents, customers, 0.12))
    async with db.engine.begin() as conn:
        await conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        for _, definition in indexes:
            await conn.execute(text(definition))
    await vacuum(db, ("customers", "users", "agents", "teams", "queues", *LOADED, "queue_intervals"))
    return time.perf_counter() - started


async def vacuum(db: Database, tables: tuple[str, ...]) -> None:
    """What autovacuum does to a live database between loads (statistics, visibility map)."""
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in tables:
            await conn.execute(text(f"VACUUM (ANALYZE) {table}"))


async def rollup(db: Database, now: datetime, *, full: bool) -> tuple[float, int]:
    async with db.sessionmaker() as session:
        started = time.perf_counter()
        result = await run_rollup(session, now=now, full=full)
        return time.perf_counter() - started, result.days


async def resolution_rollup(db: Database, now: datetime) -> tuple[float, int]:
    async with db.sessionmaker() as session:
        started = time.perf_counter()
        rows = await rebuild_resolution(session, now=now)
        return time.perf_counter() - started, rows


async def supervisor(db: Database) -> None:
    password_hash = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                """INSERT INTO users (id, username, display_name, role, password_hash, is_active, created_at,
                                      token_version)
                   VALUES (md5('supervisor')::uuid, 'xb-supervisor', 'Bench Supervisor', 'supervisor', :hash,
                           TRUE, now(), 0)"""
            ),
            {"hash": password_hash},
        )


# ------------------------------------------------------------------------------ queries


async def timed(call: Callable[[], Awaitable[Any]], reps: int) -> dict[str, float]:
    await call()  # warm-up: compiled statements, the connection pool, PostgreSQL's cache
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(percentile(times, 0.5), 1), "p99_ms": round(percentile(times, 0.99), 1)}


async def measure_app(
    settings: Settings, first: date, last: date, reps: int, fcr_reps: int
) -> dict[str, dict[str, float]]:
    app = create_app(settings)
    year = {"from": first.isoformat(), "to": last.isoformat()}
    results: dict[str, dict[str, float]] = {}
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://bench", timeout=600) as client,
    ):
        answer = await client.post(
            "/api/auth/token", data={"username": "xb-supervisor", "password": PASSWORD}
        )
        answer.raise_for_status()
        client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

        def get(path: str, html: bool = False, **params: str) -> Callable[[], Awaitable[Any]]:
            async def call() -> Any:
                reply = await client.get(path, params=params, headers={"Accept": "text/html"} if html else {})
                if reply.status_code != 200:
                    raise RuntimeError(f"{path} {params}: {reply.status_code} {reply.text[:300]}")
                return reply

            return call

        some_agent = (await get("/api/experience/summary", **year, dimension="agent")()).json()["rows"][0]
        queue = (await get("/api/experience/summary", **year, dimension="queue")()).json()["rows"][0]
        team = (await get("/api/experience/summary", **year, dimension="team")()).json()["rows"][0]
        calls: dict[str, Callable[[], Awaitable[Any]]] = {}
        for dimension in ("team", "queue", "channel", "tier", "agent"):
            calls[f"summary {dimension}"] = get("/api/experience/summary", **year, dimension=dimension)
        calls["summary team csv"] = get("/api/experience/summary", **year, dimension="team", format="csv")
        calls["trend centre"] = get("/api/experience/trend", **year)
        calls["trend one queue"] = get("/api/experience/trend", **year, dimension="queue", key=queue["key"])
        calls["trend one agent"] = get(
            "/api/experience/trend", **year, dimension="agent", key=some_agent["key"]
        )
        calls["together"] = get("/api/experience/together", **year)
        calls["interactions (newest 100)"] = get("/api/experience/interactions", **year)
        calls["interactions one channel"] = get(
            "/api/experience/interactions", **year, dimension="channel", key="email"
        )
        calls["interactions one agent"] = get(
            "/api/experience/interactions", **year, dimension="agent", key=some_agent["key"]
        )
        calls["interactions one team"] = get(
            "/api/experience/interactions", **year, dimension="team", key=team["key"]
        )
        calls["interactions one tag"] = get("/api/experience/interactions", **year, tag=PULSE_TAGS[3])
        calls["page /supervisor/experience (year)"] = get(
            "/supervisor/experience", html=True, **year, dimension="team"
        )
        calls["page drill-down (year, one queue)"] = get(
            "/supervisor/experience/interactions", html=True, **year, dimension="queue", key=queue["key"]
        )
        # The default view and a quarter (first-contact resolution from its daily rollup).
        if fcr_reps:
            calls["page default view (30 days, FCR)"] = get("/supervisor/experience", html=True)
            quarter = {"from": (last - timedelta(days=91)).isoformat(), "to": last.isoformat()}
            calls["page a quarter (92 days, FCR)"] = get("/supervisor/experience", html=True, **quarter)
        for name, call in calls.items():
            results[name] = await timed(call, fcr_reps if "FCR" in name else reps)
            print(f"  {name}: {results[name]}", file=sys.stderr, flush=True)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--agents", type=int, default=None, help="default: ~50 contacts per agent-day")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument(
        "--fcr-reps", type=int, default=3, help="the 30- and 92-day page views (0: not timed)"
    )
    parser.add_argument(
        "--keep-schema", action="store_true", help="leave the schema for EXPLAIN ANALYZE (drop it yourself)"
    )
    args = parser.parse_args()
    n = args.interactions
    agents = args.agents or max(20, round(n / DAYS / 50))
    teams = max(3, agents // 15)
    customers = max(100, n // 5)
    today = utcnow().date()
    added_day = today - timedelta(days=1)  # the day the incremental rollup picks up
    last = added_day - timedelta(days=1)
    first = last - timedelta(days=DAYS - 1)
    schema = f"bench_xdash_{os.getpid()}"
    load_before = load_context()
    await migrate(schema)
    db = Database(PG_URL, schema=schema)
    try:
        print(f"generating {n:,} interactions, {agents} agents, {customers:,} customers...", file=sys.stderr)
        generation = await generate(db, schema, n, agents, teams, customers, first)
        print(f"  generated in {generation:.1f} s", file=sys.stderr, flush=True)
        midnight = datetime.combine(added_day, dtime(), tzinfo=UTC)
        full_rollup, full_days = await rollup(db, midnight, full=True)
        print(f"  full rollup {full_rollup:.1f} s ({full_days} days)", file=sys.stderr, flush=True)
        per_day = max(1, n // DAYS)
        await run_sql(db, _days_sql(n + 1, n + per_day, added_day, 1, agents, customers, 0.34))
        incremental, incremental_days = await rollup(db, utcnow(), full=False)
        print(f"  incremental rollup {incremental:.2f} s ({incremental_days} days)", file=sys.stderr)
        fcr_backfill, fcr_rows = await resolution_rollup(db, utcnow())
        fcr_incremental, _ = await resolution_rollup(db, utcnow())
        print(
            f"  FCR rollup: backfill {fcr_backfill:.1f} s ({fcr_rows} rows), then {fcr_incremental:.1f} s",
            file=sys.stderr,
        )
        await vacuum(
            db,
            (
                "experience_daily",
                "experience_respondents",
                "experience_respondents_monthly",
                "experience_tag_daily",
                "experience_resolution_daily",
            ),
        )
        await supervisor(db)
        sizes = await table_sizes(db, schema)
        with tempfile.TemporaryDirectory() as data_dir:
            settings = Settings(
                environment="test",
                database_url=PG_URL,
                database_schema=schema,
                redis_url=REDIS_URL,
                data_dir=Path(data_dir),
                secret_key="bench-secret-key-" + "x" * 32,
                routing_engine=False,
            )
            queries = await measure_app(settings, first, added_day, args.reps, args.fcr_reps)
    finally:
        await db.dispose()
        if args.keep_schema:
            print(f"  kept schema {schema} (DROP SCHEMA {schema} CASCADE when done)", file=sys.stderr)
        else:
            admin = Database(PG_URL)
            async with admin.engine.begin() as conn:
                await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            await admin.dispose()

    worst = max(v["p99_ms"] for v in queries.values())
    results = {
        "load_average_before": load_before,
        "load_average_after": load_context(),
        "interactions": n,
        "agents": agents,
        "teams": teams,
        "customers": customers,
        "days": f"{first.isoformat()}..{added_day.isoformat()}",
        "generation_s": round(generation, 1),
        "full_rollup_s": round(full_rollup, 1),
        "full_rollup_days": full_days,
        "incremental_rollup_s": round(incremental, 2),
        "incremental_rollup_days": incremental_days,
        "fcr_rollup_backfill_s": round(fcr_backfill, 1),
        "fcr_rollup_incremental_s": round(fcr_incremental, 1),
        "tables": sizes,
        "queries": queries,
        "year_worst_p99_ms": worst,
        "year_under_1s": worst < TARGET_MS,
    }
    rows: list[tuple[str, Any, str]] = [
        ("interactions generated", f"{sizes['interactions']['rows']:,}", f"{n:,} + one day"),
        (
            "customer answers / pulses",
            f"{sizes['customer_feedback']['rows']:,} / {sizes['agent_pulses']['rows']:,}",
            "-",
        ),
        ("generation (s)", results["generation_s"], "-"),
        ("full rollup, 365 days (s)", results["full_rollup_s"], "-"),
        ("incremental rollup, one new day (s)", results["incremental_rollup_s"], "-"),
        (
            "FCR rollup: backfill 92 days / last 8 days (s)",
            f"{results['fcr_rollup_backfill_s']} / {results['fcr_rollup_incremental_s']}",
            "-",
        ),
        (
            "rollup tables (MB)",
            round(sum(sizes[t]["mb"] for t in MEASURED if t.startswith("experience_")), 1),
            "-",
        ),
    ]
    for name, figures in queries.items():
        target = "< 1000"
        rows.append((f"{name} p50 / p99 (ms)", f"{figures['p50_ms']} / {figures['p99_ms']}", target))
    print_figures(rows, results)


if __name__ == "__main__":
    asyncio.run(main())

"""How long the engine's rebuild from SQL takes (a take-over): PostgreSQL, one process.

    python bench/rebuild.py [--agents 1000] [--waiting 2000] [--runs 5] [--no-analyze]

Seeds, in its own schema (dropped at the end): N agents each holding two chats (at their chat
maximum, as on a busy floor at fail-over), M chats waiting with their customers, a third of them
declined once, and one offer a previous leader left live per 20 agents. Then times
``EngineHost.take_lead`` (fence, the set-based reads, building the engine, the one install
transaction: old offers withdrawn) and, separately, an explicit rebuild while leading. A second
shape frees one chat per agent so the rebuild also makes an offer to every agent. The tables are
analyzed after seeding and after the freeing, as autovacuum keeps a live database (--no-analyze:
the fresh schema's statistics, whatever autovacuum has reached by then).

Needs PostgreSQL (BENCH_PG_URL, default postgresql+asyncpg://postgres@127.0.0.1:5432/test) and Redis
(BENCH_REDIS_URL, default redis://127.0.0.1:6379/9).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402
from sqlalchemy import insert, text, update  # noqa: E402

from bench.common import print_figures, retail_queue_row  # noqa: E402
from customers.models import Customer  # noqa: E402
from interactions.models import Interaction  # noqa: E402
from interactions.states import Channel, State  # noqa: E402
from routing.host import EngineHost  # noqa: E402
from routing.host.rebuild import build_floor  # noqa: E402
from routing.models import Offer, OfferState  # noqa: E402
from switchboard.auth.models import Role, User  # noqa: E402
from switchboard.db import Database, utcnow  # noqa: E402
from workforce.models import Agent, Presence, Queue, QueueMember  # noqa: E402

PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")


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


async def seed(db: Database, agents: int, waiting: int) -> list[uuid.UUID]:
    """Returns one held chat per agent (freed for the second shape)."""
    now = utcnow()
    queue_id = uuid.uuid4()
    users = [
        {
            "id": uuid.uuid4(),
            "username": f"b{n:05d}",
            "display_name": f"B {n}",
            "role": Role.AGENT,
            "password_hash": "x",
        }
        for n in range(agents)
    ]
    agent_rows = [
        {
            "id": uuid.uuid4(),
            "user_id": u["id"],
            "display_name": u["display_name"],
            "presence": Presence.AVAILABLE,
            "channel_max": {"voice": 1, "chat": 2, "ticket": 5, "email": 5},
        }
        for u in users
    ]
    customers = [{"id": uuid.uuid4(), "display_name": f"C {n}"} for n in range(2 * agents + waiting)]

    def chat(n: int, **values: Any) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "customer_id": customers[n]["id"],
            "channel": Channel.CHAT,
            "queue_id": queue_id,
            "virtual_start_at": now - timedelta(seconds=600 - n * 0.1),
            **values,
        }

    held = [
        chat(2 * i + k, state=State.CONNECTED, agent_id=a["id"], version=4, connected_at=now)
        for i, a in enumerate(agent_rows)
        for k in (0, 1)
    ]
    queued = [chat(2 * agents + n, state=State.QUEUED, version=2, queued_at=now) for n in range(waiting)]
    # A third missed once by some agent (their offer rows are what "declined" is read from).
    missed = [
        {
            "interaction_id": it["id"],
            "agent_id": agent_rows[n % agents]["id"],
            "state": OfferState.EXPIRED,
            "expires_at": now,
            "decided_at": now,
            "reason": "expired",
        }
        for n, it in enumerate(queued[::3])
    ]
    for it in queued[::3]:
        it["version"] = 4
    # A previous leader's live offers, one per 20 agents (their agents over capacity is fine here).
    stale = queued[-(agents // 20) :] if agents >= 20 else []
    live = [
        {
            "interaction_id": it["id"],
            "agent_id": agent_rows[n]["id"],
            "state": OfferState.LIVE,
            "expires_at": now + timedelta(seconds=30),
        }
        for n, it in enumerate(stale)
    ]
    for it in stale:
        it.update(state=State.OFFERED, version=it["version"] + 1)
    async with db.sessionmaker() as s:
        await s.execute(
            insert(Queue),
            [retail_queue_row(queue_id)],
        )
        await s.execute(insert(User), users)
        await s.execute(insert(Agent), agent_rows)
        await s.execute(
            insert(QueueMember), [{"queue_id": queue_id, "agent_id": a["id"]} for a in agent_rows]
        )
        await s.execute(insert(Customer), customers)
        await s.execute(insert(Interaction), held + queued)
        await s.execute(insert(Offer), missed + live)
        await s.commit()
    return [it["id"] for it in held[::2]]


# What the rebuild reads and writes: their statistics as autovacuum keeps them on a live database.
ANALYZED = ("queues", "queue_members", "agents", "customers", "interactions", "offers", "timeline_events")


async def analyze(db: Database) -> None:
    """Statistics as on a live database. Without them the planner guesses, and how well depends
    on whether autovacuum has reached the fresh schema yet: the waiting-work read's last-agent
    subquery took 30-170 ms instead of ~5 with 1,000 completed chats (the second shape), and
    asyncpg's cached plan of it kept the guess."""
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ANALYZED:
            await conn.execute(text(f"ANALYZE {table}"))


async def timed_take(db: Database, client: aioredis.Redis) -> dict[str, float]:
    host = EngineHost(db, client, desktop_grace_seconds=None)
    await client.delete("sb:engine:default:lease")
    lease = await host.leases.try_acquire(min_epoch=0)
    assert lease is not None
    started = time.perf_counter()
    built = await build_floor(host, lease)
    read_and_build = time.perf_counter() - started
    await host.leases.release()
    lease = await host.leases.try_acquire(min_epoch=0)
    assert lease is not None
    started, cpu = time.perf_counter(), time.process_time()
    leader = await host.take_lead(lease)
    take, take_cpu = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    await leader.rebuild()
    rebuild = time.perf_counter() - started
    await host.leases.release()
    await host.publisher.aclose()
    return {
        "take_ms": take * 1000,
        "take_cpu_ms": take_cpu * 1000,
        "rebuild_ms": rebuild * 1000,
        "read_build_ms": read_and_build * 1000,
        "offers_made": float(sum(e.kind == "offer_created" for e in built.decided)),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--waiting", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--no-analyze", action="store_true", help="measure on the fresh schema's statistics (as before)"
    )
    args = parser.parse_args()
    schema = f"bench_rebuild_{os.getpid()}"
    await migrate(schema)
    db = Database(PG_URL, schema=schema)
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        freeable = await seed(db, args.agents, args.waiting)
        if not args.no_analyze:
            await analyze(db)
        busy = [await timed_take(db, client) for _ in range(args.runs)]
        async with db.sessionmaker() as s:  # one chat per agent ends: every agent can take one more
            await s.execute(
                update(Interaction).where(Interaction.id.in_(freeable)).values(state=State.COMPLETED)
            )
            await s.commit()
        if not args.no_analyze:
            await analyze(db)
        freed = await timed_take(db, client)  # makes an offer to every agent (written on install)
    finally:
        await client.aclose()
        await db.dispose()
        admin = Database(PG_URL)
        async with admin.engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await admin.dispose()

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in busy), 1)

    results = {
        "load_average_1m": os.getloadavg()[0],
        "agents": args.agents,
        "waiting": args.waiting,
        "take_over_ms_median": median("take_ms"),
        "take_over_app_cpu_ms_median": median("take_cpu_ms"),
        "rebuild_while_leading_ms_median": median("rebuild_ms"),
        "read_and_build_ms_median": median("read_build_ms"),
        "take_over_ms_every_agent_offered": round(freed["take_ms"], 1),
        "offers_made_when_freed": int(freed["offers_made"]),
    }
    print_figures(
        [
            ("take-over rebuild, agents busy (ms, median)", results["take_over_ms_median"], "<= 300"),
            ("  of which this process's CPU (ms)", results["take_over_app_cpu_ms_median"], "-"),
            ("rebuild while leading (ms, median)", results["rebuild_while_leading_ms_median"], "<= 300"),
            ("reads + engine build only (ms, median)", results["read_and_build_ms_median"], "-"),
            ("take-over making an offer per agent (ms)", results["take_over_ms_every_agent_offered"], "-"),
        ],
        results,
    )


if __name__ == "__main__":
    asyncio.run(main())

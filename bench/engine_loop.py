"""What the engine host costs per command of the agent loop, in-process: PostgreSQL + Redis.

    python bench/engine_loop.py [--agents 500] [--work 1000] [--runs 3]

No HTTP and no desktops: the bench appends the commands an app process would (enqueue, then an
accept per offer, a wrap-up and a complete per interaction) to the partition's streams in bursts
and lets a real ``EngineHost`` lead in this process. Per phase it reports the host's CPU per
command (this process's CPU while the host worked through the burst, less what appending the
burst cost), and the SQL statements and transactions (COMMITs) per command, counted on every
asyncpg connection: figures that do not move with the machine's load, unlike wall time.

Needs PostgreSQL (BENCH_PG_URL, default postgresql+asyncpg://postgres@127.0.0.1:5432/test) and Redis
(BENCH_REDIS_URL, default redis://127.0.0.1:6379/9).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402
from sqlalchemy import event, func, insert, select, text  # noqa: E402

from bench.common import print_figures, retail_queue_row  # noqa: E402
from bench.rebuild import PG_URL, REDIS_URL, migrate  # noqa: E402
from customers.models import Customer  # noqa: E402
from interactions.models import Interaction  # noqa: E402
from interactions.states import Channel, State  # noqa: E402
from routing.host import EngineHost  # noqa: E402
from routing.models import Offer, OfferState  # noqa: E402
from switchboard import commands  # noqa: E402
from switchboard.auth.models import Role, User  # noqa: E402
from switchboard.db import Database, utcnow  # noqa: E402
from switchboard.redis import rkey  # noqa: E402
from workforce.models import Agent, OfferPolicy, Presence, Queue, QueueMember  # noqa: E402

PROFILE = ""  # --profile PHASE: cProfile that phase (to stderr)


class Statements:
    """Every statement on every connection of the database: SQLAlchemy's own executions, and
    asyncpg's query logger for what runs on the driver directly (fast statements, BEGIN, COMMIT)."""

    def __init__(self, db: Database) -> None:
        self.counts: Counter[str] = Counter()
        event.listen(db.engine.sync_engine, "connect", self._connected)
        # SQLAlchemy runs its statements as prepared statements, which the logger does not see.
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._executed)

    def _executed(self, *_args: Any) -> None:
        self.counts["statements"] += 1

    def _connected(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection._connection.add_query_logger(self._logged)  # noqa: SLF001

    def _logged(self, record: Any) -> None:
        self.counts["statements"] += 1
        if record.query.strip().upper().startswith("COMMIT"):
            self.counts["commits"] += 1

    def snapshot(self) -> Counter[str]:
        return Counter(self.counts)


async def seed_agents(db: Database, agents: int) -> str:
    queue_id = uuid.uuid4()
    users = [
        {"id": uuid.uuid4(), "username": f"e{n:05d}", "display_name": f"E {n}", "role": Role.AGENT}
        for n in range(agents)
    ]
    for u in users:
        u["password_hash"] = "x"
    rows = [
        {
            "id": uuid.uuid4(),
            "user_id": u["id"],
            "display_name": u["display_name"],
            "presence": Presence.AVAILABLE,
            "channel_max": {"voice": 1, "chat": 2, "ticket": 5, "email": 5},
        }
        for u in users
    ]
    async with db.sessionmaker() as s:
        await s.execute(
            insert(Queue),
            # Every free place offered at once (two per agent): the enqueue phase expects all --work
            # offered in one burst, as before one pending offer per agent became queues' default.
            [retail_queue_row(queue_id, offer_policy=OfferPolicy.UP_TO_CAPACITY)],
        )
        await s.execute(insert(User), users)
        await s.execute(insert(Agent), rows)
        await s.execute(insert(QueueMember), [{"queue_id": queue_id, "agent_id": a["id"]} for a in rows])
        await s.commit()
    return str(queue_id)


async def seed_work(db: Database, queue_id: str, count: int) -> list[uuid.UUID]:
    now = utcnow()
    customers = [{"id": uuid.uuid4(), "display_name": f"C {n}"} for n in range(count)]
    work = [
        {
            "id": uuid.uuid4(),
            "customer_id": c["id"],
            "channel": Channel.CHAT,
            "queue_id": uuid.UUID(queue_id),
            "state": State.QUEUED,
            "version": 2,
            "queued_at": now,
            "virtual_start_at": now,
        }
        for c in customers
    ]
    async with db.sessionmaker() as s:
        await s.execute(insert(Customer), customers)
        await s.execute(insert(Interaction), work)
        await s.commit()
    return [w["id"] for w in work]


async def burst(client: aioredis.Redis, batch: list[commands.Command]) -> tuple[str, str]:
    """Append the commands in one pipeline; (stream, last entry id)."""
    last: tuple[str, str] = ("", "")
    async with client.pipeline(transaction=False) as pipe:
        for command in batch:
            _, payload = commands.encode(command)
            key = commands.urgent_stream_key() if command.urgent else commands.stream_key()
            pipe.xadd(key, {"c": payload})
        ids = await pipe.execute()
    key = commands.urgent_stream_key() if batch[-1].urgent else commands.stream_key()
    last = (key, ids[-1])
    return last


async def phase(
    name: str,
    client: aioredis.Redis,
    batch: list[commands.Command],
    stats: Statements,
    done: Any,
) -> dict[str, Any]:
    before = stats.snapshot()
    profiler = cProfile.Profile() if name == PROFILE else None
    if profiler is not None:
        profiler.enable()
    cpu, wall = time.process_time(), time.perf_counter()
    stream, last = await burst(client, batch)
    push_cpu = time.process_time() - cpu
    cursor = commands.urgent_cursor_key() if stream == commands.urgent_stream_key() else commands.cursor_key()
    while True:  # the host's cursor is past the burst: every command handled and written
        if await client.get(cursor) == last:
            break
        await asyncio.sleep(0.005)
    host_cpu = time.process_time() - cpu - push_cpu
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(40)
    elapsed = time.perf_counter() - wall
    after = stats.snapshot()
    assert await done(), f"{name}: not every command took effect"
    n = len(batch)
    return {
        "phase": name,
        "commands": n,
        "cpu_ms_per_command": round(host_cpu * 1000 / n, 3),
        "statements_per_command": round((after["statements"] - before["statements"]) / n, 2),
        "commits_per_command": round((after["commits"] - before["commits"]) / n, 3),
        "commands_per_s": round(n / elapsed, 1),
    }


async def count_state(db: Database, ids: list[uuid.UUID], state: State) -> int:
    async with db.sessionmaker() as s:
        return int(
            await s.scalar(select(func.count()).where(Interaction.id.in_(ids), Interaction.state == state))
            or 0
        )


async def one_run(
    db: Database, client: aioredis.Redis, queue_id: str, work: int, stats: Statements
) -> list[dict]:
    ids = await seed_work(db, queue_id, work)
    results = [
        await phase(
            "enqueue",
            client,
            [commands.Enqueue(interaction_id=str(i)) for i in ids],
            stats,
            lambda: _eq(count_state(db, ids, State.OFFERED), len(ids)),
        )
    ]
    async with db.sessionmaker() as s:
        offers = (
            await s.execute(
                select(Offer.id, Offer.agent_id).where(
                    Offer.interaction_id.in_(ids), Offer.state == OfferState.LIVE
                )
            )
        ).all()
    results.append(
        await phase(
            "accept",
            client,
            [commands.Accept(offer_id=str(o), agent_id=str(a), received_at=time.time()) for o, a in offers],
            stats,
            lambda: _eq(count_state(db, ids, State.CONNECTED), len(ids)),
        )
    )
    async with db.sessionmaker() as s:
        holders = (
            await s.execute(select(Interaction.id, Interaction.agent_id).where(Interaction.id.in_(ids)))
        ).all()
    results.append(
        await phase(
            "wrap_up",
            client,
            [commands.WrapUp(interaction_id=str(i), agent_id=str(a)) for i, a in holders],
            stats,
            lambda: _eq(count_state(db, ids, State.WRAP_UP), len(ids)),
        )
    )
    results.append(
        await phase(
            "complete",
            client,
            [commands.Complete(interaction_id=str(i), agent_id=str(a)) for i, a in holders],
            stats,
            lambda: _eq(count_state(db, ids, State.COMPLETED), len(ids)),
        )
    )
    return results


async def _eq(count: Any, expected: int) -> bool:
    return await count == expected


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--work", type=int, default=1000, help="interactions per run (<= 2 x agents)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--profile", default="", help="cProfile one phase: enqueue, accept, wrap_up, complete"
    )
    args = parser.parse_args()
    global PROFILE
    PROFILE = args.profile
    schema = f"bench_engine_loop_{os.getpid()}"
    await migrate(schema)
    db = Database(PG_URL, schema=schema)
    stats = Statements(db)
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    await client.delete(
        commands.stream_key(),
        commands.urgent_stream_key(),
        commands.cursor_key(),
        commands.urgent_cursor_key(),
        rkey("engine", "default", "lease"),
    )
    queue_id = await seed_agents(db, args.agents)  # before the host leads: its take-over reads them
    host = EngineHost(db, client, desktop_grace_seconds=None, reconcile_seconds=3600, gc_freeze=True)
    task = asyncio.create_task(host.run())
    runs: list[list[dict]] = []
    try:
        await asyncio.wait_for(host.is_leader.wait(), 30)
        for _ in range(args.runs):
            runs.append(await one_run(db, client, queue_id, args.work, stats))
    finally:
        await host.stop()
        await asyncio.wait_for(task, 30)
        await client.aclose()
        await db.dispose()
        admin = Database(PG_URL)
        async with admin.engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await admin.dispose()

    results: dict[str, Any] = {"load_average_1m": round(os.getloadavg()[0], 2), "agents": args.agents}
    rows = []
    for n, name in enumerate(("enqueue", "accept", "wrap_up", "complete")):
        of = [r[n] for r in runs]
        for key in ("cpu_ms_per_command", "statements_per_command", "commits_per_command", "commands_per_s"):
            results[f"{name}_{key}"] = round(statistics.median(r[key] for r in of), 3)
        rows.append(
            (f"{name}: host CPU per command (ms, median)", results[f"{name}_cpu_ms_per_command"], "-")
        )
        rows.append(
            (
                f"{name}: statements / commits per command",
                f"{results[f'{name}_statements_per_command']} / {results[f'{name}_commits_per_command']}",
                "-",
            )
        )
        rows.append((f"{name}: commands/s", results[f"{name}_commands_per_s"], "-"))
    print_figures(rows, results)


if __name__ == "__main__":
    asyncio.run(main())

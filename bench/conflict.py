"""A conflict under load: agents' own edits racing the engine while the loop runs at ~100/s.

    python bench/conflict.py [--agents 400] [--rate 100] [--seconds 30] [--conflict-every 2]

The engine host runs in its own process (as the leader of a real deployment), on PostgreSQL and
Redis. This process is the rest of the floor: it creates ``--rate`` chats a second (SQL rows and
the enqueue command, as the API does) and plays every agent through the engine's commands: accept
each offer 0.3 s after it arrives, wrap up after a 3 s handle time, complete 0.5 s later. Every
``--conflict-every`` seconds one agent finishes their chat straight in SQL (their own screen, an
adapter) just before the engine's wrap-up of it: SQL refuses that wrap-up, and the engine must put
right only what it touched. Every fifth wrap-up also races the agent saving their wrap-up code.

Reports, beside the issue's targets: offers rescinded other than the conflicting ones (target 0;
before local repair a conflict rebuilt the engine and rescinded every live offer), the longest any
command waited for the engine's answer (the stall, target <= 50 ms), wrap-ups refused although
only their wrap-up code raced them (target 0), and lost or double-assigned chats (target 0). Also
the engine process's CPU per loop, PostgreSQL's, and the SQL statements and transactions per loop.

Needs PostgreSQL (BENCH_PG_URL) and Redis (BENCH_REDIS_URL), as bench/rebuild.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402
from sqlalchemy import func, insert, select, text  # noqa: E402

from bench.common import (  # noqa: E402
    cpu_seconds,
    percentile,
    postgres_cpu_seconds,
    print_figures,
    runqueue_wait_seconds,
)
from bench.engine_loop import Statements, seed_agents  # noqa: E402
from bench.rebuild import PG_URL, REDIS_URL, migrate  # noqa: E402
from customers.models import Customer  # noqa: E402
from interactions import service as interactions_service  # noqa: E402
from interactions.models import ActorType, Interaction  # noqa: E402
from interactions.states import Channel, State  # noqa: E402
from routing.host import EngineHost, Leader, dispatch  # noqa: E402
from routing.models import Offer, OfferState  # noqa: E402
from switchboard import commands  # noqa: E402
from switchboard import events as bus  # noqa: E402
from switchboard.db import Database, utcnow  # noqa: E402
from switchboard.redis import rkey  # noqa: E402

ACCEPT_AFTER, HANDLE, WRAP = 0.3, 3.0, 0.5
NO_ANSWER = "no answer in 10 s"


# ---------------------------------------------------------------------- the engine's process


async def serve(schema: str) -> None:
    """The engine host alone, until SIGTERM; then its statement counts and how long it spent on
    each command and each group commit (the longest is the stall every later command waited
    behind, whatever the machine's load adds in queueing) as one JSON line."""
    db = Database(PG_URL, schema=schema)
    stats = Statements(db)
    spent: dict[str, list[float]] = {}
    handle, flush = dispatch.handle, dispatch.flush

    async def timed_handle(leader: Any, raw: dict[str, Any], group: Any = None) -> None:
        started = time.perf_counter()
        await handle(leader, raw, group)
        spent.setdefault(str(raw.get("type")), []).append(time.perf_counter() - started)

    async def timed_flush(leader: Any, group: Any) -> None:
        started = time.perf_counter()
        await flush(leader, group)
        spent.setdefault("group commit", []).append(time.perf_counter() - started)

    repair = Leader.repair

    async def timed_repair(leader: Leader, interactions: set[str], agents: set[str]) -> None:
        started = time.perf_counter()
        await repair(leader, interactions, agents)
        spent.setdefault("repair", []).append(time.perf_counter() - started)

    dispatch.handle, dispatch.flush = timed_handle, timed_flush  # type: ignore[assignment]
    Leader.repair = timed_repair  # type: ignore[method-assign]
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    host = EngineHost(db, client, desktop_grace_seconds=None, gc_freeze=True)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(host.stop()))
    await host.run()
    longest = {kind: round(max(times) * 1000, 1) for kind, times in spent.items()}
    p99 = {kind: round(percentile(times, 0.99) * 1000, 1) for kind, times in spent.items()}
    print(json.dumps({**stats.counts, "longest_ms": longest, "p99_ms": p99}), flush=True)
    await client.aclose()
    await db.dispose()


# ---------------------------------------------------------------------- the floor


class Floor:
    def __init__(
        self, db: Database, client: aioredis.Redis, agents: set[str], args: argparse.Namespace
    ) -> None:
        self.db, self.client, self.agents, self.args = db, client, agents, args
        self.created: dict[str, float] = {}
        self.offer_delay: list[float] = []
        self.latency: dict[str, list[tuple[float, float]]] = {"accept": [], "wrap_up": [], "complete": []}
        self.refused: Counter[str] = Counter()
        self.conflicting: set[str] = set()
        self.conflict_at: list[float] = []
        self.raced_code: list[str] = []
        self.raced_code_refused = 0
        self.conflicts_refused = 0
        self.closed: Counter[str] = Counter()
        self.completed = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.next_conflict = 0.0
        self.wrap_ups = 0
        self.loop = asyncio.get_running_loop()

    def later(self, delay: float, coro: Any) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            await coro

        task = asyncio.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def call(self, kind: str, command: commands.Command) -> dict[str, Any]:
        sent = time.monotonic()
        try:
            reply = await commands.call(self.client, command, wait_seconds=10)
        except commands.EngineUnavailable:
            reply = {"ok": False, "reason": NO_ANSWER}
        self.latency[kind].append((sent, time.monotonic() - sent))
        if not reply.get("ok"):
            self.refused[f"{kind}: {reply.get('reason')}"] += 1
        return reply

    async def arrivals(self, until: float) -> None:
        queue_id = await self._queue_id()
        per_tick = max(1, round(self.args.rate / 10))
        tick = per_tick / self.args.rate
        next_at = time.monotonic()
        while time.monotonic() < until:
            now = utcnow()
            customers = [{"id": uuid.uuid4(), "display_name": "C"} for _ in range(per_tick)]
            work = [
                {
                    "id": uuid.uuid4(),
                    "customer_id": c["id"],
                    "channel": Channel.CHAT,
                    "queue_id": queue_id,
                    "state": State.QUEUED,
                    "version": 2,
                    "queued_at": now,
                    "virtual_start_at": now,
                }
                for c in customers
            ]
            async with self.db.sessionmaker() as s:
                await s.execute(insert(Customer), customers)
                await s.execute(insert(Interaction), work)
                await s.commit()
            async with self.client.pipeline(transaction=False) as pipe:
                for w in work:
                    self.created[str(w["id"])] = time.monotonic()
                    pipe.xadd(
                        commands.stream_key(),
                        {"c": commands.encode(commands.Enqueue(interaction_id=str(w["id"])))[1]},
                    )
                await pipe.execute()
            next_at += tick
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _queue_id(self) -> uuid.UUID:
        async with self.db.sessionmaker() as s:
            return (await s.execute(text("SELECT id FROM queues LIMIT 1"))).scalar_one()

    async def listen(self) -> None:
        pubsub = self.client.pubsub()
        await pubsub.psubscribe(bus.PREFIX + "agent:*")
        try:
            async for message in pubsub.listen():
                if message["type"] != "pmessage":
                    continue
                agent = message["channel"].rsplit(":", 1)[1]
                if agent not in self.agents:
                    continue  # another bench's or test's agents (pub/sub ignores Redis databases)
                body = json.loads(message["data"])
                if body.get("type") == "offer":
                    created = self.created.get(body["interaction_id"])
                    if created is not None:
                        self.offer_delay.append(time.monotonic() - created)
                    self.later(ACCEPT_AFTER, self.accept(body["offer_id"], agent, body["interaction_id"]))
                elif body.get("type") == "offer_closed":
                    self.closed[body.get("reason", "?")] += 1
        finally:
            await pubsub.aclose()

    async def accept(self, offer_id: str, agent: str, interaction_id: str) -> None:
        reply = await self.call(
            "accept", commands.Accept(offer_id=offer_id, agent_id=agent, received_at=time.time())
        )
        if reply.get("ok"):
            self.later(HANDLE, self.wrap_up(interaction_id, agent))

    async def wrap_up(self, interaction_id: str, agent: str) -> None:
        command = commands.WrapUp(interaction_id=interaction_id, agent_id=agent)
        self.wrap_ups += 1
        if time.monotonic() >= self.next_conflict and self.next_conflict:
            # The agent finishes the chat on their own screen just before the engine wraps it up.
            self.next_conflict = time.monotonic() + self.args.conflict_every
            self.conflicting.add(interaction_id)
            await self._finish_in_sql(interaction_id, agent)
            self.conflict_at.append(time.monotonic())
            if not (await self.call("wrap_up", command)).get("ok"):
                self.conflicts_refused += 1
            return
        if self.wrap_ups % 5 == 0:
            # The agent saves their wrap-up code while the engine moves the chat to wrap-up.
            self.raced_code.append(interaction_id)
            reply, _ = await asyncio.gather(
                self.call("wrap_up", command), self._save_code(interaction_id, agent)
            )
        else:
            reply = await self.call("wrap_up", command)
        if reply.get("ok"):
            self.later(WRAP, self.complete(interaction_id, agent))
        elif interaction_id in self.raced_code and reply.get("reason") != NO_ANSWER:
            self.raced_code_refused += 1

    async def complete(self, interaction_id: str, agent: str) -> None:
        reply = await self.call("complete", commands.Complete(interaction_id=interaction_id, agent_id=agent))
        if reply.get("ok"):
            self.completed += 1

    async def _finish_in_sql(self, interaction_id: str, agent: str) -> None:
        async with self.db.sessionmaker() as s:
            for to in (State.WRAP_UP, State.COMPLETED):
                await interactions_service.transition(
                    s,
                    interaction_id=uuid.UUID(interaction_id),
                    to_state=to,
                    actor_type=ActorType.AGENT,
                    actor_id=agent,
                    reason="finished on the agent's own screen",
                )
            await s.commit()

    async def _save_code(self, interaction_id: str, agent: str) -> None:
        with contextlib.suppress(Exception):  # a refused save is the agent's retry, not the engine's
            async with self.db.sessionmaker() as s:
                await interactions_service.set_disposition(
                    s,
                    interaction_id=uuid.UUID(interaction_id),
                    disposition="resolved",
                    actor=interactions_service.Actor(ActorType.AGENT, agent),
                )
                await s.commit()


async def verdict(db: Database, floor: Floor) -> dict[str, Any]:
    ids = [uuid.UUID(i) for i in floor.created]
    async with db.sessionmaker() as s:
        rescinded = (
            await s.execute(
                select(Offer.interaction_id, Offer.reason).where(
                    Offer.interaction_id.in_(ids), Offer.state == OfferState.RESCINDED
                )
            )
        ).all()
        twice = await s.scalar(
            select(func.count()).select_from(
                select(Offer.interaction_id)
                .where(Offer.interaction_id.in_(ids), Offer.state == OfferState.ACCEPTED)
                .group_by(Offer.interaction_id)
                .having(func.count() > 1)
                .subquery()
            )
        )
        states = Counter(
            dict(
                (
                    await s.execute(
                        select(Interaction.state, func.count())
                        .where(Interaction.id.in_(ids))
                        .group_by(Interaction.state)
                    )
                ).all()
            )
        )
    others = [(i, r) for i, r in rescinded if str(i) not in floor.conflicting]
    return {
        "rescinded_other": len(others),
        "rescinded_other_reasons": dict(Counter(r for _, r in others)),
        "accepted_twice": int(twice or 0),
        "states": {k.value: v for k, v in states.items()},
    }


def start_host(schema: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--serve", schema], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=400)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--conflict-every", type=float, default=2.0)
    parser.add_argument("--serve", default="", help=argparse.SUPPRESS)  # the engine's process
    args = parser.parse_args()
    if args.serve:
        await serve(args.serve)
        return
    schema = f"bench_conflict_{os.getpid()}"
    await migrate(schema)
    db = Database(PG_URL, schema=schema)
    # As the app's clients: a burst of calls waits for a pooled connection instead of failing.
    pool = aioredis.BlockingConnectionPool.from_url(
        REDIS_URL, max_connections=100, timeout=10, decode_responses=True
    )
    client = aioredis.Redis(connection_pool=pool)
    keys = [
        commands.stream_key(),
        commands.urgent_stream_key(),
        commands.cursor_key(),
        commands.urgent_cursor_key(),
    ]
    await client.delete(*keys, rkey("engine", "default", "lease"))
    host: subprocess.Popen[str] | None = None
    try:
        await seed_agents(db, args.agents)
        async with db.sessionmaker() as s:
            agents = {str(a) for a in (await s.execute(text("SELECT id FROM agents"))).scalars()}
        host = start_host(schema)
        while True:  # the engine's process took the lease
            if await client.exists(rkey("engine", "default", "lease")):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # the take-over's rebuild
        floor = Floor(db, client, agents, args)
        listener = asyncio.create_task(floor.listen())
        await asyncio.sleep(0.2)
        host_cpu, pg_cpu, started = cpu_seconds(host.pid), postgres_cpu_seconds(), time.monotonic()
        own_cpu, host_waited = time.process_time(), runqueue_wait_seconds(host.pid)
        floor.next_conflict = started + args.conflict_every
        await floor.arrivals(started + args.seconds)
        deadline = time.monotonic() + 20
        while True:  # the loops in flight finish
            if not floor.tasks or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        host_cpu, pg_cpu = cpu_seconds(host.pid) - host_cpu, postgres_cpu_seconds() - pg_cpu
        own_cpu, host_waited = time.process_time(), runqueue_wait_seconds(host.pid) - own_cpu
        elapsed = time.monotonic() - started
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        found = await verdict(db, floor)
    finally:
        counts: dict[str, int] = {}
        if host is not None:
            host.send_signal(signal.SIGTERM)
            out, _ = host.communicate(timeout=30)
            with contextlib.suppress(ValueError, IndexError):
                counts = json.loads(out.strip().splitlines()[-1])
        await client.aclose()
        await db.dispose()
        admin = Database(PG_URL)
        async with admin.engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await admin.dispose()

    every = [lat for kind in floor.latency.values() for _, lat in kind]
    near_conflict = [
        lat
        for kind in floor.latency.values()
        for sent, lat in kind
        if any(0 <= sent - c <= 1.0 for c in floor.conflict_at)
    ]
    loops = max(1, floor.completed + len(floor.conflicting))
    results = {
        "load_average_1m": round(os.getloadavg()[0], 2),
        "agents": args.agents,
        "rate_per_s": round(len(floor.created) / args.seconds, 1),
        "created": len(floor.created),
        "loops_completed": floor.completed,
        "conflicts": len(floor.conflicting),
        "conflicts_refused": floor.conflicts_refused,
        "rescinded_other": found["rescinded_other"],
        "rescinded_other_reasons": found["rescinded_other_reasons"],
        "offer_closed_reasons": dict(floor.closed),
        "longest_stall_ms": round(max(every) * 1000, 1) if every else None,
        "longest_stall_near_conflict_ms": round(max(near_conflict) * 1000, 1) if near_conflict else None,
        "command_p50_ms": round(percentile(every, 0.5) * 1000, 1),
        "command_p99_ms": round(percentile(every, 0.99) * 1000, 1),
        "offer_p50_ms": round(percentile(floor.offer_delay, 0.5) * 1000, 1),
        "offer_p99_ms": round(percentile(floor.offer_delay, 0.99) * 1000, 1),
        "code_raced_wrap_ups": len(floor.raced_code),
        "code_raced_wrap_ups_refused": floor.raced_code_refused,
        "refusals": dict(floor.refused),
        "accepted_twice": found["accepted_twice"],
        "not_finished": sum(v for k, v in found["states"].items() if k != State.COMPLETED.value),
        "states": found["states"],
        "engine_cpu_ms_per_loop": round(host_cpu * 1000 / loops, 2),
        "postgres_cpu_ms_per_loop": round(pg_cpu * 1000 / loops, 2),
        "bench_client_cpu_share": round(own_cpu / elapsed, 2),
        "engine_cpu_share": round(host_cpu / elapsed, 2),
        "engine_waited_for_cpu_share": round(host_waited / elapsed, 2),
        "engine_longest_ms": counts.get("longest_ms"),
        "engine_p99_ms": counts.get("p99_ms"),
        "engine_statements_total": counts.get("statements"),
        "engine_commits_total": counts.get("commits"),
        "seconds": round(elapsed, 1),
    }
    longest = counts.get("longest_ms") or {}
    engine_longest = max(longest.values(), default=None)
    conflict_longest = longest.get("group commit")
    print_figures(
        [
            ("chats created per second", results["rate_per_s"], f"~{args.rate:g}"),
            (
                "conflicts (SQL refused the engine's wrap-up)",
                f"{results['conflicts']} / {results['conflicts_refused']}",
                "-",
            ),
            ("offers rescinded other than the conflicting", results["rescinded_other"], "0"),
            ("longest the engine spent on one command or group (ms)", engine_longest, "<= 50"),
            ("  longest group commit (conflicts' repairs included) (ms)", conflict_longest, "<= 50"),
            ("  longest local repair of a conflict (ms)", longest.get("repair"), "<= 50"),
            ("longest command wait seen by its caller (ms)", results["longest_stall_ms"], "-"),
            ("  within 1 s after a conflict (ms)", results["longest_stall_near_conflict_ms"], "-"),
            (
                "command reply p50 / p99 (ms)",
                f"{results['command_p50_ms']} / {results['command_p99_ms']}",
                "-",
            ),
            ("create -> offer p50 / p99 (ms)", f"{results['offer_p50_ms']} / {results['offer_p99_ms']}", "-"),
            (
                "wrap-ups raced by a wrap-up code save, refused",
                f"{results['code_raced_wrap_ups_refused']} of {results['code_raced_wrap_ups']}",
                "0",
            ),
            (
                "accepted twice / not finished",
                f"{results['accepted_twice']} / {results['not_finished']}",
                "0 / 0",
            ),
            ("engine process CPU per loop (ms)", results["engine_cpu_ms_per_loop"], "-"),
            ("engine: share of the run it waited for a CPU", results["engine_waited_for_cpu_share"], "-"),
            ("PostgreSQL CPU per loop (ms, whole host)", results["postgres_cpu_ms_per_loop"], "-"),
        ],
        results,
    )


if __name__ == "__main__":
    asyncio.run(main())

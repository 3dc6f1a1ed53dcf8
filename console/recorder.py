"""The wallboard's recorder (issue #11 item 1): what the routing engine does not keep per interval,
sampled every ``SAMPLE_S`` seconds into Redis by ONE app process at a time (a short ``SET NX``
lock; every process runs the loop, so it survives any of them stopping):

* **occupancy today** per agent, as Genesys Cloud defines it: time *interacting* divided by time
  *on queue*, where on queue = interacting + idle (Genesys: Interacting + Communicating + Idle
  routing-status time; off-queue presences such as break, training and not responding count in
  neither). Here an agent is on queue when available, busy or in wrap-up, and interacting when
  holding connected or after-contact work (Genesys keeps the routing status Interacting through
  ACW) or shown busy / wrap-up. Each sample credits the time since the previous one to the state
  seen now, so the figure is exact to within a sample per state change.
* **waiting** per queue per 15-minute interval: the peak of the engine's published figure.
* **arrivals** per queue per 15-minute interval: interactions whose ``queued_at`` falls in the
  interval, counted a few seconds at a time behind a watermark (an index on ``queued_at`` keeps
  each read to the last few seconds' rows). Entries still unrouted ``LAG_S`` after being queued
  are not counted (they have no queue yet).

Service level per interval needs no sampling: ``routing.history`` keeps it exactly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interactions.models import Interaction
from interactions.states import State
from routing.history import interval_start
from routing.host import stats_key
from switchboard.db import utcnow
from workforce.models import Agent, Presence, Queue

log = logging.getLogger(__name__)

SAMPLE_S = 5.0
LAG_S = 2.0  # let the engine commit a queued interaction's queue before counting it
CATCH_UP = timedelta(minutes=15)  # after an outage, count at most this much backwards
KEEP_S = 26 * 3600
LOCK_KEY = "wallboard:recorder:lock"
LAST_KEY = "wallboard:recorder:last"  # epoch seconds of the previous sample
MARK_KEY = "wallboard:recorder:arrivals-mark"  # queued_at counted up to (ISO)
ON_QUEUE = (Presence.AVAILABLE, Presence.BUSY, Presence.WRAP_UP)
WORKING = (Presence.BUSY, Presence.WRAP_UP)

# HSET field to value only when it is larger (the interval's peak).
_MAX = """
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 0
"""


def occupancy_key(day: date) -> str:
    return f"wallboard:occupancy:{day.isoformat()}"


def interval_key(kind: str, start: datetime) -> str:
    return f"wallboard:{kind}:{start.astimezone(UTC):%Y%m%dT%H%M}"


async def sample(
    session: AsyncSession, client: aioredis.Redis, *, now: datetime, elapsed: float | None = None
) -> dict[str, int]:
    """Take one sample (tests call this directly; the loop calls it under the lock)."""
    if elapsed is None:
        previous = await client.getset(LAST_KEY, repr(now.timestamp()))
        elapsed = SAMPLE_S if previous is None else now.timestamp() - float(previous)
        await client.expire(LAST_KEY, KEEP_S)
    # A gap (nobody sampled) is not credited to whatever state is seen now.
    credit_ms = round(min(max(elapsed, 0.0), 2 * SAMPLE_S) * 1000)
    pipe = client.pipeline(transaction=False)
    agents = 0
    if credit_ms:
        busy = (
            select(Interaction.agent_id)
            .where(Interaction.state.in_([State.CONNECTED, State.WRAP_UP]), Interaction.agent_id.is_not(None))
            .distinct()
        )
        holding = set((await session.scalars(busy)).all())
        key = occupancy_key(now.date())
        for agent_id, presence in await session.execute(
            select(Agent.id, Agent.presence).where(Agent.presence.in_(ON_QUEUE))
        ):
            agents += 1
            pipe.hincrby(key, f"{agent_id}:on", credit_ms)
            if presence in WORKING or agent_id in holding:
                pipe.hincrby(key, f"{agent_id}:work", credit_ms)
        pipe.expire(key, 2 * 86_400)
    raw = await client.get(stats_key())
    slot = interval_start(now)
    if raw:
        for name, figures in (json.loads(raw).get("queues") or {}).items():
            pipe.eval(_MAX, 1, interval_key("waiting", slot), name, int(figures.get("waiting") or 0), KEEP_S)
    upto = now - timedelta(seconds=LAG_S)
    mark_raw = await client.getset(MARK_KEY, upto.isoformat())
    await client.expire(MARK_KEY, KEEP_S)
    mark = datetime.fromisoformat(str(mark_raw)) if mark_raw else upto - timedelta(seconds=SAMPLE_S)
    mark = max(mark, upto - CATCH_UP)
    arrivals = 0
    if mark < upto:
        counts: dict[tuple[datetime, str], int] = {}
        rows = await session.execute(
            select(Queue.name, Interaction.queued_at)
            .join(Queue, Queue.id == Interaction.queue_id)
            .where(Interaction.queued_at > mark, Interaction.queued_at <= upto)
        )
        for name, queued_at in rows:
            if queued_at is not None:
                slot_of = (interval_start(queued_at), name)
                counts[slot_of] = counts.get(slot_of, 0) + 1
        for (start, name), n in counts.items():
            pipe.hincrby(interval_key("arrivals", start), name, n)
            pipe.expire(interval_key("arrivals", start), KEEP_S)
            arrivals += n
    await pipe.execute()
    return {"agents": agents, "arrivals": arrivals}


async def occupancy_of(client: aioredis.Redis, agent_ids: list[object], *, day: date) -> dict[object, float]:
    """Occupancy today (0..1) of the agents given; an agent never sampled on queue is left out."""
    if not agent_ids:
        return {}
    fields = [f"{a}:{part}" for a in agent_ids for part in ("on", "work")]
    values = await client.hmget(occupancy_key(day), fields)
    out: dict[object, float] = {}
    for i, agent_id in enumerate(agent_ids):
        on, work = values[2 * i], values[2 * i + 1]
        if on and int(on) > 0:
            out[agent_id] = min(int(work or 0) / int(on), 1.0)
    return out


async def run(sessionmaker: Callable[[], AsyncSession], client: aioredis.Redis) -> None:
    """Every process runs this; the lock lets one of them sample per period."""
    me = f"{os.getpid()}:{id(client)}"
    while True:
        started = time.monotonic()
        try:
            if await client.set(LOCK_KEY, me, nx=True, px=int(SAMPLE_S * 900)):
                async with sessionmaker() as session:
                    await sample(session, client, now=utcnow())
                    await session.commit()
        except asyncio.CancelledError:
            raise
        except Exception:  # a database or Redis outage: try again next period
            log.warning("wallboard sample failed", exc_info=True)
        with contextlib.suppress(ValueError):
            await asyncio.sleep(max(SAMPLE_S - (time.monotonic() - started), 0.1))

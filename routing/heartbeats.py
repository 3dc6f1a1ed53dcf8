"""Desktop heartbeats in Redis: is an agent's desktop still there, on any app process?

An agent may hold desktop sockets on several app processes, so no process can tell alone that the
desktop vanished. Each socket records a beat (connect and every client ping) as the score of the
agent in one sorted set: the newest beat from anywhere wins. The engine leader's reconcile pass
claims the agents whose newest beat is older than the grace period, sets them offline and
rescinds their offers. Agents that never opened a desktop (API-only, seeded) are never in the set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable

import redis.asyncio as aioredis

from switchboard.redis import rkey

log = logging.getLogger(__name__)

BEATS_KEY = rkey("desktop", "beats")

# Claim atomically only members still older than the cutoff: a desktop that beat again between
# our read and our claim (a reconnect) is left alone.
_CLAIM = """
local claimed = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])) do
  redis.call('ZREM', KEYS[1], member)
  table.insert(claimed, member)
end
return claimed
"""


async def beat(client: aioredis.Redis, agent_id: uuid.UUID | str, *, now: float | None = None) -> None:
    """This agent's desktop is alive now (called by its sockets)."""
    await client.zadd(BEATS_KEY, {str(agent_id): time.time() if now is None else now})


async def claim_vanished(
    client: aioredis.Redis, *, grace_seconds: float, now: float | None = None
) -> list[str]:
    """Agents with no beat from any socket for ``grace_seconds``; removed from the set as claimed."""
    cutoff = (time.time() if now is None else now) - grace_seconds
    claimed: Iterable[str] = await client.eval(_CLAIM, 1, BEATS_KEY, repr(cutoff))
    return list(claimed)


async def restore(client: aioredis.Redis, agent_ids: Iterable[str], *, at: float) -> None:
    """Put claimed agents back (their processing failed): the next pass tries again."""
    mapping = {a: at for a in agent_ids}
    if mapping:
        await client.zadd(BEATS_KEY, mapping, nx=True)


class BeatBatcher:
    """One ZADD per interval for all the sockets of a process, instead of one per ping.

    With 5,000 sockets pinging every 5-10 s, per-ping writes were 500-1,000 Redis round trips a
    second in one process; the engine only needs to know "seen within the grace period".
    """

    def __init__(self, client: aioredis.Redis, *, interval: float) -> None:
        self.client = client
        self.interval = interval
        self._seen: set[str] = set()
        self._stopping = asyncio.Event()

    def mark(self, agent_id: uuid.UUID | str) -> None:
        self._seen.add(str(agent_id))

    async def flush(self) -> None:
        seen, self._seen = self._seen, set()
        if seen:
            now = time.time()
            try:
                await self.client.zadd(BEATS_KEY, dict.fromkeys(seen, now))
            except (aioredis.RedisError, OSError) as exc:
                self._seen |= seen  # retried next interval; the grace period covers a blip
                log.warning("desktop heartbeats not recorded: %s", exc)

    async def run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
            await self.flush()

    async def stop(self) -> None:
        self._stopping.set()

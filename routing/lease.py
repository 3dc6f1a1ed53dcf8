"""The engine lease: one process per partition runs the matching engine; the others stand by.

The lease is a Redis key with a TTL that the holder renews. Each acquisition takes a new, higher
**epoch** (fencing token). Redis may lose the counter (it only holds rebuildable state), so the
holder lifts it above the epoch SQL last accepted; SQL then rejects any write from an older epoch
(``routing.store.fence``). A paused or partitioned old holder therefore cannot commit decisions
after a new holder has started, even if it still believes it holds the lease.

A holder whose lease lapsed only because its own process was busy (no renewal within the TTL)
takes it back at the same epoch if nobody acquired it meanwhile, instead of rebuilding (which
rescinds every live offer on the floor).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis

from switchboard.redis import rkey

# Extend our lease; or, if it lapsed (our process was too busy to renew in time) and nobody has
# acquired it since (every acquisition raises the epoch counter), take it back at the same epoch:
# no other leader existed, so nothing was decided behind our back and no take-over is needed.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not holder and redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass
class Lease:
    partition: str
    holder: str
    epoch: int


class LeaseManager:
    def __init__(self, client: aioredis.Redis, *, partition: str = "default", ttl_ms: int = 5000) -> None:
        self.client = client
        self.partition = partition
        self.ttl_ms = ttl_ms
        self.holder = f"{uuid.uuid4()}"
        self._lease_key = rkey("engine", partition, "lease")
        self._epoch_key = rkey("engine", partition, "epoch")
        self._epoch = 0  # of the lease we last acquired (0: none)

    async def try_acquire(self, *, min_epoch: int = 0) -> Lease | None:
        """Take the lease if nobody holds it. ``min_epoch``: the newest epoch SQL has accepted."""
        if not await self.client.set(self._lease_key, self.holder, nx=True, px=self.ttl_ms):
            return None
        epoch = int(await self.client.incr(self._epoch_key))
        if epoch <= min_epoch:
            # Redis lost its counter (restart, failover): jump past what SQL has seen.
            epoch = min_epoch + 1
            await self.client.set(self._epoch_key, epoch)
        self._epoch = epoch
        return Lease(partition=self.partition, holder=self.holder, epoch=epoch)

    async def renew(self) -> bool:
        """Extend our lease (or take it back at the same epoch if it lapsed with nobody taking it
        since); False means we lost it and must stop writing at once."""
        keys_and_args = (self._lease_key, self._epoch_key, self.holder, self.ttl_ms, self._epoch or "")
        return bool(await self.client.eval(_RENEW, 2, *keys_and_args))

    async def release(self) -> None:
        await self.client.eval(_RELEASE, 1, self._lease_key, self.holder)

    async def lapses_in(self) -> float | None:
        """Seconds until the current lease lapses unless renewed; None when nobody holds it."""
        remaining = int(await self.client.pttl(self._lease_key))
        return remaining / 1000 if remaining >= 0 else None

    async def current_holder(self) -> str | None:
        return await self.client.get(self._lease_key)

"""The engine lease: one process per partition runs the matching engine; the others stand by.

The lease is a Redis key with a TTL that the holder renews. Each acquisition takes a new, higher
**epoch** (fencing token). Redis may lose the counter (it only holds rebuildable state), so the
holder lifts it above the epoch SQL last accepted; SQL then rejects any write from an older epoch
(``routing.store.fence``). A paused or partitioned old holder therefore cannot commit decisions
after a new holder has started, even if it still believes it holds the lease.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis

from switchboard.redis import rkey

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
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

    async def try_acquire(self, *, min_epoch: int = 0) -> Lease | None:
        """Take the lease if nobody holds it. ``min_epoch``: the newest epoch SQL has accepted."""
        if not await self.client.set(self._lease_key, self.holder, nx=True, px=self.ttl_ms):
            return None
        epoch = int(await self.client.incr(self._epoch_key))
        if epoch <= min_epoch:
            # Redis lost its counter (restart, failover): jump past what SQL has seen.
            epoch = min_epoch + 1
            await self.client.set(self._epoch_key, epoch)
        return Lease(partition=self.partition, holder=self.holder, epoch=epoch)

    async def renew(self) -> bool:
        """Extend our lease; False means we lost it and must stop writing at once."""
        return bool(await self.client.eval(_RENEW, 1, self._lease_key, self.holder, self.ttl_ms))

    async def release(self) -> None:
        await self.client.eval(_RELEASE, 1, self._lease_key, self.holder)

    async def current_holder(self) -> str | None:
        return await self.client.get(self._lease_key)

from __future__ import annotations

import asyncio

from routing.lease import LeaseManager


async def test_one_holder_and_rising_epochs(redis_handle, redis_sync):
    client = redis_handle.async_client()
    a = LeaseManager(client, partition="t", ttl_ms=300)
    b = LeaseManager(client, partition="t", ttl_ms=300)

    first = await a.try_acquire()
    assert first is not None
    assert await b.try_acquire() is None  # held
    assert await b.renew() is False  # a non-holder cannot extend it
    assert await a.renew() is True

    await asyncio.sleep(0.4)  # a stops renewing: the lease lapses
    second = await b.try_acquire()
    assert second is not None and second.epoch > first.epoch
    assert await a.renew() is False  # the old holder learns it lost the lease
    await a.release()  # releasing someone else's lease does nothing
    assert await b.current_holder() == b.holder
    await b.release()
    assert await b.current_holder() is None
    await client.aclose()


async def test_epoch_jumps_past_sql_after_redis_lost_counter(redis_handle, redis_sync):
    client = redis_handle.async_client()
    manager = LeaseManager(client, partition="lost", ttl_ms=1000)
    lease = await manager.try_acquire(min_epoch=41)  # SQL saw epoch 41, Redis starts from nothing
    assert lease is not None and lease.epoch == 42
    await client.aclose()

from __future__ import annotations

from routing.lease import LeaseManager
from tests.helpers import eventually


async def test_one_holder_and_rising_epochs(redis_handle, redis_sync):
    client = redis_handle.async_client()
    a = LeaseManager(client, partition="t", ttl_ms=300)
    b = LeaseManager(client, partition="t", ttl_ms=300)

    first = await a.try_acquire()
    assert first is not None
    assert await b.try_acquire() is None  # held
    assert await b.renew() is False  # a non-holder cannot extend it
    assert await a.renew() is True

    # a stops renewing: the lease lapses (Redis expires the key after its TTL).
    async def lapsed() -> bool:
        return await b.current_holder() is None

    await eventually(lapsed, within=2, what="the lease to lapse")
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


async def test_a_lapse_nobody_took_is_resumed_at_the_same_epoch(redis_handle, redis_sync):
    """A holder too busy to renew in time keeps leading if nobody acquired the lease meanwhile:
    no take-over (which rescinds every live offer) for a pause alone."""
    client = redis_handle.async_client()
    a = LeaseManager(client, partition="busy", ttl_ms=200)
    b = LeaseManager(client, partition="busy", ttl_ms=200)
    lease = await a.try_acquire()
    assert lease is not None

    async def lapsed() -> bool:
        return await a.current_holder() is None

    await eventually(lapsed, within=2, what="the lease to lapse")
    assert await b.renew() is False  # never held: nothing to resume
    assert await a.renew() is True
    assert await a.current_holder() == a.holder
    assert await b.try_acquire() is None  # held again
    await client.aclose()


async def test_a_standby_knows_when_the_lease_lapses(redis_handle, redis_sync):
    """A standby sleeps until just after the holder's lease would lapse, not a whole poll more."""
    client = redis_handle.async_client()
    holder = LeaseManager(client, partition="watch", ttl_ms=3000)
    standby = LeaseManager(client, partition="watch", ttl_ms=3000)
    assert await standby.lapses_in() is None  # nobody holds it
    assert await holder.try_acquire() is not None
    lapses_in = await standby.lapses_in()
    assert lapses_in is not None and 2.0 < lapses_in <= 3.0
    await holder.release()
    assert await standby.lapses_in() is None
    await client.aclose()

"""Fan-out crosses processes: two hubs on separate Redis connections stand in for two app processes."""

from __future__ import annotations

import asyncio
import uuid

from switchboard.events import EventHub, agent_topic, publish


async def test_event_published_by_one_process_reaches_subscriber_on_another(redis_handle, redis_sync):
    client_a = redis_handle.async_client()
    client_b = redis_handle.async_client()
    # Pub/sub channels are server-wide (not per Redis db): unique ids keep parallel runs apart.
    mine, other = str(uuid.uuid4()), str(uuid.uuid4())
    hub_b = EventHub(client_b)
    await hub_b.start()
    try:
        async with hub_b.subscribe(agent_topic(mine)) as queue:
            await asyncio.sleep(0.05)  # the subscription is live
            listeners = await publish(client_a, agent_topic(mine), {"type": "offer", "n": 1})
            await publish(client_a, agent_topic(other), {"type": "offer", "n": 2})
            assert listeners >= 1
            event = await asyncio.wait_for(queue.get(), timeout=2)
            assert event == {"type": "offer", "n": 1}
            await asyncio.sleep(0.1)
            assert queue.empty()  # not subscribed to the other agent's topic
    finally:
        await hub_b.stop()
        await client_a.aclose()
        await client_b.aclose()

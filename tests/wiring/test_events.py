"""Fan-out crosses processes: two hubs on separate Redis connections stand in for two app processes."""

from __future__ import annotations

import asyncio
import uuid

from switchboard.events import EventHub, StreamingPublisher, agent_topic, publish
from tests.helpers import eventually


async def _listening(hub: EventHub, client) -> None:
    """Until Redis delivers to ``hub`` (its PSUBSCRIBE has been processed): a probe on a topic of
    its own, so the test's own subscription sees nothing extra."""
    probe = agent_topic(str(uuid.uuid4()))
    async with hub.subscribe(probe) as heard:

        async def delivered() -> bool:
            await publish(client, probe, {"type": "probe"})
            return not heard.empty()

        await eventually(delivered, within=5, what="the hub's subscription to be live")


async def test_event_published_by_one_process_reaches_subscriber_on_another(redis_handle, redis_sync):
    client_a = redis_handle.async_client()
    client_b = redis_handle.async_client()
    # Pub/sub channels are server-wide (not per Redis db): unique ids keep parallel runs apart.
    mine, other = str(uuid.uuid4()), str(uuid.uuid4())
    hub_b = EventHub(client_b)
    await hub_b.start()
    try:
        async with hub_b.subscribe(agent_topic(mine)) as queue:
            await _listening(hub_b, client_a)
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


async def test_streaming_publisher_delivers_in_order_and_reconnects(redis_handle, redis_sync):
    """The engine's publisher writes without waiting for replies: same delivery, same order, and
    a dropped connection costs at most what was in flight (pub/sub's own guarantee)."""
    publishing, listening = redis_handle.async_client(), redis_handle.async_client()
    publisher = StreamingPublisher(publishing)
    topic = agent_topic(str(uuid.uuid4()))
    hub = EventHub(listening)
    await hub.start()
    try:
        async with hub.subscribe(topic) as queue:
            await _listening(hub, publishing)
            await publisher.publish_many([(topic, {"n": n, "text": "é" * n}) for n in range(3)])
            received = [await asyncio.wait_for(queue.get(), timeout=2) for _ in range(3)]
            assert received == [{"n": n, "text": "é" * n} for n in range(3)]
            # Redis drops the publisher's connection (a restart, a network blip): only that one,
            # other test runs share this server.
            sockname = publisher._writer.get_extra_info("sockname")
            if isinstance(sockname, tuple):
                assert await publishing.client_kill_filter(addr=f"{sockname[0]}:{sockname[1]}") == 1
            else:  # a unix socket (embedded Redis) has no address of its own: drop it from our side
                publisher._writer.transport.abort()

            async def dropped() -> bool:  # its reader saw the connection end: the next call reconnects
                return publisher._writer is None

            await eventually(dropped, within=5, what="the publisher to notice its dropped connection")
            await publisher.publish_many([(topic, {"n": "after"})])
            assert await asyncio.wait_for(queue.get(), timeout=2) == {"n": "after"}
    finally:
        await publisher.aclose()
        await hub.stop()
        await publishing.aclose()
        await listening.aclose()

"""Cross-process fan-out of live events (offers, timeline updates, queue stats) over Redis pub/sub.

Every app process runs one ``EventHub``: a single Redis subscription per process (not per
socket) with a local registry of subscriber queues per topic. A websocket on process B receives
what process A published. Pub/sub is fire-and-forget by design: a socket that reconnects asks for
a full state resync instead of relying on missed messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

PREFIX = "sb:events:"


def agent_topic(agent_id: object) -> str:
    return f"agent:{agent_id}"


def customer_topic(customer_id: object) -> str:
    return f"customer:{customer_id}"


def interaction_topic(interaction_id: object) -> str:
    return f"interaction:{interaction_id}"


async def publish(client: aioredis.Redis, topic: str, event: dict[str, Any]) -> int:
    """Publish to every process; returns how many processes were listening."""
    return int(await client.publish(PREFIX + topic, json.dumps(event, default=str)))


async def publish_many(client: aioredis.Redis, events: list[tuple[str, dict[str, Any]]]) -> None:
    """Publish several events in one round trip (a pipeline keeps their order)."""
    async with client.pipeline(transaction=False) as pipe:
        for topic, event in events:
            pipe.publish(PREFIX + topic, json.dumps(event, default=str))
        await pipe.execute()


class EventHub:
    def __init__(self, client: aioredis.Redis, *, max_pending: int = 1000) -> None:
        self.client = client
        self.max_pending = max_pending
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        await self._pubsub.psubscribe(PREFIX + "*")
        self._task = asyncio.create_task(self._pump(), name="event-hub")
        self._ready.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._pubsub.aclose()

    async def _pump(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (ConnectionError, aioredis.ConnectionError):  # Redis blip: back off, resubscribe
                log.warning("event hub lost Redis; retrying")
                await asyncio.sleep(0.5)
                continue
            if message is None or message["type"] != "pmessage":
                continue
            topic = message["channel"][len(PREFIX) :]
            try:
                event = json.loads(message["data"])
            except (TypeError, ValueError):
                log.warning("dropping undecodable event on %s", topic)
                continue
            for queue in list(self._subscribers.get(topic, ())):
                if queue.qsize() >= self.max_pending:
                    # A stuck consumer must not grow memory without bound; it will resync.
                    continue
                queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for topic in topics:
            self._subscribers[topic].add(queue)
        try:
            yield queue
        finally:
            for topic in topics:
                self._subscribers[topic].discard(queue)
                if not self._subscribers[topic]:
                    del self._subscribers[topic]

    def add_topics(self, queue: asyncio.Queue[dict[str, Any]], *topics: str) -> None:
        """Widen a live subscription (e.g. the desktop starts following a new customer)."""
        for topic in topics:
            self._subscribers[topic].add(queue)

    def remove_topics(self, queue: asyncio.Queue[dict[str, Any]], *topics: str) -> None:
        """Narrow a live subscription (the desktop stops following a customer)."""
        for topic in topics:
            subscribers = self._subscribers.get(topic)
            if subscribers is None:
                continue
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[topic]

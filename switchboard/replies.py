"""The engine's replies, delivered to waiting callers without a Redis connection per caller.

Each process has ONE inbox (a Redis list ``sb:routing:inbox:<token>``) and one task reading it.
A request id names its inbox (``<token>.<uuid>``); the engine pushes the reply there and the
listener resolves the waiting caller's future. Before, every caller blocked on its own reply list
and held a pooled connection for up to 4 s: past the pool's size (100) every Redis call of the
process failed, health checks and creates included.

A list rather than pub/sub: a reply pushed while the listener reconnects (a Redis blip) waits
for it instead of being lost. The engine also keeps each reply for a while under the request id
(``result_key``), so a caller that stopped waiting can still learn the outcome (``GET
/api/routing/commands/{id}``, see ``routing.api``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
import weakref
from collections.abc import Iterator
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from switchboard.redis import rkey
from switchboard.tasks import cancel_and_wait

log = logging.getLogger(__name__)

INBOX_TTL_SECONDS = 60  # an inbox whose process died goes away on its own
RESULT_TTL_SECONDS = 600  # how long a caller that stopped waiting can still read the outcome
DRAIN = 500  # replies taken per round trip after the blocking pop


def inbox_key(token: str) -> str:
    return rkey("routing", "inbox", token)


def result_key(request_id: str) -> str:
    return rkey("routing", "result", request_id)


def inbox_of(request_id: str) -> str | None:
    token, sep, _ = request_id.partition(".")
    return inbox_key(token) if sep else None


async def deliver(client: aioredis.Redis, request_id: str, body: dict[str, Any]) -> None:
    """The engine's side: the reply to its caller's inbox, and kept under the request id."""
    await deliver_many(client, [(request_id, body)])


async def deliver_many(client: aioredis.Redis, answers: list[tuple[str, dict[str, Any]]]) -> None:
    """``deliver`` for several requests in one round trip (a group of commands committed together)."""
    if not answers:
        return
    async with client.pipeline(transaction=False) as pipe:
        for request_id, body in answers:
            payload = json.dumps(body, default=str)
            inbox = inbox_of(request_id)
            if inbox is not None:
                pipe.rpush(inbox, json.dumps({"id": request_id, "body": payload}))
                pipe.expire(inbox, INBOX_TTL_SECONDS)
            pipe.set(result_key(request_id), payload, ex=RESULT_TTL_SECONDS)
        await pipe.execute()


async def stored_result(client: aioredis.Redis, request_id: str) -> dict[str, Any] | None:
    raw = await client.get(result_key(request_id))
    return None if raw is None else json.loads(raw)


def pending_key(request_id: str) -> str:
    return rkey("routing", "pending", request_id)


async def remember_pending(client: aioredis.Redis, request_id: str, *, owner: str) -> None:
    """A caller stopped waiting and was handed a status link: only ``owner`` may follow it."""
    await client.set(pending_key(request_id), owner, ex=RESULT_TTL_SECONDS)


async def pending_owner(client: aioredis.Redis, request_id: str) -> str | None:
    owner = await client.get(pending_key(request_id))
    return owner.decode() if isinstance(owner, bytes) else owner


class ReplyListener:
    """One per process (per Redis client the app uses): one blocking read for all its waiters.

    ``client`` must be its own (its connection blocks on the inbox). ``idle_seconds``: stop after
    that long without waiters (listeners made on demand outside an app); None runs until stopped.
    """

    def __init__(
        self, client: aioredis.Redis, *, block_seconds: float = 1.0, idle_seconds: float | None = None
    ) -> None:
        self.client = client
        self.token = uuid.uuid4().hex
        self.key = inbox_key(self.token)
        self.block_seconds = block_seconds
        self.idle_seconds = idle_seconds
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="routing-replies")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        for future in self._waiters.values():
            future.cancel()  # their callers report "no answer in time"
        self._waiters.clear()

    def new_request_id(self) -> str:
        return f"{self.token}.{uuid.uuid4().hex}"

    @contextlib.contextmanager
    def expect(self, request_id: str) -> Iterator[asyncio.Future[dict[str, Any]]]:
        """Register the waiter BEFORE sending the command: the reply may come back first."""
        self.start()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = future
        try:
            yield future
        finally:
            self._waiters.pop(request_id, None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.05
        idle_since = loop.time()
        while True:
            if self._waiters:
                idle_since = loop.time()
            elif self.idle_seconds is not None and loop.time() - idle_since > self.idle_seconds:
                self._task = None  # checked and left with no await between: expect() restarts us
                return
            try:
                popped = await self.client.blpop([self.key], timeout=self.block_seconds)
                if popped is None:
                    continue
                batch = [popped[1], *(await self.client.lpop(self.key, DRAIN) or ())]
                backoff = 0.05
            except (redis.exceptions.RedisError, OSError) as exc:
                # Redis restarting: waiters keep waiting (up to their own timeout); so do we.
                log.warning("routing replies: inbox read failed (%s); retrying in %.2f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            for raw in batch:
                self._resolve(raw)

    def _resolve(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
            request_id, body = message["id"], json.loads(message["body"])
        except (ValueError, KeyError, TypeError):
            log.warning("routing replies: malformed reply %r dropped", raw)
            return
        future = self._waiters.get(request_id)
        if future is not None and not future.done():
            future.set_result(body)
        # No waiter: it timed out and was told where to read the outcome (``stored_result``).


_listeners: weakref.WeakKeyDictionary[aioredis.Redis, ReplyListener] = weakref.WeakKeyDictionary()


def register(client: aioredis.Redis, listener: ReplyListener) -> None:
    """Engine calls made with ``client`` wait through ``listener`` (the app does this at start)."""
    _listeners[client] = listener


def unregister(client: aioredis.Redis) -> None:
    _listeners.pop(client, None)


def listener_for(client: aioredis.Redis) -> ReplyListener:
    """The listener registered for ``client``; a caller outside an app (a script, a test) gets one
    made on demand on a connection of its own, which stops once idle."""
    listener = _listeners.get(client)
    if listener is None:
        pool = client.connection_pool
        own = aioredis.Redis(
            connection_pool=type(pool)(
                connection_class=pool.connection_class, max_connections=2, **pool.connection_kwargs
            )
        )
        listener = _listeners[client] = ReplyListener(own, idle_seconds=30.0)
    return listener

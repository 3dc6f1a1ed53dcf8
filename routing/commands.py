"""Commands into the routing engine: one ordered Redis Stream per partition.

API processes never assign on their own (DESIGN §3): they append a command and, when the caller
needs the outcome (an agent clicking Accept), wait for the engine's reply on a per-request list.
Commands are idempotent against SQL, so the engine may re-read a few after a crash.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

log = logging.getLogger(__name__)

STREAM_MAXLEN = 100_000
REPLY_TTL_SECONDS = 60


def stream_key(partition: str = "default") -> str:
    return f"sb:routing:{partition}:commands"


def cursor_key(partition: str = "default") -> str:
    return f"sb:routing:{partition}:cursor"


def reply_key(request_id: str) -> str:
    return f"sb:routing:reply:{request_id}"


class EngineUnavailable(Exception):
    """No engine answered in time (none holds the lease, or it is rebuilding)."""


async def send(client: aioredis.Redis, command: dict[str, Any], *, partition: str = "default") -> str:
    """Append a command; returns its request id. Fire-and-forget: SQL already holds the truth."""
    request_id = command.get("request_id") or uuid.uuid4().hex
    payload = json.dumps({**command, "request_id": request_id}, default=str)
    await client.xadd(stream_key(partition), {"c": payload}, maxlen=STREAM_MAXLEN, approximate=True)
    return request_id


async def notify_enqueued(client: aioredis.Redis, interaction_id: object) -> None:
    """Tell the engine a queued interaction exists. Best effort by design: if Redis is down the
    interaction is already committed as queued, and the engine's reconcile pass routes it anyway."""
    try:
        await send(client, {"type": "enqueue", "interaction_id": str(interaction_id)})
    except (aioredis.ConnectionError, OSError):
        log.warning("could not notify the routing engine of %s; reconcile will route it", interaction_id)


async def call(
    client: aioredis.Redis, command: dict[str, Any], *, wait_seconds: float = 4.0, partition: str = "default"
) -> dict[str, Any]:
    """Append a command and wait for the engine's reply ``{"ok": bool, ...}``."""
    request_id = await send(client, {**command, "reply": True}, partition=partition)
    # Stay under the client's socket timeout (redis-py defaults it to 5 s) so "no answer" is ours to report.
    try:
        popped = await client.blpop([reply_key(request_id)], timeout=wait_seconds)
    except redis.exceptions.TimeoutError:
        popped = None
    if popped is None:
        raise EngineUnavailable("the routing engine did not answer in time")
    return json.loads(popped[1])


async def reply(client: aioredis.Redis, request_id: str, body: dict[str, Any]) -> None:
    key = reply_key(request_id)
    async with client.pipeline(transaction=True) as pipe:
        pipe.rpush(key, json.dumps(body, default=str))
        pipe.expire(key, REPLY_TTL_SECONDS)
        await pipe.execute()

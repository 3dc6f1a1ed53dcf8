"""Commands into the routing engine: one ordered Redis Stream per partition.

API processes never assign on their own (DESIGN §3): they append a command and, when the caller
needs the outcome (an agent clicking Accept), wait for the engine's reply (``routing.replies``).
Commands are idempotent against SQL, so the engine may re-read a few after a crash.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import redis.asyncio as aioredis

from routing import replies

log = logging.getLogger(__name__)

STREAM_MAXLEN = 100_000


def stream_key(partition: str = "default") -> str:
    return f"sb:routing:{partition}:commands"


def cursor_key(partition: str = "default") -> str:
    return f"sb:routing:{partition}:cursor"


class EngineUnavailable(Exception):
    """No engine answered in time (none holds the lease, or it is rebuilding). The command was
    sent: ``request_id`` is where its outcome appears if an engine applies it later."""

    def __init__(self, detail: str, request_id: str | None = None) -> None:
        super().__init__(detail)
        self.request_id = request_id


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
    """Append a command and wait for the engine's reply ``{"ok": bool, ...}``.

    The wait holds no Redis connection: the process's one reply listener (``routing.replies``)
    resolves it. No answer in time raises ``EngineUnavailable`` naming the request: the command
    stays in the stream and may still be applied; its outcome is kept under that id."""
    listener = replies.listener_for(client)
    request_id = listener.new_request_id()
    with listener.expect(request_id) as answer:
        await send(client, {**command, "request_id": request_id, "reply": True}, partition=partition)
        try:
            return await asyncio.wait_for(answer, timeout=wait_seconds)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our caller is being cancelled; the listener stopping lands below
        except TimeoutError:
            pass
    raise EngineUnavailable("the routing engine did not answer in time", request_id)


async def reply(client: aioredis.Redis, request_id: str, body: dict[str, Any]) -> None:
    await replies.deliver(client, request_id, body)

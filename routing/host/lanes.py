"""The two command streams the leader reads: agents' clicks before bulk arrivals.

Accept, reject and presence (``Command.urgent``) travel in their own stream, read before the
bulk one and polled again every ``poll_seconds`` while a bulk batch is being worked through, so a
burst of 1,500 emails delays an agent's click by one command, not by the burst. Each stream keeps
its own cursor; both are saved once per batch (commands are idempotent against SQL, so re-reading
a few after a crash is harmless; a round trip per command is not).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import redis.asyncio as aioredis

from routing import commands

Entry = tuple[str, dict[str, Any]]
Handler = Callable[[dict[str, Any]], Awaitable[None]]

BATCH = 100


class CommandLanes:
    def __init__(self, client: aioredis.Redis, partition: str, *, poll_seconds: float = 0.01) -> None:
        self.client = client
        self.urgent_key = commands.urgent_stream_key(partition)
        self.bulk_key = commands.stream_key(partition)
        self._cursor_keys = {
            self.urgent_key: commands.urgent_cursor_key(partition),
            self.bulk_key: commands.cursor_key(partition),
        }
        self.cursors: dict[str, str] = {}
        self.poll_seconds = poll_seconds
        self._polled = 0.0

    async def load(self) -> None:
        saved = cast(list[str | None], await self.client.mget(list(self._cursor_keys.values())))
        self.cursors = {stream: at or "0-0" for stream, at in zip(self._cursor_keys, saved, strict=True)}

    async def save(self) -> None:
        await self.client.mset({self._cursor_keys[s]: at for s, at in self.cursors.items()})

    async def serve_batch(self, handle: Handler, *, block_ms: int) -> None:
        """Wait up to ``block_ms`` for commands, then run them: urgent first, and urgent ones that
        arrive meanwhile between bulk ones. Cursors are saved even if a command fails."""
        batch = dict(await self._read(self.cursors, block_ms=block_ms))
        try:
            await self._run(self.urgent_key, batch.get(self.urgent_key, []), handle)
            self._polled = time.monotonic()
            for entry in batch.get(self.bulk_key, []):
                await self._poll_urgent(handle)
                await self._run(self.bulk_key, [entry], handle)
        finally:
            if batch:
                await self.save()

    async def _poll_urgent(self, handle: Handler) -> None:
        now = time.monotonic()
        if now - self._polled < self.poll_seconds:
            return
        self._polled = now
        for _stream, entries in await self._read({self.urgent_key: self.cursors[self.urgent_key]}):
            await self._run(self.urgent_key, entries, handle)

    async def _read(
        self, cursors: dict[str, str], *, block_ms: int | None = None
    ) -> list[tuple[str, list[Entry]]]:
        read = await self.client.xread(cast(Any, cursors), count=BATCH, block=block_ms)
        return cast(list[tuple[str, list[Entry]]], read or [])

    async def _run(self, stream: str, entries: list[Entry], handle: Handler) -> None:
        for entry_id, fields in entries:
            await handle(json.loads(fields["c"]))
            self.cursors[stream] = entry_id

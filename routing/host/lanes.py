"""The two command streams the leader reads: agents' clicks before bulk arrivals.

Accept, reject and presence (``Command.urgent``) travel in their own stream, read before the
bulk one and polled again every ``poll_seconds`` while a bulk batch is being worked through, so a
burst of 1,500 emails delays an agent's click by one command, not by the burst. Each stream keeps
its own cursor; both are saved once per batch (commands are idempotent against SQL, so re-reading
a few after a crash is harmless; a round trip per command is not). A cursor moves past a command
only once its decision is in SQL: after the batch's ``flush`` (the group commit).

The host shares its process's event loop with the API: a batch gives the loop a turn at least
every ``yield_seconds`` of work, so the requests waiting on it (an agent's accept among them)
are not held up for a whole batch. Yielding only lets others run; the batch, its group and its
flush are the same.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import redis.asyncio as aioredis

from switchboard import commands

Entry = tuple[str, dict[str, Any]]
Handler = Callable[[dict[str, Any]], Awaitable[None]]
Flush = Callable[[], Awaitable[None]]

BATCH = 100


class CommandLanes:
    def __init__(
        self,
        client: aioredis.Redis,
        partition: str,
        *,
        poll_seconds: float = 0.01,
        yield_seconds: float = 0.005,
    ) -> None:
        self.client = client
        self.urgent_key = commands.urgent_stream_key(partition)
        self.bulk_key = commands.stream_key(partition)
        self._cursor_keys = {
            self.urgent_key: commands.urgent_cursor_key(partition),
            self.bulk_key: commands.cursor_key(partition),
        }
        self.cursors: dict[str, str] = {}  # past what is written to SQL (saved)
        self._read_at: dict[str, str] = {}  # past what was handled (maybe not yet written)
        self.poll_seconds = poll_seconds
        self._polled = 0.0
        self.yield_seconds = yield_seconds
        self._yielded = 0.0

    async def load(self) -> None:
        saved = cast(list[str | None], await self.client.mget(list(self._cursor_keys.values())))
        self.cursors = {stream: at or "0-0" for stream, at in zip(self._cursor_keys, saved, strict=True)}
        self._read_at = dict(self.cursors)

    async def save(self) -> None:
        await self.client.mset({self._cursor_keys[s]: at for s, at in self.cursors.items()})

    async def serve_batch(self, handle: Handler, *, block_ms: int, flush: Flush | None = None) -> None:
        """Wait up to ``block_ms`` for commands, then run them: urgent first, and urgent ones that
        arrive meanwhile between bulk ones; then ``flush`` (write what they decided). The cursors
        move past the batch once that is done (an exception leaves them where they were: the next
        leader reads the batch again)."""
        self._read_at = dict(self.cursors)
        batch = dict(await self._read(self._read_at, block_ms=block_ms))
        if not batch:
            return
        self._yielded = time.monotonic()
        try:
            await self._run(self.urgent_key, batch.get(self.urgent_key, []), handle)
            self._polled = time.monotonic()
            for entry in batch.get(self.bulk_key, []):
                await self._poll_urgent(handle)
                await self._run(self.bulk_key, [entry], handle)
            if flush is not None:
                await flush()
            self.cursors = dict(self._read_at)
        finally:
            await self.save()

    async def _poll_urgent(self, handle: Handler) -> None:
        now = time.monotonic()
        if now - self._polled < self.poll_seconds:
            return
        self._polled = now
        for _stream, entries in await self._read({self.urgent_key: self._read_at[self.urgent_key]}):
            await self._run(self.urgent_key, entries, handle)

    async def _read(
        self, cursors: dict[str, str], *, block_ms: int | None = None
    ) -> list[tuple[str, list[Entry]]]:
        read = await self.client.xread(cast(Any, cursors), count=BATCH, block=block_ms)
        return cast(list[tuple[str, list[Entry]]], read or [])

    async def _run(self, stream: str, entries: list[Entry], handle: Handler) -> None:
        for entry_id, fields in entries:
            await handle(json.loads(fields["c"]))
            self._read_at[stream] = entry_id
            await self._pause()

    async def _pause(self) -> None:
        """Give the event loop a turn if this batch has kept it for ``yield_seconds``: a run of
        commands whose awaits all complete at once (repeats, decisions from memory) would not."""
        now = time.monotonic()
        if now - self._yielded >= self.yield_seconds:
            await asyncio.sleep(0)
            self._yielded = time.monotonic()

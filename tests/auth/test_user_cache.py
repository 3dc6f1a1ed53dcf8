"""The per-process user cache (switchboard.auth.cache) and its invalidation through Redis.

The cross-process tests run a second app as a real uvicorn process on the same database and
Redis: what it refuses after a change made here can only have reached it through Redis.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from sqlalchemy import text, update

from switchboard.auth.cache import UserCache, announce_users_changed
from switchboard.auth.models import Role, User
from switchboard.settings import Settings
from tests.live_app import running_app

ME = "/api/auth/me"


async def _status(base: str, headers: dict[str, str]) -> int:
    async with httpx.AsyncClient(base_url=base, timeout=5) as c:
        return (await c.get(ME, headers=headers)).status_code


async def _refused_within(base: str, headers: dict[str, str], seconds: float) -> float | None:
    """Seconds until the other process answers 401, or None if it never did within ``seconds``."""
    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=5) as c:
        while time.perf_counter() - began < seconds:
            if (await c.get(ME, headers=headers)).status_code == 401:
                return time.perf_counter() - began
            await asyncio.sleep(0.01)
    return None


def _other_process(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"data_dir": tmp_path / "other", "routing_engine": True})


async def test_deactivation_here_is_refused_at_once_by_another_process(
    app: Any, client: httpx.AsyncClient, make_user: Any, settings: Settings, tmp_path: Path
) -> None:
    user, headers = await make_user(Role.SUPERVISOR)
    async with running_app(_other_process(settings, tmp_path), tmp_path / "other.log") as other:
        # Both processes have checked (and so cached) the user.
        assert (await client.get(ME, headers=headers)).status_code == 200
        for _ in range(3):
            assert await _status(other, headers) == 200
        async with app.state.db.sessionmaker() as s:  # e.g. an admin action in this process
            await s.execute(update(User).where(User.id == user.id).values(is_active=False))
            await s.commit()
        # This process: synchronously, at commit.
        assert (await client.get(ME, headers=headers)).status_code == 401
        # The other one: through Redis pub/sub, long before its cache entry (5 s) would expire.
        waited = await _refused_within(other, headers, seconds=2.0)
        assert waited is not None, "the other process still served the deactivated user from its cache"
        assert waited < 1.0


async def test_change_without_sqlalchemy_needs_the_announcement(
    app: Any, db: Any, make_user: Any, settings: Settings, tmp_path: Path
) -> None:
    """A change SQLAlchemy never saw (raw SQL) stays cached until announced: proof the other
    process really serves from its cache, and that the announcement is what reaches it."""
    user, headers = await make_user(Role.SUPERVISOR)
    async with running_app(_other_process(settings, tmp_path), tmp_path / "other.log") as other:
        assert await _status(other, headers) == 200  # checked against SQL and cached
        async with db.engine.begin() as conn:
            await conn.execute(
                text("UPDATE users SET role = 'agent' WHERE id = :id"),
                {"id": user.id.hex if db.is_sqlite else user.id},
            )
        assert await _status(other, headers) == 200  # stale on purpose: nobody announced it
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            await announce_users_changed(client, [user.id])
        finally:
            await client.aclose()
        waited = await _refused_within(other, headers, seconds=2.0)
        assert waited is not None and waited < 1.0


async def test_cache_serves_nothing_without_a_live_subscription(make_user: Any, settings: Settings) -> None:
    user, _ = await make_user(Role.AGENT)
    expires = datetime.now(UTC) + timedelta(minutes=5)
    dead = UserCache(aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2))
    await dead.start(wait_seconds=0.5)
    try:
        assert not dead.live
        dead.put("tok", user, generation=dead.generation, token_expires_at=expires)
        assert dead.get("tok") is None and len(dead) == 0
    finally:
        await dead.stop()

    live = UserCache(aioredis.Redis.from_url(settings.redis_url))
    await live.start()
    try:
        assert live.live
        live.put("tok", user, generation=live.generation, token_expires_at=expires)
        cached = live.get("tok")
        assert cached is not None and cached.id == user.id and cached.role is Role.AGENT
        assert cached is not live.get("tok")  # a fresh detached row per request
    finally:
        await live.stop()
        await live.client.aclose()


async def test_a_read_that_raced_an_invalidation_is_not_cached(make_user: Any, settings: Settings) -> None:
    user, _ = await make_user(Role.AGENT)
    expires = datetime.now(UTC) + timedelta(minutes=5)
    cache = UserCache(aioredis.Redis.from_url(settings.redis_url))
    await cache.start()
    try:
        before_read = cache.generation
        cache.invalidate([user.id])  # a change committed while the row was being read
        cache.put("tok", user, generation=before_read, token_expires_at=expires)
        assert cache.get("tok") is None
        # An expired token is never cached, whatever the TTL.
        cache.put("old", user, generation=cache.generation, token_expires_at=datetime.now(UTC))
        assert cache.get("old") is None
    finally:
        await cache.stop()
        await cache.client.aclose()


async def test_orm_change_to_a_user_invalidates_at_commit(app: Any, client: Any, make_user: Any) -> None:
    """A flushed attribute change (not a bulk UPDATE) is seen too."""
    user, headers = await make_user(Role.SUPERVISOR)
    assert (await client.get(ME, headers=headers)).status_code == 200
    assert len(app.state.user_cache) == 1
    async with app.state.db.sessionmaker() as s:
        row = await s.get(User, user.id)
        assert row is not None
        row.role = Role.AGENT
        await s.commit()
    assert len(app.state.user_cache) == 0
    assert (await client.get(ME, headers=headers)).status_code == 401

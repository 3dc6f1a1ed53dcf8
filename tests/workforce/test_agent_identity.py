"""The agent profile behind a request, resolved per process (workforce.identity) and forgotten on
every process when it stops being true.

A desktop route answers 403 naming ``agent`` when the user has no profile and 404 naming
``interaction_id`` when they have one but do not hold the interaction: which of the two a process
answers shows which profile it believes in. The cross-process tests run a second app as a real
uvicorn process on the same database and Redis: what it forgets after a change made here can only
have reached it through Redis.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from sqlalchemy import event, text, update

from switchboard.auth.cache import TTL_SECONDS, announce_users_changed
from switchboard.auth.models import Role
from switchboard.settings import Settings
from tests.factories import agent_profile
from tests.live_app import running_app
from workforce.identity import CACHE_KEY
from workforce.models import Agent, Presence

TOOLS = f"/desktop/interactions/{uuid.uuid4()}/tools"  # an interaction nobody holds


async def _believed(http: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """``interaction_id`` while the process believes the user has a profile, ``agent`` when not."""
    response = await http.get(TOOLS, headers=headers)
    field = str(response.json()["errors"][0]["field"])
    assert (response.status_code, field) in {(403, "agent"), (404, "interaction_id")}, response.text
    return field


async def _forgotten_before_expiry(base: str, headers: dict[str, str], cached_at: float) -> bool:
    """Whether the process at ``base`` stops believing in the profile before the entry it cached
    at ``cached_at`` (perf_counter, taken before the request that cached it) could have expired:
    only an announcement makes it forget that early. A proof by mechanism, not a latency bound
    (a loaded machine delays the other process's answers; the figure is a benchmark's to give)."""
    async with httpx.AsyncClient(base_url=base, timeout=5) as other:
        while time.perf_counter() - cached_at < TTL_SECONDS:
            believed = await _believed(other, headers)
            if believed == "agent":
                # The answer may have been computed at any time since the request was sent:
                # judged by the time it arrived, the conservative end.
                return time.perf_counter() - cached_at < TTL_SECONDS
            await asyncio.sleep(0.01)
    return False


async def _agent_user(db: Any, make_user: Any) -> tuple[uuid.UUID, uuid.UUID, dict[str, str]]:
    user, headers = await make_user(Role.AGENT)
    agent = await agent_profile(db, user, name="Identity Test")
    return user.id, agent.id, headers


def _other_process(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"data_dir": tmp_path / "other", "routing_engine": True})


async def test_a_deleted_profile_is_forgotten_at_once_by_another_process(
    app: Any, client: httpx.AsyncClient, db: Any, make_user: Any, settings: Settings, tmp_path: Path
) -> None:
    _, agent_id, headers = await _agent_user(db, make_user)
    async with running_app(_other_process(settings, tmp_path), tmp_path / "other.log") as other:
        async with httpx.AsyncClient(base_url=other, timeout=5) as http:
            cached_at = time.perf_counter()
            for _ in range(3):  # resolved, then served from its cache
                assert await _believed(http, headers) == "interaction_id"
        assert await _believed(client, headers) == "interaction_id"
        async with app.state.db.sessionmaker() as s:  # an admin removes the profile here
            row = await s.get(Agent, agent_id)
            assert row is not None
            await s.delete(row)
            await s.commit()
        assert await _believed(client, headers) == "agent"  # this process: at commit
        assert await _forgotten_before_expiry(other, headers, cached_at), (
            "the other process served the deleted profile from its cache until the entry expired"
        )


async def test_a_change_without_sqlalchemy_needs_the_announcement(
    db: Any, make_user: Any, settings: Settings, tmp_path: Path
) -> None:
    """Raw SQL that SQLAlchemy never saw stays cached until announced: proof that the other
    process serves the profile from its cache, and that the user's announcement drops it."""
    user_id, agent_id, headers = await _agent_user(db, make_user)
    async with running_app(_other_process(settings, tmp_path), tmp_path / "other.log") as other:
        async with httpx.AsyncClient(base_url=other, timeout=5) as http:
            cached_at = time.perf_counter()
            assert await _believed(http, headers) == "interaction_id"
            async with db.engine.begin() as conn:
                key = agent_id.hex if db.is_sqlite else agent_id
                await conn.execute(text("DELETE FROM agents WHERE id = :id"), {"id": key})
            assert await _believed(http, headers) == "interaction_id"  # stale on purpose
        redis_client = aioredis.Redis.from_url(settings.redis_url)
        try:
            await announce_users_changed(redis_client, [user_id])
        finally:
            await redis_client.aclose()
        assert await _forgotten_before_expiry(other, headers, cached_at), (
            "the announcement did not reach the other process before its cached entry expired"
        )


async def test_presence_writes_keep_the_profile_and_moving_it_drops_it(
    app: Any, client: httpx.AsyncClient, db: Any, make_user: Any
) -> None:
    """The engine's presence writes (bulk UPDATEs of agents) must not empty every process's cache;
    a profile given to another user, by the ORM or a bulk UPDATE, must not stay with the first."""
    user_id, agent_id, headers = await _agent_user(db, make_user)
    other_user, other_headers = await make_user(Role.AGENT)
    cache = app.state.user_cache
    assert await _believed(client, headers) == "interaction_id"
    assert cache.recall(user_id, CACHE_KEY) is not None

    async with app.state.db.sessionmaker() as s:
        await s.execute(update(Agent).where(Agent.id == agent_id).values(presence=Presence.BREAK))
        await s.commit()
    assert cache.recall(user_id, CACHE_KEY) is not None

    async with app.state.db.sessionmaker() as s:  # by the ORM
        row = await s.get(Agent, agent_id)
        assert row is not None
        row.user_id = other_user.id
        await s.commit()
    assert cache.recall(user_id, CACHE_KEY) is None
    assert await _believed(client, headers) == "agent"
    assert await _believed(client, other_headers) == "interaction_id"

    async with app.state.db.sessionmaker() as s:  # and back, by a bulk UPDATE
        await s.execute(update(Agent).where(Agent.id == agent_id).values(user_id=user_id))
        await s.commit()
    assert cache.recall(other_user.id, CACHE_KEY) is None
    assert await _believed(client, other_headers) == "agent"
    assert await _believed(client, headers) == "interaction_id"


async def test_a_request_with_a_known_profile_reads_no_agent_row(
    app: Any, client: httpx.AsyncClient, db: Any, make_user: Any
) -> None:
    _, _, headers = await _agent_user(db, make_user)
    assert await _believed(client, headers) == "interaction_id"  # resolves and remembers
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert await _believed(client, headers) == "interaction_id"
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements, "the route itself still reads SQL"
    assert not [s for s in statements if "FROM agents" in s or "agent_skills" in s], statements

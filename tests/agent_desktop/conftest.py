"""The agent desktop's live app (one agent, a supervisor, queue "cards"), shared by the desktop
browser modules; a module that needs another floor defines its own ``server`` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from switchboard.db import Database
from tests.factories import desk_floor
from tests.helpers import truncate_all
from tests.live_app import DeskServer, live_settings, running_app


@pytest.fixture
async def server(backend_url, redis_handle, redis_sync, tmp_path) -> AsyncIterator[DeskServer]:
    settings = live_settings(backend_url, redis_handle.url, tmp_path, name="desktop")
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    username, agent_token, supervisor = await desk_floor(db, settings)
    try:
        async with running_app(settings, tmp_path / "app.log") as base:
            yield DeskServer(base, base, settings, username, agent_token, supervisor)
    finally:
        await db.dispose()

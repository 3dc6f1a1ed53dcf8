"""``switchboard engine``: the routing engine in a process of its own, with the web app running
without one (``SWITCHBOARD_ROUTING_ENGINE=false``). Real processes on PostgreSQL and Redis: the
engine process takes the lease, routes what the app creates and answers the app's engine calls
(an accept) through Redis; SIGTERM stops it cleanly and frees the lease for the next host."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from sqlalchemy import select

from interactions.models import Interaction
from interactions.states import State
from routing.models import Offer, OfferState
from switchboard.auth.models import Role
from switchboard.auth.service import token_for
from switchboard.db import Database
from switchboard.redis import rkey
from switchboard.settings import PROJECT_ROOT, Settings
from tests.factories import make_agent, make_queue, make_staff_user
from tests.helpers import PG_SCHEMA, eventually, truncate_all
from tests.live_app import free_port
from workforce.models import Presence


def _env(settings: Settings, *, engine_in_app: bool) -> dict[str, str]:
    return {
        **os.environ,
        "SWITCHBOARD_DATABASE_URL": settings.database_url,
        "SWITCHBOARD_DATABASE_SCHEMA": settings.database_schema or "",
        "SWITCHBOARD_REDIS_URL": settings.redis_url or "",
        "SWITCHBOARD_SECRET_KEY": settings.secret_key,
        "SWITCHBOARD_ENGINE_LEASE_MS": "1000",
        "SWITCHBOARD_ROUTING_ENGINE": "true" if engine_in_app else "false",
        "SWITCHBOARD_ENVIRONMENT": "test",
    }


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )


async def test_the_engine_runs_alone_and_the_app_without_it(
    postgres_url, redis_handle, redis_sync, tmp_path: Path
):
    settings = Settings(
        environment="test",
        database_url=postgres_url,
        database_schema=PG_SCHEMA,
        redis_url=redis_handle.url,
        secret_key="engine-process-secret-" + "z" * 32,
    )
    db = Database(postgres_url, schema=PG_SCHEMA)
    await truncate_all(db)
    async with db.sessionmaker() as s:
        queue = await make_queue(s, "retail", channels=["chat"])
        supervisor = await make_staff_user(s, Role.SUPERVISOR, name="Sup", username="sup", password=None)
        agent_user = await make_staff_user(s, name="Agent", username="ag", password=None)
        agent = await make_agent(s, agent_user, presence=Presence.AVAILABLE, queues=[queue])
        agent_id = agent.id
        await s.commit()
    sup_headers = {"Authorization": f"Bearer {token_for(supervisor, settings)[0]}"}
    agent_headers = {"Authorization": f"Bearer {token_for(agent_user, settings)[0]}"}

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app_log, engine_log = tmp_path / "app.log", tmp_path / "engine.log"
    uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "switchboard.app:create_app"]
    app = _start(
        [*uvicorn, "--port", str(port), "--host", "127.0.0.1", "--log-level", "warning"],
        _env(settings, engine_in_app=False),
        app_log,
    )
    # The variable is for app processes; this command runs a host whatever it says.
    engine = _start(
        [sys.executable, "-m", "switchboard", "engine"], _env(settings, engine_in_app=False), engine_log
    )
    lease_key = rkey("engine", "default", "lease")
    try:
        async with httpx.AsyncClient(timeout=10) as client:

            async def app_ready() -> bool:
                assert app.poll() is None, app_log.read_text()
                try:
                    return (await client.get(f"{base}/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(app_ready, within=30, what="the app to answer")
            assert (await client.get(f"{base}/readyz")).json()["routing_engine"] == "off"

            async def engine_leads() -> bool:
                assert engine.poll() is None, engine_log.read_text()
                return redis_sync.get(lease_key) is not None

            await eventually(engine_leads, within=30, what="the engine process to take the lease")

            created = await client.post(
                f"{base}/api/interactions",
                json={"channel": "chat", "queue": "retail", "identity": {"kind": "chat", "value": "v-1"}},
                headers=sup_headers,
            )
            assert created.status_code == 201, created.text
            interaction_id = uuid.UUID(created.json()["id"])

            async def offered() -> bool:
                async with db.sessionmaker() as s:
                    offer = await s.scalar(
                        select(Offer).where(
                            Offer.interaction_id == interaction_id, Offer.state == OfferState.LIVE
                        )
                    )
                    await s.commit()
                return offer is not None and offer.agent_id == agent_id

            await eventually(offered, within=15, what="the engine process to offer the chat")
            offers = (await client.get(f"{base}/api/routing/offers", headers=agent_headers)).json()
            accepted = await client.post(
                f"{base}/api/routing/offers/{offers[0]['id']}/accept", headers=agent_headers
            )
            assert accepted.status_code == 200, (
                accepted.text
            )  # the app's engine call, answered by the process
            async with db.sessionmaker() as s:
                interaction = await s.get(Interaction, interaction_id)
                assert interaction is not None
                assert (interaction.state, interaction.agent_id) == (State.CONNECTED, agent_id)
                await s.commit()

        engine.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(engine.wait, 20) == 0, engine_log.read_text()
        assert redis_sync.get(lease_key) is None, "a clean stop frees the lease for the next host"
        assert "Traceback" not in engine_log.read_text(), engine_log.read_text()
    finally:
        for process in (engine, app):
            if process.poll() is None:
                process.kill()
                process.wait()
        await db.dispose()

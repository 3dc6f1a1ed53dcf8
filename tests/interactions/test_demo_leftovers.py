"""Demo contacts a killed traffic generator left waiting are ended by the next generator's start:
a real generator process (``switchboard traffic``) is SIGKILLed with chats and calls in the queue;
the next one, before any new arrival, leaves those chats and hangs those calls up through the app's
front doors, so nothing of the old run is offered to agents again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from demo.leftovers import FILE_NAME
from demo.traffic import TrafficConfig, TrafficGenerator
from interactions.models import Interaction
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT
from tests.factories import chat_floor
from tests.helpers import eventually, truncate_all
from tests.live_app import live_settings, running_app

TOKEN = "demo-leftovers-carrier-token-01"


def _start_generator(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "switchboard", "traffic"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )


async def _waiting(db: Database) -> dict[str, int]:
    async with db.sessionmaker() as s:
        rows = (
            await s.execute(
                select(Interaction.channel, func.count())
                .where(
                    Interaction.state.in_(["queued", "offered"]), Interaction.channel.in_(["chat", "voice"])
                )
                .group_by(Interaction.channel)
            )
        ).all()
        await s.commit()
    return {channel.value: count for channel, count in rows}


async def test_a_killed_generators_contacts_are_ended_on_the_next_start(
    backend_url: str, redis_handle, redis_sync, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_CARRIER_AUTH_TOKEN", TOKEN)  # the app process takes voice
    settings = live_settings(
        backend_url, redis_handle.url, tmp_path, name="leftovers", carrier_auth_token=TOKEN
    )
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    await chat_floor(db, settings)  # queues and rules; the one agent is offline, so contacts wait
    journal = tmp_path / FILE_NAME
    try:
        async with running_app(settings, tmp_path / "app.log") as base:
            env = {
                **os.environ,
                "SWITCHBOARD_DATABASE_URL": backend_url,
                "SWITCHBOARD_DATABASE_SCHEMA": settings.database_schema or "",
                "SWITCHBOARD_REDIS_URL": redis_handle.url,
                "SWITCHBOARD_DATA_DIR": str(tmp_path),
                "SWITCHBOARD_ENVIRONMENT": "test",
                "SWITCHBOARD_PORT": base.rsplit(":", 1)[1],
                "SWITCHBOARD_DEMO_TRAFFIC_PER_MINUTE": "300",
            }
            generator = _start_generator(env, tmp_path / "traffic.log")
            try:

                async def both_waiting() -> bool:
                    assert generator.poll() is None, (tmp_path / "traffic.log").read_text()
                    waiting = await _waiting(db)
                    return waiting.get("chat", 0) > 0 and waiting.get("voice", 0) > 0

                await eventually(both_waiting, within=60, what="chats and calls waiting")
            finally:
                generator.send_signal(signal.SIGKILL)  # no chance to end anything
                generator.wait()
            left = await _waiting(db)
            kept = json.loads(journal.read_text())
            # Everything it had begun is on file, even what it was killed before hearing back about.
            assert len(kept["starts"]) + len(kept["chats"]) >= left["chat"], (kept, left)
            assert len(kept["calls"]) >= left["voice"], (kept, left)

            # The next start, with no new arrivals: it ends what the killed run left, and only that.
            config = TrafficConfig(
                base_url=base,
                smtp_host="127.0.0.1",
                smtp_port=1,
                carrier_auth_token=TOKEN,
                per_minute=0,
                open_contacts_file=journal,
            )
            successor = TrafficGenerator(config)
            stop = asyncio.Event()
            running = asyncio.create_task(successor.run(stop=stop))
            try:
                await asyncio.wait_for(successor.ready.wait(), 60)
            finally:
                stop.set()
                await running

            async def none_waiting() -> bool:
                return await _waiting(db) == {}

            await eventually(none_waiting, within=15, what="the old run's chats and calls ended")
            assert successor.leftovers_ended >= left["chat"] + left["voice"]
            assert json.loads(journal.read_text()) == {"starts": {}, "chats": {}, "calls": {}}
    finally:
        await db.dispose()

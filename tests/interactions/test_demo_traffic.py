"""Live demo traffic end to end: the app (uvicorn, routing engine on), the SMTP listener
(`switchboard smtp`) and the generator (`switchboard traffic`) as real processes against a test
database; chat, voice and email interactions appear within the minute the README promises."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from demo.traffic import TrafficConfig
from interactions.models import Interaction
from switchboard.cli import demo_carrier
from switchboard.db import Database
from switchboard.settings import PROJECT_ROOT, Settings
from tests.factories import chat_floor
from tests.helpers import db_schema_for, eventually, truncate_all
from tests.live_app import free_port as _free_port
from tests.live_app import start_app as _start
from tests.live_app import wait_for_leader as _wait_for_leader

TOKEN = "demo-traffic-carrier-token-0123"


def _process(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "switchboard", command],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


async def test_generator_brings_chat_voice_and_email_into_the_app(
    backend_url,  # noqa: F811
    redis_handle,
    redis_sync,
    tmp_path,
    monkeypatch,
):
    port, smtp_port = _free_port(), _free_port()
    origin = f"http://127.0.0.1:{port}"
    settings = Settings(
        environment="test",
        database_url=backend_url,
        database_schema=db_schema_for(backend_url),
        redis_url=redis_handle.url,
        data_dir=tmp_path,
        secret_key="traffic-test-secret-" + "t" * 32,
    )
    db = Database(backend_url, schema=settings.database_schema)
    await truncate_all(db)
    await chat_floor(db, settings)  # queues, skills and the shipped rule set (no agent needs to answer)
    shared = {
        "SWITCHBOARD_DATABASE_URL": backend_url,
        "SWITCHBOARD_DATABASE_SCHEMA": settings.database_schema or "",
        "SWITCHBOARD_REDIS_URL": redis_handle.url,
        "SWITCHBOARD_DATA_DIR": str(tmp_path),
        "SWITCHBOARD_ENVIRONMENT": "test",
        "SWITCHBOARD_CARRIER_AUTH_TOKEN": TOKEN,
        "SWITCHBOARD_SMTP_PORT": str(smtp_port),
        "SWITCHBOARD_SMTP_SINK": "false",
        "SWITCHBOARD_PORT": str(port),
    }
    monkeypatch.setenv("SWITCHBOARD_CARRIER_AUTH_TOKEN", TOKEN)  # for the app process below
    app = _start(port, settings, origin, tmp_path / "app.log")
    smtp = _process("smtp", shared, tmp_path / "smtp.log")
    generator = None
    try:
        await _wait_for_leader(origin, app, tmp_path / "app.log")
        generator = _process(
            "traffic", {**shared, "SWITCHBOARD_DEMO_TRAFFIC_PER_MINUTE": "300"}, tmp_path / "traffic.log"
        )

        async def channels() -> dict[str, int]:
            async with db.sessionmaker() as s:
                rows = (
                    await s.execute(select(Interaction.channel, func.count()).group_by(Interaction.channel))
                ).all()
                await s.commit()
            return {channel.value: count for channel, count in rows}

        seen: dict[str, int] = {}
        for _ in range(120):  # within a minute
            seen = await channels()
            if {"chat", "voice", "email"} <= seen.keys():
                break
            assert generator.poll() is None, (tmp_path / "traffic.log").read_text()
            await asyncio.sleep(0.5)
        assert {"chat", "voice", "email"} <= seen.keys(), (
            f"{seen}\n--- traffic\n{(tmp_path / 'traffic.log').read_text()}"
            f"\n--- smtp\n{(tmp_path / 'smtp.log').read_text()}"
        )
        async with db.sessionmaker() as s:  # and they were routed into queues, not left aside
            queued = await s.scalar(
                select(func.count()).select_from(Interaction).where(Interaction.queue_id.is_not(None))
            )
            await s.commit()
        assert queued and queued > 0

        # Stopping the generator hangs its callers up and ends its chats: no ghosts wait for agents.
        _stop(generator)

        async def waiting() -> int:
            async with db.sessionmaker() as s:
                count = await s.scalar(
                    select(func.count())
                    .select_from(Interaction)
                    .where(Interaction.channel.in_(["chat", "voice"]), Interaction.state == "queued")
                )
                await s.commit()
            return int(count or 0)

        async def none_waiting() -> bool:
            return await waiting() == 0

        await eventually(none_waiting, within=15, what="no chat or call left waiting")
    finally:
        _stop(*(p for p in (generator, smtp, app) if p is not None))
        await db.dispose()
    assert "Traceback" not in (tmp_path / "traffic.log").read_text()


def test_demo_mode_gives_voice_a_carrier_but_never_in_production_or_when_off():
    demo = demo_carrier(Settings(demo_traffic_per_minute=6))
    assert len(demo["SWITCHBOARD_CARRIER_AUTH_TOKEN"]) >= 24
    assert demo["SWITCHBOARD_CARRIER_API_URL"] == "http://127.0.0.1:8011"
    # The generator plays the carrier's REST side exactly when the app points at it.
    config = TrafficConfig.from_settings(
        Settings(
            carrier_auth_token=demo["SWITCHBOARD_CARRIER_AUTH_TOKEN"],
            carrier_api_url=demo["SWITCHBOARD_CARRIER_API_URL"],
            carrier_account_sid=demo["SWITCHBOARD_CARRIER_ACCOUNT_SID"],
        )
    )
    assert config.carrier_api_port == 8011 and config.base_url == "http://127.0.0.1:8000"
    kept = demo_carrier(Settings(carrier_auth_token="mine", carrier_api_url="https://api.carrier.example"))
    assert kept == {"SWITCHBOARD_CARRIER_AUTH_TOKEN": "mine"}
    assert demo_carrier(Settings(demo_traffic_per_minute=0)) == {}
    assert demo_carrier(Settings(environment="production", secret_key="p" * 40)) == {}

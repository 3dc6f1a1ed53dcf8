"""The real ``switchboard worker`` process for tests, on the test's database and Redis."""

from __future__ import annotations

import asyncio
import os
import sys

from switchboard.settings import Settings


def worker_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "SWITCHBOARD_REDIS_URL": settings.redis_url or "",
        "SWITCHBOARD_DATABASE_URL": settings.database_url or "",
        "SWITCHBOARD_DATABASE_SCHEMA": settings.database_schema or "",
    }


async def run_burst_worker(settings: Settings) -> str:
    """``switchboard worker --burst``: drains the queues (after its maintenance pass), then exits."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switchboard.cli",
        "worker",
        "--burst",
        env=worker_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    return text

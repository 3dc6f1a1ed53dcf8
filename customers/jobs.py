"""RQ jobs for the customers domain (open their own database; safe to run any number of times)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from customers.service import recompute_all_tiers
from switchboard.db import Database
from switchboard.settings import get_settings

log = logging.getLogger(__name__)
T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also when called from a thread that already runs a loop (an in-process
    SimpleWorker inside an async app or test): then the job gets a private thread and loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="customers-job") as pool:
        return pool.submit(asyncio.run, coro).result()


async def _recompute(url: str, schema: str | None) -> dict[str, int]:
    db = Database(url, schema=schema)
    try:
        async with db.sessionmaker() as session:
            return await recompute_all_tiers(session)
    finally:
        await db.dispose()


def recompute_all_tiers_job(
    database_url: str | None = None, database_schema: str | None = None
) -> dict[str, int]:
    """Re-tier every customer under the live policy (enqueued when a supervisor saves a policy).

    Idempotent: a second run finds nothing to change and appends no events. ``database_url`` /
    ``database_schema`` override the settings (tests, one-off runs against another database).
    """
    if database_url is None:
        settings = get_settings()
        database_url, database_schema = settings.resolved_database_url, settings.database_schema
    counts = _run(_recompute(database_url, database_schema))
    log.info("tier recompute: %s", counts)
    return counts

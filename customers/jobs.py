"""RQ jobs for the customers domain (open their own database; safe to run any number of times)."""

from __future__ import annotations

import logging

from customers.service import recompute_all_tiers
from switchboard.db import Database
from switchboard.jobs import run_async
from switchboard.settings import get_settings

log = logging.getLogger(__name__)


async def _recompute(url: str, schema: str | None, batch_size: int, pause_seconds: float) -> dict[str, int]:
    db = Database(url, schema=schema)
    try:
        async with db.sessionmaker() as session:
            return await recompute_all_tiers(session, batch_size=batch_size, pause_seconds=pause_seconds)
    finally:
        await db.dispose()


def recompute_all_tiers_job(
    database_url: str | None = None,
    database_schema: str | None = None,
    *,
    batch_size: int = 500,
    pause_seconds: float = 0.0,
) -> dict[str, int]:
    """Re-tier every customer under the live policy (enqueued when a supervisor saves a policy).

    Safe to run again, also after being killed half-way (RQ retries it): each batch commits on its
    own and an unchanged customer is not written, so a re-run skips what was done and finishes the
    rest; its counts then cover only the rest. ``database_url`` / ``database_schema`` override the
    settings (tests, one-off runs against another database); ``pause_seconds`` between batches
    spreads a large recompute's load on the database.
    """
    if database_url is None:
        settings = get_settings()
        database_url, database_schema = settings.resolved_database_url, settings.database_schema
    counts = run_async(_recompute(database_url, database_schema, batch_size, pause_seconds))
    log.info("tier recompute: %s", counts)
    return counts

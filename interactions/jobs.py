"""RQ jobs for the interactions domain (open their own database; safe to run any number of times)."""

from __future__ import annotations

import logging

from interactions.idempotency import purge_expired
from switchboard.db import Database
from switchboard.jobs import run_async
from switchboard.settings import get_settings

log = logging.getLogger(__name__)


async def _purge() -> int:
    settings = get_settings()
    db = Database(settings.resolved_database_url, schema=settings.database_schema)
    try:
        async with db.sessionmaker() as session:
            return await purge_expired(session)
    finally:
        await db.dispose()


def purge_idempotency_keys_job() -> int:
    """Delete expired ``Idempotency-Key`` rows (queued by the worker's maintenance pass, by name:
    switchboard.jobs.PERIODIC_JOBS); returns how many."""
    purged = run_async(_purge())
    log.info("expired idempotency keys deleted: %d", purged)
    return purged

"""RQ jobs of the loop: evaluate the alert rules and escalate overdue follow-ups; roll up the
experience dashboard's figures (``experience.rollup``).

``alerts_job`` is queued by every worker's maintenance pass once per ``ALERTS_EVERY_SECONDS``
(``switchboard.jobs``); both halves are idempotent (``experience.follow_ups``), so a retry, an
overlap or a second worker changes nothing twice.
"""

from __future__ import annotations

import logging

from experience.follow_ups import escalate_overdue, evaluate
from experience.resolution_rollup import rebuild_resolution
from experience.rollup import run_rollup
from experience.rules import seed_default_rules
from switchboard.db import Database, utcnow
from switchboard.jobs import run_async
from switchboard.settings import get_settings

log = logging.getLogger(__name__)


async def run_alerts(db: Database) -> dict[str, int]:
    async with db.sessionmaker() as session:
        await seed_default_rules(session)  # a worker may start before any app has seeded them
        result = await evaluate(session)
        escalated = await escalate_overdue(session)
    return {"signals": result.signals, "raised": result.raised, "escalated": escalated}


async def _alerts(url: str, schema: str | None) -> dict[str, int]:
    db = Database(url, schema=schema)
    try:
        return await run_alerts(db)
    finally:
        await db.dispose()


def alerts_job(database_url: str | None = None, database_schema: str | None = None) -> dict[str, int]:
    """Raise the follow-ups the rules call for and escalate the overdue ones (any number of runs)."""
    if database_url is None:
        settings = get_settings()
        database_url, database_schema = settings.resolved_database_url, settings.database_schema
    counts = run_async(_alerts(database_url, database_schema))
    log.info("alerts: %s", counts)
    return counts


async def _rollup(url: str, schema: str | None) -> dict[str, int]:
    db = Database(url, schema=schema)
    try:
        async with db.sessionmaker() as session:
            result = await run_rollup(session)
            resolution_rows = await rebuild_resolution(session, now=utcnow())
        return {"days": result.days, "ranges": len(result.ranges), "resolution_rows": resolution_rows}
    finally:
        await db.dispose()


def experience_rollup_job(
    database_url: str | None = None, database_schema: str | None = None
) -> dict[str, int]:
    """Rebuild the experience dashboard's days touched since the last run, and the last days of
    first-contact resolution (any number of runs)."""
    if database_url is None:
        settings = get_settings()
        database_url, database_schema = settings.resolved_database_url, settings.database_schema
    counts = run_async(_rollup(database_url, database_schema))
    log.info("experience rollup: %s", counts)
    return counts

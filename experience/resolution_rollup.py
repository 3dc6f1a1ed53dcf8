"""First-contact resolution and repeat contacts per day, queue and agent, precomputed
(``experience.journey`` defines them) so the experience dashboard reads a year of them in
milliseconds instead of walking every contact of its window (8 s for 30 days of a 1,000,000-a-year
centre, measured by bench/experience_dashboard.py before this table).

A contact's figures can change for ``REPEAT_WINDOW`` after it (a repeat arrives, or the window
passes and it is judged), so each run rebuilds the last ``REBUILD_DAYS`` days whole; the first
run, with nothing rolled up, goes back ``BACKFILL_DAYS``. Rebuilding a day twice gives the same
rows (delete + insert in one transaction).

On PostgreSQL the rebuild is one set-based statement (window functions over the contacts in time
order per customer and topic), the same figures as ``experience.journey`` computes in Python
(tests compare them): reading ~400,000 contacts into Python every 5 minutes at 10 million a year
took tens of seconds (docs/benchmarks.md). SQLite keeps the Python path."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Date, Integer, Interval, String, bindparam, delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from experience.journey import (
    CONTACT_COLUMNS,
    REPEAT_WINDOW,
    Contact,
    ResolutionRow,
    Tally,
    contact_of,
    link_repeats,
    names_of,
    resolution_rows,
    survivors_of,
    tally,
)
from interactions.models import Interaction
from switchboard.db import Base, UTCDateTime

REBUILD_DAYS = 8  # REPEAT_WINDOW and the day in progress
BACKFILL_DAYS = 92
CHUNK_DAYS = 15  # days read at once while backfilling (bounded memory)
SCOPES = ("queue", "agent")


class ResolutionDaily(Base):
    __tablename__ = "experience_resolution_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8), primary_key=True)  # queue or agent
    key: Mapped[str] = mapped_column(String(36), primary_key=True)  # the id; "" for no queue
    received: Mapped[int] = mapped_column(Integer)
    handled: Mapped[int] = mapped_column(Integer)
    judged: Mapped[int] = mapped_column(Integer)
    resolved_first_time: Mapped[int] = mapped_column(Integer)
    repeats: Mapped[int] = mapped_column(Integer)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


# The days [first, last] in one statement. A contact repeats the previous contact of the same
# customer (merged profiles followed to their survivor, at most 32 hops) and topic within the
# window (LAG, in the same (created_at, id) order as journey.link_repeats) and is repeated when the
# next one is within it (LEAD); it is judged once repeated or the window has passed.
_REBUILD_SQL = """
WITH RECURSIVE chain (id, survivor, hops) AS (
    SELECT id, merged_into_id, 1 FROM customers WHERE merged_into_id IS NOT NULL
    UNION ALL
    SELECT chain.id, c.merged_into_id, chain.hops + 1 FROM chain JOIN customers c ON c.id = chain.survivor
    WHERE c.merged_into_id IS NOT NULL AND chain.hops < 32
),
survivors AS (SELECT DISTINCT ON (id) id, survivor FROM chain ORDER BY id, hops DESC),
contacts AS (
    SELECT i.id, i.topic, i.created_at, i.connected_at IS NOT NULL AS connected, i.queue_id, i.agent_id,
           CASE WHEN i.topic IS NOT NULL
                 AND i.created_at - LAG(i.created_at) OVER w <= :window THEN 1 ELSE 0 END AS is_repeat,
           COALESCE(i.topic IS NOT NULL AND LEAD(i.created_at) OVER w - i.created_at <= :window, FALSE)
               AS repeated
    FROM interactions i LEFT JOIN survivors s ON s.id = i.customer_id
    WHERE i.created_at >= :read_from AND i.created_at < :read_to
    WINDOW w AS (PARTITION BY COALESCE(s.survivor, i.customer_id), i.topic ORDER BY i.created_at, i.id)
),
counted AS (
    SELECT *, CAST((created_at AT TIME ZONE 'UTC') AS DATE) AS day,
           CASE WHEN connected AND topic IS NOT NULL AND (repeated OR created_at <= :judged_before)
                THEN 1 ELSE 0 END AS judged
    FROM contacts WHERE created_at >= :since AND created_at < :until
)
INSERT INTO experience_resolution_daily (day, scope, key, received, handled, judged, resolved_first_time,
                                         repeats)
SELECT day, 'queue', COALESCE(CAST(queue_id AS TEXT), ''), COUNT(*),
       SUM(CASE WHEN connected THEN 1 ELSE 0 END), SUM(judged),
       SUM(CASE WHEN judged = 1 AND NOT repeated THEN 1 ELSE 0 END), SUM(is_repeat)
FROM counted GROUP BY day, queue_id
UNION ALL
SELECT day, 'agent', CAST(agent_id AS TEXT), COUNT(*), COUNT(*), SUM(judged),
       SUM(CASE WHEN judged = 1 AND NOT repeated THEN 1 ELSE 0 END), SUM(is_repeat)
FROM counted WHERE agent_id IS NOT NULL AND connected GROUP BY day, agent_id
"""


async def _rebuild_in_sql(session: AsyncSession, first: date, last: date, now: datetime) -> int:
    since, until = _midnight(first), min(_midnight(last + timedelta(days=1)), now)
    await session.execute(text("SET LOCAL work_mem = '64MB'"))  # the window's sort, in memory
    await session.execute(
        delete(ResolutionDaily).where(ResolutionDaily.day >= first, ResolutionDaily.day <= last)
    )
    times = ("read_from", "read_to", "since", "until", "judged_before")
    statement = text(_REBUILD_SQL).bindparams(
        bindparam("window", type_=Interval()), *(bindparam(name, type_=UTCDateTime()) for name in times)
    )
    result = await session.execute(
        statement,
        {
            "window": REPEAT_WINDOW,
            "read_from": since - REPEAT_WINDOW,
            "read_to": until + REPEAT_WINDOW,
            "since": since,
            "until": until,
            "judged_before": now - REPEAT_WINDOW,
        },
    )
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


async def _rebuild(session: AsyncSession, first: date, last: date, now: datetime) -> int:
    """Rows for the days [first, last], from their contacts and the window either side."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return await _rebuild_in_sql(session, first, last, now)
    return await _rebuild_in_python(session, first, last, now)


async def _rebuild_in_python(session: AsyncSession, first: date, last: date, now: datetime) -> int:
    since, until = _midnight(first), min(_midnight(last + timedelta(days=1)), now)
    rows = (
        await session.execute(
            select(*CONTACT_COLUMNS)
            .where(
                Interaction.created_at >= since - REPEAT_WINDOW,
                Interaction.created_at < until + REPEAT_WINDOW,
            )
            .order_by(Interaction.created_at, Interaction.id)
        )
    ).all()
    survivors = await survivors_of(session)
    contacts = [contact_of(r, survivors) for r in rows]
    repeats = link_repeats(contacts)
    repeated_ids = set(repeats.values())

    def judged(c: Contact) -> bool:
        return c.id in repeated_ids or now - c.created_at >= REPEAT_WINDOW

    by_day: dict[date, list[Contact]] = defaultdict(list)
    for c in contacts:
        if since <= c.created_at < until:
            by_day[c.created_at.date()].append(c)
    values = []
    for day, day_contacts in by_day.items():
        for scope in SCOPES:
            figures = tally(
                day_contacts,
                repeats,
                repeated_ids,
                judged,
                (lambda c: c.queue_id) if scope == "queue" else (lambda c: c.agent_id),
                count_received=scope == "queue",
            )
            values += [
                {
                    "day": day,
                    "scope": scope,
                    "key": str(key) if key is not None else "",
                    "received": f[0],
                    "handled": f[1],
                    "judged": f[2],
                    "resolved_first_time": f[3],
                    "repeats": f[4],
                }
                for key, f in figures.items()
            ]
    await session.execute(
        delete(ResolutionDaily).where(ResolutionDaily.day >= first, ResolutionDaily.day <= last)
    )
    if values:
        await session.execute(insert(ResolutionDaily), values)
    await session.commit()
    return len(values)


async def rebuild_resolution(session: AsyncSession, *, now: datetime) -> int:
    """The last REBUILD_DAYS days (BACKFILL_DAYS when nothing is rolled up yet); rows written."""
    today = now.date()
    empty = await session.scalar(select(func.count()).select_from(ResolutionDaily)) == 0
    first = today - timedelta(days=(BACKFILL_DAYS if empty else REBUILD_DAYS) - 1)
    written = 0
    while first <= today:
        last = min(first + timedelta(days=CHUNK_DAYS - 1), today)
        written += await _rebuild(session, first, last, now)
        first = last + timedelta(days=1)
    return written


async def resolution_between(
    session: AsyncSession, first: date, last: date
) -> tuple[list[ResolutionRow], list[ResolutionRow]]:
    """Per queue and per agent, the sums of the days [first, last] (as rolled up)."""
    sums = (
        await session.execute(
            select(
                ResolutionDaily.scope,
                ResolutionDaily.key,
                func.sum(ResolutionDaily.received),
                func.sum(ResolutionDaily.handled),
                func.sum(ResolutionDaily.judged),
                func.sum(ResolutionDaily.resolved_first_time),
                func.sum(ResolutionDaily.repeats),
            )
            .where(ResolutionDaily.day >= first, ResolutionDaily.day <= last)
            .group_by(ResolutionDaily.scope, ResolutionDaily.key)
        )
    ).all()
    tallies: dict[str, Tally] = {scope: {} for scope in SCOPES}
    for scope, key, *figures in sums:
        tallies[scope][uuid.UUID(key) if key else None] = [int(f or 0) for f in figures]
    queue_names, agent_names = await names_of(session)
    return resolution_rows(tallies["queue"], queue_names), resolution_rows(tallies["agent"], agent_names)

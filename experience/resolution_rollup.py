"""First-contact resolution and repeat contacts per day, queue and agent, precomputed
(``experience.journey`` defines them) so the experience dashboard reads a year of them in
milliseconds instead of walking every contact of its window (8 s for 30 days of a 1,000,000-a-year
centre, measured by bench/experience_dashboard.py before this table).

A contact's figures can change for ``REPEAT_WINDOW`` after it (a repeat arrives, or the window
passes and it is judged), so each run rebuilds the last ``REBUILD_DAYS`` days whole; the first
run, with nothing rolled up, goes back ``BACKFILL_DAYS``. Rebuilding a day twice gives the same
rows (delete + insert in one transaction)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Date, Integer, String, delete, func, insert, select
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
from switchboard.db import Base

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


async def _rebuild(session: AsyncSession, first: date, last: date, now: datetime) -> int:
    """Rows for the days [first, last], from their contacts and the window either side."""
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

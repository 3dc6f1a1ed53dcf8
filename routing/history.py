"""Durable queue statistics per 15-minute interval, written with each engine decision.

The engine's live counters restart with each leader; these rows do not. Each decision adds to its
interval's row in the SAME transaction that records the decision, so the figures are exact across
fail-overs (never recomputed by scanning interactions), and they are the interval history that
workforce forecasting reads.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, Integer, String, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import Base, UTCDateTime
from switchboard.fastsql import FastStatement

INTERVAL = timedelta(minutes=15)
COUNTERS = (
    "offered",
    "accepted",
    "rejected",
    "missed",
    "abandoned",
    "abandoned_within_sl",
    "answered_within_sl",
    "completed",
    "transferred",
)
SUMS = ("answer_wait_seconds", "handle_seconds")


class QueueInterval(Base):
    __tablename__ = "queue_intervals"

    queue_name: Mapped[str] = mapped_column(String(60), primary_key=True)
    interval_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    offered: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    missed: Mapped[int] = mapped_column(Integer, default=0)
    abandoned: Mapped[int] = mapped_column(Integer, default=0)
    abandoned_within_sl: Mapped[int] = mapped_column(Integer, default=0)
    answered_within_sl: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    transferred: Mapped[int] = mapped_column(Integer, default=0)
    answer_wait_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    handle_seconds: Mapped[float] = mapped_column(Float, default=0.0)


def interval_start(at: datetime) -> datetime:
    minutes = at.minute - at.minute % 15
    return at.replace(minute=minutes, second=0, microsecond=0)


async def bump(session: AsyncSession, *, queue: str, at: datetime, **increments: float) -> None:
    """Add to the interval's counters with one UPSERT (PostgreSQL and SQLite share the syntax)."""
    await bump_many(session, {(queue, interval_start(at)): increments})


async def bump_many(session: AsyncSession, increments: dict[tuple[str, datetime], dict[str, float]]) -> None:
    """Add to several (queue, interval start) rows with ONE multi-row UPSERT.

    Every counter is added (zero where a row has nothing to add), so all rows share one statement.
    """
    if not increments:
        return
    unknown = {name for inc in increments.values() for name in inc} - set(COUNTERS) - set(SUMS)
    if unknown:
        raise ValueError(f"unknown counters: {sorted(unknown)}")
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    zero: dict[str, Any] = {name: 0 for name in COUNTERS} | {name: 0.0 for name in SUMS}
    rows = [
        {**zero, **inc, "queue_name": queue, "interval_start": start}
        for (queue, start), inc in sorted(increments.items())  # one lock order for all writers
    ]
    if len(rows) == 1 and dialect == "postgresql":
        # A decision's one row: prebuilt (switchboard.fastsql), ~0.1 ms of CPU against ~0.4 ms.
        await _UPSERT_ONE.rowcount(session, rows[0])
    else:
        await session.execute(_UPSERTS[dialect], rows)


def _upsert(insert: Any, *, one_row: bool = False) -> Any:
    """Add the row's counters to the interval's (built once per dialect; executed per row set, or
    with ``one_row`` for one row given as bound parameters)."""
    table = QueueInterval.__table__
    statement = insert(table)
    if one_row:
        statement = statement.values(
            {
                name: bindparam(name, type_=table.c[name].type)
                for name in ("queue_name", "interval_start", *COUNTERS, *SUMS)
            }
        )
    return statement.on_conflict_do_update(
        index_elements=["queue_name", "interval_start"],
        set_={name: table.c[name] + statement.excluded[name] for name in (*COUNTERS, *SUMS)},
    )


_UPSERTS = {"postgresql": _upsert(postgresql.insert), "sqlite": _upsert(sqlite.insert)}
_UPSERT_ONE = FastStatement(_upsert(postgresql.insert, one_row=True))


async def history(
    session: AsyncSession, *, start: datetime, end: datetime, queue: str | None = None, minutes: int = 15
) -> list[dict[str, Any]]:
    """Interval rows between ``start`` and ``end`` (15, 30 or 60 minutes), with derived figures.

    Service level = answered within threshold / (answered + abandoned after threshold): short
    abandons are excluded, the same definition the engine's live figures use.
    """
    query = select(QueueInterval).where(
        QueueInterval.interval_start >= start, QueueInterval.interval_start < end
    )
    if queue is not None:
        query = query.where(QueueInterval.queue_name == queue)
    buckets: dict[tuple[str, datetime], dict[str, float]] = {}
    for row in (await session.scalars(query.order_by(QueueInterval.interval_start))).all():
        at = row.interval_start
        key = (row.queue_name, at.replace(minute=at.minute - at.minute % minutes))
        bucket = buckets.setdefault(key, dict.fromkeys((*COUNTERS, *SUMS), 0))
        for name in (*COUNTERS, *SUMS):
            bucket[name] += getattr(row, name)
    out = []
    for (name, at), b in sorted(buckets.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        denominator = b["accepted"] + b["abandoned"] - b["abandoned_within_sl"]
        out.append(
            {
                "queue": name,
                "interval_start": at.isoformat(),
                "interval_minutes": minutes,
                **{k: (int(v) if k in COUNTERS else round(v, 1)) for k, v in b.items()},
                "service_level": (b["answered_within_sl"] / denominator) if denominator else None,
                "average_speed_of_answer": (b["answer_wait_seconds"] / b["accepted"])
                if b["accepted"]
                else None,
                "average_handle_seconds": (b["handle_seconds"] / b["completed"]) if b["completed"] else None,
            }
        )
    return out


async def totals(session: AsyncSession, *, start: datetime, end: datetime) -> dict[str, int]:
    columns = [func.coalesce(func.sum(getattr(QueueInterval, n)), 0) for n in COUNTERS]
    row = (
        await session.execute(
            select(*columns).where(QueueInterval.interval_start >= start, QueueInterval.interval_start < end)
        )
    ).one()
    return dict(zip(COUNTERS, (int(v) for v in row), strict=True))

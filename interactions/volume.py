"""Interaction history for workforce planning: inbound contacts per queue, channel and interval,
and the average handle time, counted by the database (GROUP BY), never by loading the rows.

Here rather than in workforce/ because it reads the interactions table, which sits above
workforce in the layers; the forecast itself (workforce.forecast) takes the counts this returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from interactions.models import Interaction
from interactions.states import Channel, Direction, State
from workforce.models import Queue


@dataclass(frozen=True)
class Series:
    """Contacts per interval, every interval from ``first`` on (zeros included)."""

    queue: str
    channel: str
    first: datetime
    interval_minutes: int
    counts: list[int]
    aht_seconds: float | None  # mean handle time (connected to ended) of completed contacts
    handled: int  # contacts the AHT is the mean of


def _epoch(column: Any, dialect: str) -> ColumnElement[int]:
    if dialect == "postgresql":
        return cast(func.floor(func.extract("epoch", column)), Integer)
    # SQLite keeps UTC datetimes as ISO text; strftime('%s') reads them as UTC.
    return cast(func.strftime("%s", column), Integer)


def _seconds_between(start: Any, end: Any, dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86_400.0


async def history(
    session: AsyncSession,
    *,
    queue: str,
    channel: Channel,
    first: datetime,
    intervals: int,
    interval_minutes: int,
) -> Series:
    """Inbound interactions created in each of ``intervals`` intervals from ``first`` (UTC, aligned
    to the interval), for one queue and channel."""
    if first.tzinfo is None:
        raise ValueError("first must be timezone-aware")
    first = first.astimezone(UTC)
    seconds = interval_minutes * 60
    end = first + timedelta(seconds=seconds * intervals)
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    queue_id = await session.scalar(select(Queue.id).where(Queue.name == queue))
    counts = [0] * intervals
    if queue_id is None:
        return Series(queue, channel.value, first, interval_minutes, counts, None, 0)
    where = and_(
        Interaction.queue_id == queue_id,
        Interaction.channel == channel,
        Interaction.direction == Direction.INBOUND,
        Interaction.created_at >= first,
        Interaction.created_at < end,
    )
    offset = int(first.timestamp())
    # Floor division (SQLite: integer division; PostgreSQL: FLOOR of the quotient).
    bucket = ((_epoch(Interaction.created_at, dialect) - offset) // seconds).label("bucket")
    rows = await session.execute(select(bucket, func.count()).where(where).group_by(bucket))
    for index, count in rows.all():
        if 0 <= int(index) < intervals:
            counts[int(index)] += int(count)
    handle = _seconds_between(Interaction.connected_at, Interaction.ended_at, dialect)
    aht, handled = (
        await session.execute(
            select(func.avg(handle), func.count()).where(
                where,
                Interaction.state == State.COMPLETED,
                Interaction.connected_at.is_not(None),
                Interaction.ended_at.is_not(None),
            )
        )
    ).one()
    return Series(
        queue,
        channel.value,
        first,
        interval_minutes,
        counts,
        float(aht) if aht is not None and handled else None,
        int(handled),
    )

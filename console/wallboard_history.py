"""The wallboard's figures over time (issue #11 item 1): service level today and over the last 30
minutes per queue, and the last hours per 15 minutes (arrivals, service level, waiting) for the
charts. Read from what is already kept: ``routing.history``'s interval rows (exact, written with
each engine decision) and ``console.recorder``'s samples in Redis; a process re-reads them at most
every ``max_age`` seconds for all its wallboards.

Service level = answered within the threshold / (answered + abandoned after it), short abandons
excluded: the engine's definition. "Today" is the UTC day; "last 30 minutes" is every 15-minute
interval overlapping the last 30 minutes (so between 30 and 45 minutes of data)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from console.recorder import interval_key
from routing.history import INTERVAL, QueueInterval, interval_start

CHART_HOURS = 4


@dataclass
class Counts:
    within: int = 0
    denominator: int = 0

    def add(self, row: QueueInterval) -> None:
        self.within += row.answered_within_sl
        self.denominator += row.accepted + row.abandoned - row.abandoned_within_sl

    @property
    def level(self) -> float | None:
        return self.within / self.denominator if self.denominator else None


@dataclass
class History:
    starts: list[datetime]  # the charts' 15-minute intervals, oldest first
    today: dict[str, Counts] = field(default_factory=dict)
    last_30: dict[str, Counts] = field(default_factory=dict)
    sl: dict[str, list[Counts]] = field(default_factory=dict)  # per queue, per interval
    arrivals: dict[str, list[int]] = field(default_factory=dict)
    waiting: dict[str, list[int]] = field(default_factory=dict)
    taken_at: float = field(default_factory=time.monotonic)

    def sl_today(self, queue: str) -> float | None:
        counts = self.today.get(queue)
        return counts.level if counts else None

    def sl_last_30(self, queue: str) -> float | None:
        counts = self.last_30.get(queue)
        return counts.level if counts else None

    def chart(self, queues: Iterable[str]) -> dict[str, Any]:
        """The series for the queues shown (summed; service level from the summed counts)."""
        names = list(queues)
        n = len(self.starts)
        arrivals, waiting, levels = [0] * n, [0] * n, []
        for i in range(n):
            total = Counts()
            for q in names:
                arrivals[i] += self.arrivals.get(q, [0] * n)[i]
                waiting[i] += self.waiting.get(q, [0] * n)[i]
                c = self.sl.get(q)
                if c:
                    total.within += c[i].within
                    total.denominator += c[i].denominator
            levels.append(None if total.level is None else round(total.level * 100, 1))
        return {
            "labels": [s.strftime("%H:%M") for s in self.starts],
            "arrivals": arrivals,
            "service_level": levels,
            "waiting": waiting,
        }


async def load_history(session: AsyncSession, client: aioredis.Redis, *, now: datetime) -> History:
    current = interval_start(now)
    starts = [current - INTERVAL * k for k in range(CHART_HOURS * 4 - 1, -1, -1)]
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    since = min(midnight, starts[0])
    recent = now - timedelta(minutes=45)
    history = History(starts=starts)
    index = {s: i for i, s in enumerate(starts)}
    rows = await session.scalars(select(QueueInterval).where(QueueInterval.interval_start >= since))
    for row in rows:
        name = row.queue_name
        if row.interval_start >= midnight:
            history.today.setdefault(name, Counts()).add(row)
        if row.interval_start > recent:
            history.last_30.setdefault(name, Counts()).add(row)
        i = index.get(row.interval_start)
        if i is not None:
            history.sl.setdefault(name, [Counts() for _ in starts])[i].add(row)
    pipe = client.pipeline(transaction=False)
    for s in starts:
        pipe.hgetall(interval_key("arrivals", s))
        pipe.hgetall(interval_key("waiting", s))
    found = await pipe.execute()
    for i in range(len(starts)):
        for kind, target in (("arrivals", history.arrivals), ("waiting", history.waiting)):
            values = found[2 * i + (kind == "waiting")]
            for name, value in values.items():
                target.setdefault(name, [0] * len(starts))[i] = int(value)
    return history


class HistoryCache:
    def __init__(
        self, sessionmaker: Callable[[], AsyncSession], client: aioredis.Redis, *, max_age: float = 5.0
    ) -> None:
        self._sessionmaker, self._client, self.max_age = sessionmaker, client, max_age
        self._history: History | None = None
        self._lock = asyncio.Lock()

    async def get(self, *, now: datetime) -> History:
        async with self._lock:
            h = self._history
            if h is None or time.monotonic() - h.taken_at >= self.max_age:
                async with self._sessionmaker() as session:
                    h = await load_history(session, self._client, now=now)
                    await session.commit()
                self._history = h
            return h

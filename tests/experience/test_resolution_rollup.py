"""The first-contact-resolution rollup's set-based rebuild (PostgreSQL) writes the same rows as the
Python computation of experience.journey over the same days: repeats at and just past the window,
merged profiles (a chain of merges), contacts without a topic, queue or agent, unanswered ones,
contacts before the rebuilt days and after them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from experience.journey import REPEAT_WINDOW
from experience.resolution_rollup import ResolutionDaily, _rebuild_in_python, _rebuild_in_sql
from interactions.states import Channel, State
from switchboard.db import utcnow
from tests.factories import make_agent, make_customer, make_interaction, make_queue


async def _rows(session) -> list[tuple]:
    rows = (await session.execute(select(ResolutionDaily.__table__).order_by("day", "scope", "key"))).all()
    await session.commit()
    return [tuple(r) for r in rows]


async def test_the_sql_rebuild_writes_what_the_python_one_does(db):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the set-based rebuild is PostgreSQL's; SQLite runs the Python one")
    now = utcnow()
    async with db.sessionmaker() as s:
        cards, loans = await make_queue(s, "cards"), await make_queue(s, "loans")
        x, y = await make_agent(s, name="X"), await make_agent(s, name="Y")
        people = [await make_customer(s) for _ in range(5)]
        # people[0] -> people[1] -> people[2]: their contacts are people[2]'s.
        people[0].merged_into_id, people[1].merged_into_id = people[1].id, people[2].id
        await s.commit()
        at = now - timedelta(days=25)
        n = 0
        while at < now:
            n += 1
            customer = people[n % 5]
            topic = (None, "lost", "pay", "lost")[n % 4]
            connected = n % 7 != 0
            await make_interaction(
                s,
                customer=customer,
                agent=(x, y, None)[n % 3] if connected else None,
                queue=(cards, loans, None)[n % 3 if n % 5 else 2],
                channel=Channel.VOICE if n % 2 else Channel.CHAT,
                topic=topic,
                state=State.COMPLETED if connected else State.ABANDONED,
                created_at=at,
                connected_at=at if connected else None,
                event=False,
            )
            at += timedelta(hours=5 + (n * 7) % 41)
        # Exactly the window apart (a repeat), and a microsecond past it (not one).
        edge = now - timedelta(days=12)
        for customer, gap in (
            (people[3], REPEAT_WINDOW),
            (people[4], REPEAT_WINDOW + timedelta(microseconds=1)),
        ):
            for when in (edge, edge + gap):
                await make_interaction(
                    s,
                    customer=customer,
                    agent=x,
                    queue=cards,
                    topic="edge",
                    state=State.COMPLETED,
                    created_at=when,
                    connected_at=when,
                    event=False,
                )
        first, last = (now - timedelta(days=16)).date(), now.date()
        written = await _rebuild_in_python(s, first, last, now)
        python = await _rows(s)
        assert written == len(python) > 20
        assert {r[1] for r in python} == {"queue", "agent"} and any(r[2] == "" for r in python)
        assert sum(r[7] for r in python) > 5  # repeats (column 7) are part of it
        await _rebuild_in_sql(s, first, last, now)
        assert await _rows(s) == python
        # Only the days asked are rebuilt: rebuilding part of them leaves the rest as they were.
        await _rebuild_in_sql(s, last - timedelta(days=3), last, now)
        assert await _rows(s) == python

"""The embedded default (SQLite) after a query is cancelled mid-transaction: SQLAlchemy hard-closes
that connection, and the database must not stay locked. Every transaction here is BEGIN IMMEDIATE,
so a zombie connection holding one (sqlite3_close_v2 with the cancelled cursor's statement still
alive) locked every writer until the process restarted: seen in the running demo, after a browser
closed while its request's query ran."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from sqlalchemy import text

from switchboard.db import Database

SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT count(*) FROM c"
)


def _write_within_a_second(path: str) -> float:
    other = sqlite3.connect(path, timeout=1, isolation_level=None)
    try:
        started = time.monotonic()
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t VALUES (2)")
        other.execute("COMMIT")
        return time.monotonic() - started
    finally:
        other.close()


async def test_a_query_cancelled_in_a_transaction_leaves_the_database_writable(tmp_path) -> None:
    path = str(tmp_path / "cancelled.db")
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        async with db.engine.begin() as c:
            await c.execute(text("CREATE TABLE t (x INTEGER)"))

        async def request() -> None:
            async with db.sessionmaker() as session:
                await session.execute(text("INSERT INTO t VALUES (1)"))
                await session.execute(text(SLOW))  # cancelled while this runs on aiosqlite's thread
                await session.commit()

        task = asyncio.create_task(request())
        await asyncio.sleep(0.2)
        task.cancel()
        kept: BaseException | None = None
        try:
            await task
        except asyncio.CancelledError as cancelled:
            kept = cancelled  # its traceback keeps the cancelled cursor (and its statement) alive
        assert kept is not None
        # The cancelled query ends on its own thread, then the connection is closed there.
        deadline = time.monotonic() + 15
        while True:
            try:
                waited = await asyncio.to_thread(_write_within_a_second, path)
                break
            except sqlite3.OperationalError as exc:
                assert "locked" in str(exc)
                assert time.monotonic() < deadline, "the database stayed locked after the cancel"
        assert waited < 1.0
        # The cancelled transaction's write was rolled back, the other writer's committed.
        async with db.sessionmaker() as session:
            assert (await session.execute(text("SELECT x FROM t ORDER BY x"))).scalars().all() == [2]
        # And the pool still serves writers.
        async with db.sessionmaker() as session:
            await session.execute(text("INSERT INTO t VALUES (3)"))
            await session.commit()
    finally:
        await db.dispose()

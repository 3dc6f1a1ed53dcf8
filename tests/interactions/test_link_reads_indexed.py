"""The reads that follow links between interactions (a transfer's child, a callback, a ticket's
follow-up) run on every desktop tab render and every second per waiting chat: each must be served
by an index, not a scan of the whole interactions table (which grows by every contact ever made).

The statements are the ones the code really runs (captured from the connection), EXPLAINed on
PostgreSQL with sequential scans priced out: a read no index can serve still shows a Seq Scan."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from interactions import chat
from interactions.email import service as email_service
from interactions.models import Interaction
from interactions.states import Channel, State
from interactions.voice import calls
from routing.transfer import consult_status
from switchboard.db import Database
from tests.factories import make_customer, make_interaction

Read = Callable[[AsyncSession, Interaction], Awaitable[Any]]

READS: dict[str, Read] = {
    "desktop consult status": lambda s, it: consult_status(s, parent_id=it.id),
    "chat chain": lambda s, it: chat.chat_chain(s, root_id=it.id),
    "callback requested": lambda s, it: calls._callback_requested(s, it),
    "email chain": lambda s, it: email_service._current_of_chain(s, it),
}


async def _captured(db: Database, read: Read, interaction_id: uuid.UUID) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with db.sessionmaker() as s:
            interaction = await s.get(Interaction, interaction_id)
            assert interaction is not None
            await read(s, interaction)
            await s.commit()
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    return [(sql, params) for sql, params in seen if "interactions" in sql]


@pytest.mark.parametrize("name", sorted(READS))
async def test_link_reads_use_an_index(pg_db: Database, name: str) -> None:
    async with pg_db.sessionmaker() as s:
        customer = await make_customer(s)
        # Transferred, so the chain readers follow the link; the child carries the links.
        parent = await make_interaction(s, customer=customer, channel=Channel.CHAT, state=State.TRANSFERRED)
        await make_interaction(
            s,
            customer=customer,
            channel=Channel.CHAT,
            parent_id=parent.id,
            callback_of_id=parent.id,
            follow_up_of_id=parent.id,
        )
        await s.commit()
        parent_id = parent.id
    statements = await _captured(pg_db, READS[name], parent_id)
    link_reads = [
        (sql, p) for sql, p in statements if "_id = " in sql and ("parent_id" in sql or "_of_id" in sql)
    ]
    assert link_reads, f"{name} read no link: the test no longer sees what it guards ({statements})"
    async with pg_db.engine.connect() as conn:
        await conn.exec_driver_sql("SET enable_seqscan = off")
        for sql, params in link_reads:
            plan = "\n".join(row[0] for row in await conn.exec_driver_sql("EXPLAIN " + sql, params))
            assert "Seq Scan on interactions" not in plan, f"{name}: {sql}\n{plan}"
        await conn.rollback()

"""FastStatement: a prebuilt Core statement that PostgreSQL runs on the raw asyncpg connection.

It must behave exactly as ``session.execute``: same rows and types, the session's transaction
(a rollback undoes it, even as the transaction's first statement), IntegrityError on a violation.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from interactions.models import Interaction
from interactions.schemas import InteractionCreate
from interactions.service import Actor, create_interaction
from interactions.states import Channel, State
from routing.models import RoutingPartition
from switchboard.db import Database, utcnow
from switchboard.fastsql import FastStatement
from tests.helpers import db_schema_for, eventually

_it = Interaction.__table__.c
BY_ID_AND_STATES = FastStatement(
    select(_it.id, _it.channel, _it.state, _it.attributes, _it.created_at, _it.version).where(
        _it.id == bindparam("interaction_id"), _it.state.in_((State.QUEUED, State.CREATED))
    )
)
COUNT_IN_STATES = FastStatement(select(func.count()).where(_it.state.in_((State.QUEUED, State.OFFERED))))
NOW = utcnow()
PARTITIONS = RoutingPartition.__table__
INSERT_PARTITION = FastStatement(insert(PARTITIONS))
BUMP_EPOCH = FastStatement(
    update(PARTITIONS).where(PARTITIONS.c.name == bindparam("partition")).values(epoch=bindparam("epoch"))
)


async def _interaction(db: Database) -> uuid.UUID:
    async with db.sessionmaker() as session:
        data = InteractionCreate(
            channel="chat",
            identity={"kind": "chat", "value": f"c-{uuid.uuid4().hex[:8]}"},
            attributes={"a": 1},
        )
        interaction = await create_interaction(session, data=data, actor=Actor.system(), default_region="GB")
        await session.commit()
        return interaction.id


async def test_rows_match_session_execute(db: Database):
    interaction_id = await _interaction(db)
    async with db.sessionmaker() as session:
        await session.execute(select(1))  # inside a transaction already
        fast = await BY_ID_AND_STATES.first(session, {"interaction_id": interaction_id})
        slow = (await session.execute(BY_ID_AND_STATES.statement, {"interaction_id": interaction_id})).first()
        assert fast is not None and slow is not None
        assert tuple(fast) == tuple(slow)
        assert fast.id == interaction_id and isinstance(fast.id, uuid.UUID)
        assert fast.channel is Channel.CHAT and fast.state is State.QUEUED
        assert fast.attributes == {"a": 1} and fast.created_at.tzinfo is not None
        assert await COUNT_IN_STATES.first(session, {}) == (1,)
        assert await BY_ID_AND_STATES.first(session, {"interaction_id": uuid.uuid4()}) is None


async def test_first_statement_of_a_transaction_is_rolled_back_with_it(db: Database):
    async with db.sessionmaker() as session:
        await INSERT_PARTITION.rowcount(
            session, {"name": "fast", "epoch": 1, "live_rule_set_version": None, "updated_at": NOW}
        )
        assert await BUMP_EPOCH.rowcount(session, {"partition": "fast", "epoch": 7}) == 1
        assert await BUMP_EPOCH.rowcount(session, {"partition": "nobody", "epoch": 7}) == 0
        assert await session.scalar(select(PARTITIONS.c.epoch).where(PARTITIONS.c.name == "fast")) == 7
        await session.rollback()
    async with db.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(PARTITIONS)) == 0


async def test_constraint_violation_is_an_integrity_error_and_nothing_is_kept(db: Database):
    from sqlalchemy.exc import IntegrityError

    async with db.sessionmaker() as session:
        await INSERT_PARTITION.rowcount(
            session, {"name": "twice", "epoch": 1, "live_rule_set_version": None, "updated_at": NOW}
        )
        with pytest.raises(IntegrityError):
            await INSERT_PARTITION.rowcount(
                session, {"name": "twice", "epoch": 2, "live_rule_set_version": None, "updated_at": NOW}
            )
        await session.rollback()
    async with db.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(PARTITIONS)) == 0


async def test_a_dead_connection_is_a_database_error_and_is_not_handed_out_again(
    pg_db: Database, postgres_url: str
):
    """The backend dies between the checkout and the transaction's first statement, which begins
    the transaction on the driver directly: that is a DBAPIError naming the connection lost (as
    ``session.execute`` would raise), and the pool gives the next session a live connection
    instead of the dead one SQLAlchemy never saw fail."""
    victim = Database(postgres_url, schema=db_schema_for(postgres_url))
    try:
        async with victim.sessionmaker() as session:
            driver = (await (await session.connection()).get_raw_connection()).driver_connection
            async with pg_db.engine.connect() as conn:
                await conn.execute(
                    text("SELECT pg_terminate_backend(:pid)"), {"pid": driver.get_server_pid()}
                )

            async def closed() -> bool:
                return driver.is_closed()

            await eventually(closed, what="the driver to see its backend gone")
            with pytest.raises(DBAPIError) as failed:
                await COUNT_IN_STATES.first(session, {})
            assert failed.value.connection_invalidated
        async with victim.sessionmaker() as session:
            assert await COUNT_IN_STATES.first(session, {}) == (0,)
        assert victim.engine.pool.checkedin() == 1  # the dead one was replaced, not added to
    finally:
        await victim.dispose()

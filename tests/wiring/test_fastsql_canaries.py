"""Canaries for every SQLAlchemy / asyncpg internal that ``switchboard.fastsql`` relies on.

fastsql compiles Core statements once and runs them on the raw asyncpg connection. It reads
private attributes to do so; when a SQLAlchemy or asyncpg release changes one of them, the fast
path either breaks or (worse) silently falls back to ``session.execute``. pyproject.toml bounds
both libraries below their next major; these tests say exactly which internal moved when a bump
is tried. Each names the fastsql line that depends on it.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg

from interactions.models import Interaction
from interactions.states import State
from switchboard.db import Database
from switchboard.fastsql import FastStatement, _raw_connection, held_connection

_it = Interaction.__table__.c
STATEMENT = select(_it.id, _it.state, _it.attributes).where(
    _it.id == bindparam("interaction_id"), _it.state.in_((State.QUEUED, State.OFFERED))
)


def _compiled():  # type: ignore[no-untyped-def]
    return STATEMENT.compile(dialect=pg_asyncpg.dialect())


def test_compiled_result_columns_carry_name_and_type() -> None:
    # FastStatement._compile: ``compiled._result_columns``, c[0] the key, c[3] the column type.
    columns = _compiled()._result_columns
    assert [c[0] for c in columns] == ["id", "state", "attributes"]
    assert [type(c[3]).__name__ for c in columns] == [
        type(_it.id.type).__name__,
        type(_it.state.type).__name__,
        type(_it.attributes.type).__name__,
    ]


def test_type_cached_result_processor_is_callable() -> None:
    # FastStatement._compile: ``TypeEngine._cached_result_processor(dialect, coltype)``.
    dialect = pg_asyncpg.dialect()
    for column in _compiled()._result_columns:
        processor = column[3]._cached_result_processor(dialect, None)
        assert processor is None or callable(processor)
    state_processor = _it.state.type._cached_result_processor(dialect, None)
    assert state_processor is not None and state_processor("queued") is State.QUEUED


def test_expanded_state_gives_sql_positions_defaults_and_processors() -> None:
    # FastStatement._compile: ``compiled.binds[...].required`` and
    # ``construct_expanded_state(..., escape_names=False)`` -> statement, parameters, positiontup,
    # processors; the literal IN list is expanded once, the bound id stays a parameter.
    compiled = _compiled()
    required = {bind.key: None for bind in compiled.binds.values() if bind.required}
    assert list(required) == ["interaction_id"]
    expanded = compiled.construct_expanded_state(required, escape_names=False)
    assert "$1" in expanded.statement and "%(" not in expanded.statement
    positions = tuple(expanded.positiontup or ())
    assert positions[0] == "interaction_id" and len(positions) == 3  # id + the two literal states
    assert all(name in expanded.parameters for name in positions)
    assert isinstance(expanded.processors, dict)


def _postgres_only(db: Database) -> None:
    if db.engine.dialect.driver != "asyncpg":
        pytest.skip("the raw-connection internals exist on PostgreSQL (asyncpg) only")


async def test_asyncpg_adapter_internals_give_the_fast_path(db: Database) -> None:
    # _raw_connection: the adapter's ``_transaction`` / ``_start_transaction`` / ``_connection``.
    # If any is missing, fastsql silently uses session.execute: this test makes that loud.
    _postgres_only(db)
    import asyncpg

    async with db.sessionmaker() as session:
        connection = await session.connection()
        adapter = (await connection.get_raw_connection()).dbapi_connection
        for name in ("_transaction", "_start_transaction", "_connection"):
            assert hasattr(adapter, name), f"asyncpg adapter lost {name}: fastsql would fall back"
        raw = await _raw_connection(session)
        assert isinstance(raw, asyncpg.Connection)
        assert adapter._transaction is not None  # BEGIN was sent, as SQLAlchemy would
        assert await FastStatement(STATEMENT).first(session, {"interaction_id": uuid.uuid4()}) is None
        await session.rollback()


async def test_held_connection_is_the_asyncpg_driver_connection(db: Database) -> None:
    # HeldConnections._take: ``get_raw_connection().driver_connection`` is the asyncpg connection,
    # and ``AsyncConnection.sync_connection.invalidate()`` exists for engine disposal.
    _postgres_only(db)
    import asyncpg

    async with held_connection(db.engine) as driver:
        assert isinstance(driver, asyncpg.Connection)
        assert await driver.fetchval("SELECT 1") == 1
    async with db.engine.connect() as conn:
        assert conn.sync_connection is not None and callable(conn.sync_connection.invalidate)

"""Database engine, sessions and the column types every domain shares."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator

# Stable constraint names so Alembic migrations are identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (indexable), JSON text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")


# How long a SQLite writer waits for the single write lock before "database is locked". One figure
# for the driver's timeout and the pragma (the pragma, set last, used to cut it to 10 s): a shift-start
# burst queues every sign-in, status change and offer behind one lock, and waiting is the right
# answer on the embedded default; a request failing is not.
SQLITE_BUSY_TIMEOUT_S = 30


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (SAVEPOINTs need it).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.close()


class _RollingBackConnection(sqlite3.Connection):
    """A SQLite connection that ends its transaction before it closes.

    SQLAlchemy hard-closes a connection whose query was cancelled (a browser closing a socket, a
    request given up): aiosqlite closes it on its thread once the query is done. sqlite3's close()
    is sqlite3_close_v2, which leaves a connection that still has a statement (the cancelled
    cursor's, alive until garbage collection; never, once frozen by gc.freeze) as a zombie holding
    its transaction, and every transaction here is BEGIN IMMEDIATE: the database stayed locked for
    every writer until the process restarted (seen in the running demo). ROLLBACK first releases
    the lock whatever still points at the statement."""

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            if self.in_transaction:
                self.execute("ROLLBACK").close()
        super().close()


def _sqlite_begin_immediate(connection: Any) -> None:
    # Take the write lock up front: a deferred transaction that later writes can fail with
    # "database is locked" when another writer committed in between (WAL snapshot conflict).
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, echo: bool = False, schema: str | None = None) -> AsyncEngine:
    """``schema`` (PostgreSQL only) pins the search_path, e.g. one schema per test run or tenant."""
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url,
            echo=echo,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "factory": _RollingBackConnection},
            hide_parameters=True,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    connect_args = {"server_settings": {"search_path": schema}} if schema else {}
    # No pool_pre_ping: with asyncpg it costs three round trips (BEGIN, ping, ROLLBACK) on every
    # checkout, i.e. on every session of the hot path. A connection PostgreSQL dropped fails its
    # next statement instead; SQLAlchemy then invalidates the pool, and recycling bounds the age.
    # One the driver already knows is closed is replaced at checkout (``_replace_closed``).
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=20,
        max_overflow=20,
        pool_recycle=1800,
        connect_args=connect_args,
        # A failed statement's exception (and so its log line) never carries the values: they are
        # customers' messages, names and addresses.
        hide_parameters=True,
    )
    event.listen(engine.sync_engine.pool, "checkout", _replace_closed)
    return engine


def _replace_closed(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """A pooled connection whose server end is gone (its backend terminated, the server restarted)
    is replaced before anyone gets it. SQLAlchemy learns a connection is dead only when one of its
    own statements fails on it; a failure on the driver directly (``switchboard.fastsql`` begins the
    transaction itself) left the dead connection in the pool, handed out again and again: the
    routing engine's take-over failed on it at every retry. Asking the driver costs no round trip."""
    driver = record.driver_connection
    is_closed = getattr(driver, "is_closed", None)  # asyncpg's; other drivers are left as they were
    if callable(is_closed) and is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def make_sessionmaker(
    engine: AsyncEngine, session_class: type[Session] = Session
) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        engine, expire_on_commit=False, autoflush=False, sync_session_class=session_class
    )


class Database:
    """Owns one engine and its session factory; one per app (and per RQ job)."""

    def __init__(self, url: str, *, echo: bool = False, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        self.engine = make_engine(url, echo=echo, schema=schema)
        # Its own Session class: session hooks are registered on it explicitly (see
        # switchboard.app.wire_sessions), so they apply to this database's sessions only and never
        # depend on which modules a process happened to import.
        self.session_class: type[Session] = type("DatabaseSession", (Session,), {})
        self.sessionmaker = make_sessionmaker(self.engine, self.session_class)

    def set_session_info(self, key: str, value: Any) -> None:
        """Put ``key`` in the ``info`` of every session this database opens from now on."""
        info = dict(self.sessionmaker.kw.get("info") or {})
        info[key] = value
        self.sessionmaker.configure(info=info)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()

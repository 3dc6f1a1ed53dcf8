"""Hot statements on PostgreSQL without SQLAlchemy's per-execution machinery.

A ``FastStatement`` wraps a prebuilt SQLAlchemy Core statement. On PostgreSQL it is compiled once
(SQL text, positional parameter order, the column types' bind and result processors) and run
straight on the session's asyncpg connection, inside the session's transaction. Measured on the
reference machine: ~28 µs of CPU and ~47 µs wall per round trip instead of ~125 µs and ~197 µs
through ``session.execute``; the routing engine runs ~8 of them per decision.

Everywhere else (SQLite), and whenever the session's database transaction has not begun yet, the
statement goes through ``session.execute`` as usual. So the SQL is written once, in Core, and both
backends run the same statement; the PostgreSQL tests cover this path.

Errors keep SQLAlchemy's types: a constraint violation is raised as ``sqlalchemy.exc.IntegrityError``.
Unlike ``session.execute``, Python-side column defaults are not applied: an INSERT must be given
every column (a missing one is bound as NULL).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import weakref
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, EmulatedDBAPIException, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    defaults: dict[str, Any]  # every bind's value as built (literals, expanded IN lists)
    positions: tuple[str, ...]  # bind name of $1, $2, ...
    bind_processors: dict[str, Callable[[Any], Any]]
    row: type | None  # namedtuple of the result columns; None: no rows (status only)
    result_processors: tuple[Callable[[Any], Any] | None, ...]


class FastStatement:
    """A prebuilt statement, run with ``await stmt.rows(session, params)`` / ``.rowcount(...)``."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    async def rows(self, session: AsyncSession, params: dict[str, Any]) -> list[Any]:
        """The result rows (attribute access by column name, as SQLAlchemy rows)."""
        raw = await _raw_connection(session)
        if raw is None:
            return list((await session.execute(self.statement, params)).all())
        compiled = self._compile(session.bind.dialect)
        records = await _run(raw.fetch, compiled, params)
        return [self._row(compiled, record) for record in records]

    async def first(self, session: AsyncSession, params: dict[str, Any]) -> Any | None:
        found = await self.rows(session, params)
        return found[0] if found else None

    async def first_alone(self, session: AsyncSession, params: dict[str, Any]) -> Any | None:
        """``first`` as a read of its own, then the session is committed (its connection goes back
        to the pool). When no transaction is open, on PostgreSQL it runs without one: one round
        trip, not BEGIN, the read and COMMIT (a route's ownership check before an engine call)."""
        await reads_in_autocommit(session)
        row = await self.first(session, params)
        await session.commit()
        return row

    async def first_on(self, driver: Any, dialect: Dialect, params: dict[str, Any]) -> Any | None:
        """As ``first``, on a held asyncpg connection (``held_connection``): autocommit."""
        compiled = self._compile(dialect)
        records = await _run(driver.fetch, compiled, params)
        return self._row(compiled, records[0]) if records else None

    @staticmethod
    def _row(compiled: _Compiled, record: Any) -> Any:
        assert compiled.row is not None, "a statement without result columns"
        return compiled.row(
            *(
                value if proc is None else proc(value)
                for value, proc in zip(record, compiled.result_processors, strict=True)
            )
        )

    async def rowcount(self, session: AsyncSession, params: dict[str, Any]) -> int:
        """Rows an UPDATE / DELETE / INSERT without RETURNING touched."""
        raw = await _raw_connection(session)
        if raw is None:
            return (await session.execute(self.statement, params)).rowcount  # type: ignore[attr-defined]
        status = await _run(raw.execute, self._compile(session.bind.dialect), params)
        return int(status.rsplit(" ", 1)[-1]) if status and status[-1].isdigit() else 0

    def _compile(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is not None:
            return found
        compiled = self.statement.compile(dialect=dialect)
        # Literal IN lists are expanded now, once (a bound parameter's value comes per call).
        placeholders = {bind.key: None for bind in compiled.binds.values() if bind.required}
        expanded = compiled.construct_expanded_state(placeholders, escape_names=False)
        columns = getattr(compiled, "_result_columns", None) or []
        row = namedtuple("Row", [c[0] for c in columns], rename=True) if columns else None  # noqa: PYI024
        found = _Compiled(
            sql=expanded.statement,
            defaults=dict(expanded.parameters),
            positions=tuple(expanded.positiontup or ()),
            # The columns' own (JSON encoding, masking, enums, UTC times), as session.execute
            # applies them; the expanded state holds only those of expanded IN lists.
            bind_processors={
                **{name: proc for name, proc in compiled._bind_processors.items() if callable(proc)},
                **expanded.processors,
            },
            row=row,
            result_processors=tuple(c[3]._cached_result_processor(dialect, None) for c in columns),
        )
        self._compiled[dialect.name] = found
        return found


async def reads_in_autocommit(session: AsyncSession) -> None:
    """Run the session's statements without a transaction on PostgreSQL, for read-only work.

    Each statement is then one round trip instead of BEGIN + statement(s) + COMMIT; under READ
    COMMITTED (the default) every statement of a transaction sees a fresh snapshot anyway, so what
    is read is the same. The isolation level resets when the connection returns to the pool. Not
    on SQLite, whose BEGIN IMMEDIATE listener and sqlite3 transaction handling must stay as
    configured in switchboard.db. With a transaction open (statements since the last commit),
    nothing changes: they go on in it.
    """
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql" and not session.in_transaction():
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


class PgStatement:
    """SQL written for PostgreSQL alone (``:name`` parameters), run like a ``FastStatement``.

    For the few statements whose point is to do in ONE round trip what the portable path does in
    several (data-modifying CTEs); the caller keeps the portable path for other databases.
    Parameters are passed as asyncpg takes them (no SQLAlchemy type processing): cast them in the
    SQL where PostgreSQL cannot infer the type, and pass JSON as text.
    """

    _NAME = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")

    def __init__(self, sql: str) -> None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        self.sql = self._NAME.sub(number, sql)
        self.names = tuple(names)

    async def fetchrow_on(self, driver: Any, params: dict[str, Any]) -> Any:
        """On a held asyncpg connection (``held_connection``): autocommit, one round trip."""
        try:
            return await driver.fetchrow(self.sql, *(params[name] for name in self.names))
        except Exception as exc:
            _translate(exc, self.sql, params)
            raise

    async def fetch_in(self, session: AsyncSession, params: dict[str, Any]) -> list[Any]:
        """Every row, inside the session's transaction (PostgreSQL through asyncpg only)."""
        raw = await _raw_connection(session)
        if raw is None:
            raise RuntimeError("PgStatement needs PostgreSQL through asyncpg")
        try:
            return list(await raw.fetch(self.sql, *(params[name] for name in self.names)))
        except Exception as exc:
            _translate(exc, self.sql, params)
            raise


async def _raw_connection(session: AsyncSession) -> Any | None:
    """The asyncpg connection of the session's transaction, or None to use ``session.execute``
    (not PostgreSQL, or an asyncpg adapter whose internals are not the ones this relies on)."""
    if session.bind is None or session.bind.dialect.driver != "asyncpg":
        return None
    connection = await session.connection()  # begins the session's transaction
    adapter = (await connection.get_raw_connection()).dbapi_connection
    if not (hasattr(adapter, "_transaction") and hasattr(adapter, "_start_transaction")):
        return None
    if adapter._transaction is None:  # noqa: SLF001
        # SQLAlchemy's adapter sends BEGIN lazily, with the transaction's first statement; do what
        # it would (a no-op in autocommit), or this statement would commit on its own.
        try:
            await adapter._start_transaction()  # noqa: SLF001
        except EmulatedDBAPIException as exc:
            # As session.execute raises it (a DBAPIError), so callers tell a dead connection from
            # a bug; the pool replaces the connection at its next checkout (switchboard.db).
            raise DBAPIError.instance(
                "BEGIN",
                None,
                exc,
                session.bind.dialect.loaded_dbapi.Error,
                connection_invalidated=_driver_closed(adapter),
            ) from exc
    return adapter._connection  # noqa: SLF001 - the asyncpg connection under the adapter


def _driver_closed(adapter: Any) -> bool:
    """Whether the driver connection under SQLAlchemy's adapter knows it is closed."""
    return bool(adapter._connection.is_closed())  # noqa: SLF001


# Called with each statement's SQL before it runs straight on asyncpg (what SQLAlchemy's
# before_cursor_execute sees of every other statement): tests count statements with it.
statement_listeners: list[Callable[[str], None]] = []


async def _run(method: Callable[..., Any], compiled: _Compiled, params: dict[str, Any]) -> Any:
    for listener in statement_listeners:
        listener(compiled.sql)
    values = {**compiled.defaults, **params}
    args: Sequence[Any] = [
        values[name] if (proc := compiled.bind_processors.get(name)) is None else proc(values[name])
        for name in compiled.positions
    ]
    try:
        return await method(compiled.sql, *args)
    except Exception as exc:
        _translate(exc, compiled.sql, params)
        raise


def _translate(exc: Exception, sql: str, params: dict[str, Any]) -> None:
    """Raise asyncpg's errors as SQLAlchemy's, as ``session.execute`` would."""
    import asyncpg

    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        raise IntegrityError(sql, params, exc) from exc
    if isinstance(exc, asyncpg.PostgresError):
        raise DBAPIError(sql, params, exc) from exc


# ---------------------------------------------------------------------- held connections

# Connections of SQLAlchemy's pool kept checked out for the hot statements, per engine: a
# checkout + return through SQLAlchemy (or an AsyncSession around it) costs ~0.15-0.6 ms of CPU,
# more than the statement itself. Few enough to leave the pool (20 + 20 overflow) to everything
# else, and a bound on concurrent statements (beyond the pool's size SQLAlchemy would open
# overflow connections and close them on return: a new backend, type introspection, re-preparing).
HELD_CONNECTIONS = 8
RECYCLE_SECONDS = 1800.0  # as the engine's pool_recycle


@dataclass(slots=True, eq=False)
class _Held:
    conn: AsyncConnection
    driver: Any  # the asyncpg connection
    opened_at: float


class HeldConnections:
    """A few pooled connections, checked out once and reused; closed when the engine is disposed.

    Statements on them run in autocommit (no transaction is begun): each is one round trip,
    atomic on its own."""

    def __init__(self, engine: AsyncEngine, size: int) -> None:
        self.engine = engine
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Held] = []
        self._all: set[_Held] = set()
        event.listen(engine.sync_engine, "engine_disposed", self._on_dispose)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        import asyncpg

        async with self._slots:
            held = await self._take()
            try:
                yield held.driver
            except (asyncpg.PostgresError, DBAPIError) as exc:
                cause = exc.orig if isinstance(exc, DBAPIError) else exc
                if isinstance(cause, asyncpg.PostgresConnectionError):
                    self._abandon(held)
                else:  # the statement failed (e.g. a unique key): the connection is fine
                    self._idle.append(held)
                raise
            except BaseException:  # broken, cancelled mid-statement, ...: never reused
                self._abandon(held)
                raise
            self._idle.append(held)

    async def _take(self) -> _Held:
        while self._idle:
            held = self._idle.pop()
            if time.monotonic() - held.opened_at < RECYCLE_SECONDS and not held.driver.is_closed():
                return held
            await self._drop(held)
        conn = await self.engine.connect()
        try:
            raw = await conn.get_raw_connection()
        except BaseException:
            await conn.close()
            raise
        held = _Held(conn, raw.driver_connection, time.monotonic())
        self._all.add(held)
        return held

    def _abandon(self, held: _Held) -> None:
        self._all.discard(held)
        held.driver.terminate()
        task = asyncio.get_running_loop().create_task(self._drop(held))
        _in_flight.add(task)
        task.add_done_callback(_in_flight.discard)

    async def _drop(self, held: _Held) -> None:
        self._all.discard(held)
        with contextlib.suppress(Exception):
            await held.conn.invalidate()
        with contextlib.suppress(Exception):
            await held.conn.close()

    def _on_dispose(self, _engine: Any) -> None:
        # Inside AsyncEngine.dispose (a greenlet): really close them, the old pool is gone.
        for held in list(self._all):
            with contextlib.suppress(Exception):
                held.conn.sync_connection.invalidate()  # type: ignore[union-attr]
        self._all.clear()
        self._idle.clear()
        _held.pop(self.engine, None)


_in_flight: set[asyncio.Task[None]] = set()
_held: weakref.WeakKeyDictionary[AsyncEngine, HeldConnections] = weakref.WeakKeyDictionary()


def held_connection(engine: AsyncEngine) -> contextlib.AbstractAsyncContextManager[Any]:
    """One of the engine's held connections (the asyncpg connection; PostgreSQL only)."""
    held = _held.get(engine)
    if held is None:
        held = _held[engine] = HeldConnections(engine, HELD_CONNECTIONS)
    return held.connection()

"""Group commit: the decisions of the commands taken in one read of the streams, in ONE transaction.

A command such as accept, wrap-up or complete changes only the engine's memory when it is handled
(``Leader.apply`` while a ``Group`` is open); its decision waits in the group, and its reply with
it. When the read is worked through (or a command that reads SQL comes next), ``commit`` writes
every waiting decision in one fenced transaction, each with the time it was made, publishes what
they announce and answers their callers. One transaction per read instead of one per command
(BEGIN, the fence, COMMIT and a session each), and the timeline rows and interval counters of the
whole group in one statement each.

Each decision keeps its own outcome. If SQL refuses one of them (a stale version, a conflict, any
write error of that decision), the transaction is rolled back, the floor's offer maps put back,
and the group is written again in three parts: the decisions before the refused one together, the
refused one alone (refused and repaired locally, as any single decision: ``Leader.commit_events``),
the rest together. A newer epoch ends the leadership as before; a lost connection (whether the
transaction committed is unknown) has every decision of the group re-read from SQL.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy.exc import DBAPIError

from routing import store
from routing.engine.events import Event
from routing.host import persist, repair, writers
from routing.host.errors import DecisionRefused, LostLeadership, RebuildFailed

if TYPE_CHECKING:
    from routing.host.leader import Leader


# The connection died or the server is going away (terminated backend, shutdown), as opposed to
# SQL refusing one statement.
# SQL unreachable, or a connection lost mid-statement (asyncpg's own errors come from the
# one-statement path's held connections).
DATABASE_ERRORS = (DBAPIError, OSError, asyncpg.InterfaceError)
_GONE = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError)


def connection_lost(exc: BaseException) -> bool:
    if isinstance(exc, _GONE):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or any(
            isinstance(e, _GONE) for e in (exc.orig, getattr(exc.orig, "__cause__", None))
        )
    return False


log = logging.getLogger(__name__)


@dataclass(slots=True)
class Decision:
    events: list[Event]
    decided_at: float  # the engine's clock when it was made: its rows carry this time
    context: str


@dataclass(slots=True)
class Waiting:
    """A handled command whose reply waits for its decisions (``first``..``end`` of the group)."""

    raw: dict[str, Any]
    result: dict[str, Any]
    first: int
    end: int


@dataclass
class Group:
    decisions: list[Decision] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.decisions or self.waiting)


async def commit(leader: Leader, group: Group) -> list[Waiting]:
    """Write the group's decisions; returns its commands with their final results (a command
    whose decision SQL refused answers ``{"ok": False, "reason": ...}``). Empties the group."""
    decisions, waiting = group.decisions, group.waiting
    group.decisions, group.waiting = [], []
    refused = await commit_decisions(leader, decisions) if decisions else []
    for command in waiting:
        reasons = [r for r in refused[command.first : command.end] if r is not None]
        if reasons:
            command.result = {"ok": False, "reason": reasons[0]}
    return waiting


async def commit_decisions(leader: Leader, decisions: list[Decision]) -> list[str | None]:
    """Per decision: None when committed, else why SQL refused it (and it was repaired)."""
    if not decisions:
        return []
    if len(decisions) == 1:
        return [await _alone(leader, decisions[0])]
    try:
        bad = await _together(leader, decisions)
    except DecisionRefused as exc:  # the database failed under the group: all re-read from SQL
        return [str(exc)] * len(decisions)
    if bad is None:
        return [None] * len(decisions)
    return [
        *await commit_decisions(leader, decisions[:bad]),
        await _alone(leader, decisions[bad]),
        *await commit_decisions(leader, decisions[bad + 1 :]),
    ]


async def _alone(leader: Leader, decision: Decision) -> str | None:
    try:
        async with leader.host.db.sessionmaker() as session:
            persist.hold_loaded(session)
            await leader.commit_events(
                session, decision.events, context=decision.context, now=decision.decided_at
            )
    except DecisionRefused as exc:
        return str(exc)
    except (LostLeadership, RebuildFailed):
        raise
    except Exception as exc:  # noqa: BLE001 - as a single command: its caller hears, the stream goes on
        log.exception("routing engine: %s failed", decision.context)
        return f"internal error: {type(exc).__name__}"
    return None


async def _together(leader: Leader, decisions: list[Decision]) -> int | None:
    """All in one transaction: None when committed (and published); else the index of the
    decision SQL refused, with nothing written and the floor's maps as they were before. Raises
    DecisionRefused when the database failed (all of them re-read from SQL)."""
    host, floor = leader.host, leader.floor
    journal: list[tuple[Any, Any, Any]] = []
    published: list[writers.Message] = []
    at, finishing = 0, False
    async with host.db.sessionmaker() as session:
        persist.hold_loaded(session)
        persist.begin(session)
        floor.journal = journal
        try:
            await store.fence(session, partition=host.partition, epoch=leader.lease.epoch)
            for decision in decisions:
                events, decided_at = decision.events, decision.decided_at
                published += await persist.write_decision(leader, session, events, decided_at)
                at += 1
            finishing = True
            await persist.finish(session)
        except store.StaleEngine as exc:
            await session.rollback()
            raise LostLeadership(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - SQL refused a decision: the group goes again without it
            with contextlib.suppress(Exception):
                await session.rollback()
            floor.journal = None
            if connection_lost(exc) or (finishing and isinstance(exc, DATABASE_ERRORS)):
                # The database failed (during the COMMIT, whether it committed is unknown): SQL
                # knows, so everything the group touched is re-read from it.
                log.warning("routing engine: a group failed in SQL (%s)", type(exc).__name__)
                await leader.repair(*repair.touched_by(e for d in decisions for e in d.events))
                raise DecisionRefused("the database failed; the decision was re-read from it") from exc
            floor.undo(journal)
            if finishing:
                at = 0  # the group's own statements: written again decision by decision
            at = min(at, len(decisions) - 1)
            log.info("routing engine: %s refused within a group (%s)", decisions[at].context, exc)
            return at
        finally:
            floor.journal = None
    if published:
        await host.publisher.publish_many(persist.publishable(published))
    return None

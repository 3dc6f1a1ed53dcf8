"""Which agent profile a signed-in user is: resolved once per process, not on every request.

Every desktop request and socket needs the agent behind its user; reading the ``Agent`` row (and
its skills) for that on each of a contact's seven requests cost ~11 ms of app CPU per contact
(docs/benchmarks.md, the full agent loop). What a request needs to know *who* the agent is never
changes while the profile exists: its id and its user. So that pair, ``AgentRef``, is kept in the
process's user cache (``switchboard.auth.cache``, ``remember`` / ``recall``), which drops it
whenever the user is invalidated, here or on another process through Redis. Everything that does
change (presence, capacity, skills, teams) is not in it: whoever decides on those reads the row.

What would make an ``AgentRef`` wrong (the profile deleted, or moved to another user) marks the user
changed in the same transaction (``watch_agent_identity``), so every process forgets it at commit.
Having no profile is not remembered: a profile created for a supervisor is seen on their next request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select
from sqlalchemy.orm import Session

from switchboard.auth.cache import ALL, UserCache, mark_users_changed
from workforce.models import Agent

CACHE_KEY = "agent"
# Bounds only what a change made outside SQLAlchemy (raw SQL deleting a profile) leaves behind; a
# stale entry names a profile that is gone, which every query by agent id then finds nothing for.
TTL_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class AgentRef:
    """Who the agent is: never changes while the profile exists. Read the ``Agent`` row for the rest."""

    id: uuid.UUID
    user_id: uuid.UUID


async def agent_ref_for_user(state: Any, user_id: uuid.UUID) -> AgentRef | None:
    """The user's agent profile (``state``: the app's state, with ``db`` and ``user_cache``), or None."""
    cache: UserCache | None = getattr(state, "user_cache", None)
    if cache is not None:
        cached = cache.recall(user_id, CACHE_KEY)
        if cached is not None:
            return cached
        generation = cache.generation
    async with state.db.sessionmaker() as session:
        if session.bind.dialect.name == "postgresql":
            # One round trip instead of BEGIN + SELECT + COMMIT (as switchboard.deps does for users).
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        agent_id = await session.scalar(select(Agent.id).where(Agent.user_id == user_id))
        await session.commit()
    if agent_id is None:
        return None
    ref = AgentRef(id=agent_id, user_id=user_id)
    if cache is not None:
        cache.remember(user_id, CACHE_KEY, ref, generation=generation, ttl=TTL_SECONDS)
    return ref


# ---- SQLAlchemy hooks: a change to who a profile belongs to invalidates it everywhere -------------


def watch_agent_identity(session_class: type[Session]) -> None:
    """Make every session of ``session_class`` mark the users whose profile was deleted or moved,
    so the user cache's commit hook (``switchboard.auth.cache.watch_user_changes``, on the same
    class) drops their ``AgentRef`` on every process."""
    sa_event.listen(session_class, "do_orm_execute", _on_execute)
    sa_event.listen(session_class, "after_flush", _on_flush)


def _on_flush(session: Session, _context: Any) -> None:
    users: set[Any] = set()
    for obj in session.deleted:
        if isinstance(obj, Agent):
            users.add(obj.user_id)
    for obj in session.dirty:
        if isinstance(obj, Agent):
            history = sa_inspect(obj).attrs.user_id.history
            if history.has_changes():
                users.update((*history.deleted, *history.added))
    users.discard(None)
    if users:
        mark_users_changed(session, users)


def _on_execute(state: Any) -> None:
    if not (state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) != Agent.__tablename__:
        return
    if state.is_delete or _may_set_user_id(state):
        mark_users_changed(state.session, ALL)


def _may_set_user_id(state: Any) -> bool:
    """Whether a bulk UPDATE of agents may change ``user_id`` (the engine's presence writes do not:
    they must not empty every process's cache)."""
    values = getattr(state.statement, "_values", None)
    if values is None:
        values = dict(getattr(state.statement, "_ordered_values", None) or [])
    names = {getattr(column, "key", column) for column in (values or {})}
    params = state.parameters
    for row in params if isinstance(params, list) else [params or {}]:
        names.update(row)
    if not names:
        return True  # cannot tell what it sets: assume the worst
    return "user_id" in names

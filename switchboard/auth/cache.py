"""Per-process cache of authenticated users, invalidated through Redis pub/sub.

Every authenticated request used to read its user row (role and active flag must hold per
request). This cache keeps, per app process and for at most ``TTL_SECONDS``, the user behind a
token (keyed by the token, whose subject is the user id, so by (user id, token)) once the row
was checked. It is correct only while invalidation reaches it, so:

* every committed change to the ``users`` table made through SQLAlchemy (an ORM flush of a
  ``User``, or ``session.execute(update(User) / delete(User))``) invalidates every cache of this
  process synchronously at commit, and is announced on the Redis channel ``CHANNEL``;
* each cache subscribes to ``CHANNEL`` and drops the named users (or everything) on a message,
  so a deactivated or demoted user is refused on every process as soon as the message arrives
  (pub/sub delivery, well under a millisecond on loopback);
* a cache serves entries only while its subscription is confirmed live; if Redis drops it, the
  cache empties and every request reads SQL again until it has resubscribed;
* a read that raced an invalidation is not stored (a generation counter), so a row read before
  a change committed cannot be cached after the change was announced.

Changes made outside SQLAlchemy (psql, another program) must call ``announce_users_changed``;
``TTL_SECONDS`` bounds what they could otherwise leave behind.

Other layers keep values derived from a user here too (``remember`` / ``recall``, e.g. the user's
agent profile id in ``workforce.deps``): they live and die with the user's invalidations, so a
module that changes what it derives marks the user changed (``mark_users_changed``) in the same
session, and every process drops the value at commit through the same channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, make_transient_to_detached

from switchboard.auth.models import Role, User
from switchboard.redis import rkey
from switchboard.tasks import cancel_and_wait

log = logging.getLogger(__name__)

CHANNEL = rkey("auth", "users-changed")
TTL_SECONDS = 5.0
MAX_ENTRIES = 20_000

# Execution option naming the users a bulk UPDATE / DELETE of users changes. Without it every
# user counts as changed (the statement's WHERE is not read), which empties every process's cache
# and wakes every open desktop's session check: once per sign-in while hashes are renewed, that
# is quadratic at shift start.
CHANGED_USERS_OPTION = "switchboard_changed_users"
# Session.info key: user ids (or ALL) changed in the session's current transaction.
CHANGED_KEY = "sb_users_changed"
ALL = "*"

_caches: weakref.WeakSet[UserCache] = weakref.WeakSet()  # every live cache of this process
_in_flight: set[asyncio.Task[Any]] = set()


@dataclass(frozen=True, slots=True)
class _Snapshot:
    id: uuid.UUID
    username: str
    display_name: str
    email: str | None
    role: Role
    is_active: bool
    token_version: int
    customer_id: uuid.UUID | None
    created_at: datetime
    password_hash: str

    @classmethod
    def of(cls, user: User) -> _Snapshot:
        return cls(**{column.name: getattr(user, column.name) for column in fields(cls)})

    def user(self) -> User:
        """A fresh detached User per request (never shared between sessions)."""
        user = User(**{column.name: getattr(self, column.name) for column in fields(self)})
        make_transient_to_detached(user)
        return user


class UserCache:
    """One per app process. ``get`` / ``put`` are synchronous; ``run`` keeps the subscription."""

    def __init__(self, client: aioredis.Redis | None, *, ttl: float = TTL_SECONDS) -> None:
        self.client = client
        self.ttl = ttl
        self.generation = 0  # bumped by every invalidation
        self.live = False  # subscription confirmed; entries are served only while true
        self._entries: dict[str, tuple[float, _Snapshot]] = {}
        # (user id, key) -> (deadline, value): values other layers derive from a user.
        self._derived: dict[tuple[str, str], tuple[float, Any]] = {}
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        # user id -> events set when that user (or everyone) is invalidated: open sockets re-check
        # their session at once instead of serving a disabled or signed-out user until they close.
        self._watchers: dict[str, set[asyncio.Event]] = {}
        _caches.add(self)

    # ---- lookups -----------------------------------------------------------------------------

    def get(self, token: str) -> User | None:
        if not self.live:
            return None
        entry = self._entries.get(token)
        if entry is None:
            return None
        deadline, snapshot = entry
        if time.monotonic() >= deadline:
            self._entries.pop(token, None)
            return None
        return snapshot.user()

    def put(self, token: str, user: User, *, generation: int, token_expires_at: datetime) -> None:
        """Remember a user whose row was checked, unless an invalidation happened since the
        read began (``generation`` as read before it) or the subscription is down."""
        if not self.live or generation != self.generation:
            return
        ttl = min(self.ttl, token_expires_at.timestamp() - time.time())
        if ttl <= 0:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._evict()
        self._entries[token] = (time.monotonic() + ttl, _Snapshot.of(user))

    def recall(self, user_id: uuid.UUID, key: str) -> Any | None:
        """A value remembered for this user under ``key``, or None (unknown, expired, or the
        subscription is down)."""
        if not self.live:
            return None
        entry = self._derived.get((str(user_id), key))
        if entry is None:
            return None
        if time.monotonic() >= entry[0]:
            self._derived.pop((str(user_id), key), None)
            return None
        return entry[1]

    def remember(
        self, user_id: uuid.UUID, key: str, value: Any, *, generation: int, ttl: float | None = None
    ) -> None:
        """Keep an immutable ``value`` derived from the user (read at ``generation``) until the user
        is invalidated or ``ttl`` (default: the cache's) runs out."""
        if not self.live or generation != self.generation:
            return
        if len(self._derived) >= MAX_ENTRIES:
            self._derived.clear()
        self._derived[(str(user_id), key)] = (time.monotonic() + (self.ttl if ttl is None else ttl), value)

    def invalidate(self, user_ids: Iterable[str] | str = ALL) -> None:
        self.generation += 1
        if user_ids == ALL:
            self._entries.clear()
            self._derived.clear()
            for events in self._watchers.values():
                for changed in events:
                    changed.set()
            return
        ids = {str(u) for u in user_ids}
        for token in [t for t, (_, s) in self._entries.items() if str(s.id) in ids]:
            del self._entries[token]
        for derived in [k for k in self._derived if k[0] in ids]:
            del self._derived[derived]
        for user_id in ids:
            for changed in self._watchers.get(user_id, ()):
                changed.set()

    @contextlib.contextmanager
    def watch(self, user_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """An event set whenever this user's row may have changed (here, on another process
        through Redis, or everyone's when the subscription drops): the holder re-checks."""
        changed = asyncio.Event()
        key = str(user_id)
        self._watchers.setdefault(key, set()).add(changed)
        try:
            yield changed
        finally:
            events = self._watchers.get(key)
            if events is not None:
                events.discard(changed)
                if not events:
                    del self._watchers[key]

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self) -> None:
        now = time.monotonic()
        for token in [t for t, (deadline, _) in self._entries.items() if deadline <= now]:
            del self._entries[token]
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()

    # ---- subscription ------------------------------------------------------------------------

    async def start(self, *, wait_seconds: float = 5.0) -> None:
        if self.client is None:
            return
        self._task = asyncio.create_task(self._run(), name="user-cache")
        with contextlib.suppress(TimeoutError):  # Redis down at start: the cache stays off
            await asyncio.wait_for(self._subscribed.wait(), wait_seconds)

    async def stop(self) -> None:
        self._stopping = True
        self._set_live(False)
        await cancel_and_wait(self._task)
        self._task = None

    def _set_live(self, live: bool) -> None:
        if not live:
            self.invalidate()
        self.live = live

    async def _run(self) -> None:
        assert self.client is not None
        while not self._stopping:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                while not self._stopping:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self._set_live(True)
                        self._subscribed.set()
                    elif message["type"] == "message":
                        self._apply(message["data"])
            except asyncio.CancelledError:
                raise
            except (aioredis.RedisError, OSError, RuntimeError) as exc:
                log.warning("user cache lost its Redis subscription (%s); reading users from SQL", exc)
                self._set_live(False)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _apply(self, data: Any) -> None:
        try:
            body = json.loads(data)
            ids = body.get("user_ids")
        except (TypeError, ValueError, AttributeError):
            ids = None
        self.invalidate(ALL if not isinstance(ids, list) else ids)


# ---- announcing changes ------------------------------------------------------------------------


def _message(user_ids: Iterable[str] | str) -> str:
    return json.dumps({"user_ids": None if user_ids == ALL else sorted({str(u) for u in user_ids})})


async def announce_users_changed(client: aioredis.Redis, user_ids: Iterable[Any] | str = ALL) -> None:
    """Drop these users (default: all) from every process's cache. Call it after committing a
    change to users made without SQLAlchemy; SQLAlchemy sessions announce on their own."""
    ids: Iterable[str] | str = ALL if user_ids == ALL else [str(u) for u in user_ids]
    for cache in list(_caches):
        cache.invalidate(ids)
    await client.publish(CHANNEL, _message(ids))


def users_changed(user_ids: Iterable[str] | str, *, client: aioredis.Redis | None = None) -> None:
    """After a commit that changed users: invalidate this process's caches now, and publish to
    the others (on ``client``, or each local cache's own client)."""
    clients: dict[int, aioredis.Redis] = {}
    if client is not None:
        clients[id(client)] = client
    for cache in list(_caches):
        cache.invalidate(user_ids)
        if cache.client is not None and not cache._stopping:
            clients.setdefault(id(cache.client), cache.client)
    if not clients:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # a synchronous caller: no loop to publish with
        log.warning("users changed outside an event loop; other processes keep them <= %.0f s", TTL_SECONDS)
        return
    message = _message(user_ids)
    for redis_client in clients.values():
        task = loop.create_task(_publish(redis_client, message), name="users-changed")
        _in_flight.add(task)
        task.add_done_callback(_in_flight.discard)


async def _publish(client: aioredis.Redis, message: str) -> None:
    try:
        await client.publish(CHANNEL, message)
    except (aioredis.RedisError, OSError, RuntimeError) as exc:
        log.warning("user change not announced (other processes keep it up to %.0f s): %s", TTL_SECONDS, exc)


# ---- SQLAlchemy hooks: every session that changes users announces it at commit ----------------


def watch_user_changes(session_class: type[Session], client: aioredis.Redis | None) -> None:
    """Make every session of ``session_class`` (a ``Database``'s) invalidate the user caches when
    it commits a change to users: this process's at once, the others' through ``client``."""
    sa_event.listen(session_class, "do_orm_execute", _on_execute)
    sa_event.listen(session_class, "after_flush", _on_flush)
    sa_event.listen(session_class, "after_commit", functools.partial(_on_commit, client=client))


def mark_users_changed(session: Session, user_ids: Iterable[Any] | str = ALL) -> None:
    """Something derived from these users (default: all) changes in ``session``'s transaction:
    every process drops it from its cache when the transaction commits (as for a user change).
    For hooks of other layers (``workforce.deps``) whose tables hold what they derive."""
    _mark(session, ALL if user_ids == ALL else [str(u) for u in user_ids])


def _mark(session: Session, user_ids: Iterable[str] | str) -> None:
    current = session.info.get(CHANGED_KEY)
    if current == ALL or user_ids == ALL:
        session.info[CHANGED_KEY] = ALL
        return
    merged = set(current or ())
    merged.update(str(u) for u in user_ids)
    session.info[CHANGED_KEY] = merged


def _on_execute(state: Any) -> None:
    if not (state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    if table is not None and getattr(table, "name", None) == User.__tablename__:
        named = state.execution_options.get(CHANGED_USERS_OPTION)
        _mark(state.session, ALL if named is None else [str(u) for u in named])


def _on_flush(session: Session, _context: Any) -> None:
    changed = [obj.id for obj in (*session.dirty, *session.deleted) if isinstance(obj, User)]
    if changed:
        _mark(session, changed)


def _on_commit(session: Session, *, client: aioredis.Redis | None) -> None:
    changed = session.info.pop(CHANGED_KEY, None)
    if changed is None:
        return
    users_changed(changed, client=client)


# No after_rollback hook on purpose: a mark left by a rolled-back change only costs one more
# invalidation at the session's next commit, while dropping it on a SAVEPOINT rollback could lose
# a change that did commit.

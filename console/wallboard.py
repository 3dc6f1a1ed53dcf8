"""``/supervisor/ws``: the console home's live floor (issue #11 item 1, in part). Notices on
``FLOOR_TOPIC`` through the Redis fan-out: an agent's own state change (``routing.actions.
set_presence``), what the engine changes about agents (``routing.host.persist.FLOOR_EVENTS``, one
notice per commit) and the leader's queue figures when they change (``Leader.publish_stats``, at
most once a second). Any app process serves wallboards (the fan-out is Redis): each pushes its
sockets their page of the floor (filters: queue, team, page) whole. The SQL is read once per
process for all its sockets (``console.floor.FloorCache``, at most once a second;
``console.wallboard_history.HistoryCache`` every 5 s), and a page is rendered once per push for
every socket of the process showing it (``Wallboards``: one push cycle per process at most once per
``MIN_PUSH_S`` = 0.5 s, one floor read and one render per distinct view in it, the fragment handed
to each socket on that view): a burst of events folds into one cycle per ``MIN_PUSH_S``, however
many supervisors watch.

Who may connect is decided first: Origin (a cross-site page must not ride on the cookie), then the
session cookie and the supervisor role; a refusal is a close frame with an application code (4401
sign in again, 4403 not allowed), as for the desktop's socket."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from console.floor import FloorCache, in_state, view
from console.recorder import occupancy_of
from console.wallboard_history import HistoryCache
from routing.host import stats_key
from switchboard.auth.models import STAFF_RANK, Role
from switchboard.db import utcnow
from switchboard.deps import SESSION_COOKIE, authenticated_user
from switchboard.errors import Unauthorized
from switchboard.events import FLOOR_TOPIC
from switchboard.settings import Settings
from switchboard.tasks import cancel_and_wait
from switchboard.templating import templates

router = APIRouter()
log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_UNAVAILABLE = 1011  # the view's push loop failed (the database, say): the page reconnects
REFRESH_S = 5.0  # the longest wait and time in state grow without an event: re-read this often
# A burst of events folds into one push per socket per MIN_PUSH_S. Not a whole second: an event
# just after a push would then reach the browser after 1 s plus the render, and the promise
# is "within one second of the event" (p99, bench/wallboard.py). Queue figures come through the
# engine's notice, itself up to routing.host.leadership.FIGURES_NOTICE_SECONDS (0.25 s) after the
# change: 0.5 s here leaves the notice and the render their share, at most two renders a second.
MIN_PUSH_S = 0.5


async def _refusal(websocket: WebSocket, settings: Settings) -> tuple[int, str] | None:
    origin = websocket.headers.get("origin")
    if origin is None or origin.rstrip("/") not in {o.rstrip("/") for o in settings.allowed_origins}:
        return CLOSE_FORBIDDEN, "origin not allowed"
    token = websocket.cookies.get(SESSION_COOKIE)
    if not token:
        return CLOSE_UNAUTHENTICATED, "sign in first"
    try:
        user = await authenticated_user(websocket, token)  # type: ignore[arg-type]
    except Unauthorized:
        return CLOSE_UNAUTHENTICATED, "session invalid or expired"
    rank = STAFF_RANK.get(user.role)
    if rank is None or rank < STAFF_RANK[Role.SUPERVISOR]:
        return CLOSE_FORBIDDEN, "supervisors only"
    return None


def caches(app: Any) -> tuple[FloorCache, HistoryCache]:
    """The process's shared reads (made on first use; every socket and page of the process)."""
    state = app.state
    if getattr(state, "floor_cache", None) is None:
        state.floor_cache = FloorCache(state.db.sessionmaker)
        state.history_cache = HistoryCache(state.db.sessionmaker, state.redis_client)
    return state.floor_cache, state.history_cache


def _page(raw: str | None) -> int:
    try:
        return max(int(raw or 1), 1)
    except ValueError:
        return 1


async def wallboard_context(
    app: Any, *, queue: str | None, team: str | None, page: int, fresh_after: float = 0.0
) -> dict[str, Any]:
    """What ``console/_floor.html`` renders, for one filter and page."""
    context, _ = await _context(app, queue=queue, team=team, page=page, fresh_after=fresh_after)
    return context


async def _context(
    app: Any, *, queue: str | None, team: str | None, page: int, fresh_after: float
) -> tuple[dict[str, Any], float]:
    """The context and when its floor was read (monotonic: every read began at or after it)."""
    floor_cache, history_cache = caches(app)
    client = app.state.redis_client
    now = utcnow()
    snap = await floor_cache.get(fresh_after=fresh_after)
    floor = view(snap, now=now, queue=queue, team=team, page=page)
    occupancy = await occupancy_of(client, [a.agent_id for a in floor.agents], day=now.date())
    floor = replace(floor, agents=[replace(a, occupancy=occupancy.get(a.agent_id)) for a in floor.agents])
    history = await history_cache.get(now=now)
    raw = await client.get(stats_key())
    stats = json.loads(raw) if raw else None
    # When the engine last published them, as a clock on the floor reads it.
    published = stats.get("at") if stats else None
    zone = ZoneInfo(app.state.settings.default_timezone)
    context = {
        "stats": stats,
        "stats_at": datetime.fromisoformat(published).astimezone(zone) if published else None,
        "floor": floor,
        "history": history,
        "chart": json.dumps(history.chart(q.name for q in floor.queues)),
        "in_state": in_state,
    }
    return context, snap.taken_at


# ---------------------------------------------------------------------- shared views

ViewKey = tuple[str | None, str | None, int]  # queue, team, page: what a socket is shown


def view_key(params: Any) -> ViewKey:
    """The socket's filters from its URL (the page's own; an unknown queue or team: empty)."""
    return (params.get("queue") or None, params.get("team") or None, _page(params.get("page")))


_renders = itertools.count(1)


@dataclass(frozen=True)
class Rendered:
    fragment: str
    as_of: float  # monotonic: the floor behind it was read at or after this
    number: int = field(default_factory=lambda: next(_renders))  # later renders, higher numbers


class ViewEnded(Exception):
    """The view's push loop stopped (it failed): its sockets close."""


class Mailbox:
    """One socket's next push: only the newest fragment waits (a slow socket skips older ones)."""

    def __init__(self) -> None:
        self._next: Rendered | None = None
        self._given = 0  # the newest render handed over: an older one arriving late is dropped
        self._ready = asyncio.Event()
        self._ended = False

    def put(self, rendered: Rendered) -> None:
        if rendered.number > max(self._given, self._next.number if self._next else 0):
            self._next = rendered
            self._ready.set()

    def end(self) -> None:
        self._ended = True
        self._ready.set()

    async def take(self) -> Rendered:
        while True:
            await self._ready.wait()
            self._ready.clear()
            if self._next is not None:
                rendered, self._next = self._next, None
                self._given = rendered.number
                return rendered
            if self._ended:
                raise ViewEnded


@dataclass(eq=False)
class BoardView:
    """One distinct view (filters and page) and the process's sockets showing it."""

    key: ViewKey
    mailboxes: set[Mailbox] = field(default_factory=set)
    latest: Rendered | None = None
    renders: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Wallboards:
    """The process's live wallboards: one push cycle for all of them, one render per distinct
    view per cycle handed to every socket showing it.

    One cycle for every view, not a loop per view: the views then want the same floor (read after
    the same notice), so a cycle costs one floor read however many views there are. Loops of their
    own drift out of phase, and under load each came to want a read of its own. The loop runs while
    any socket watches and stops with the last one."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.views: dict[ViewKey, BoardView] = {}
        self.renders = 0  # every render of every view (tests, profiles)
        self.cycles = 0
        self.min_push_s = MIN_PUSH_S
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def watch(self, key: ViewKey) -> AsyncIterator[Mailbox]:
        """A mailbox that gets ``key``'s pushes: a first one at once, then one per push cycle."""
        mailbox = Mailbox()
        board = self.views.get(key)
        if board is None:
            board = self.views[key] = BoardView(key)
        board.mailboxes.add(mailbox)
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="wallboard-push")
        try:
            # The first push: the view's last render if its floor is under max_age old (a
            # socket joining a view already shown), else one made now.
            mailbox.put(await self._fragment(board, fresh_after=0.0))
            yield mailbox
        finally:
            board.mailboxes.discard(mailbox)
            if not board.mailboxes and self.views.get(key) is board:
                del self.views[key]
            if not self.views and self._task is not None:
                task, self._task = self._task, None  # a socket arriving now starts a new loop
                await cancel_and_wait(task)

    async def _fragment(self, board: BoardView, *, fresh_after: float) -> Rendered:
        """The view rendered from a floor read after ``fresh_after`` and at most the floor
        cache's max_age old: the last render if it is such, else a new one (one at a time)."""
        max_age = caches(self.app)[0].max_age
        async with board.lock:
            latest = board.latest
            if latest is None or latest.as_of < fresh_after or time.monotonic() - latest.as_of >= max_age:
                queue, team, page = board.key
                context, as_of = await _context(
                    self.app, queue=queue, team=team, page=page, fresh_after=fresh_after
                )
                fragment = templates.get_template("console/_floor.html").render(
                    **context, pushed=datetime.now(UTC).isoformat()
                )
                latest = board.latest = Rendered(fragment, as_of)
                board.renders += 1
                self.renders += 1
            return latest

    async def _push(self, fresh_after: float) -> None:
        """One cycle: every view rendered (from one floor read) and handed to its sockets."""
        boards = list(self.views.values())
        outcomes = await asyncio.gather(
            *(self._fragment(b, fresh_after=fresh_after) for b in boards), return_exceptions=True
        )
        self.cycles += 1
        for board, outcome in zip(boards, outcomes, strict=True):
            if isinstance(outcome, Rendered):
                for mailbox in list(board.mailboxes):
                    mailbox.put(outcome)
            elif isinstance(outcome, Exception):  # this view's sockets close; the others go on
                log.error("wallboard view %s failed", board.key, exc_info=outcome)
                if self.views.get(board.key) is board:
                    del self.views[board.key]
                for mailbox in board.mailboxes:
                    mailbox.end()
            else:  # a cancellation: ours
                raise outcome

    async def _loop(self) -> None:
        try:
            async with self.app.state.event_hub.subscribe(FLOOR_TOPIC) as notices:
                fresh_after = 0.0
                while True:
                    pushed = time.monotonic()
                    await self._push(fresh_after)
                    try:
                        await asyncio.wait_for(notices.get(), timeout=REFRESH_S)
                        fresh_after = time.monotonic()  # the read must come after the change told of
                    except TimeoutError:
                        fresh_after = 0.0  # only the clocks moved: any snapshot under a second old will do
                    # Batching: one cycle per MIN_PUSH_S at most; what arrives meanwhile folds in.
                    await asyncio.sleep(max(self.min_push_s - (time.monotonic() - pushed), 0.0))
                    if not notices.empty():
                        # A change told during the wait folds into this cycle, so the read must
                        # come after it too: a floor read meanwhile (a page's) would lack it, and
                        # its notice is gone: it would show only at the next refresh.
                        fresh_after = time.monotonic()
                    while not notices.empty():
                        notices.get_nowait()
        except Exception:
            log.exception("wallboard push loop stopped")
            # Every socket closes (the page reconnects); the next one starts afresh.
            for board in self.views.values():
                for mailbox in board.mailboxes:
                    mailbox.end()
            self.views.clear()
            self._task = None


def wallboards(app: Any) -> Wallboards:
    state = app.state
    if getattr(state, "wallboards", None) is None:
        state.wallboards = Wallboards(app)
    return state.wallboards


@router.websocket("/supervisor/ws")
async def wallboard_socket(websocket: WebSocket) -> None:
    refusal = await _refusal(websocket, websocket.app.state.settings)
    await websocket.accept()
    if refusal is not None:
        await websocket.close(code=refusal[0], reason=refusal[1])
        return
    async with wallboards(websocket.app).watch(view_key(websocket.query_params)) as mailbox:
        receiver = asyncio.create_task(_drain_client(websocket), name="wallboard-ws-receive")
        sender = asyncio.create_task(_send(websocket, mailbox), name="wallboard-ws-send")
        try:
            await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (receiver, sender):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                    await task
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await websocket.close(code=1000)


async def _drain_client(websocket: WebSocket) -> None:
    """The page sends nothing we act on; reading notices the disconnect."""
    while True:
        await websocket.receive_text()


async def _send(websocket: WebSocket, mailbox: Mailbox) -> None:
    token = websocket.cookies.get(SESSION_COOKIE, "")
    while True:
        try:
            rendered = await mailbox.take()
        except ViewEnded:
            await websocket.close(code=CLOSE_UNAVAILABLE, reason="wallboard unavailable")
            return
        try:  # the process's user cache: a session ended (sign-out, disabled) stops the pushes
            await authenticated_user(websocket, token)  # type: ignore[arg-type]
        except Unauthorized:
            await websocket.close(code=CLOSE_UNAUTHENTICATED, reason="session ended")
            return
        await websocket.send_text(rendered.fragment)

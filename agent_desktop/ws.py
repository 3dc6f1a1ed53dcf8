"""``/desktop/ws``: the agent's live socket (htmx ws extension, out-of-band HTML fragments).

Who may connect is decided before anything else happens: Origin first (a cross-site page must not
ride on the agent's cookie), then the ``sb_session`` cookie. A refusal is delivered as a close
frame with an application code (4401 sign in again, 4403 not allowed): a handshake refused with
HTTP 403 reaches browser code only as an anonymous 1006, so we accept solely to say why, and no
data is read or sent before that close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from agent_desktop import chat as desk_chat
from agent_desktop import live, pages, panel, service
from agent_desktop import work as desk_work
from switchboard import desktop_messages as messages
from switchboard.auth.models import STAFF_RANK, Role
from switchboard.deps import SESSION_COOKIE, authenticated_user, reads_in_autocommit
from switchboard.errors import Unauthorized
from switchboard.events import agent_topic
from switchboard.security import TokenError, decode_session_token
from switchboard.settings import Settings
from workforce.identity import agent_ref_for_user

log = logging.getLogger(__name__)

router = APIRouter()

IDLE_TIMEOUT_S = 30.0  # the client pings every ~10 s; three missed pings and the socket is dead
MAX_CLIENT_MESSAGE = 4096  # pings and small actions only
CLIENT_ACTIONS = frozenset({"ping", "resync"})

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
# "Try again later": the htmx ws extension reconnects (and we resync) on 1011/1012/1013/1006 only.
CLOSE_IDLE = 1013
CLOSE_POLICY = 1008


class Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def check_origin(websocket: WebSocket, settings: Settings) -> None:
    origin = websocket.headers.get("origin")
    if origin is None or origin.rstrip("/") not in {o.rstrip("/") for o in settings.allowed_origins}:
        raise Refused(CLOSE_FORBIDDEN, "origin not allowed")


async def authenticate(websocket: WebSocket, settings: Settings) -> tuple[uuid.UUID, uuid.UUID, datetime]:
    """The agent's id and user id behind the session cookie and when its token expires, or Refused."""
    token = websocket.cookies.get(SESSION_COOKIE)
    if not token:
        raise Refused(CLOSE_UNAUTHENTICATED, "sign in first")
    try:
        # The process's user cache (invalidated through Redis), as for every HTTP request: the
        # handshake is the cost of every reconnect storm.
        user = await authenticated_user(websocket, token)  # type: ignore[arg-type]
    except Unauthorized as exc:
        raise Refused(CLOSE_UNAUTHENTICATED, "session invalid or expired") from exc
    rank = STAFF_RANK.get(user.role)
    if rank is None or rank < STAFF_RANK[Role.AGENT]:
        raise Refused(CLOSE_FORBIDDEN, "agents only")
    # Per process, invalidated with the user's cache entry (workforce.identity).
    agent = await agent_ref_for_user(websocket.app.state, user.id)
    if agent is None:
        raise Refused(CLOSE_FORBIDDEN, "no agent profile")
    try:  # already verified above; decoded again only for its expiry
        claims = decode_session_token(token, settings)
    except TokenError as exc:
        raise Refused(CLOSE_UNAUTHENTICATED, "session invalid or expired") from exc
    return agent.id, user.id, claims.expires_at


async def watch_session(connection: DesktopConnection, user_id: uuid.UUID, token: str) -> None:
    """Close the socket (4401: the page goes to sign-in) as soon as its session ends: the user
    cache signals every change to the user, made on any process (sign-out, disable, new role or
    password), and the session is checked again then; no query while nothing changes."""
    websocket = connection.websocket
    cache = getattr(websocket.app.state, "user_cache", None)
    if cache is None:
        await asyncio.Event().wait()  # no cache (no Redis): the expiry check alone
        return
    with cache.watch(user_id) as changed:
        changed.set()  # a change between the handshake's check and this watch is not missed
        while True:
            await changed.wait()
            changed.clear()
            try:
                await authenticated_user(websocket, token)  # type: ignore[arg-type]
            except Unauthorized:
                await connection.close(CLOSE_UNAUTHENTICATED, "session ended")
                return


@router.websocket("/desktop/ws")
async def desktop_socket(websocket: WebSocket) -> None:
    settings: Settings = websocket.app.state.settings
    try:
        check_origin(websocket, settings)
        agent_id, user_id, token_expires = await authenticate(websocket, settings)
    except Refused as exc:
        await websocket.accept()
        await websocket.close(code=exc.code, reason=exc.reason)
        return
    await websocket.accept()
    connection = DesktopConnection(websocket, agent_id=agent_id, token_expires=token_expires)
    websocket.app.state.desktop_beats.mark(agent_id)  # alive: batched per process, as pings are
    hub = websocket.app.state.event_hub
    # Subscribe before the resync query: an event published in between is then in the queue, and
    # the shown-sets below make applying it twice harmless.
    async with hub.subscribe(agent_topic(agent_id)) as queue:
        # The customers behind the agent's work are followed too (live 360), from the resync on.
        follow = connection.follow = live.CustomerFollow(hub, queue)
        await connection.resync()
        receiver = asyncio.create_task(connection.receive_loop(), name="desktop-ws-receive")
        pusher = asyncio.create_task(connection.push_loop(queue), name="desktop-ws-push")
        token = websocket.cookies.get(SESSION_COOKIE, "")
        watcher = asyncio.create_task(watch_session(connection, user_id, token), name="desktop-ws-session")
        try:
            await asyncio.wait({receiver, pusher, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            follow.close()
            for task in (receiver, pusher, watcher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                    await task
    await connection.close(1000, "bye")


@dataclass
class DesktopConnection:
    """One agent socket: what it has shown (to apply events idempotently) and how to update it."""

    websocket: WebSocket
    agent_id: uuid.UUID
    token_expires: datetime
    shown_offers: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # offer -> interaction
    shown_work: set[uuid.UUID] = field(default_factory=set)
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    follow: live.CustomerFollow | None = None
    # Customer (live 360) events waiting until live_due (event-loop time), see LIVE_DELAY_S.
    live_pending: list[dict[str, Any]] = field(default_factory=list)
    live_due: float | None = None
    # Held interaction -> the timeline event ids its panel's 360 showed when last rendered whole.
    rendered_events: dict[uuid.UUID, frozenset[int]] = field(default_factory=dict)

    async def send(self, html: str) -> None:
        if html:
            async with self.send_lock:  # pushes and heartbeat answers come from two tasks
                await self.websocket.send_text(html)

    async def close(self, code: int, reason: str) -> None:
        if self.websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self.websocket.close(code=code, reason=reason)

    async def resync(self) -> None:
        async with self.websocket.app.state.db.sessionmaker() as session:
            await reads_in_autocommit(session)  # the socket only reads (see apply)
            agent = await service.get_agent(session, agent_id=self.agent_id)
            if agent is None:
                await self.close(CLOSE_FORBIDDEN, "no agent profile")
                return
            state = await service.load_state(session, agent=agent)
            html = pages.resync_fragment(state, at=_now())
            await session.commit()
        self.shown_offers = {o.offer_id: o.interaction_id for o in state.offers}
        self.shown_work = {w.interaction.id for w in state.work}
        self.rendered_events = {w.interaction.id: _event_ids(w) for w in state.work}
        if self.follow is not None:
            self.follow.replace({w.interaction.id: w.customer.id for w in state.work})
        await self.send(html)

    # ---------------------------------------------------------------- client -> server

    async def receive_loop(self) -> None:
        while True:
            try:
                message = await asyncio.wait_for(self.websocket.receive(), IDLE_TIMEOUT_S)
            except TimeoutError:
                await self.close(CLOSE_IDLE, "heartbeat timeout")
                return
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if datetime.now(UTC) >= self.token_expires:
                await self.close(CLOSE_UNAUTHENTICATED, "session expired")
                return
            action = _parse_action(raw)
            if action is None:
                await self.close(CLOSE_POLICY, "unknown message")
                return
            if action == "ping":
                self.websocket.app.state.desktop_beats.mark(self.agent_id)  # batched per process
                await self.send(_pong())
            elif action == "resync":
                await self.resync()

    # ---------------------------------------------------------------- server -> client

    async def push_loop(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch(queue, loop)
            for event in batch:
                if _is_live(event):  # rendered at live_due, with those that follow it
                    if not self.live_pending:
                        self.live_due = loop.time() + LIVE_DELAY_S
                    self.live_pending.append(event)
                else:
                    await self._apply_guarded(event)
            if self.live_pending and loop.time() >= (self.live_due or 0.0):
                pending, self.live_pending, self.live_due = self.live_pending, [], None
                for event in coalesce_timeline(pending):
                    if self._needs_render(event):
                        await self._apply_guarded(event)

    async def _next_batch(
        self, queue: asyncio.Queue[dict[str, Any]], loop: asyncio.AbstractEventLoop
    ) -> list[dict[str, Any]]:
        """What the queue holds (at least one event), or nothing once live events are due."""
        if self.live_due is None:
            batch = [await queue.get()]
        else:
            try:
                async with asyncio.timeout_at(self.live_due):
                    batch = [await queue.get()]  # a cancelled get takes nothing from the queue
            except TimeoutError:
                return []
        while len(batch) < PUSH_BATCH and not queue.empty():
            batch.append(queue.get_nowait())
        return batch

    def _needs_render(self, event: dict[str, Any]) -> bool:
        """Whether a customer event can change what this socket shows. Not when the customer is no
        longer followed (their last tab here left meanwhile; a later tab reads the 360 whole), nor
        when every panel open for them was rendered whole after the event's transaction committed:
        its 360 showed the event, and the panel's thread was read after that (the tab's opening,
        and the event of the assignment that opened it, is the common case)."""
        if self.follow is None:
            return True
        held = self.follow.interactions_of(event["customer_id"])
        if not held:
            return False
        ids = {i for i in event.get("event_ids") or () if isinstance(i, int)}
        return not ids or any(not ids <= self.rendered_events.get(iid, frozenset()) for iid in held)

    async def _apply_guarded(self, event: dict[str, Any]) -> None:
        try:
            await self.apply(event)
        except (WebSocketDisconnect, RuntimeError):
            raise
        except Exception:  # noqa: BLE001 - one bad event must not end the agent's session
            log.exception("desktop push failed for agent %s; resyncing", self.agent_id)
            await self.resync()

    async def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        html = self._render_without_sql(kind, event)
        if html is not None:  # offers and closed offers: the hot path needs no session
            await self.send(html)
            return
        async with self.websocket.app.state.db.sessionmaker() as session:
            # Renders only read: without a transaction each statement is one round trip (no BEGIN
            # and COMMIT around the 2-10 reads of a render, several renders per contact).
            await reads_in_autocommit(session)
            html = await self._render_event(session, kind, event)
            await session.commit()
        await self.send(html)

    def _render_without_sql(self, kind: Any, event: dict[str, Any]) -> str | None:
        """The fragment for an event that carries all it needs; None when SQL must be read."""
        if kind == messages.Offer.type and isinstance(event.get("card"), dict):
            offer_id = uuid.UUID(event["offer_id"])
            if offer_id in self.shown_offers:
                return ""
            card = _card_from_event(offer_id, event)
            if card is None:
                return None  # malformed card: fall back to reading the offer
            return self._offer_added(card)
        if kind == messages.OfferClosed.type:
            offer_id = uuid.UUID(event["offer_id"])
            if self.shown_offers.pop(offer_id, None) is None:
                return ""
            return pages.offer_removed_fragment(
                offer_id, notice=service.closed_reason_text(event.get("reason"))
            )
        if kind == messages.SchedulePublished.type:
            return pages.schedule_notice_fragment(str(event.get("summary") or ""))
        if kind == messages.ShiftRequestChanged.type:
            return pages.request_notice_fragment(str(event.get("summary") or ""))
        return None

    async def _render_event(self, session: Any, kind: Any, event: dict[str, Any]) -> str:
        if kind == messages.Offer.type:
            offer_id = uuid.UUID(event["offer_id"])
            if offer_id in self.shown_offers:
                return ""
            # The engine sends the card's data with the offer (the hot path: no query per frame);
            # an event without it (older publisher) is looked up.
            card = _card_from_event(offer_id, event)
            if card is None:
                card = await service.offer_card(session, offer_id=offer_id, agent_id=self.agent_id)
            return "" if card is None else self._offer_added(card)
        if kind == messages.OfferClosed.type:
            offer_id = uuid.UUID(event["offer_id"])
            if self.shown_offers.pop(offer_id, None) is None:
                return ""
            return pages.offer_removed_fragment(
                offer_id, notice=service.closed_reason_text(event.get("reason"))
            )
        # customer_changed: a chat visitor verified who they are (interactions.chat_verify).
        if kind in messages.HELD_WORK_CHANGED:
            return await self._render_work(session, kind, uuid.UUID(event["interaction_id"]))
        if kind == live.EVENT_TYPE:  # something happened for a customer whose work is open here
            return await live.render_event(session, agent_id=self.agent_id, event=event)
        if kind in desk_chat.EVENT_TYPES:  # web chat lines, typing, customer left
            if uuid.UUID(str(event["interaction_id"])) not in self.shown_work:
                # No panel here (yet): a line sent before the offer was accepted can be rendered
                # after the assignment committed but before its tab came; the transcript the tab
                # brings holds it. Appending it would miss its target (htmx:oobErrorNoTarget).
                return ""
            return await desk_chat.render_event(session, agent_id=self.agent_id, event=event)
        if kind == messages.Presence.type:
            agent = await service.get_agent(session, agent_id=self.agent_id)
            return pages.status_fragment(agent) if agent is not None else ""
        return ""

    def _offer_added(self, card: service.OfferCard) -> str:
        if card.interaction_id in self.shown_work:
            return ""  # a late frame: the agent already holds this work (the toast is gone for good)
        self.shown_offers[card.offer_id] = card.interaction_id
        return pages.offer_added_fragment(card)

    async def _render_work(self, session: Any, kind: str, interaction_id: uuid.UUID) -> str:
        if kind == messages.WrapUpStarted.type and interaction_id in self.shown_work:
            light = await self._wrap_up_started(session, interaction_id)
            if light is not None:
                return light
        parts: list[str] = []
        if kind == messages.Assigned.type:
            # The toasts this socket shows for it; one it never saw (brought by an earlier socket
            # of the page) the page drops itself once the tab is there (static/js/desktop.js).
            for offer_id, shown_for in list(self.shown_offers.items()):
                if shown_for == interaction_id:
                    del self.shown_offers[offer_id]
                    parts.append(pages.offer_removed_fragment(offer_id, notice=None))
        item = await service.work_item(session, interaction_id=interaction_id, agent_id=self.agent_id)
        if self.follow is not None:
            if item is None:
                self.follow.discard(interaction_id)
            else:
                self.follow.add(interaction_id, item.customer.id)
        if item is None:
            self.rendered_events.pop(interaction_id, None)
            if interaction_id in self.shown_work:
                self.shown_work.discard(interaction_id)
                parts.append(pages.work_removed_fragment(interaction_id))
        else:
            self.rendered_events[interaction_id] = _event_ids(item)
            # The panel comes whole: its tools, transcript and thread read here, not by three
            # requests of the browser once it is shown (agent_desktop.panel).
            filled = await panel.panel_context(session, item, agent_id=self.agent_id)
            if interaction_id in self.shown_work:
                parts.append(pages.work_updated_fragment(item, **filled))
            else:
                self.shown_work.add(interaction_id)
                parts.append(pages.work_added_fragment(item, **filled))
        lines = await service.capacity_for(session, agent_id=self.agent_id)
        if lines is not None:
            parts.append(pages.capacity_fragment(lines))
        return "".join(parts)

    async def _wrap_up_started(self, session: Any, interaction_id: uuid.UUID) -> str | None:
        """A chat panel changes on wrap-up only in its tab, its header's state and its wrap-up bar:
        those three, replaced by id. Re-sending the whole panel made the browser re-load its tools,
        transcript and thread (three requests, ~15 queries) and re-read the customer 360 here, for
        every contact (desktop bench). Other channels' panels change more (reply box, call
        controls): None, and they get the whole panel."""
        item = await service.held_tab(session, interaction_id=interaction_id, agent_id=self.agent_id)
        if item is None or item.interaction.channel.value != "chat":
            return None
        bar = await desk_work.wrapup_bar(
            session, agent_id=self.agent_id, interaction_id=interaction_id, held=item.interaction
        )
        return pages.render("_tab.html", item=item) + pages.render("_state.html", item=item, oob=True) + bar


PUSH_BATCH = 64  # events taken from a socket's queue at once
# A customer's live-360 event waits this long for those that follow it, then all render as one:
# each re-reads the 360 and thread from SQL (~9 statements), and a contact's events come in
# bursts (wrap-up; the disposition, then completion, when the tab leaves and nothing is rendered).
# Offers, tabs and chat lines are not delayed.
LIVE_DELAY_S = 0.1


def _is_live(event: dict[str, Any]) -> bool:
    return event.get("type") == live.EVENT_TYPE and "customer_id" in event


def _event_ids(item: service.WorkItem) -> frozenset[int]:
    return frozenset(event.id for event in item.timeline)


def coalesce_timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events in order, except that a customer's live-360 events held together (LIVE_DELAY_S)
    become one, at the place of the last, naming every interaction they touched. Each re-reads the
    360 from SQL, so the last alone shows what all of them would; a loop's 4-6 timeline events for
    its customer come close together (desktop bench: ~14 ms of CPU per loop)."""
    last: dict[str, int] = {}
    count: dict[str, int] = {}
    touched: dict[str, set[str]] = {}
    ids: dict[str, list[Any] | None] = {}  # None: one of them did not say (never skipped then)
    live_count = 0
    for index, event in enumerate(events):
        if _is_live(event):
            live_count += 1
            customer = str(event["customer_id"])
            last[customer] = index
            count[customer] = count.get(customer, 0) + 1
            touched.setdefault(customer, set()).update(str(i) for i in event.get("interaction_ids") or [])
            known, own = ids.setdefault(customer, []), event.get("event_ids")
            ids[customer] = known + list(own) if known is not None and own else None
    if len(last) == live_count:
        return events  # nothing to merge
    merged: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        if _is_live(event):
            customer = str(event["customer_id"])
            if last[customer] != index:
                continue
            if count[customer] > 1:
                event = {**event, "interaction_ids": sorted(touched[customer]), "event_ids": ids[customer]}
        merged.append(event)
    return merged


def _card_from_event(offer_id: uuid.UUID, event: dict[str, Any]) -> service.OfferCard | None:
    """The offer card from the engine's ``Offer`` message (``switchboard.desktop_messages``); None
    if the message lacks it or it already expired."""
    message = messages.parse(event)
    if not isinstance(message, messages.Offer) or message.card is None:
        return None
    data = message.card
    try:
        expires_at = datetime.fromisoformat(message.expires_at)
        if expires_at <= datetime.now(UTC):
            return None  # a stale frame (queued behind a slow consumer): the offer is gone
        return service.OfferCard(
            offer_id=offer_id,
            interaction_id=uuid.UUID(message.interaction_id),
            channel=str(data.channel),
            customer_name=str(data.customer_name),
            tier=str(data.tier),
            segments=[str(x) for x in data.segments or []],
            topic=data.topic,
            subject=data.subject,
            queue=data.queue,
            waiting_since=datetime.fromisoformat(data.waiting_since),
            expires_at=expires_at,
            # Not transferred: nothing more to show. A transfer's sender and note the toast asks for.
            origin_known=data.transferred is False,
        )
    except (TypeError, ValueError):
        return None


def _parse_action(raw: str | None) -> str | None:
    """The client's action if it is one we know; None for anything else (then we hang up)."""
    if raw is None or len(raw) > MAX_CLIENT_MESSAGE:
        return None
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    action = message.get("type") if isinstance(message, dict) else None
    return action if action in CLIENT_ACTIONS else None


_pong_cache: tuple[datetime, str] | None = None


def _pong() -> str:
    """The heartbeat answer, rendered once per second for every socket of the process."""
    global _pong_cache
    now = _now()
    if _pong_cache is None or _pong_cache[0] != now:
        _pong_cache = (now, pages.connection_fragment(now))
    return _pong_cache[1]


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)

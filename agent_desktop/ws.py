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
from sqlalchemy import select
from starlette.websockets import WebSocketState

from agent_desktop import chat as desk_chat
from agent_desktop import live, pages, service
from agent_desktop import work as desk_work
from routing.models import Agent
from switchboard.auth.models import STAFF_RANK, Role
from switchboard.deps import SESSION_COOKIE, authenticated_user
from switchboard.errors import Unauthorized
from switchboard.events import agent_topic
from switchboard.security import TokenError, decode_token
from switchboard.settings import Settings

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


async def authenticate(websocket: WebSocket, settings: Settings) -> tuple[uuid.UUID, datetime]:
    """The agent's id behind the session cookie and when its token expires, or Refused."""
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
    agent = _agent_of_user.get(user.id)
    if agent is None:
        async with websocket.app.state.db.sessionmaker() as session:
            # The id only (the Agent entity would load its skills too).
            agent = await session.scalar(select(Agent.id).where(Agent.user_id == user.id))
            await session.commit()
        if agent is None:
            raise Refused(CLOSE_FORBIDDEN, "no agent profile")
        # A user's agent profile keeps its id; one deleted since is refused by the resync.
        _agent_of_user[user.id] = agent
    try:  # already verified above; decoded again only for its expiry
        claims = decode_token(
            token, secret=settings.secret_key, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        )
    except TokenError as exc:
        raise Refused(CLOSE_UNAUTHENTICATED, "session invalid or expired") from exc
    return agent, claims.expires_at


_agent_of_user: dict[uuid.UUID, uuid.UUID] = {}  # user id -> agent id, per process


@router.websocket("/desktop/ws")
async def desktop_socket(websocket: WebSocket) -> None:
    settings: Settings = websocket.app.state.settings
    try:
        check_origin(websocket, settings)
        agent_id, token_expires = await authenticate(websocket, settings)
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
        try:
            await asyncio.wait({receiver, pusher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            follow.close()
            for task in (receiver, pusher):
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
            agent = await service.get_agent(session, agent_id=self.agent_id)
            if agent is None:
                await self.close(CLOSE_FORBIDDEN, "no agent profile")
                return
            state = await service.load_state(session, agent=agent)
            html = pages.resync_fragment(state, at=_now())
            await session.commit()
        self.shown_offers = {o.offer_id: o.interaction_id for o in state.offers}
        self.shown_work = {w.interaction.id for w in state.work}
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
        while True:
            batch = [await queue.get()]
            while len(batch) < PUSH_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            for event in coalesce_timeline(batch):
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
            html = await self._render_event(session, kind, event)
            await session.commit()
        await self.send(html)

    def _render_without_sql(self, kind: Any, event: dict[str, Any]) -> str | None:
        """The fragment for an event that carries all it needs; None when SQL must be read."""
        if kind == "offer" and isinstance(event.get("card"), dict):
            offer_id = uuid.UUID(event["offer_id"])
            if offer_id in self.shown_offers:
                return ""
            card = _card_from_event(offer_id, event)
            if card is None:
                return None  # malformed card: fall back to reading the offer
            self.shown_offers[offer_id] = card.interaction_id
            return pages.offer_added_fragment(card)
        if kind == "offer_closed":
            offer_id = uuid.UUID(event["offer_id"])
            if self.shown_offers.pop(offer_id, None) is None:
                return ""
            return pages.offer_removed_fragment(
                offer_id, notice=service.closed_reason_text(event.get("reason"))
            )
        return None

    async def _render_event(self, session: Any, kind: Any, event: dict[str, Any]) -> str:
        if kind == "offer":
            offer_id = uuid.UUID(event["offer_id"])
            if offer_id in self.shown_offers:
                return ""
            # The engine sends the card's data with the offer (the hot path: no query per frame);
            # an event without it (older publisher) is looked up.
            card = _card_from_event(offer_id, event)
            if card is None:
                card = await service.offer_card(session, offer_id=offer_id, agent_id=self.agent_id)
            if card is None:
                return ""
            self.shown_offers[offer_id] = card.interaction_id
            return pages.offer_added_fragment(card)
        if kind == "offer_closed":
            offer_id = uuid.UUID(event["offer_id"])
            if self.shown_offers.pop(offer_id, None) is None:
                return ""
            return pages.offer_removed_fragment(
                offer_id, notice=service.closed_reason_text(event.get("reason"))
            )
        if kind in ("assigned", "wrap_up_started", "completed"):
            return await self._render_work(session, kind, uuid.UUID(event["interaction_id"]))
        if kind == live.EVENT_TYPE:  # something happened for a customer whose work is open here
            return await live.render_event(session, agent_id=self.agent_id, event=event)
        if kind in desk_chat.EVENT_TYPES:  # web chat lines, typing, customer left
            return await desk_chat.render_event(session, agent_id=self.agent_id, event=event)
        if kind == "presence":
            agent = await service.get_agent(session, agent_id=self.agent_id)
            return pages.status_fragment(agent) if agent is not None else ""
        return ""

    async def _render_work(self, session: Any, kind: str, interaction_id: uuid.UUID) -> str:
        if kind == "wrap_up_started" and interaction_id in self.shown_work:
            light = await self._wrap_up_started(session, interaction_id)
            if light is not None:
                return light
        parts: list[str] = []
        if kind == "assigned":
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
            if interaction_id in self.shown_work:
                self.shown_work.discard(interaction_id)
                parts.append(pages.work_removed_fragment(interaction_id))
        elif interaction_id in self.shown_work:
            parts.append(pages.work_updated_fragment(item))
        else:
            self.shown_work.add(interaction_id)
            parts.append(pages.work_added_fragment(item))
        agent = await service.get_agent(session, agent_id=self.agent_id)
        if agent is not None:
            parts.append(pages.capacity_fragment(await service.capacity(session, agent=agent)))
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
        bar = await desk_work.wrapup_bar(session, agent_id=self.agent_id, interaction_id=interaction_id)
        return pages.render("_tab.html", item=item) + pages.render("_state.html", item=item, oob=True) + bar


PUSH_BATCH = 64  # events taken from a socket's queue at once


def coalesce_timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events in order, except that a customer's live-360 events queued together become one,
    at the place of the last, naming every interaction they touched. Each re-reads the 360 from
    SQL, so the last alone shows what all of them would; under load a loop's 4-6 timeline events
    for its customer queue up behind one another (desktop bench: ~14 ms of CPU per loop)."""
    last: dict[str, int] = {}
    touched: dict[str, set[str]] = {}
    for index, event in enumerate(events):
        if event.get("type") == live.EVENT_TYPE and "customer_id" in event:
            customer = str(event["customer_id"])
            last[customer] = index
            touched.setdefault(customer, set()).update(str(i) for i in event.get("interaction_ids") or [])
    if len(last) == sum(1 for e in events if e.get("type") == live.EVENT_TYPE and "customer_id" in e):
        return events  # nothing to merge
    merged: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        if event.get("type") == live.EVENT_TYPE and "customer_id" in event:
            customer = str(event["customer_id"])
            if last[customer] != index:
                continue
            event = {**event, "interaction_ids": sorted(touched[customer])}
        merged.append(event)
    return merged


def _card_from_event(offer_id: uuid.UUID, event: dict[str, Any]) -> service.OfferCard | None:
    """The offer card from the engine's event; None if the event lacks it or it already expired."""
    data = event.get("card")
    if not isinstance(data, dict):
        return None
    try:
        expires_at = datetime.fromisoformat(event["expires_at"])
        if expires_at <= datetime.now(UTC):
            return None  # a stale frame (queued behind a slow consumer): the offer is gone
        return service.OfferCard(
            offer_id=offer_id,
            interaction_id=uuid.UUID(event["interaction_id"]),
            channel=str(data["channel"]),
            customer_name=str(data["customer_name"]),
            tier=str(data["tier"]),
            segments=[str(x) for x in data.get("segments") or []],
            topic=data.get("topic"),
            subject=data.get("subject"),
            queue=data.get("queue"),
            waiting_since=datetime.fromisoformat(data["waiting_since"]),
            expires_at=expires_at,
        )
    except (KeyError, TypeError, ValueError):
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

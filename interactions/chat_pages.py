"""Public web chat: the page, the embeddable loader, start/feedback endpoints and the customer socket.

No login. A chat starts with ``POST /chat/start`` (optional name and phone/email, or a JWT from
the bank's app) and gets a random access token; that token, sent as the socket's first message
(never in a URL, so it stays out of access logs), authorises its holder to that one interaction.
The socket speaks small JSON messages; the page renders them with textContent (no HTML from us).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, WebSocket, WebSocketDisconnect, status
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.websockets import WebSocketState

from interactions import chat, chat_verify, chat_waiting, idempotency
from interactions.feedback_models import ChatSession
from interactions.models import Interaction, Message
from interactions.states import State
from switchboard import commands as routing_commands
from switchboard.deps import AppSettings, DbSession
from switchboard.desktop_messages import CustomerChanged
from switchboard.errors import DomainError, Forbidden
from switchboard.events import interaction_topic, publish
from switchboard.security import app_token_key
from switchboard.settings import Settings
from switchboard.templating import templates
from switchboard.text import MESSAGE as CONTROL_MESSAGE
from switchboard.text import first_control
from switchboard.throttle import client_address, throttle_of

log = logging.getLogger(__name__)

router = APIRouter(tags=["chat"])

AUTH_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 60.0  # the page pings every 20 s
ACTION_GRACE_S = 10.0  # how long a closing socket waits for the customer's last action
STATUS_EVERY_S = 1.0  # queue position/"agent joined" come from SQL; one indexed read per second
MAX_CLIENT_MESSAGE = 16_384
CLOSE_FORBIDDEN = 4403
CLOSE_POLICY = 1008
CLOSE_IDLE = 1013
CLOSE_UNSUPPORTED = 1003  # RFC 6455: a data type the endpoint cannot accept (a binary frame)
ENDED_STATES = frozenset({State.WRAP_UP, State.COMPLETED, State.ABANDONED, State.FAILED})


def _origin_allowed(origin: str | None, settings: Settings) -> bool:
    return origin is not None and origin.rstrip("/") in {o.rstrip("/") for o in settings.allowed_origins}


def refuse_foreign_origin(request: Request, settings: Settings) -> None:
    """Browsers always send Origin on a cross-site POST: refuse pages that are not ours or the
    bank's. (A non-browser client sends none and is no different from any other API caller.)"""
    origin = request.headers.get("origin")
    if origin is not None and not _origin_allowed(origin, settings):
        raise Forbidden("Origin not allowed", field="Origin")


# ------------------------------------------------------------------------------ pages


@router.get("/chat", response_class=HTMLResponse, include_in_schema=False)
async def chat_page(request: Request, senior: int = 0, embed: int = 0) -> Response:
    """The chat page. ``?senior=1`` opens in senior mode; ``?embed=1`` drops the page header."""
    return templates.TemplateResponse(
        request,
        "chat/page.html",
        {"senior": senior == 1, "embed": embed == 1, "topics": chat.TOPICS},
        headers={"Cache-Control": "no-store"},
    )


WIDGET_JS = """// Switchboard chat loader: adds a "Chat with us" button that opens the chat in an iframe.
(function () {
  "use strict";
  var base = %(base)s;
  var script = document.currentScript;
  var senior = script && script.dataset.senior === "1" ? "&senior=1" : "";
  var button = document.createElement("button");
  button.type = "button";
  button.textContent = "Chat with us";
  button.setAttribute("aria-expanded", "false");
  button.style.cssText = "position:fixed;right:16px;bottom:16px;z-index:2147483000;" +
    "padding:12px 18px;font:600 16px system-ui,sans-serif;border-radius:24px;border:0;" +
    "background:#0b4f8a;color:#fff;cursor:pointer";
  var frame = null;
  button.addEventListener("click", function () {
    if (!frame) {
      frame = document.createElement("iframe");
      frame.title = "Chat with us";
      frame.src = base + "/chat?embed=1" + senior;
      frame.style.cssText = "position:fixed;right:16px;bottom:72px;width:380px;height:600px;" +
        "max-height:80vh;border:1px solid #8a8a8a;border-radius:12px;z-index:2147483000;" +
        "background:#fff";
      document.body.appendChild(frame);
    } else {
      frame.hidden = !frame.hidden;
    }
    button.setAttribute("aria-expanded", frame.hidden ? "false" : "true");
  });
  document.body.appendChild(button);
})();
"""


@router.get("/chat/widget.js", include_in_schema=False)
async def widget_js(request: Request) -> Response:
    """Embeddable loader: ``<script src="https://switchboard.bank/chat/widget.js" defer>``."""
    base = str(request.base_url).rstrip("/")
    return Response(
        WIDGET_JS % {"base": json.dumps(base)},
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=300"},
    )


# ------------------------------------------------------------------------------ JSON endpoints


@router.post(
    "/chat/start",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=idempotency.openapi(idempotency.PUBLIC_MIN_CHARS),
)
async def start(
    body: chat.ChatStart, request: Request, response: Response, session: DbSession, settings: AppSettings
) -> dict:
    """Start a chat. The response carries the access token once; the page keeps it in sessionStorage.

    With an ``Idempotency-Key`` (at least 16 characters: nothing else ties a retry to its first
    request here) a retry answers the chat it started, with a new token (``chat.restart_chat``).
    """
    refuse_foreign_origin(request, settings)
    contact = chat.contact_key(body.contact, default_region=settings.default_phone_region)
    await throttle_of(request).intake(kind="chat", address=client_address(request), contacts=[contact])
    claim = idempotency.claim_from(
        request.headers,
        scope="chat",
        owner=idempotency.PUBLIC,
        body=body,
        min_chars=idempotency.PUBLIC_MIN_CHARS,
    )

    async def create() -> tuple[chat.StartedChat, uuid.UUID]:
        started = await chat.start_chat(
            session,
            data=body,
            secret=app_token_key(settings),
            issuer=settings.jwt_issuer,
            default_region=settings.default_phone_region,
            rules_live=request.app.state.rules_live,
        )
        return started, started.interaction.id

    async def replay(interaction_id: uuid.UUID) -> chat.StartedChat:
        restarted = await chat.restart_chat(session, interaction_id=interaction_id)
        await session.commit()
        return restarted

    started, replayed = await idempotency.once(session, claim, create, replay)
    if replayed:
        response.headers[idempotency.REPLAYED_HEADER] = "true"
    elif started.interaction.state is State.QUEUED:
        await routing_commands.notify_enqueued(request.app.state.redis_client, started.interaction.id)
    verified = chat_verify.identity_status(started.interaction)
    answer: dict[str, Any] = {
        "interaction_id": str(started.interaction.id),
        "token": started.access_token,
        # Never who a typed contact belongs to: only the bank's app proves who the visitor is.
        "identity": verified or "anonymous",
        "can_verify": chat_verify.claimed_contact(started.interaction) is not None,
    }
    if verified == chat_verify.VERIFIED and started.returning:
        answer |= {"customer_name": started.customer.display_name, "returning": True}
    return answer


class VerifyCode(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: str = Field(min_length=4, max_length=12, pattern=r"^[0-9 ]+$")


async def _verifying_chat(session: Any, interaction_id: uuid.UUID, token: str) -> tuple[Any, Any]:
    row = await chat.authorise(session, interaction_id=interaction_id, token=token)
    root = await session.get(Interaction, row.interaction_id, populate_existing=True)
    live = await chat.live_interaction(session, chat=row)
    return root, live


@router.post("/chat/{interaction_id}/verify/send", status_code=status.HTTP_202_ACCEPTED)
async def send_verification_code(
    interaction_id: uuid.UUID,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    x_chat_token: Annotated[str, Header(max_length=200)] = "",
) -> dict:
    """Send a one-time code to the phone or email the visitor gave, if it is registered with the
    bank. The answer is the same whether it is or not."""
    refuse_foreign_origin(request, settings)
    root, _live = await _verifying_chat(session, interaction_id, x_chat_token)
    await throttle_of(request).spend(chat_verify.SENDS, str(root.id))
    code = await chat_verify.prepare_code(session, request.app.state.redis_client, root=root)
    await session.commit()  # nothing held open while the relay or the carrier answers
    if code is not None:
        await chat_verify.send_code(settings, code)
    return {"status": "sent if registered", "expires_in": chat_verify.CODE_TTL_SECONDS}


@router.post("/chat/{interaction_id}/verify")
async def verify(
    interaction_id: uuid.UUID,
    body: VerifyCode,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    x_chat_token: Annotated[str, Header(max_length=200)] = "",
) -> dict:
    """Check the one-time code: the chat becomes the customer's, verified, on their timeline."""
    refuse_foreign_origin(request, settings)
    root, live = await _verifying_chat(session, interaction_id, x_chat_token)
    await throttle_of(request).spend(chat_verify.ATTEMPTS, str(root.id))
    customer = await chat_verify.check_code(
        session, request.app.state.redis_client, root=root, live=live, code=body.code.replace(" ", "")
    )
    agent_id = live.agent_id
    await session.commit()
    if agent_id is not None:  # the agent's desktop shows the verified customer at once
        await publish(
            request.app.state.redis_client, *CustomerChanged(interaction_id=str(live.id)).to(agent_id)
        )
    return {"identity": chat_verify.VERIFIED, "customer_name": customer.display_name}


@router.post("/chat/{interaction_id}/feedback", status_code=status.HTTP_201_CREATED)
async def feedback(
    interaction_id: uuid.UUID,
    body: chat.FeedbackCreate,
    request: Request,
    session: DbSession,
    settings: AppSettings,
    x_chat_token: Annotated[str, Header(max_length=200)] = "",
) -> dict:
    """The post-chat survey (CSAT 1-5 and an optional comment; NPS/CES when the page asks)."""
    refuse_foreign_origin(request, settings)
    row = await chat.authorise(session, interaction_id=interaction_id, token=x_chat_token)
    saved = await chat.submit_feedback(session, chat=row, data=body)
    await session.commit()
    return {"id": str(saved.id), "csat": saved.csat}


# ------------------------------------------------------------------------------ websocket


@dataclass
class CustomerSocket:
    """One customer's chat socket: what it last told the page, so it only sends changes."""

    websocket: WebSocket
    chat_id: uuid.UUID
    token: str
    followed: set[uuid.UUID] = field(default_factory=set)
    last_status: dict[str, Any] | None = None
    ended_sent: bool = False
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The customer's action being handled; finished even if the socket dies meanwhile.
    in_flight: asyncio.Future[None] | None = None

    @property
    def db(self) -> Any:
        return self.websocket.app.state.db

    async def send(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.websocket.send_text(json.dumps(message, default=str))

    async def _chat(self, session: Any) -> ChatSession:
        return await chat.authorise(session, interaction_id=self.chat_id, token=self.token)

    async def history(self) -> None:
        async with self.db.sessionmaker() as session:
            row = await self._chat(session)
            messages = await chat.chat_messages(session, chat=row)
            await session.commit()
        await self.send({"type": "history", "messages": [_message_json(m) for m in messages]})

    async def status_loop(self) -> None:
        shown: chat_waiting.QueueStatus | None = None
        while True:
            async with self.db.sessionmaker() as session:
                row = await self._chat(session)
                chain = await chat.chat_chain(session, root_id=row.interaction_id)
                current = await chat_waiting.queue_status(session, interaction_id=chain[-1])
                left = row.ended_by_customer_at is not None
                ended = left or State(current.state) in ENDED_STATES
                answered = ended and not self.ended_sent and await chat.was_answered(session, chat=row)
                await session.commit()
            self.followed.update(chain)  # a transfer continues the chat in a child interaction
            shown = chat_waiting.steady(shown, current)
            payload = {"type": "status", **shown.payload()}
            if payload != self.last_status:
                self.last_status = payload
                await self.send(payload)
            if not self.ended_sent and ended:
                self.ended_sent = True
                # The page asks for a rating only when someone answered (nothing to rate otherwise).
                by = "customer" if left else "bank"
                await self.send({"type": "ended", "by": by, "answered": answered})
            await asyncio.sleep(STATUS_EVERY_S)

    async def push_loop(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            event = await queue.get()
            kind = event.get("type")
            if kind == "chat_message":
                async with self.db.sessionmaker() as session:
                    message = await session.get(Message, int(event["message_id"]))
                    await session.commit()
                if message is not None and message.interaction_id in self.followed:
                    await self.send({"type": "message", **_message_json(message)})
            elif kind == "chat_typing" and event.get("sender") == "agent":
                await self.send({"type": "typing", "sender": "agent"})

    async def receive_loop(self) -> None:
        while True:
            try:
                raw = await asyncio.wait_for(_receive_text(self.websocket), IDLE_TIMEOUT_S)
            except TimeoutError:
                await _close(self.websocket, CLOSE_IDLE, "idle")
                return
            if raw is None:
                await _close(self.websocket, CLOSE_UNSUPPORTED, "text frames only")
                return
            action = _parse(raw)
            if action is None:
                await _close(self.websocket, CLOSE_POLICY, "unknown message")
                return
            bad = first_control(action, "message")
            if bad is not None:
                # As a form field would be: refused, named, and the socket stays up.
                field_name = bad.split(".", 1)[-1] if "." in bad else "body"
                await self.send({"type": "error", "field": field_name, "detail": CONTROL_MESSAGE})
                continue
            self.in_flight = asyncio.ensure_future(self.handle(action))
            try:
                await asyncio.shield(self.in_flight)
            except DomainError as exc:
                # The page shows it next to the field; the socket stays up.
                await self.send({"type": "error", "field": exc.field, "detail": exc.detail})

    async def handle(self, action: dict[str, Any]) -> None:
        kind = action["type"]
        client = self.websocket.app.state.redis_client
        if kind == "ping":
            await self.send({"type": "pong"})
            return
        async with self.db.sessionmaker() as session:
            row = await self._chat(session)
            if kind == "message":
                message = await chat.customer_message(session, chat=row, body=str(action.get("body", "")))
                live = await chat.live_interaction(session, chat=row)
                await session.commit()
                await chat.publish_chat_event(
                    client,
                    interaction_id=live.id,
                    root_id=row.interaction_id,
                    agent_id=live.agent_id,
                    kind="chat_message",
                    message_id=message.id,
                )
            elif kind == "typing":
                live = await chat.live_interaction(session, chat=row)
                await session.commit()
                await chat.publish_chat_event(
                    client,
                    interaction_id=live.id,
                    root_id=row.interaction_id,
                    agent_id=live.agent_id,
                    kind="chat_typing",
                    sender="customer",
                )
            elif kind == "transcript":
                address = await chat.request_transcript(session, chat=row, email=str(action.get("email", "")))
                await session.commit()
                await self.send({"type": "transcript_requested", "email": address})
            elif kind == "end":
                to_abandon = await chat.end_by_customer(session, chat=row)
                live = await chat.live_interaction(session, chat=row)
                await session.commit()
                if to_abandon is not None:
                    await routing_commands.send(
                        client, routing_commands.Abandon(interaction_id=str(to_abandon))
                    )
                await chat.publish_chat_event(
                    client,
                    interaction_id=live.id,
                    root_id=row.interaction_id,
                    agent_id=live.agent_id,
                    kind="chat_left",
                )


CLIENT_ACTIONS = frozenset({"ping", "message", "typing", "transcript", "end"})


def _parse(raw: str | None, *, allowed: frozenset[str] = CLIENT_ACTIONS) -> dict[str, Any] | None:
    if raw is None or len(raw) > MAX_CLIENT_MESSAGE:
        return None
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("type") not in allowed:
        return None
    return message


def _message_json(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "sender": message.sender.value,
        "body": message.body,
        "at": message.at.isoformat(),
    }


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=code, reason=reason)


async def _receive_text(websocket: WebSocket) -> str | None:
    """The next text frame; None for a binary one (Starlette's ``receive_text`` raises KeyError)."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    return text if isinstance(text, str) else None


async def _authenticate(websocket: WebSocket) -> tuple[uuid.UUID, str] | int | None:
    """The first message must be ``{"type": "auth", "interaction_id", "token"}`` for a real chat.
    The chat and its token, or the close code to give (a binary frame), or None (refused)."""
    try:
        raw = await asyncio.wait_for(_receive_text(websocket), AUTH_TIMEOUT_S)
    except (TimeoutError, WebSocketDisconnect):
        return None
    if raw is None:
        return CLOSE_UNSUPPORTED
    message = _parse(raw, allowed=frozenset({"auth"}))
    if message is None:
        return None
    try:
        chat_id = uuid.UUID(str(message.get("interaction_id")))
    except ValueError:
        return None
    token = str(message.get("token", ""))[:200]
    async with websocket.app.state.db.sessionmaker() as session:
        try:
            await chat.authorise(session, interaction_id=chat_id, token=token)
        except DomainError:
            return None
        finally:
            await session.commit()
    return chat_id, token


@router.websocket("/chat/ws")
async def chat_socket(websocket: WebSocket) -> None:
    settings: Settings = websocket.app.state.settings
    await websocket.accept()
    # Origin before anything is read: a foreign page must not drive a customer's chat. We accept
    # first only so the close code (4403) reaches the page; browsers hide HTTP handshake refusals.
    if not _origin_allowed(websocket.headers.get("origin"), settings):
        await _close(websocket, CLOSE_FORBIDDEN, "origin not allowed")
        return
    auth = await _authenticate(websocket)
    if auth == CLOSE_UNSUPPORTED:
        await _close(websocket, CLOSE_UNSUPPORTED, "text frames only")
        return
    if not isinstance(auth, tuple):
        await _close(websocket, CLOSE_FORBIDDEN, "not your chat")
        return
    connection = CustomerSocket(websocket, chat_id=auth[0], token=auth[1], followed={auth[0]})
    hub = websocket.app.state.event_hub
    # Subscribe before reading history: a message committed in between is then queued, not lost.
    async with hub.subscribe(interaction_topic(auth[0])) as queue:
        await connection.send({"type": "ready"})
        await connection.history()
        tasks = {
            asyncio.create_task(connection.receive_loop(), name="chat-ws-receive"),
            asyncio.create_task(connection.push_loop(queue), name="chat-ws-push"),
            asyncio.create_task(connection.status_loop(), name="chat-ws-status"),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and isinstance(task.exception(), Exception):
                    exc = task.exception()
                    if not isinstance(exc, WebSocketDisconnect | RuntimeError):
                        log.warning("chat socket %s failed: %r", auth[0], exc)
        finally:
            # An action the customer sent is carried out even when the socket dies right after it
            # (a page closed just after "end"): cut half-way, the chat would wait in the queue as a
            # ghost. The push or status loop notices the close first and would cancel it.
            if connection.in_flight is not None and not connection.in_flight.done():
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(connection.in_flight), ACTION_GRACE_S)
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                    await task
    await _close(websocket, 1000, "bye")

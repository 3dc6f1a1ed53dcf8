"""Twilio-compatible carrier adapter: signed webhooks in, TwiML out, under ``/carrier/twilio/voice``.

Call flow: ``incoming`` (menu) -> ``gather`` (digit -> queued voice interaction) -> a hold loop
of ``wait`` redirects that announce the position and offer a callback (``queue-action``), until
the interaction is connected, when ``wait`` answers ``<Dial><Client>agent-id</Client></Dial>``.
``status`` callbacks end the wait (abandoned) or the conversation (wrap-up).

Every request must carry a valid ``X-Twilio-Signature``: base64(HMAC-SHA1(auth token, full URL +
each POST parameter name and value, sorted by name)). Anything else is refused with 403 before a
byte is stored. Every state-changing webhook inserts its event key first, so a carrier retry (or
the same webhook twice at once) answers 200 and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from interactions.voice import calls, ivr
from interactions.voice.adapter import Bridge, HangUp, Hold, Instruction, Menu, parse_call_status
from interactions.voice.callback import request_callback
from routing import commands
from routing.commands import Abandon, Enqueue
from switchboard.deps import AppSettings, DbSession
from switchboard.errors import Conflict, Forbidden, Invalid
from switchboard.settings import Settings

PROVIDER = "twilio"
PREFIX = "/carrier/twilio/voice"
SIGNATURE_HEADER = "X-Twilio-Signature"
FORM = "application/x-www-form-urlencoded"
TWIML = "application/xml"
CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
CALLBACK_DIGIT = "*"
TRANSACTION_ATTEMPTS = 3
CALLBACK_GREETING = "Hello, this is your bank returning your call. Connecting you to an adviser now."
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

router = APIRouter(prefix=PREFIX, tags=["carrier"])
T = TypeVar("T")


# ------------------------------------------------------------------ signature


def compute_signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """Twilio's request signature: the URL, then every name+value sorted by name, HMAC-SHA1, base64."""
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class TwilioAdapter:
    provider = PROVIDER

    def __init__(self, auth_token: str, *, hold_audio_url: str) -> None:
        self._token = auth_token
        self.hold_audio_url = hold_audio_url

    def verify(self, *, url: str, params: list[tuple[str, str]], signature: str | None) -> bool:
        if not signature:
            return False
        return hmac.compare_digest(compute_signature(self._token, url, params), signature)

    def render(self, instruction: Instruction, *, base_url: str) -> str:
        root = ET.Element("Response")
        if isinstance(instruction, Menu):
            action = f"{base_url}{PREFIX}/gather?attempt={instruction.attempt}"
            gather = ET.SubElement(
                root, "Gather", input="dtmf", numDigits="1", timeout="6", action=action, method="POST"
            )
            ET.SubElement(gather, "Say").text = instruction.prompt
            # No key pressed: Twilio falls through to the next verb, which posts without Digits,
            # and the IVR sends a silent caller to a person.
            ET.SubElement(root, "Redirect", method="POST").text = action
        elif isinstance(instruction, Hold):
            gather = ET.SubElement(
                root,
                "Gather",
                input="dtmf",
                numDigits="1",
                timeout="1",
                action=f"{base_url}{PREFIX}/queue-action",
                method="POST",
            )
            say = f"You are number {instruction.position} in the queue."
            if instruction.offer_callback:
                say += " To be called back instead, without losing your place, press star."
            ET.SubElement(gather, "Say").text = say
            ET.SubElement(gather, "Play").text = self.hold_audio_url
            ET.SubElement(root, "Redirect", method="POST").text = f"{base_url}{PREFIX}/wait"
        elif isinstance(instruction, Bridge):
            ET.SubElement(root, "Say").text = instruction.announcement
            dial = ET.SubElement(root, "Dial")
            ET.SubElement(dial, "Client").text = str(instruction.agent_id)
            # When the agent's leg ends the caller continues here: a transferred caller is held
            # for (or bridged to) the next agent; a finished conversation hears goodbye.
            ET.SubElement(root, "Redirect", method="POST").text = f"{base_url}{PREFIX}/wait"
        elif isinstance(instruction, HangUp):
            if instruction.message:
                ET.SubElement(root, "Say").text = instruction.message
            ET.SubElement(root, "Hangup")
        return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")


# ------------------------------------------------------------------ request plumbing


@dataclass(frozen=True)
class Webhook:
    params: dict[str, str]
    call_sid: str
    base_url: str

    def get(self, name: str) -> str | None:
        value = self.params.get(name)
        return value if value not in (None, "") else None


def _adapter(settings: Settings) -> TwilioAdapter:
    if not settings.carrier_auth_token:
        raise Forbidden("Carrier webhooks are not configured (set SWITCHBOARD_CARRIER_AUTH_TOKEN)")
    return TwilioAdapter(settings.carrier_auth_token, hold_audio_url=settings.voice_hold_audio_url)


def _base_url(request: Request, settings: Settings) -> str:
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    return str(request.base_url).rstrip("/")


async def _webhook(request: Request, settings: Settings) -> tuple[Webhook, TwilioAdapter]:
    """Verify the signature (403 before anything else), then check the payload's shape (4xx)."""
    adapter = _adapter(settings)
    base = _base_url(request, settings)
    url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    is_form = request.headers.get("content-type", "").split(";")[0].strip().lower() == FORM
    body = await request.body()
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False) if is_form else []
    except UnicodeDecodeError:
        pairs = []
    if not adapter.verify(url=url, params=pairs, signature=request.headers.get(SIGNATURE_HEADER)):
        raise Forbidden(f"Invalid or missing {SIGNATURE_HEADER}")
    if not is_form:
        raise Invalid(f"Carrier webhooks are {FORM}", field="body")
    params = dict(pairs)
    call_sid = params.get("CallSid", "")
    if not CALL_SID.fullmatch(call_sid):
        raise Invalid("CallSid is required: CA followed by 32 hex digits", field="body.CallSid")
    return Webhook(params=params, call_sid=call_sid, base_url=base), adapter


def _attempt(raw: str) -> int:
    # Parsed here, not by FastAPI, so that the signature is checked before anything else.
    if not raw.isdigit() or not 1 <= int(raw) <= ivr.MAX_ATTEMPTS:
        raise Invalid(f"attempt is 1-{ivr.MAX_ATTEMPTS}", field="query.attempt")
    return int(raw)


def _twiml(adapter: TwilioAdapter, instruction: Instruction, webhook: Webhook) -> Response:
    return Response(adapter.render(instruction, base_url=webhook.base_url), media_type=TWIML)


async def _in_transaction(session: AsyncSession, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` and commit; retry when the routing engine moved the interaction meanwhile.

    The compare-and-set in ``transition`` refuses a decision made on a stale read; re-reading and
    deciding again is right (e.g. the hang-up now finds the interaction offered, not queued).
    """
    for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
        try:
            result = await work()
            await session.commit()
            return result
        except Conflict:
            await session.rollback()
            if attempt == TRANSACTION_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def _current(session: AsyncSession, webhook: Webhook, *, attempt: int = 1) -> Instruction:
    """What a replayed webhook answers: the call's state now (the menu if no interaction yet)."""
    interaction = await calls.interaction_for_call(session, provider=PROVIDER, call_sid=webhook.call_sid)
    if interaction is None:
        return Menu(ivr.prompt(attempt), attempt=attempt)
    return await calls.instruction_for(session, interaction)


# ------------------------------------------------------------------ webhooks


@router.post("/incoming")
async def incoming(request: Request, session: DbSession, settings: AppSettings) -> Response:
    """A call arrived: play the menu."""
    webhook, adapter = await _webhook(request, settings)
    caller = calls.caller_number(webhook.get("From"), default_region=settings.default_phone_region)

    async def work() -> Instruction:
        claimed = await calls.claim_event(
            session,
            provider=PROVIDER,
            event_key=f"{webhook.call_sid}:incoming",
            call_sid=webhook.call_sid,
            kind="incoming",
            payload={"from": caller, "to": webhook.get("To")},
        )
        if claimed is None:
            return await _current(session, webhook)
        return Menu(ivr.prompt(1), attempt=1)

    return _twiml(adapter, await _in_transaction(session, work), webhook)


@router.post("/gather")
async def gather(request: Request, session: DbSession, settings: AppSettings) -> Response:
    """The caller chose (or stayed silent): queue a voice interaction, or ask again."""
    webhook, adapter = await _webhook(request, settings)
    attempt = _attempt(request.query_params.get("attempt", "1"))
    digits = webhook.get("Digits")
    choice = ivr.choose(digits, attempt=attempt, field="body.Digits")
    caller = calls.caller_number(webhook.get("From"), default_region=settings.default_phone_region)
    created: list[str] = []

    async def work() -> Instruction:
        created.clear()
        claimed = await calls.claim_event(
            session,
            provider=PROVIDER,
            event_key=f"{webhook.call_sid}:gather:{attempt}:{digits or '-'}",
            call_sid=webhook.call_sid,
            kind="gather",
            payload={"digits": digits, "attempt": attempt},
        )
        if claimed is None:
            return await _current(session, webhook, attempt=attempt)
        if choice.option is None:
            return Menu(ivr.prompt(attempt + 1), attempt=attempt + 1)
        interaction, is_new = await calls.start_call_interaction(
            session,
            provider=PROVIDER,
            call_sid=webhook.call_sid,
            caller=caller,
            option=choice.option,
            queue=settings.voice_queue,
            default_region=settings.default_phone_region,
        )
        claimed.interaction_id = interaction.id
        if is_new:
            created.append(str(interaction.id))
        return await calls.instruction_for(session, interaction)

    instruction = await _in_transaction(session, work)
    for interaction_id in created:
        await commands.notify_enqueued(request.app.state.redis_client, interaction_id)
    return _twiml(adapter, instruction, webhook)


@router.post("/wait")
async def wait(request: Request, session: DbSession, settings: AppSettings) -> Response:
    """The hold loop: the position while waiting, the bridge once an agent has accepted."""
    webhook, adapter = await _webhook(request, settings)
    instruction = await _current(session, webhook)
    await session.commit()  # end the read (SQLite holds its lock for the transaction)
    return _twiml(adapter, instruction, webhook)


@router.post("/queue-action")
async def queue_action(request: Request, session: DbSession, settings: AppSettings) -> Response:
    """A key pressed while waiting: star asks for a callback; anything else resumes the hold."""
    webhook, adapter = await _webhook(request, settings)
    digits = webhook.get("Digits")
    if digits is None or not re.fullmatch(r"[0-9*#]{1,8}", digits):
        raise Invalid("Digits is required: keypad input", field="body.Digits")
    routing_commands: list[calls.RoutingCommand] = []

    async def work() -> Instruction:
        routing_commands.clear()
        claimed = await calls.claim_event(
            session,
            provider=PROVIDER,
            event_key=f"{webhook.call_sid}:queue-action:{digits}",
            call_sid=webhook.call_sid,
            kind="queue_action",
            payload={"digits": digits},
        )
        interaction = await calls.interaction_for_call(session, provider=PROVIDER, call_sid=webhook.call_sid)
        if claimed is None or interaction is None:
            return await _current(session, webhook)
        claimed.interaction_id = interaction.id
        if digits != CALLBACK_DIGIT or interaction.state not in calls.WAITING:
            return await calls.instruction_for(session, interaction)
        original, callback = await request_callback(
            session,
            interaction_id=interaction.id,
            actor=calls.carrier_actor(PROVIDER),
            default_region=settings.default_phone_region,
        )
        routing_commands.append(Abandon(interaction_id=str(original.id)))
        routing_commands.append(Enqueue(interaction_id=str(callback.id)))
        return await calls.instruction_for(session, original)

    instruction = await _in_transaction(session, work)
    await calls.notify_routing(request.app.state.redis_client, routing_commands)
    return _twiml(adapter, instruction, webhook)


@router.post("/answer")
async def answer(request: Request, session: DbSession, settings: AppSettings) -> Response:
    """An outbound leg we placed (callback, agent's call) was answered: bridge it to the agent."""
    webhook, adapter = await _webhook(request, settings)
    routing_commands: list[calls.RoutingCommand] = []

    async def work() -> Instruction:
        routing_commands.clear()
        claimed = await calls.claim_event(
            session,
            provider=PROVIDER,
            event_key=f"{webhook.call_sid}:answer",
            call_sid=webhook.call_sid,
            kind="answer",
        )
        interaction = await calls.interaction_for_call(session, provider=PROVIDER, call_sid=webhook.call_sid)
        if interaction is None:
            return HangUp()  # not a leg of ours: never bridge a stranger to anyone
        if claimed is not None:
            claimed.interaction_id = interaction.id
            interaction = await calls.answered(session, provider=PROVIDER, interaction=interaction)
            routing_commands.extend(calls.adopt_commands(interaction))
        instruction = await calls.instruction_for(session, interaction)
        if isinstance(instruction, Bridge) and interaction.callback_of_id is not None:
            return Bridge(agent_id=instruction.agent_id, announcement=CALLBACK_GREETING)
        return instruction

    instruction = await _in_transaction(session, work)
    await calls.notify_routing(request.app.state.redis_client, routing_commands)
    return _twiml(adapter, instruction, webhook)


@router.post("/status")
async def status(request: Request, session: DbSession, settings: AppSettings) -> Response:
    """Call progress: ringing, in-progress/answered, and the endings that move the interaction."""
    webhook, adapter = await _webhook(request, settings)
    raw = webhook.get("CallStatus")
    call_status = parse_call_status(raw) if raw else None
    if call_status is None:
        raise Invalid(f"Unknown or missing CallStatus {raw!r}", field="body.CallStatus")
    sequence = webhook.get("SequenceNumber") or ""
    if sequence and not sequence.isdigit():
        raise Invalid("SequenceNumber is a non-negative integer", field="body.SequenceNumber")
    routing_commands: list[calls.RoutingCommand] = []

    async def work() -> None:
        routing_commands.clear()
        claimed = await calls.claim_event(
            session,
            provider=PROVIDER,
            event_key=f"{webhook.call_sid}:status:{call_status.value}:{sequence}",
            call_sid=webhook.call_sid,
            kind="status",
            payload={"status": call_status.value, "sequence": sequence},
        )
        if claimed is None:
            return
        interaction = await calls.interaction_for_call(session, provider=PROVIDER, call_sid=webhook.call_sid)
        if interaction is None:
            return  # ended in the menu, before there was anything to route
        claimed.interaction_id = interaction.id
        routing_commands.extend(
            await calls.apply_call_status(
                session,
                provider=PROVIDER,
                interaction=interaction,
                status=call_status,
                call_sid=webhook.call_sid,
            )
        )

    await _in_transaction(session, work)
    await calls.notify_routing(request.app.state.redis_client, routing_commands)
    # Twilio ignores the body of a status callback; an empty TwiML document is the polite answer.
    return Response(EMPTY_TWIML, media_type=TWIML)

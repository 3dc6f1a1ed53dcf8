"""Twilio-compatible carrier adapter: signed webhooks in, TwiML out, under ``/carrier/twilio/voice``.

Call flow: ``incoming`` (menu) -> ``gather`` (digit -> queued voice interaction) -> a hold loop
of ``wait`` redirects that announce the position and offer a callback (``queue-action``), until
the interaction is connected, when ``wait`` adds the agent's device to the interaction's
conference (carrier REST API) and answers ``<Dial><Conference>interaction-id</Conference></Dial>``
(``control.py`` says why; without a REST API, ``<Dial><Client>agent-id</Client></Dial>``).
``status`` callbacks end the wait (abandoned) or the conversation (wrap-up); ``agent-leg``
callbacks report the agent's device, and one that never answered hands the caller back to the
queue (``agent_leg.py``).

Every request must carry a valid ``X-Twilio-Signature``: base64(HMAC-SHA1(auth token, full URL +
each POST parameter name and value, sorted by name)). Anything else is refused with 403 before a
byte is stored. Every state-changing webhook inserts its event key first, so a carrier retry (or
the same webhook twice at once) answers 200 and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from interactions.voice import agent_leg, calls, conference, control, ivr
from interactions.voice.adapter import (
    CALL_ENDED,
    Bridge,
    Connecting,
    HangUp,
    Hold,
    Instruction,
    Menu,
    parse_call_status,
)
from interactions.voice.callback import request_callback
from interactions.voice.control import AGENT_LEG_PATH, CUSTOMER_LABEL, DIGITS, PREFIX
from switchboard import commands
from switchboard.commands import Abandon, EngineUnavailable, Enqueue
from switchboard.deps import AppSettings, DbSession
from switchboard.errors import Conflict, Forbidden, Invalid, ServiceUnavailable
from switchboard.settings import Settings

log = logging.getLogger(__name__)

PROVIDER = "twilio"
SIGNATURE_HEADER = "X-Twilio-Signature"
FORM = "application/x-www-form-urlencoded"
TWIML = "application/xml"
CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
CALLBACK_DIGIT = "*"
TRANSACTION_ATTEMPTS = 3
CALLBACK_GREETING = "Hello, this is your bank returning your call. Connecting you to an adviser now."
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
ENGINE_WAIT_SECONDS = 4.0  # the carrier waits 15 s for a webhook's answer

router = APIRouter(prefix=PREFIX, tags=["carrier"])

# What the document says about every carrier webhook: a signed form in, TwiML out (FastAPI would
# otherwise describe a JSON route; the body is read by hand so the signature is checked first).
_CARRIER_FORM = {
    "type": "object",
    "required": ["CallSid"],
    "properties": {
        "CallSid": {"type": "string", "pattern": "^CA[0-9a-f]{32}$"},
        "From": {"type": "string", "description": "The caller, E.164"},
        "To": {"type": "string"},
        "CallStatus": {"type": "string", "description": "queued, ringing, in-progress, completed, ..."},
        "Digits": {"type": "string", "pattern": "^[0-9*#]{1,8}$"},
        "SequenceNumber": {"type": "string"},
    },
    "additionalProperties": {"type": "string"},
}
CARRIER_ROUTE: dict[str, Any] = {
    "response_class": Response,
    "openapi_extra": {
        "requestBody": {"required": True, "content": {FORM: {"schema": _CARRIER_FORM}}},
        "parameters": [
            {
                "name": SIGNATURE_HEADER,
                "in": "header",
                "required": True,
                "description": "Base64 HMAC-SHA1 of the URL and sorted form, keyed by the auth token",
                "schema": {"type": "string"},
            }
        ],
        "responses": {
            "200": {
                "description": "TwiML: what the call does next",
                "content": {TWIML: {"schema": {"type": "string"}}},
            },
            "403": {"description": "Missing or wrong signature"},
        },
    },
}
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
        elif isinstance(instruction, Connecting):
            ET.SubElement(root, "Say").text = instruction.message
            ET.SubElement(root, "Play").text = self.hold_audio_url
            ET.SubElement(root, "Redirect", method="POST").text = f"{base_url}{PREFIX}/wait"
        elif isinstance(instruction, Bridge):
            ET.SubElement(root, "Say").text = instruction.announcement
            dial = ET.SubElement(root, "Dial")
            if instruction.conference:
                # The caller's side of the conference: hold music until the agent's leg joins;
                # the caller leaving (hang-up, transfer) ends it, and the agent's leg with it.
                ET.SubElement(
                    dial,
                    "Conference",
                    participantLabel=CUSTOMER_LABEL,
                    startConferenceOnEnter="true",
                    endConferenceOnExit="true",
                    beep="false",
                    waitUrl=self.hold_audio_url,
                    waitMethod="GET",
                ).text = instruction.conference
            else:
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


async def _signed(request: Request, settings: Settings) -> tuple[dict[str, str], str, TwilioAdapter]:
    """Verify the signature (403 before anything else); the form, the base URL and the adapter."""
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
    return dict(pairs), base, adapter


async def _webhook(request: Request, settings: Settings) -> tuple[Webhook, TwilioAdapter]:
    """A signed call webhook (403 first), then the payload's shape (4xx)."""
    params, base, adapter = await _signed(request, settings)
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


async def _conference_bridge(
    session: AsyncSession, settings: Settings, webhook: Webhook, *, interaction_id: uuid.UUID, bridge: Bridge
) -> Instruction:
    """The bridge through the interaction's conference: the agent's device is added to it once
    (through the carrier's REST API, no transaction open meanwhile), the caller joins it by TwiML.

    Without a carrier REST API there is no conference (and no call control): straight to the
    agent's device. When the carrier will not add the agent, the caller hears they are being
    connected (not a queue position: they were given to an agent) and the next turn retries; so
    do they once the agent's device ended unanswered, until the engine has put them back in line.
    """
    if not control.configured(settings):
        return bridge
    name = control.conference_name(interaction_id)
    agent_id = bridge.agent_id

    async def claim() -> object | None:
        return await conference.claim_agent_leg(
            session, provider=PROVIDER, interaction_id=interaction_id, agent_id=agent_id
        )

    if await _in_transaction(session, claim) is not None:
        # The agent's device shows who is calling, as <Dial><Client> did (the customer's number:
        # From on an inbound call, To on a leg we placed).
        outbound = (webhook.get("Direction") or "").startswith("outbound")
        caller_id = (webhook.get("To") if outbound else webhook.get("From")) or ""
        callback = f"{webhook.base_url}{PREFIX}{AGENT_LEG_PATH}?" + urlencode(
            {"interaction": str(interaction_id), "agent": str(agent_id)}
        )
        try:
            leg = await control.call_control(settings, base_url=webhook.base_url).add_agent(
                conference=name,
                agent_id=bridge.agent_id,
                caller_id=caller_id,
                ring_seconds=settings.voice_agent_ring_seconds,
                status_callback=callback,
            )
        except ServiceUnavailable as exc:
            log.warning("agent %s not added to %s: %s", bridge.agent_id, name, exc)
            await conference.release_agent_leg(
                session, provider=PROVIDER, interaction_id=interaction_id, agent_id=agent_id
            )
            await session.commit()
            return Connecting()
        await conference.record_agent_leg(
            session, provider=PROVIDER, interaction_id=interaction_id, agent_id=agent_id, leg=leg
        )
        await session.commit()
    else:
        row = await conference.agent_leg_row(
            session, provider=PROVIDER, interaction_id=interaction_id, agent_id=agent_id
        )
        ended = conference.ended_unanswered(row)
        await session.commit()
        if ended is not None:
            return Connecting()  # the device never answered: the engine is moving them back
    return replace(bridge, conference=name)


# ------------------------------------------------------------------ webhooks


@router.post("/incoming", **CARRIER_ROUTE)
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


@router.post("/gather", **CARRIER_ROUTE)
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
        await calls.hold_call(session, provider=PROVIDER, call_sid=webhook.call_sid)
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
        if await calls.call_ended(session, provider=PROVIDER, call_sid=webhook.call_sid):
            return HangUp(calls.GOODBYE)  # the caller hung up right after choosing: nobody to queue
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


@router.post("/wait", **CARRIER_ROUTE)
async def wait(request: Request, session: DbSession, settings: AppSettings) -> Response:
    """The hold loop: the position while waiting, the bridge once an agent has accepted."""
    webhook, adapter = await _webhook(request, settings)
    interaction = await calls.interaction_for_call(session, provider=PROVIDER, call_sid=webhook.call_sid)
    instruction = await _current(session, webhook)
    await session.commit()  # end the read (SQLite holds its lock for the transaction)
    if interaction is not None and isinstance(instruction, Bridge):
        instruction = await _conference_bridge(
            session, settings, webhook, interaction_id=interaction.id, bridge=instruction
        )
    return _twiml(adapter, instruction, webhook)


@router.post("/tones", **CARRIER_ROUTE)
async def tones(request: Request, settings: AppSettings) -> Response:
    """The announcement that plays keypad tones to a caller's conference participant (the agent's
    keypad, ``control.send_digits``): ``<Play digits>``, nothing stored."""
    _, _, adapter = await _signed(request, settings)
    digits = request.query_params.get("digits", "")
    if not DIGITS.fullmatch(digits):
        raise Invalid("digits are 0-9, *, # and w (up to 32)", field="query.digits")
    root = ET.Element("Response")
    ET.SubElement(root, "Play", digits=digits)
    twiml = '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")
    return Response(twiml, media_type=TWIML)


@router.post("/queue-action", **CARRIER_ROUTE)
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


@router.post("/answer", **CARRIER_ROUTE)
async def answer(request: Request, session: DbSession, settings: AppSettings) -> Response:
    """An outbound leg we placed (callback, agent's call) was answered: bridge it to the agent."""
    webhook, adapter = await _webhook(request, settings)
    routing_commands: list[calls.RoutingCommand] = []
    bridged: list[uuid.UUID] = []

    async def work() -> Instruction:
        routing_commands.clear()
        bridged.clear()
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
        if isinstance(instruction, Bridge):
            bridged.append(interaction.id)
            if interaction.callback_of_id is not None:
                return Bridge(agent_id=instruction.agent_id, announcement=CALLBACK_GREETING)
        return instruction

    instruction = await _in_transaction(session, work)
    await calls.notify_routing(request.app.state.redis_client, routing_commands)
    if bridged and isinstance(instruction, Bridge):
        instruction = await _conference_bridge(
            session, settings, webhook, interaction_id=bridged[0], bridge=instruction
        )
    return _twiml(adapter, instruction, webhook)


@router.post("/status", **CARRIER_ROUTE)
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
        await calls.hold_call(session, provider=PROVIDER, call_sid=webhook.call_sid)
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
        if call_status in CALL_ENDED:
            await calls.mark_call_ended(session, provider=PROVIDER, call_sid=webhook.call_sid)
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


def _uuid_query(request: Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.query_params.get(name, ""))
    except ValueError:
        raise Invalid(f"{name} is required: a UUID", field=f"query.{name}") from None


@router.post(AGENT_LEG_PATH, **CARRIER_ROUTE)
async def agent_leg_status(request: Request, session: DbSession, settings: AppSettings) -> Response:
    """The agent's device in the conference (``control.add_agent``'s StatusCallback, naming the
    interaction and the agent in its signed URL): answered, or ended before anyone answered it,
    when the caller goes back to the queue keeping their place (``agent_leg.py``)."""
    webhook, _ = await _webhook(request, settings)
    interaction_id = _uuid_query(request, "interaction")
    agent_id = _uuid_query(request, "agent")
    raw = webhook.get("CallStatus")
    call_status = parse_call_status(raw) if raw else None
    if call_status is None:
        raise Invalid(f"Unknown or missing CallStatus {raw!r}", field="body.CallStatus")
    outcomes: list[agent_leg.LegOutcome] = []

    async def work() -> None:
        outcomes.clear()
        claimed = await calls.claim_event(
            session,
            provider=PROVIDER,
            event_key=f"{webhook.call_sid}:agent-leg:{call_status.value}",
            call_sid=webhook.call_sid,
            kind="agent_leg_status",
            payload={"status": call_status.value, "agent_id": str(agent_id)},
            interaction_id=interaction_id,
        )
        if claimed is None:
            return  # a retry: applied once already
        outcomes.append(
            await agent_leg.apply_agent_leg_status(
                session,
                provider=PROVIDER,
                interaction_id=interaction_id,
                agent_id=agent_id,
                call_sid=webhook.call_sid,
                status=call_status,
            )
        )

    await _in_transaction(session, work)
    if outcomes and outcomes[0].requeue is not None:
        await _hand_back(request, settings, webhook, outcomes[0])
    return Response(EMPTY_TWIML, media_type=TWIML)


async def _hand_back(
    request: Request, settings: Settings, webhook: Webhook, outcome: agent_leg.LegOutcome
) -> None:
    """After the commit: the engine takes the interaction back (the agent out of the availability
    index first), then the caller leaves the conference for the hold loop, which finds them queued
    again. If the engine is slow the loop says "connecting" until it has; if the carrier refuses
    the redirect the caller is still in the conference, so it is logged loudly."""
    redis = request.app.state.redis_client
    if outcome.agent_changed is not None:
        await calls.notify_routing(redis, [outcome.agent_changed])
    assert outcome.requeue is not None
    interaction_id = outcome.requeue.interaction_id
    try:
        reply = await commands.call(redis, outcome.requeue, wait_seconds=ENGINE_WAIT_SECONDS)
        if not reply.get("ok"):
            log.error("routing refused to requeue %s: %s", interaction_id, reply.get("reason"))
    except (EngineUnavailable, OSError) as exc:
        log.warning("routing has not yet requeued %s (%s); the hold loop waits", interaction_id, exc)
    if outcome.caller_call_sid is None:
        log.error("no caller's call for %s: cannot return it to the flow", interaction_id)
        return
    try:
        await control.call_control(settings, base_url=webhook.base_url).return_to_flow(
            call_sid=outcome.caller_call_sid
        )
    except ServiceUnavailable as exc:
        log.error("caller %s not returned to the flow: %s", outcome.caller_call_sid, exc)

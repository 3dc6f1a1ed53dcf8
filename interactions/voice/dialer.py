"""Outbound call legs: when an agent holds a callback or places a call, the carrier rings the customer.

Twilio-compatible REST "create call" (``POST /2010-04-01/Accounts/{sid}/Calls.json``, Basic auth
with the account id and auth token). The leg's ``Url`` is our ``answer`` webhook: when the customer
picks up, the carrier fetches it and we answer ``<Dial><Client>{agent}</Client></Dial>``, bridging
the customer to the agent's device. Its ``StatusCallback`` is the ordinary ``status`` webhook, so
ringing / answered / no-answer / completed drive the interaction exactly like an inbound call's.

Which interactions get a leg: outbound voice work an agent holds: a callback the agent accepted
(``connected``) or the agent's own call (``created``, attached to them; the contact policy was
checked when it was created). The agent's own call is dialled at once by the API; callbacks are
found by ``run_dialer`` (its own process, ``switchboard dialer``) polling SQL, which also catches
anything the API could not dial.

Exactly one leg per interaction: the ``leg:<interaction id>`` carrier-event row is claimed
(unique index) and committed BEFORE the carrier is asked, and no transaction is open while it
answers. A carrier refusal is recorded on the timeline; the agent's own call then fails, an
accepted callback goes to wrap-up (the agent records why), so nobody waits on a call that is not
ringing. A dialer dying between claim and answer leaves the claim: better a callback the agent
re-dials by hand than a customer rung twice.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import redis.asyncio as aioredis
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.timeline import append_event
from interactions import service
from interactions.models import Interaction
from interactions.states import Channel, Direction, State
from interactions.voice.calls import RoutingCommand, carrier_actor, claim_event, notify_routing
from interactions.voice.models import CarrierEvent
from switchboard.commands import WrapUp
from switchboard.db import Database
from switchboard.settings import Settings

log = logging.getLogger(__name__)

PROVIDER = "twilio"
CALLS_PATH = "/2010-04-01/Accounts/{account}/Calls.json"
ANSWER_PATH = "/carrier/twilio/voice/answer"
STATUS_PATH = "/carrier/twilio/voice/status"
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
LEG_KIND = "leg"
PENDING_SID = "pending"
REQUEST_TIMEOUT_SECONDS = 10.0
DIALER_INTERVAL_SECONDS = 0.5
DIALLABLE = frozenset({State.CREATED, State.CONNECTED})


class CarrierRefused(Exception):
    """The carrier did not place the call (HTTP error, refusal, or an answer we cannot use)."""


@dataclass(frozen=True)
class CarrierApi:
    base_url: str
    account_sid: str
    auth_token: str
    caller_id: str
    webhook_base_url: str  # where the carrier reaches our webhooks

    @classmethod
    def from_settings(cls, settings: Settings) -> CarrierApi | None:
        if not (settings.carrier_api_url and settings.carrier_account_sid and settings.carrier_auth_token):
            return None
        webhooks = settings.public_base_url or f"http://{settings.host}:{settings.port}"
        return cls(
            base_url=settings.carrier_api_url.rstrip("/"),
            account_sid=settings.carrier_account_sid,
            auth_token=settings.carrier_auth_token,
            caller_id=settings.carrier_caller_id,
            webhook_base_url=webhooks.rstrip("/"),
        )


async def create_call(client: httpx.AsyncClient, api: CarrierApi, *, to: str) -> str:
    """Ask the carrier to ring ``to``; returns the new leg's CallSid."""
    from interactions.voice.twilio import CALL_SID  # twilio.py imports this module

    form: list[tuple[str, str]] = [
        ("To", to),
        ("From", api.caller_id),
        ("Url", api.webhook_base_url + ANSWER_PATH),
        ("Method", "POST"),
        ("StatusCallback", api.webhook_base_url + STATUS_PATH),
        ("StatusCallbackMethod", "POST"),
        *(("StatusCallbackEvent", event) for event in STATUS_EVENTS),
    ]
    url = api.base_url + CALLS_PATH.format(account=api.account_sid)
    try:
        response = await client.post(
            url,
            # StatusCallbackEvent repeats, so the form is encoded here rather than as a dict.
            content=urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            auth=(api.account_sid, api.auth_token),
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as exc:
        raise CarrierRefused(f"carrier unreachable: {exc!r}") from exc
    if response.status_code not in (200, 201):
        raise CarrierRefused(f"carrier answered {response.status_code}: {response.text[:200]}")
    try:
        sid = str(response.json().get("sid", ""))
    except ValueError as exc:
        raise CarrierRefused("carrier answered without JSON") from exc
    if not CALL_SID.fullmatch(sid):
        raise CarrierRefused(f"carrier answered without a usable call sid ({sid[:40]!r})")
    return sid


def _leg_key(interaction_id: uuid.UUID) -> str:
    return f"leg:{interaction_id}"


def _diallable(interaction: Interaction) -> bool:
    return (
        interaction.channel is Channel.VOICE
        and interaction.direction is Direction.OUTBOUND
        and interaction.state in DIALLABLE
        and interaction.agent_id is not None
    )


async def legs_to_place(session: AsyncSession, *, limit: int = 20) -> list[uuid.UUID]:
    """Outbound voice work an agent holds that has no leg yet, oldest first."""
    has_leg = exists().where(CarrierEvent.interaction_id == Interaction.id, CarrierEvent.kind == LEG_KIND)
    rows = await session.scalars(
        select(Interaction.id)
        .where(
            Interaction.channel == Channel.VOICE,
            Interaction.direction == Direction.OUTBOUND,
            Interaction.state.in_(DIALLABLE),
            Interaction.agent_id.is_not(None),
            ~has_leg,
        )
        .order_by(Interaction.created_at)
        .limit(limit)
    )
    return list(rows)


async def _claim(db: Database, interaction_id: uuid.UUID) -> str | None:
    """Claim the interaction's one leg; the number to ring, or None (not diallable, or claimed)."""
    async with db.sessionmaker() as session:
        interaction = await session.get(Interaction, interaction_id)
        contact = (interaction.contact_identity or {}) if interaction is not None else {}
        if interaction is None or not _diallable(interaction) or contact.get("kind") != "phone":
            await session.rollback()
            return None
        claimed = await claim_event(
            session,
            provider=PROVIDER,
            event_key=_leg_key(interaction_id),
            call_sid=PENDING_SID,
            kind=LEG_KIND,
            payload={"to": contact["value"]},
            interaction_id=interaction_id,
        )
        await session.commit()
    return str(contact["value"]) if claimed is not None else None


async def _record(
    db: Database, interaction_id: uuid.UUID, *, to: str, sid: str | None, reason: str | None
) -> list[RoutingCommand]:
    """The carrier's answer, in SQL: the sid mapping (so webhooks find the call), or the refusal."""
    commands: list[RoutingCommand] = []
    async with db.sessionmaker() as session:
        interaction = await service.get_interaction(session, interaction_id)
        claim = await session.scalar(
            select(CarrierEvent).where(
                CarrierEvent.provider == PROVIDER, CarrierEvent.event_key == _leg_key(interaction_id)
            )
        )
        assert claim is not None
        actor = carrier_actor(PROVIDER)
        if sid is not None:
            claim.call_sid = sid
            await claim_event(
                session,
                provider=PROVIDER,
                event_key=f"{sid}:interaction",
                call_sid=sid,
                kind="interaction",
                interaction_id=interaction_id,
            )
            append_event(
                session,
                customer_id=interaction.customer_id,
                interaction_id=interaction.id,
                kind="call_leg_placed",
                channel=interaction.channel.value,
                actor_type=actor.type,
                actor_id=actor.id,
                data={"call_sid": sid, "to": to},
            )
        else:
            claim.payload = {**(claim.payload or {}), "refused": reason}
            append_event(
                session,
                customer_id=interaction.customer_id,
                interaction_id=interaction.id,
                kind="call_leg_failed",
                channel=interaction.channel.value,
                actor_type=actor.type,
                actor_id=actor.id,
                data={"reason": reason, "to": to},
            )
            if interaction.state is State.CREATED:
                await service.transition(
                    session,
                    interaction_id=interaction.id,
                    to_state=State.FAILED,
                    actor_type=actor.type,
                    actor_id=actor.id,
                    reason="the carrier did not place the call",
                )
            elif interaction.state is State.CONNECTED and interaction.agent_id is not None:
                commands.append(
                    WrapUp(interaction_id=str(interaction.id), agent_id=str(interaction.agent_id))
                )
        await session.commit()
    return commands


async def place_leg(
    db: Database,
    redis: aioredis.Redis | None,
    client: httpx.AsyncClient,
    api: CarrierApi,
    interaction_id: uuid.UUID,
) -> str | None:
    """Place the interaction's outbound leg once; returns its CallSid (None: not placed by us)."""
    to = await _claim(db, interaction_id)
    if to is None:
        return None
    try:
        sid: str | None = await create_call(client, api, to=to)
        reason = None
    except CarrierRefused as exc:
        sid, reason = None, str(exc)
        log.warning("carrier did not place the leg of %s: %s", interaction_id, reason)
    commands = await _record(db, interaction_id, to=to, sid=sid, reason=reason)
    if redis is not None:
        await notify_routing(redis, commands)
    return sid


async def dial_pending(
    db: Database, redis: aioredis.Redis | None, client: httpx.AsyncClient, api: CarrierApi
) -> int:
    """One dialer pass; returns how many legs were placed."""
    async with db.sessionmaker() as session:
        pending = await legs_to_place(session)
        await session.commit()
    placed = 0
    for interaction_id in pending:
        if await place_leg(db, redis, client, api, interaction_id):
            placed += 1
    return placed


async def run_dialer(settings: Settings, *, interval: float = DIALER_INTERVAL_SECONDS) -> None:
    """``switchboard dialer``: place legs for accepted callbacks (and any missed call) until cancelled."""
    api = CarrierApi.from_settings(settings)
    if api is None:
        log.warning("no carrier REST API configured (SWITCHBOARD_CARRIER_API_URL); the dialer is idle")
        await asyncio.Event().wait()
        return
    db = Database(settings.resolved_database_url, schema=settings.database_schema)
    redis = aioredis.from_url(settings.redis_url, decode_responses=True) if settings.redis_url else None
    try:
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    await dial_pending(db, redis, client, api)
                except Exception:  # a database or carrier blip must not end the loop
                    log.exception("dialer pass failed")
                await asyncio.sleep(interval)
    finally:
        if redis is not None:
            await redis.aclose()
        await db.dispose()

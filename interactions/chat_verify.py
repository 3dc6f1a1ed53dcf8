"""Who a web-chat visitor is: unverified until proved, never told whose contact they typed.

A visitor who types a phone number or an email is *unverified*: the chat runs under an anonymous
visitor profile, the contact they claim is kept on the interaction (``attributes.claimed_contact``)
for the agent to see as a claim, and nothing of the profile behind it is linked or shown. Proof:

* a one-time code sent to that contact, only when it is registered to a customer (email through
  the outbound relay, a phone number by SMS through the carrier's REST API); the answer to the
  visitor is the same either way, so it reveals nothing;
* or a token from the bank's app (``app_token`` at the start): verified from the first moment.

On success the visitor profile is merged into the customer (the chat and its timeline move with
it, append-only as every merge) and ``identity_verified`` is written on the customer's timeline.
The codes live in Redis for ``CODE_TTL_SECONDS`` (only a hash of the code); sends and attempts
are throttled per chat (switchboard.throttle).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import httpx
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.merge import merge_customers
from customers.models import Customer, IdentityKind
from customers.service import find_identity
from customers.timeline import append_event
from interactions.customer_merge import MOVERS
from interactions.models import ActorType, Interaction
from switchboard.db import utcnow
from switchboard.errors import Conflict, Invalid
from switchboard.redis import rkey
from switchboard.settings import Settings
from switchboard.throttle import Rule, parse_limit

log = logging.getLogger(__name__)

UNVERIFIED = "unverified"
VERIFIED = "verified"
CODE_TTL_SECONDS = 600
CODE_DIGITS = 6
SMS_PATH = "/2010-04-01/Accounts/{account}/Messages.json"
# Per chat: a few codes (a typo in the address, a slow mail) and a few guesses at each.
SENDS = Rule("verify-send", parse_limit("3/hour"))
ATTEMPTS = Rule("verify-attempt", parse_limit("5/15 minutes"))


def identity_status(interaction: Interaction) -> str | None:
    """``verified``, ``unverified``, or None (not a web chat that took a contact or app sign-in)."""
    value = (interaction.attributes or {}).get("identity")
    return value if value in (VERIFIED, UNVERIFIED) else None


def claimed_contact(interaction: Interaction) -> dict[str, str] | None:
    claim = (interaction.attributes or {}).get("claimed_contact")
    return claim if isinstance(claim, dict) else None


def _key(root_id: uuid.UUID) -> str:
    return rkey("chat-verify", root_id)


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


@dataclass(frozen=True)
class CodeToSend:
    """What the caller sends after committing nothing (no transaction is held across a send)."""

    kind: IdentityKind
    to: str
    code: str


async def prepare_code(
    session: AsyncSession, client: aioredis.Redis, *, root: Interaction
) -> CodeToSend | None:
    """A fresh code for the contact the visitor claimed, if it is registered to a customer;
    None otherwise (the visitor is told the same either way). Replaces any earlier code."""
    if identity_status(root) != UNVERIFIED:
        raise Conflict("This chat needs no verification", field="interaction_id")
    claim = claimed_contact(root)
    if claim is None:
        raise Conflict("No phone number or email was given for this chat", field="interaction_id")
    kind = IdentityKind(claim["kind"])
    identity = await find_identity(session, kind=kind, value=claim["value"])
    if identity is None:
        await client.delete(_key(root.id))
        return None
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    stored = {"code_sha256": _digest(code), "customer_id": str(identity.customer_id), "kind": kind.value}
    await client.set(_key(root.id), json.dumps(stored), ex=CODE_TTL_SECONDS)
    return CodeToSend(kind=kind, to=claim["value"], code=code)


async def send_code(settings: Settings, code: CodeToSend) -> None:
    """Through the existing outbound paths: the mail relay, or the carrier's SMS API."""
    text = (
        f"Your verification code for the chat with your bank is {code.code}. It expires in "
        f"{CODE_TTL_SECONDS // 60} minutes. Only type it into the chat window you opened; "
        "the bank will never ask you for it by phone."
    )
    if code.kind is IdentityKind.EMAIL:
        from interactions.email import outbound

        message = EmailMessage()
        message["From"] = settings.smtp_from
        message["To"] = code.to
        message["Subject"] = "Your chat verification code"
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(text)
        await outbound.send(message, outbound.Relay.from_settings(settings))
        return
    await send_sms(settings, to=code.to, body=text)


async def send_sms(settings: Settings, *, to: str, body: str) -> None:
    """One SMS through the carrier's REST API (Twilio-compatible ``Messages.json``)."""
    from switchboard.errors import ServiceUnavailable

    if not (settings.carrier_api_url and settings.carrier_account_sid and settings.carrier_auth_token):
        raise ServiceUnavailable("Text messages need the carrier's REST API (SWITCHBOARD_CARRIER_API_URL)")
    url = settings.carrier_api_url.rstrip("/") + SMS_PATH.format(account=settings.carrier_account_sid)
    try:
        async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as client:
            response = await client.post(
                url,
                data={"To": to, "From": settings.carrier_caller_id, "Body": body},
                auth=(settings.carrier_account_sid, settings.carrier_auth_token),
            )
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"The carrier did not answer ({exc!r}); no text was sent") from exc
    if response.status_code not in (200, 201):
        raise ServiceUnavailable(f"The carrier refused the text (HTTP {response.status_code})")


async def check_code(
    session: AsyncSession,
    client: aioredis.Redis,
    *,
    root: Interaction,
    live: Interaction,
    code: str,
    now: datetime | None = None,
) -> Customer:
    """Verify the visitor: the code must match the one sent. Merges the visitor profile into the
    customer, marks the chat verified and writes ``identity_verified`` on the customer's timeline
    (the caller commits, then tells the agent's desktop)."""
    now = now or utcnow()
    if identity_status(root) != UNVERIFIED:
        raise Conflict("This chat needs no verification", field="code")
    raw = await client.get(_key(root.id))
    stored: dict[str, Any] = json.loads(raw) if raw else {}
    if not stored or not hmac.compare_digest(stored.get("code_sha256", ""), _digest(code.strip())):
        raise Invalid("That code is not right, or it has expired; ask for a new one", field="code")
    await client.delete(_key(root.id))  # one use
    customer_id = uuid.UUID(stored["customer_id"])
    visitor_id = live.customer_id
    if visitor_id != customer_id:
        # The visitor's chats first, then the customers (merge_customers): a chat's own writers
        # (its messages, the routing engine) lock the interaction before the customer row (a
        # timeline row's key), and the other order deadlocks on PostgreSQL when a code is typed
        # while the chat is busy.
        await session.execute(
            select(Interaction.id)
            .where(Interaction.customer_id == visitor_id)
            .order_by(Interaction.id)
            .with_for_update()
        )
        await merge_customers(
            session, target_id=customer_id, source_id=visitor_id, actor_id=None, movers=MOVERS
        )
    method = "email" if stored.get("kind") == IdentityKind.EMAIL.value else "sms"
    for interaction in {root.id: root, live.id: live}.values():
        interaction.attributes = {
            **(interaction.attributes or {}),
            "identity": VERIFIED,
            "verified_by": method,
        }
    append_event(
        session,
        customer_id=customer_id,
        interaction_id=live.id,
        kind="identity_verified",
        channel=live.channel.value,
        actor_type=ActorType.CUSTOMER,
        actor_id=str(customer_id),
        data={"method": method, "contact_kind": stored.get("kind")},
        at=now,
    )
    await session.flush()
    customer = await session.get(Customer, customer_id, populate_existing=True)
    assert customer is not None
    return customer

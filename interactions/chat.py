"""Web chat, the customer's side: start a chat, converse, see the queue, ask for the transcript, rate it.

Plain async functions (session first, keyword-only, no FastAPI), like every service: the public
pages, the chat websocket and tests call the same code. They flush but never commit. Publishing
to other processes (``publish_chat_event``) is a separate step the caller takes after commit, so
nobody is told about a row that could still roll back.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.identity import normalise_email, normalise_identity
from customers.models import Customer, IdentityKind
from customers.service import find_identity
from customers.timeline import append_event
from interactions import chat_verify
from interactions.feedback import record_feedback
from interactions.feedback_models import ChatSession, CustomerFeedback
from interactions.models import ActorType, Interaction, Message, MessageSender
from interactions.schemas import MAX_MESSAGE_CHARS, IdentityRef, InteractionCreate
from interactions.service import Actor, create_interaction, list_messages, post_message, transition
from interactions.states import Channel, State
from switchboard.db import utcnow
from switchboard.errors import Conflict, Invalid, NotFound
from switchboard.events import agent_topic, interaction_topic, publish
from switchboard.security import TokenError, decode_token
from workforce.models import Queue

# The bank's app signs a short JWT for its logged-in user with this audience, so an ordinary
# staff session token (audience "switchboard") can never be replayed as a customer chat login.
APP_TOKEN_AUDIENCE = "switchboard-chat"
MAX_COMMENT_CHARS = 2000

# The senior menu: plain words for the customer, a routing topic for the rules.
TOPICS: dict[str, str] = {
    "cards": "My bank card",
    "card_fraud": "Lost card or fraud",
    "mortgages": "Mortgage or loan",
    "other": "Something else",
}
# While waiting the customer may give up (abandon); once connected, "end" just leaves.
WAITING_STATES = frozenset({State.CREATED, State.QUEUED, State.OFFERED})
CUSTOMER_LEFT_REASON = "the customer left the chat"
# Feedback is asked for once the conversation is over, whoever ended it (and only if an agent answered).
FEEDBACK_STATES = frozenset({State.WRAP_UP, State.COMPLETED, State.ABANDONED})


class ChatStart(BaseModel):
    """What the chat page sends to start a chat; every field is optional except by combination."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, max_length=160)
    contact: str | None = Field(default=None, max_length=254, description="Phone number or email address")
    app_token: str | None = Field(default=None, max_length=4096, description="JWT from the bank's app")
    topic: Literal["cards", "card_fraud", "mortgages", "other"] | None = None
    senior: bool = False
    talk_to_person: bool = False

    @field_validator("name", "contact", "app_token")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    csat: int = Field(ge=1, le=5)
    nps: int | None = Field(default=None, ge=0, le=10)
    ces: int | None = Field(default=None, ge=1, le=7)
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)


@dataclass(frozen=True)
class StartedChat:
    interaction: Interaction
    customer: Customer
    access_token: str  # shown once, to the customer's browser; only its hash is stored
    returning: bool


# ------------------------------------------------------------------------------ start


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _identity_for(data: ChatStart, *, secret: str | None, issuer: str) -> tuple[IdentityRef, str]:
    """Who the customer says they are, and which request field it came from (for error paths).

    ``secret`` is the bank app's token key (``switchboard.security.app_token_key``), never the
    staff session key; None when none is configured."""
    if data.app_token is not None:
        if secret is None:
            raise Invalid("Sign-in from the bank's app is not configured", field="app_token")
        try:
            claims = decode_token(data.app_token, secret=secret, issuer=issuer, audience=APP_TOKEN_AUDIENCE)
        except TokenError as exc:
            raise Invalid("The app sign-in has expired or is not valid", field="app_token") from exc
        return IdentityRef(kind=IdentityKind.APP, value=claims.subject[:254]), "app_token"
    # A typed phone number or email proves nothing (chat_verify): the chat runs under a fresh
    # visitor profile, anonymous like a visitor who gave none, until the visitor verifies.
    return IdentityRef(kind=IdentityKind.CHAT, value=f"visitor-{uuid.uuid4().hex}"), "contact"


def contact_key(contact: str | None, *, default_region: str) -> str | None:
    """The contact as the throttle counts it: normalised (E.164, lower-case email), so spacing or
    a national format does not make a new one; as typed when it does not parse."""
    if contact is None:
        return None
    kind = IdentityKind.EMAIL if "@" in contact else IdentityKind.PHONE
    try:
        return normalise_identity(kind, contact, default_region=default_region, field="contact")
    except Invalid:
        return contact


# Whether a routing rule set is live. Routing owns the rules, above this layer, so the app hands
# it in (``switchboard.app`` sets ``app.state.rules_live`` to ``routing.service.rule_set_live``).
RulesLive = Callable[[AsyncSession], Awaitable[bool]]


async def _default_queue(session: AsyncSession, rules_live: RulesLive) -> str | None:
    """None when a rule set is live (the rules choose, seniors get their short path); otherwise the
    first queue that takes chat, so a fresh install without rules still answers its customers."""
    if await rules_live(session):
        return None
    rows = await session.scalars(select(Queue).order_by(Queue.name))
    for queue in rows:
        if Channel.CHAT.value in (queue.channels or []):
            return queue.name
    raise Conflict("Chat is not staffed right now", field="queue")


async def start_chat(
    session: AsyncSession,
    *,
    data: ChatStart,
    secret: str | None,
    issuer: str,
    default_region: str,
    rules_live: RulesLive,
    now: datetime | None = None,
) -> StartedChat:
    """Resolve the customer, create the queued chat interaction and its access token, together.

    ``create_interaction`` validates before writing and writes inside a SAVEPOINT; the chat row is
    added in the same transaction, so a refusal anywhere leaves nothing behind.
    """
    now = now or utcnow()
    identity, field = _identity_for(data, secret=secret, issuer=issuer)
    attributes: dict[str, Any] = {"source": "web_chat"}
    if data.senior:
        attributes["senior_mode"] = True
    if data.talk_to_person:
        # "Never trapped in a bot loop" (DOMAIN): the customer asked for a human, say so to routing.
        attributes["intent"] = "human"
    topic = data.topic if data.topic not in (None, "other") else None
    returning = False
    if identity.kind is IdentityKind.APP:
        # Signed in through the bank's app: verified, and they may be greeted by name.
        attributes |= {"identity": chat_verify.VERIFIED, "verified_by": "app"}
        value = normalise_identity(identity.kind, identity.value, default_region=default_region, field=field)
        returning = await find_identity(session, kind=identity.kind, value=value) is not None
    elif data.contact is not None:
        kind = IdentityKind.EMAIL if "@" in data.contact else IdentityKind.PHONE
        claimed = normalise_identity(kind, data.contact, default_region=default_region, field="contact")
        attributes |= {
            "identity": chat_verify.UNVERIFIED,
            "claimed_contact": {"kind": kind.value, "value": claimed},
        }
    create = InteractionCreate(
        channel=Channel.CHAT,
        identity=identity,
        customer_name=data.name,
        topic=topic,
        subject=f"Talk to a person: {TOPICS[data.topic or 'other']}" if data.talk_to_person else None,
        queue=await _default_queue(session, rules_live),
        attributes=attributes,
    )
    try:
        interaction = await create_interaction(
            session, data=create, actor=Actor(ActorType.CUSTOMER), default_region=default_region, now=now
        )
    except Invalid as exc:
        if exc.field == "identity.value":  # the customer typed it into "contact", not "identity"
            exc.field = field
        raise
    customer = await session.get(Customer, interaction.customer_id)
    assert customer is not None
    if identity.kind is IdentityKind.APP:
        append_event(
            session,
            customer_id=customer.id,
            interaction_id=interaction.id,
            kind="identity_verified",
            channel=interaction.channel.value,
            actor_type=ActorType.CUSTOMER,
            actor_id=str(customer.id),
            data={"method": "app"},
            at=now,
        )
    token = secrets.token_urlsafe(32)
    session.add(
        ChatSession(
            interaction_id=interaction.id,
            token_sha256=_token_hash(token),
            senior_mode=data.senior,
            created_at=now,
        )
    )
    await session.flush()
    return StartedChat(interaction=interaction, customer=customer, access_token=token, returning=returning)


async def restart_chat(session: AsyncSession, *, interaction_id: uuid.UUID) -> StartedChat:
    """A retried start (same ``Idempotency-Key``): the chat it started, under a NEW access token.

    Only the token's hash is stored, so the first answer's token cannot be sent again; the retry
    means that answer never arrived, and the new token replaces it (the old one stops working).
    """
    row = await session.scalar(select(ChatSession).where(ChatSession.interaction_id == interaction_id))
    interaction = await session.get(Interaction, interaction_id)
    assert row is not None and interaction is not None  # the key row is written with both
    customer = await session.get(Customer, interaction.customer_id)
    assert customer is not None
    token = secrets.token_urlsafe(32)
    row.token_sha256 = _token_hash(token)
    await session.flush()
    return StartedChat(interaction=interaction, customer=customer, access_token=token, returning=False)


async def authorise(session: AsyncSession, *, interaction_id: uuid.UUID, token: str) -> ChatSession:
    """The chat row if ``token`` is this interaction's access token; NotFound otherwise.

    One answer for "no such chat" and "wrong token", so a token cannot be used to probe ids.
    """
    row = await session.get(ChatSession, interaction_id, populate_existing=True)
    if row is None or not token or not hmac.compare_digest(row.token_sha256, _token_hash(token)):
        raise NotFound("No such chat", field="token")
    return row


# ------------------------------------------------------------------------------ conversation


async def chat_chain(session: AsyncSession, *, root_id: uuid.UUID) -> list[uuid.UUID]:
    """The chat's interactions, oldest first. A transfer ends an interaction and continues it in a
    child (parent link); the customer's one conversation follows it, so the last id is the live one."""
    chain = [root_id]
    while len(chain) < 20:  # transfers are few; the bound only guards against a corrupt cycle
        state = await session.scalar(select(Interaction.state).where(Interaction.id == chain[-1]))
        if state is not State.TRANSFERRED:
            break
        child = await session.scalar(
            select(Interaction.id)
            .where(Interaction.parent_id == chain[-1])
            .order_by(Interaction.created_at.desc())
            .limit(1)
        )
        if child is None:
            break
        chain.append(child)
    return chain


async def live_interaction(session: AsyncSession, *, chat: ChatSession) -> Interaction:
    chain = await chat_chain(session, root_id=chat.interaction_id)
    interaction = await session.get(Interaction, chain[-1], populate_existing=True)
    assert interaction is not None
    return interaction


async def was_answered(session: AsyncSession, *, chat: ChatSession) -> bool:
    """Whether an agent ever joined the conversation (any interaction of it, across transfers)."""
    chain = await chat_chain(session, root_id=chat.interaction_id)
    joined = await session.scalar(
        select(func.count())
        .select_from(Interaction)
        .where(Interaction.id.in_(chain), Interaction.connected_at.is_not(None))
    )
    return bool(joined)


async def chat_messages(session: AsyncSession, *, chat: ChatSession) -> list[Message]:
    """Every message of the conversation across transfers, oldest first (for a reconnecting page)."""
    chain = await chat_chain(session, root_id=chat.interaction_id)
    rows = await session.scalars(
        select(Message).where(Message.interaction_id.in_(chain)).order_by(Message.id).limit(500)
    )
    return list(rows)


async def customer_message(
    session: AsyncSession, *, chat: ChatSession, body: str, now: datetime | None = None
) -> Message:
    """A customer's line: stored (card numbers masked) with its timeline event by ``post_message``."""
    interaction = await live_interaction(session, chat=chat)
    if chat.ended_by_customer_at is not None:
        raise Conflict("You have left this chat", field="body")
    if len(body) > MAX_MESSAGE_CHARS:
        raise Invalid(f"A message is at most {MAX_MESSAGE_CHARS} characters", field="body")
    return await post_message(
        session,
        interaction_id=interaction.id,
        sender=MessageSender.CUSTOMER,
        author_id=interaction.customer_id,
        body=body,
        now=now,
    )


async def end_by_customer(
    session: AsyncSession, *, chat: ChatSession, now: datetime | None = None
) -> uuid.UUID | None:
    """The customer closed the chat. Returns the interaction to abandon when it was still waiting:
    the caller tells routing so the engine drops it and counts it.

    A waiting chat is abandoned in SQL here, durably, as a caller's hang-up is: the customer has
    been told the chat ended, and an app stopped before the engine read the command must not leave
    a ghost in the queue. If the engine moved it in between (an offer), its Abandon does the move."""
    now = now or utcnow()
    interaction = await live_interaction(session, chat=chat)
    if chat.ended_by_customer_at is None:
        chat.ended_by_customer_at = now
        append_event(
            session,
            customer_id=interaction.customer_id,
            interaction_id=interaction.id,
            kind="chat_left",
            channel=interaction.channel.value,
            actor_type=ActorType.CUSTOMER,
            actor_id=str(interaction.customer_id),
            data={"state": interaction.state.value},
            at=now,
        )
        await session.flush()
    if interaction.state not in WAITING_STATES:
        return None
    with contextlib.suppress(Conflict):  # changed concurrently: the engine's Abandon moves it
        await transition(
            session,
            interaction_id=interaction.id,
            to_state=State.ABANDONED,
            actor_type=ActorType.CUSTOMER,
            actor_id=str(interaction.customer_id),
            reason=CUSTOMER_LEFT_REASON,
            now=now,
        )
    return interaction.id


async def request_transcript(
    session: AsyncSession, *, chat: ChatSession, email: str, now: datetime | None = None
) -> str:
    """Record where to send the transcript; the mail itself is the email channel's job."""
    now = now or utcnow()
    address = normalise_email(email, field="email")
    interaction = await session.get(Interaction, chat.interaction_id)
    assert interaction is not None
    chat.transcript_email = address
    chat.transcript_requested_at = now
    append_event(
        session,
        customer_id=interaction.customer_id,
        interaction_id=interaction.id,
        kind="transcript_requested",
        channel=interaction.channel.value,
        actor_type=ActorType.CUSTOMER,
        actor_id=str(interaction.customer_id),
        data={"email": address},
        at=now,
    )
    await session.flush()
    return address


async def transcript_text(session: AsyncSession, *, interaction_id: uuid.UUID) -> str:
    """The conversation as plain text for an email (already card-masked: messages are stored masked)."""
    interaction = await session.get(Interaction, interaction_id)
    if interaction is None:
        raise NotFound(f"No interaction {interaction_id}", field="interaction_id")
    lines = [f"Your chat with us on {interaction.created_at:%d %B %Y}", ""]
    after: int | None = None
    while True:
        page = await list_messages(session, interaction_id=interaction_id, after_id=after, limit=200)
        for message in page:
            who = {"customer": "You", "agent": "Adviser"}.get(message.sender.value, "Bank")
            lines.append(f"[{message.at:%H:%M}] {who}: {message.body}")
        if len(page) < 200:
            break
        after = page[-1].id
    return "\n".join(lines) + "\n"


async def submit_feedback(
    session: AsyncSession, *, chat: ChatSession, data: FeedbackCreate, now: datetime | None = None
) -> CustomerFeedback:
    """Post-chat survey: once per interaction, only after the conversation is over."""
    now = now or utcnow()
    interaction = await live_interaction(session, chat=chat)
    if interaction.state not in FEEDBACK_STATES and chat.ended_by_customer_at is None:
        raise Conflict("The chat is still going on", field="csat", state=interaction.state.value)
    if not await was_answered(session, chat=chat):
        raise Conflict("Nobody answered this chat, so there is nothing to rate", field="csat")
    row = await record_feedback(
        session,
        interaction,
        scores=data.model_dump(include={"csat", "nps", "ces"}, exclude_none=True),
        comment=data.comment,
        now=now,
        already="Thank you, we already have your rating for this chat",
        field="csat",
    )
    await session.flush()
    return row


# ------------------------------------------------------------------------------ fan-out


async def chat_root(session: AsyncSession, *, interaction_id: uuid.UUID) -> uuid.UUID:
    """The interaction the chat started as (its customer socket listens there), across transfers."""
    current = interaction_id
    for _ in range(20):
        parent = await session.scalar(select(Interaction.parent_id).where(Interaction.id == current))
        if parent is None:
            break
        current = parent
    return current


async def publish_chat_event(
    client: aioredis.Redis,
    *,
    interaction_id: uuid.UUID,
    root_id: uuid.UUID,
    agent_id: uuid.UUID | None,
    kind: str,
    **data: Any,
) -> None:
    """Tell every process's sockets what happened. The customer's socket listens on the chat's first
    interaction (so it hears the agent after a transfer too); the agent's desktop already listens
    on its own agent topic, so the desktop socket needs no per-interaction subscriptions."""
    event = {"type": kind, "interaction_id": str(interaction_id), **data}
    topics = [interaction_topic(interaction_id), interaction_topic(root_id)]
    if agent_id is not None:
        topics.append(agent_topic(agent_id))
    for topic in dict.fromkeys(topics):
        await publish(client, topic, event)

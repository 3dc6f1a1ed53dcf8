"""A chat customer waiting: where they are in line, how long it should take, and the ways out of a
long wait that keep their request alive (a callback keeps their place; a message becomes a ticket).

The estimate is position x the queue's recent handle time / the chat places its online agents
give, so it changes only when one of those does. ``steady`` then keeps it from growing while
neither the position nor the staffing got worse: a figure that creeps up while a customer watches
reads as a broken promise. Plain service functions (flush, never commit), like ``interactions.chat``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.identity import normalise_phone
from customers.timeline import append_event
from interactions import service
from interactions.chat import live_interaction
from interactions.email.schemas import TicketCreate
from interactions.feedback_models import ChatSession
from interactions.models import ActorType, Interaction
from interactions.schemas import MAX_MESSAGE_CHARS
from interactions.states import Channel, State
from interactions.voice import callback as callbacks
from switchboard.db import utcnow
from switchboard.errors import Conflict, Invalid, NotFound
from workforce.models import CHAT_WAIT_OFFER_DEFAULT_S, Agent, Presence, Queue, QueueMember

# Used for the estimate until the queue has completed chats of its own to average.
DEFAULT_HANDLE_SECONDS = 240
AHT_SAMPLE = 50  # the most recent completed chats of the queue, enough to be stable, cheap to read
# Agents who will take a chat soon; one on a break, in training or not answering will not.
ONLINE = (Presence.AVAILABLE, Presence.BUSY, Presence.WRAP_UP)
WAITING_STATES = (State.QUEUED, State.OFFERED)
MESSAGE_LEFT_REASON = "left a message"


@dataclass(frozen=True)
class QueueStatus:
    state: str
    position: int | None  # 1 = next in line
    eta_seconds: int | None  # None: nobody online to estimate from
    agent_joined: bool
    alternatives: bool = False  # offer a callback and leaving a message
    nobody_online: bool = False
    places: int = 0  # chats the queue's online agents can hold at once (not sent to the page)

    def payload(self) -> dict[str, object]:
        """What the customer's page is told (never the staffing figure itself)."""
        return {
            "state": self.state,
            "position": self.position,
            "eta_seconds": self.eta_seconds,
            "agent_joined": self.agent_joined,
            "alternatives": self.alternatives,
            "nobody_online": self.nobody_online,
        }


class CallbackAsk(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    phone: str | None = Field(
        default=None, max_length=40, description="Number to call; the one on the profile when omitted"
    )

    @field_validator("phone")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class MessageLeave(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: EmailStr = Field(description="Where our answer goes")
    message: str = Field(min_length=10, max_length=MAX_MESSAGE_CHARS)
    name: str | None = Field(default=None, max_length=160)


# ------------------------------------------------------------------------------ the estimate


async def average_handle_seconds(session: AsyncSession, *, queue_id: uuid.UUID | None) -> int:
    """Mean connected-to-ended time of the queue's latest completed chats (a plain, honest guess)."""
    if queue_id is None:
        return DEFAULT_HANDLE_SECONDS
    rows = (
        await session.execute(
            select(Interaction.connected_at, Interaction.ended_at)
            .where(
                Interaction.queue_id == queue_id,
                Interaction.channel == Channel.CHAT,
                Interaction.state == State.COMPLETED,
                Interaction.connected_at.is_not(None),
            )
            .order_by(Interaction.ended_at.desc())
            .limit(AHT_SAMPLE)
        )
    ).all()
    spans = [(ended - connected).total_seconds() for connected, ended in rows if ended and connected]
    return round(sum(spans) / len(spans)) if spans else DEFAULT_HANDLE_SECONDS


async def chat_places(session: AsyncSession, *, queue_id: uuid.UUID) -> int:
    """How many chats the queue's online members can hold at once (their chat capacity, summed)."""
    rows = await session.scalars(
        select(Agent.channel_max)
        .join(QueueMember, QueueMember.agent_id == Agent.id)
        .where(QueueMember.queue_id == queue_id, Agent.presence.in_(ONLINE))
    )
    return sum(max(1, int((limits or {}).get(Channel.CHAT.value, 1))) for limits in rows)


async def position_in_line(session: AsyncSession, it: Interaction) -> int:
    """1 + the waiting work of the same queue ahead: a higher priority, or the same priority and an
    earlier virtual start (the engine's order before ageing). Work out on offer counts as waiting:
    leaving it out made a customer's number jump back up each time an offer to someone ahead lapsed."""
    ahead = await session.scalar(
        select(func.count())
        .select_from(Interaction)
        .where(
            Interaction.state.in_(WAITING_STATES),
            Interaction.queue_id == it.queue_id,
            Interaction.id != it.id,
            or_(
                Interaction.priority > it.priority,
                and_(Interaction.priority == it.priority, Interaction.virtual_start_at < it.virtual_start_at),
            ),
        )
    )
    return int(ahead or 0) + 1


async def queue_status(session: AsyncSession, *, interaction_id: uuid.UUID) -> QueueStatus:
    """Where the customer is and how long it should take; whether to offer the ways out."""
    it = await session.get(Interaction, interaction_id, populate_existing=True)
    if it is None:
        raise NotFound(f"No interaction {interaction_id}", field="interaction_id")
    joined = it.state in (State.CONNECTED, State.WRAP_UP) or (
        it.state is State.COMPLETED and it.connected_at is not None
    )
    if it.state not in WAITING_STATES or it.queue_id is None:
        return QueueStatus(it.state.value, None, None, joined)
    position = await position_in_line(session, it)
    places = await chat_places(session, queue_id=it.queue_id)
    queue = await session.get(Queue, it.queue_id)
    # Beyond the queue's threshold the customer is offered a callback or to leave a message;
    # always when nobody is online for the queue.
    limit = queue.chat_wait_offer_after_seconds if queue else CHAT_WAIT_OFFER_DEFAULT_S
    if places == 0:
        return QueueStatus(it.state.value, position, None, joined, True, True, 0)
    eta = round(position * await average_handle_seconds(session, queue_id=it.queue_id) / places)
    return QueueStatus(it.state.value, position, eta, joined, eta > limit, False, places)


def steady(previous: QueueStatus | None, current: QueueStatus) -> QueueStatus:
    """``current``, its estimate kept from growing past ``previous``'s unless the customer's position
    or the staffing got worse (a handle-time average moving up alone does not make them wait longer)."""
    if (
        previous is None
        or previous.eta_seconds is None
        or current.eta_seconds is None
        or previous.position is None
        or current.position is None
        or current.position > previous.position
        or current.places < previous.places
        or current.eta_seconds <= previous.eta_seconds
    ):
        return current
    return replace(current, eta_seconds=previous.eta_seconds, alternatives=previous.alternatives)


# ------------------------------------------------------------------------------ ways out


async def _waiting_chat(session: AsyncSession, chat: ChatSession) -> Interaction:
    """The chat's live interaction if its customer is still waiting for an agent (409 otherwise)."""
    interaction = await live_interaction(session, chat=chat)
    if chat.ended_by_customer_at is not None:  # routing may not have written the abandon yet
        raise Conflict("You have left this chat", field="interaction_id", state="abandoned")
    callbacks.check_waiting(interaction)
    return interaction


async def request_callback(
    session: AsyncSession,
    *,
    chat: ChatSession,
    data: CallbackAsk,
    default_region: str,
    now: datetime | None = None,
) -> tuple[Interaction, Interaction]:
    """The chat ends (abandoned, "callback requested") and an outbound call is queued in its place,
    with its virtual start: the customer keeps their place. A typed number is called as given (a
    chat visitor proves nothing, so it is not added to anyone's profile); without one, the number
    on the chat customer's profile. Returns (chat, callback); the caller commits, then tells routing."""
    now = now or utcnow()
    original = await _waiting_chat(session, chat)
    if data.phone is not None:
        number = normalise_phone(data.phone, default_region=default_region, field="phone")
    else:
        try:
            number = await callbacks.number_to_call(
                session, original, phone=None, default_region=default_region
            )
        except Invalid as exc:
            raise Invalid("Give the number we should call", field="phone") from exc
    customer = service.Actor(ActorType.CUSTOMER, str(original.customer_id))
    return await callbacks.queue_callback(
        session, original=original, number=number, actor=customer, default_region=default_region, now=now
    )


async def leave_message(
    session: AsyncSession, *, chat: ChatSession, now: datetime | None = None
) -> Interaction:
    """The chat ends (abandoned, "left a message"); the ticket itself is filed by the caller through
    the ticket intake (``interactions.tickets.submit_ticket``) in the same transaction."""
    now = now or utcnow()
    original = await _waiting_chat(session, chat)
    return await service.transition(
        session,
        interaction_id=original.id,
        to_state=State.ABANDONED,
        actor_type=ActorType.CUSTOMER,
        actor_id=str(original.customer_id),
        reason=MESSAGE_LEFT_REASON,
        now=now,
    )


def ticket_for(data: MessageLeave, *, chat_id: uuid.UUID) -> TicketCreate:
    """The ticket a left message files; its submission id is the chat's, so a retry files one."""
    return TicketCreate(
        name=data.name,
        email=data.email,
        subject="Message left while waiting in chat",
        message=data.message,
        submission_id=chat_id,
    )


def record_outcome(
    session: AsyncSession,
    *,
    chat: Interaction,
    kind: str,
    follow_up: Interaction,
    now: datetime | None = None,
) -> None:
    """On the chat's timeline: how the wait ended and which interaction carries it on."""
    append_event(
        session,
        customer_id=chat.customer_id,
        interaction_id=chat.id,
        kind=kind,
        channel=chat.channel.value,
        actor_type=ActorType.CUSTOMER,
        actor_id=str(chat.customer_id),
        data={"follow_up_id": str(follow_up.id), "follow_up_channel": follow_up.channel.value},
        at=now or utcnow(),
    )

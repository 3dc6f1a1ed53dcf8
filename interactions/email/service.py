"""Email and ticket threads on top of the interactions hub.

Plain async functions, session first; they flush but never commit (the SMTP handler and the
routes own their transactions). Card numbers are masked before anything is stored: the text
through ``post_message``, the subject and the sanitised HTML here.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from customers.identity import normalise_identity
from customers.models import IdentityKind
from customers.service import merged_customer_ids, resolve_or_create_customer
from interactions.email.models import Attachment, EmailDetail
from interactions.email.parsing import ParsedEmail
from interactions.email.schemas import TicketCreate, ticket_reference
from interactions.models import ActorType, Interaction, Message, MessageSender
from interactions.schemas import MAX_MESSAGE_CHARS, IdentityRef, InteractionCreate
from interactions.service import Actor, create_interaction, get_interaction, post_message
from interactions.states import TERMINAL_STATES, Channel, Direction
from switchboard.db import utcnow
from switchboard.errors import Conflict, Invalid
from switchboard.pii import mask_card_numbers

EMAIL_CHANNELS = (Channel.EMAIL, Channel.TICKET)
NO_TEXT = "(no text in this email; see its attachments)"
# A thread line is capped (MAX_MESSAGE_CHARS); say so rather than cut silently.
CUT_NOTE = "\n[… the rest of this email was cut at {limit} characters]"
MAX_CHAIN = 32  # follow-up/transfer chains are short; the bound guards against a corrupt cycle


@dataclass(frozen=True)
class Ingested:
    interaction: Interaction
    message: Message
    opened: bool  # a new interaction was created: routing must hear of it once committed
    duplicate: bool = False

    @property
    def reference(self) -> str:
        return ticket_reference(self.interaction.id)


@dataclass(frozen=True)
class ReplyDraft:
    """What an agent reply needs from the thread, read before any SMTP traffic."""

    interaction_id: uuid.UUID
    to_address: str
    subject: str
    in_reply_to: str | None
    references: tuple[str, ...]


# --------------------------------------------------------------------------------------------
# Inbound


async def find_thread_message(
    session: AsyncSession, external_id: str, *, customer_ids: Collection[uuid.UUID] | None = None
) -> Message | None:
    """The email/ticket message already stored under this Message-ID (a sender's retry).

    ``customer_ids`` keeps it to one sender's messages: a Message-ID is whatever the sender wrote,
    so another customer's must not make a new message a "retry" (dropped, and answered with that
    customer's ticket reference)."""
    query = (
        select(Message)
        .join(Interaction, Message.interaction_id == Interaction.id)
        .where(Message.external_id == external_id, Interaction.channel.in_(EMAIL_CHANNELS))
    )
    if customer_ids is not None:
        query = query.where(Interaction.customer_id.in_(customer_ids))
    return await session.scalar(query.limit(1))


# A new email this soon after a call or chat continues that conversation (channel switch): linked,
# the desktop shows both as one thread. A day covers "as discussed on the phone this morning".
FOLLOW_UP_WINDOW = timedelta(hours=24)


async def _recent_contact(session: AsyncSession, customer_id: uuid.UUID, now: datetime) -> uuid.UUID | None:
    """The customer's latest voice or chat interaction started within FOLLOW_UP_WINDOW, if any."""
    return await session.scalar(
        select(Interaction.id)
        .where(
            Interaction.customer_id.in_(await merged_customer_ids(session, customer_id)),
            Interaction.channel.in_((Channel.VOICE, Channel.CHAT)),
            Interaction.created_at >= now - FOLLOW_UP_WINDOW,
        )
        .order_by(Interaction.created_at.desc(), Interaction.id.desc())
        .limit(1)
    )


async def ingest_email(
    session: AsyncSession, *, email: ParsedEmail, default_region: str, now: datetime | None = None
) -> Ingested:
    """Store an inbound email: threaded into its open interaction, or opening one (a follow-up when
    the thread it answers has ended). A Message-ID seen before returns the stored message."""
    now = now or utcnow()
    if len(email.from_address) > 254:
        raise Invalid("The sender address is too long", field="from")
    customer, _, _ = await resolve_or_create_customer(
        session,
        kind=IdentityKind.EMAIL,
        raw_value=email.from_address,
        default_region=default_region,
        display_name=(email.from_name or "")[:160] or None,
        field="from",
    )
    existing = await find_thread_message(
        session, email.message_id, customer_ids=await merged_customer_ids(session, customer.id)
    )
    if existing is not None:
        interaction = await get_interaction(session, existing.interaction_id)
        return Ingested(interaction, existing, opened=False, duplicate=True)
    subject = mask_card_numbers(email.subject)[:255]
    target = await _thread_target(session, customer.id, email.thread_candidates)
    opened = target is None or target.state in TERMINAL_STATES
    if opened:
        target = await create_interaction(
            session,
            data=InteractionCreate(
                channel=Channel.EMAIL,
                identity=IdentityRef(kind=IdentityKind.EMAIL, value=email.from_address),
                customer_name=(email.from_name or "")[:160] or None,
                subject=subject or None,
                follow_up_of_id=target.id
                if target is not None
                else await _recent_contact(session, customer.id, now),
            ),
            actor=Actor(ActorType.CUSTOMER, str(customer.id)),
            default_region=default_region,
            now=now,
        )
    assert target is not None
    message = await post_message(
        session,
        interaction_id=target.id,
        sender=MessageSender.CUSTOMER,
        author_id=None,
        body=_thread_text(email.text, has_attachments=bool(email.attachments)),
        external_id=email.message_id,
        now=now,
    )
    session.add(
        EmailDetail(
            message_id=message.id,
            interaction_id=target.id,
            direction=Direction.INBOUND,
            from_address=email.from_address.lower(),
            to_addresses=", ".join(email.to_addresses)[:2000],
            subject=subject,
            in_reply_to=email.in_reply_to,
            references=" ".join(email.references),
            html=mask_card_numbers(email.html) if email.html else None,
            size_bytes=email.size_bytes,
        )
    )
    for part in email.attachments:
        session.add(
            Attachment(
                message_id=message.id,
                filename=part.filename,
                content_type=part.content_type,
                size_bytes=len(part.content),
                sha256=hashlib.sha256(part.content).hexdigest(),
                content=part.content,
                created_at=now,
            )
        )
    await session.flush()
    return Ingested(target, message, opened=opened)


async def submitted_ticket(session: AsyncSession, interaction_id: uuid.UUID) -> Ingested:
    """A ticket filed before (a retried submission): its interaction and first message."""
    interaction = await get_interaction(session, interaction_id)
    first = await session.scalar(
        select(Message).where(Message.interaction_id == interaction_id).order_by(Message.id).limit(1)
    )
    assert first is not None  # a web ticket is created with its message
    return Ingested(interaction, first, opened=False, duplicate=True)


async def create_web_ticket(
    session: AsyncSession,
    *,
    data: TicketCreate,
    default_region: str,
    id_domain: str,
    now: datetime | None = None,
) -> Ingested:
    """A web-form submission becomes a ticket interaction whose first message carries a Message-ID
    of ours, so an agent's emailed answer and the customer's reply thread like any email."""
    now = now or utcnow()
    external_id = f"<ticket-{data.submission_id or uuid.uuid4()}@{id_domain}>"
    existing = await _submitted(session, data, external_id, default_region)
    if existing is not None:
        return existing
    try:
        # A SAVEPOINT: when a parallel post of the same form wins the unique index, only this
        # attempt rolls back and the winner's ticket is answered, as for a sequential retry.
        async with session.begin_nested():
            return await _new_web_ticket(session, data, external_id, default_region, now)
    except IntegrityError:
        if data.submission_id is None:
            raise
    existing = await _submitted(session, data, external_id, default_region)
    if existing is None:
        raise Conflict("This form is being submitted; try again", field="submission_id")
    return existing


async def _submitted(
    session: AsyncSession, data: TicketCreate, external_id: str, default_region: str
) -> Ingested | None:
    """The ticket this submission already filed, or None; a Conflict if it is someone else's."""
    existing = await find_thread_message(session, external_id)
    if existing is None:
        return None
    interaction = await get_interaction(session, existing.interaction_id)
    # A replayed submission id must not reveal someone else's ticket.
    email = normalise_identity(IdentityKind.EMAIL, data.email, default_region=default_region)
    if interaction.contact_identity.get("value") != email:
        raise Conflict("This form was already submitted; reload it to file another", field="submission_id")
    return Ingested(interaction, existing, opened=False, duplicate=True)


async def _new_web_ticket(
    session: AsyncSession, data: TicketCreate, external_id: str, default_region: str, now: datetime
) -> Ingested:
    subject = mask_card_numbers(data.subject)
    interaction = await create_interaction(
        session,
        data=InteractionCreate(
            channel=Channel.TICKET,
            identity=IdentityRef(kind=IdentityKind.EMAIL, value=data.email),
            customer_name=data.name or None,
            subject=subject,
        ),
        actor=Actor(ActorType.CUSTOMER, None),
        default_region=default_region,
        now=now,
    )
    message = await post_message(
        session,
        interaction_id=interaction.id,
        sender=MessageSender.CUSTOMER,
        author_id=None,
        body=data.message,
        external_id=external_id,
        now=now,
    )
    session.add(
        EmailDetail(
            message_id=message.id,
            interaction_id=interaction.id,
            direction=Direction.INBOUND,
            from_address=interaction.contact_identity["value"],
            subject=subject,
            size_bytes=len(data.message.encode()),
            submission_id=data.submission_id,
        )
    )
    await session.flush()
    return Ingested(interaction, message, opened=True)


async def _thread_target(
    session: AsyncSession, customer_id: uuid.UUID, candidates: list[str]
) -> Interaction | None:
    """The interaction the email answers, or None for a new thread.

    Only the same customer's threads count (merged profiles included): a leaked Message-ID must not
    let a stranger write into someone else's ticket. The newest referenced message wins, then we
    follow transfers and follow-ups to the interaction that carries the thread today.
    """
    if not candidates:
        return None
    customer_ids = await merged_customer_ids(session, customer_id)
    rows = await session.execute(
        select(Message.external_id, Interaction)
        .join(Interaction, Message.interaction_id == Interaction.id)
        .where(
            Message.external_id.in_(candidates),
            Interaction.channel.in_(EMAIL_CHANNELS),
            Interaction.customer_id.in_(customer_ids),
        )
    )
    by_message_id = {mid: interaction for mid, interaction in rows}
    for mid in candidates:
        if mid in by_message_id:
            return await _current_of_chain(session, by_message_id[mid])
    return None


async def _current_of_chain(session: AsyncSession, interaction: Interaction) -> Interaction:
    current = interaction
    for _ in range(MAX_CHAIN):
        successor = await session.scalar(
            select(Interaction)
            .where(or_(Interaction.parent_id == current.id, Interaction.follow_up_of_id == current.id))
            .order_by(Interaction.created_at.desc(), Interaction.id.desc())
            .limit(1)
        )
        if successor is None:
            break
        current = successor
    return current


def _thread_text(text: str, *, has_attachments: bool) -> str:
    if not text.strip():
        return NO_TEXT if has_attachments else "(empty email)"
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    note = CUT_NOTE.format(limit=MAX_MESSAGE_CHARS)
    return text[: MAX_MESSAGE_CHARS - len(note)] + note


# --------------------------------------------------------------------------------------------
# Agent replies


async def prepare_reply(session: AsyncSession, *, interaction: Interaction) -> ReplyDraft:
    """Recipient, subject and threading headers for a reply (RFC 5322 §3.6.4: References is the
    parent's References plus the parent's Message-ID). Read only."""
    if interaction.channel not in EMAIL_CHANNELS:
        raise Invalid(
            f"Email replies go to email and ticket interactions, not {interaction.channel.value}",
            field="interaction_id",
        )
    identity = interaction.contact_identity or {}
    if identity.get("kind") != IdentityKind.EMAIL.value or not identity.get("value"):
        raise Invalid("This interaction has no email address to reply to", field="interaction_id")
    parent = await session.scalar(
        select(Message)
        .where(
            Message.interaction_id == interaction.id,
            Message.sender == MessageSender.CUSTOMER,
            Message.external_id.is_not(None),
        )
        .order_by(Message.id.desc())
        .limit(1)
    )
    references: tuple[str, ...] = ()
    in_reply_to = None
    if parent is not None and parent.external_id:
        in_reply_to = parent.external_id
        earlier = await session.scalar(
            select(EmailDetail.references).where(EmailDetail.message_id == parent.id)
        )
        references = (*(earlier or "").split(), parent.external_id)
    subject = interaction.subject or "Your enquiry"
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}"
    reference = ticket_reference(interaction.id)
    if reference not in subject:
        subject = f"{subject} [{reference}]"
    return ReplyDraft(interaction.id, identity["value"], subject[:255], in_reply_to, references[-20:])


async def record_reply(
    session: AsyncSession,
    *,
    draft: ReplyDraft,
    author_id: str | uuid.UUID,
    body: str,
    message_id: str,
    from_address: str,
    now: datetime | None = None,
) -> Message:
    """Store a reply that the relay has accepted, under the Message-ID it was sent with."""
    message = await post_message(
        session,
        interaction_id=draft.interaction_id,
        sender=MessageSender.AGENT,
        author_id=author_id,
        body=body,
        external_id=message_id,
        now=now,
    )
    session.add(
        EmailDetail(
            message_id=message.id,
            interaction_id=draft.interaction_id,
            direction=Direction.OUTBOUND,
            from_address=from_address,
            to_addresses=draft.to_address,
            subject=draft.subject,
            in_reply_to=draft.in_reply_to,
            references=" ".join(draft.references),
            size_bytes=len(body.encode()),
        )
    )
    await session.flush()
    return message


async def email_details(session: AsyncSession, message_ids: list[int]) -> dict[int, EmailDetail]:
    """Headers and sanitised HTML for thread messages (for the desktop's ticket view)."""
    if not message_ids:
        return {}
    rows = await session.scalars(select(EmailDetail).where(EmailDetail.message_id.in_(message_ids)))
    return {row.message_id: row for row in rows}

"""One conversation across channels: an interaction with the ones it is linked to, as legs.

A chat escalated to a call, a call followed by an email, a transfer, a callback: each is its own
interaction (state machine, queue, agent), joined by ``parent_id`` (transfer), ``callback_of_id``
and ``follow_up_of_id``. The desktop reads them as one thread, oldest leg first, each with its
messages (emails with their sanitised HTML and attachments) and call progress.

Plain async functions, session first; read only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.service import merged_customer_ids
from interactions.email.models import Attachment, EmailDetail
from interactions.email.service import email_details
from interactions.links import linked_from
from interactions.models import Interaction, Message, TimelineEvent
from interactions.states import Channel

MAX_LEGS = 12  # chains are short; the bound guards against a corrupt link cycle
MESSAGES_PER_LEG = 200
CALL_EVENT_KINDS = ("call_status", "call_control")
EMAIL_CHANNELS = (Channel.EMAIL, Channel.TICKET)

# How a leg came from the one before it (shown between legs).
LINK_LABELS = {
    "parent_id": "transferred",
    "callback_of_id": "callback",
    "follow_up_of_id": "follow-up",
}


@dataclass(frozen=True)
class AttachmentInfo:
    id: uuid.UUID
    filename: str
    content_type: str
    size_bytes: int


@dataclass(frozen=True)
class ThreadMessage:
    message: Message
    detail: EmailDetail | None = None
    attachments: list[AttachmentInfo] = field(default_factory=list)


@dataclass(frozen=True)
class Leg:
    interaction: Interaction
    link: str | None  # how this leg follows the previous one; None for the first
    messages: list[ThreadMessage]
    call_events: list[TimelineEvent]
    current: bool

    @property
    def is_email(self) -> bool:
        return self.interaction.channel in EMAIL_CHANNELS


@dataclass(frozen=True)
class Thread:
    interaction_id: uuid.UUID
    legs: list[Leg]

    @property
    def linked(self) -> bool:
        return len(self.legs) > 1

    @property
    def label(self) -> str:
        """E.g. "Chat → Voice → Email"."""
        return " → ".join(leg.interaction.channel.value.capitalize() for leg in self.legs)

    @property
    def current(self) -> Leg | None:
        return next((leg for leg in self.legs if leg.current), None)

    @property
    def shows_legs(self) -> bool:
        """Whether ``_thread.html`` lists the legs: a single chat or call shows nothing there (its
        transcript or call panel says it all), so its messages and call events are not read."""
        return self.linked or (bool(self.legs) and self.legs[0].is_email)


def _link_of(interaction: Interaction) -> tuple[str, uuid.UUID] | None:
    for name in LINK_LABELS:
        target = getattr(interaction, name)
        if target is not None:
            return name, target
    return None


async def linked_interactions(session: AsyncSession, interaction: Interaction) -> list[Interaction]:
    """The interaction's whole chain (ancestors and descendants through the three links), oldest
    first. Only the same customer's interactions (merged profiles included) are ever joined."""
    if _link_of(interaction) is None and not (await linked_from(session, interaction.id)).linked:
        return [interaction]  # a chain of one, the common case: one prebuilt read
    customers = await merged_customer_ids(session, interaction.customer_id)
    root = interaction
    for _ in range(MAX_LEGS):
        link = _link_of(root)
        if link is None:
            break
        parent = await session.get(Interaction, link[1])
        if parent is None or parent.customer_id not in customers:
            break
        root = parent
    found: dict[uuid.UUID, Interaction] = {root.id: root}
    frontier = [root.id]
    while frontier and len(found) < MAX_LEGS:
        children = await session.scalars(
            select(Interaction)
            .where(
                or_(
                    Interaction.parent_id.in_(frontier),
                    Interaction.callback_of_id.in_(frontier),
                    Interaction.follow_up_of_id.in_(frontier),
                ),
                Interaction.customer_id.in_(customers),
            )
            .order_by(Interaction.created_at, Interaction.id)
        )
        frontier = []
        for child in children:
            if child.id not in found and len(found) < MAX_LEGS:
                found[child.id] = child
                frontier.append(child.id)
    found.setdefault(interaction.id, interaction)
    return sorted(found.values(), key=lambda it: (it.created_at, str(it.id)))


async def _attachments(session: AsyncSession, message_ids: list[int]) -> dict[int, list[AttachmentInfo]]:
    if not message_ids:
        return {}
    rows = await session.execute(  # never the bytes: the thread lists, the download route serves
        select(
            Attachment.message_id,
            Attachment.id,
            Attachment.filename,
            Attachment.content_type,
            Attachment.size_bytes,
        )
        .where(Attachment.message_id.in_(message_ids))
        .order_by(Attachment.created_at, Attachment.id)
    )
    out: dict[int, list[AttachmentInfo]] = {}
    for message_id, aid, filename, content_type, size in rows:
        out.setdefault(message_id, []).append(AttachmentInfo(aid, filename, content_type, size))
    return out


async def thread_for(session: AsyncSession, interaction: Interaction) -> Thread:
    legs_in = await linked_interactions(session, interaction)
    if len(legs_in) == 1 and legs_in[0].channel not in EMAIL_CHANNELS:
        # Nothing of it is shown (Thread.shows_legs): no messages or call events read for it.
        return Thread(interaction.id, [Leg(legs_in[0], None, [], [], current=True)])
    ids = [it.id for it in legs_in]
    messages = list(
        await session.scalars(
            select(Message)
            .where(Message.interaction_id.in_(ids))
            .order_by(Message.interaction_id, Message.id)
        )
    )
    email_legs = {it.id for it in legs_in if it.channel in EMAIL_CHANNELS}
    email_ids = [m.id for m in messages if m.interaction_id in email_legs]
    details = await email_details(session, email_ids)
    files = await _attachments(session, email_ids)
    calls = list(
        await session.scalars(
            select(TimelineEvent)
            .where(TimelineEvent.interaction_id.in_(ids), TimelineEvent.kind.in_(CALL_EVENT_KINDS))
            .order_by(TimelineEvent.id)
        )
    )
    legs = []
    for it in legs_in:
        own = [m for m in messages if m.interaction_id == it.id][-MESSAGES_PER_LEG:]
        link = _link_of(it)
        legs.append(
            Leg(
                interaction=it,
                link=LINK_LABELS[link[0]] if link and link[1] in ids else None,
                messages=[ThreadMessage(m, details.get(m.id), files.get(m.id, [])) for m in own],
                call_events=[ev for ev in calls if ev.interaction_id == it.id],
                current=it.id == interaction.id,
            )
        )
    return Thread(interaction.id, legs)


async def thread_interaction_ids(session: AsyncSession, interaction: Interaction) -> set[uuid.UUID]:
    return {it.id for it in await linked_interactions(session, interaction)}


async def attachment_for_customers(
    session: AsyncSession, *, attachment_id: uuid.UUID, customer_ids: set[uuid.UUID]
) -> Attachment | None:
    """An attachment on a thread of one of these customers, or None (not found / not theirs)."""
    if not customer_ids:
        return None
    return await session.scalar(
        select(Attachment)
        .join(Message, Message.id == Attachment.message_id)
        .join(Interaction, Interaction.id == Message.interaction_id)
        .where(Attachment.id == attachment_id, Interaction.customer_id.in_(customer_ids))
    )

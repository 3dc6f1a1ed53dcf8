"""Agent-initiated outbound contact, honouring the customer's contact policy.

DOMAIN.md: customers resent untargeted calls; consent, do-not-contact and quiet hours are part
of good service. The policy is checked in the CUSTOMER's time zone (zoneinfo, so daylight saving
is right), with the clock injected so the rule is testable at any hour.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer, IdentityKind
from interactions import service
from interactions.models import Interaction
from interactions.schemas import IdentityRef, InteractionCreate
from interactions.states import Channel, Direction
from interactions.visibility import outbound_reason
from switchboard.errors import Conflict, Forbidden, Invalid, NotFound


class Purpose(enum.StrEnum):
    SERVICE = "service"  # about the customer's own business with the bank
    MARKETING = "marketing"  # an offer: needs the customer's marketing consent


# Which identity an outbound contact on each channel goes to.
OUTBOUND_IDENTITY = {Channel.VOICE: IdentityKind.PHONE, Channel.EMAIL: IdentityKind.EMAIL}


@dataclass(frozen=True)
class Refusal:
    rule: str  # machine-readable: do_not_contact, marketing_consent, quiet_hours
    description: str  # the rule as a person reads it, e.g. "quiet_hours 21:00–08:00 Europe/London"
    detail: str


class ContactRefused(Conflict):
    """409: the request is well-formed, but the customer's contact policy forbids it now."""


def in_quiet_hours(local: time, start: time, end: time) -> bool:
    """Is ``local`` inside [start, end)? A window may cross midnight (21:00–08:00)."""
    if start == end:
        return False  # an empty window, not "all day": refusing every call must be explicit (DNC)
    if start < end:
        return start <= local < end
    return local >= start or local < end


def customer_zone(customer: Customer, default_timezone: str) -> ZoneInfo:
    for name in (customer.timezone, default_timezone):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            continue
    return ZoneInfo("UTC")


def contact_refusal(
    customer: Customer, *, channel: Channel, purpose: Purpose, now: datetime, default_timezone: str
) -> Refusal | None:
    """The first rule that forbids contacting ``customer`` now, or None. Order: strongest first."""
    if customer.do_not_contact:
        return Refusal("do_not_contact", "do_not_contact", "The customer asked not to be contacted")
    if purpose is Purpose.MARKETING and not customer.marketing_consent:
        return Refusal(
            "marketing_consent", "marketing_consent", "The customer has not consented to marketing contact"
        )
    # Quiet hours protect the customer's evenings and nights from ringing phones; an email waits
    # in the inbox until they choose to read it, so it is not held back.
    start, end = customer.quiet_hours_start, customer.quiet_hours_end
    if channel is Channel.VOICE and start is not None and end is not None:
        zone = customer_zone(customer, default_timezone)
        local = now.astimezone(zone)
        if in_quiet_hours(local.time().replace(tzinfo=None), start, end):
            window = f"{start:%H:%M}–{end:%H:%M} {zone.key}"
            return Refusal(
                "quiet_hours",
                f"quiet_hours {window}",
                f"It is {local:%H:%M} in {zone.key}, inside the customer's quiet hours ({window})",
            )
    return None


async def create_outbound(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    channel: Channel,
    reason: str,
    purpose: Purpose,
    agent_id: uuid.UUID,
    actor: service.Actor,
    default_region: str,
    default_timezone: str,
    now: datetime,
    follow_up_of_id: uuid.UUID | None = None,
    supervisor: bool = False,
) -> Interaction:
    """An outbound interaction attached to ``agent_id`` (not queued: it is already theirs);
    ``follow_up_of_id`` links it to the interaction it continues (same customer only).

    An agent needs a reason to contact a customer (``outbound_reason``), or it is refused (403)
    before anything about the customer is told; a supervisor needs none. Raises ContactRefused
    (409, ``rule`` in the body) when the contact policy forbids it.
    """
    if channel not in OUTBOUND_IDENTITY:
        raise Invalid(f"Outbound contact is by voice or email, not {channel.value}", field="body.channel")
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"No customer {customer_id}", field="body.customer_id")
    while customer.merged_into_id is not None:  # policy lives on the surviving profile
        customer = await session.get(Customer, customer.merged_into_id)
        assert customer is not None
    basis = (
        "supervisor"
        if supervisor
        else await outbound_reason(
            session, agent_id=agent_id, customer=customer, follow_up_of_id=follow_up_of_id
        )
    )
    if basis is None:
        # Contacting a customer is what makes them visible to an agent: it cannot be self-granted.
        raise Forbidden(
            "An agent contacts a customer only with a reason: work of theirs with this customer now "
            "(a callback included), a follow-up of their own earlier contact (follow_up_of_id), or "
            "as their relationship manager; otherwise a supervisor places it",
            field="body.customer_id",
        )
    refusal = contact_refusal(
        customer, channel=channel, purpose=purpose, now=now, default_timezone=default_timezone
    )
    if refusal is not None:
        raise ContactRefused(
            f"Refused by contact policy: {refusal.description}. {refusal.detail}",
            field="body.customer_id",
            rule=refusal.rule,
            policy=refusal.description,
        )
    if follow_up_of_id is not None:
        earlier = await session.get(Interaction, follow_up_of_id)
        if earlier is None or earlier.customer_id != customer.id:
            raise Invalid("Not an interaction of this customer", field="body.follow_up_of_id")
    kind = OUTBOUND_IDENTITY[channel]
    identity = next((i for i in customer.identities if i.kind is kind), None)
    if identity is None:
        raise Invalid(f"The customer has no {kind.value} to contact by {channel.value}", field="body.channel")
    data = InteractionCreate(
        channel=channel,
        direction=Direction.OUTBOUND,
        enqueue=False,
        identity=IdentityRef(kind=kind, value=identity.value),
        subject=reason,
        attributes={"purpose": purpose.value, "outbound_basis": basis},
        follow_up_of_id=follow_up_of_id,
    )
    return await service.create_interaction(
        session, data=data, actor=actor, default_region=default_region, agent_id=agent_id, now=now
    )

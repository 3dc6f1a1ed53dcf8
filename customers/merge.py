"""Merging two profiles of one customer (a duplicate found, or a chat visitor who proved who they
are): identities, logins and, through the movers of the layers above, their contacts move to the
surviving profile.

Customers sit below interactions, so they cannot re-point interactions themselves: each caller
passes ``movers`` — one function per kind of row that belongs to a customer — wired in one place
(``switchboard.app`` builds them from ``interactions.customer_merge.MOVERS``).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Mapping
from decimal import Decimal
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer, Identity
from customers.service import TIER_INPUT_FIELDS, dedupe, forget_merged_ids, recompute_tier
from customers.timeline import append_event
from customers.timeline_models import ActorType
from switchboard.audit import record_audit
from switchboard.auth.models import User
from switchboard.errors import Conflict, Invalid, NotFound


class Mover(Protocol):
    """Re-points one kind of row from ``source_id`` to ``target_id``; returns how many moved."""

    def __call__(
        self, session: AsyncSession, *, source_id: uuid.UUID, target_id: uuid.UUID
    ) -> Awaitable[int]: ...


Movers = Mapping[str, Mover]


def _fill_if_unset(target: Customer, source: Customer, name: str) -> bool:
    """Keep the target's value when set; take the source's otherwise. True if it changed."""
    current = getattr(target, name)
    incoming = getattr(source, name)
    unset = current is None or (name in TIER_INPUT_FIELDS and not current)
    if unset and incoming not in (None, 0, Decimal("0")):
        setattr(target, name, incoming)
        return True
    return False


async def merge_customers(
    session: AsyncSession,
    *,
    target_id: uuid.UUID,
    source_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    movers: Movers,
) -> Customer:
    """Fold ``source`` into ``target`` in the caller's single transaction.

    Identities and customer logins move to the target, and so does every row the ``movers`` of
    the layers above re-point (interactions, feedback, ...); timeline events do not (they are
    append-only) and stay readable through ``merged_customer_ids(target)``.
    """
    if target_id == source_id:
        raise Invalid("A customer cannot be merged into itself", field="body.source_customer_id")
    # Lock both rows in a fixed order so two concurrent merges of the same pair cannot interleave
    # (FOR UPDATE on PostgreSQL; SQLite already serialises writers with BEGIN IMMEDIATE).
    rows = await session.scalars(
        select(Customer)
        .where(Customer.id.in_([target_id, source_id]))
        .order_by(Customer.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    by_id = {c.id: c for c in rows}
    target = by_id.get(target_id)
    source = by_id.get(source_id)
    if target is None:
        raise NotFound(f"Customer {target_id} not found")
    if source is None:
        raise NotFound(f"Customer {source_id} not found", field="body.source_customer_id")
    if source.merged_into_id is not None:
        raise Conflict(
            f"Customer {source_id} was already merged into {source.merged_into_id}",
            field="body.source_customer_id",
        )
    if target.merged_into_id is not None:
        raise Conflict(f"Customer {target_id} was merged into {target.merged_into_id}; merge into that one")

    moved_identities = await session.execute(
        update(Identity).where(Identity.customer_id == source_id).values(customer_id=target_id)
    )
    moved_users = await session.execute(
        update(User).where(User.customer_id == source_id).values(customer_id=target_id)
    )

    filled = [
        name
        for name in (
            "date_of_birth",
            "relationship_manager_id",
            "preferred_channel",
            "customer_since",
            "relationship_balance",
            "products_held",
            "annual_profit",
            "cost_to_serve",
        )
        if _fill_if_unset(target, source, name)
    ]
    if target.quiet_hours_start is None and source.quiet_hours_start is not None:
        # Quiet hours travel as a pair (both-or-neither).
        target.quiet_hours_start, target.quiet_hours_end = source.quiet_hours_start, source.quiet_hours_end
        filled.append("quiet_hours")
    # Contact preferences: the more restrictive wins. A "do not contact" given on either profile
    # must be honoured, and marketing consent cannot be assumed unless both profiles gave it.
    target.do_not_contact = target.do_not_contact or source.do_not_contact
    target.marketing_consent = target.marketing_consent and source.marketing_consent
    target.segments = dedupe([*target.segments, *source.segments])
    source.merged_into_id = target.id
    forget_merged_ids(session)

    counts = {"identities": moved_identities.rowcount, "users": moved_users.rowcount}
    for name, mover in movers.items():
        counts[name] = await mover(session, source_id=source_id, target_id=target_id)
    data = {"source_customer_id": str(source_id), "moved": counts, "filled_from_source": filled}
    append_event(
        session,
        customer_id=target.id,
        kind="customer_merged",
        actor_type=ActorType.SUPERVISOR if actor_id else ActorType.SYSTEM,
        actor_id=actor_id,
        data=data,
    )
    record_audit(
        session,
        actor_id=actor_id,
        action="customer.merged",
        entity_type="customer",
        entity_id=target.id,
        data=data,
    )
    await session.flush()
    if TIER_INPUT_FIELDS.intersection(filled):
        await recompute_tier(session, target, reason="customer_merged")
        await session.flush()
    await session.refresh(target, ["identities"])
    await session.refresh(source, ["identities"])
    return target

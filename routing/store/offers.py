"""Making an offer, the portable way (SQLite and PostgreSQL, inside the caller's transaction).

``create_offer`` is the engine's hottest write: SQLAlchemy Core, built once at import, in three
round trips after the fence: the agent's capacity and decliners re-checked in SQL, the
compare-and-set queued -> offered and the offer INSERT. ``OfferMade`` is what every offer writer
returns (the desktop's offer card, without a second read); ``routing.store.one_statement`` has the
PostgreSQL writers that do the same work in one statement.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer
from customers.timeline import event_row, insert_events
from interactions.models import ActorType, Interaction
from interactions.service import transition_data
from interactions.states import Channel, State, can_transition
from routing.capacity import DEFAULT_CHANNEL_COST
from routing.models import Offer, OfferState
from routing.offer_checks import OFFER_CHECKS, OfferFacts, first_refusal
from routing.store.fence import fence
from switchboard.db import new_id
from switchboard.errors import Conflict, NotFound
from switchboard.fastsql import FastStatement
from workforce.models import Agent, Queue

# States in which an interaction occupies its agent's capacity (released only after wrap-up).
OCCUPYING_STATES = (State.OFFERED, State.CONNECTED, State.WRAP_UP)


async def declined_agent_ids(session: AsyncSession, interaction_id: uuid.UUID) -> set[uuid.UUID]:
    """Agents who rejected or missed this interaction: it is never offered to them again."""
    rows = await session.scalars(
        select(Offer.agent_id).where(
            Offer.interaction_id == interaction_id, Offer.state.in_((OfferState.REJECTED, OfferState.EXPIRED))
        )
    )
    return set(rows)


@dataclass(frozen=True, slots=True)
class OfferMade:
    """A live offer just written, with what the desktop's offer card shows (no second read)."""

    id: uuid.UUID
    interaction_id: uuid.UUID
    agent_id: uuid.UUID
    expires_at: datetime
    channel: str
    queue_id: uuid.UUID | None
    virtual_start_at: datetime
    topic: str | None
    subject: str | None
    customer_id: uuid.UUID
    customer_name: str
    tier: str
    segments: list[str]
    transferred: bool  # a colleague transferred it: the toast shows from whom (agent_desktop)

    @classmethod
    def of(
        cls,
        offer_id: uuid.UUID,
        interaction_id: uuid.UUID,
        agent_id: uuid.UUID,
        expires_at: datetime,
        channel: str,
        written: dict[str, Any],
    ) -> OfferMade:
        """From what the offer's write returned (the interaction's and customer's columns)."""
        tier, segments = written["value_tier"], written["segments"]
        return cls(
            id=offer_id,
            interaction_id=interaction_id,
            agent_id=agent_id,
            expires_at=expires_at,
            channel=channel,
            queue_id=written["queue_id"],
            virtual_start_at=written["virtual_start_at"],
            topic=written["topic"],
            subject=written["subject"],
            customer_id=written["customer_id"],
            customer_name=written["display_name"],
            tier=getattr(tier, "value", tier),  # an enum through SQLAlchemy, text straight from asyncpg
            segments=list(json.loads(segments) if isinstance(segments, str) else segments or []),
            transferred=_transferred(written),
        )


def _transferred(written: dict[str, Any]) -> bool:
    if "transferred" in written:
        return bool(written["transferred"])
    return isinstance(written.get("attributes"), dict) and "transfer" in written["attributes"]


# The only state an offer can be made from (checked against the state machine at import).
_OFFERABLE = tuple(s for s in State if can_transition(s, State.OFFERED))
assert _OFFERABLE == (State.QUEUED,), _OFFERABLE


def _offer_statements() -> tuple[FastStatement, FastStatement, FastStatement]:
    """create_offer's three statements (bound per call: interaction_id, agent_id, now)."""
    it, ag, of, cu = Interaction.__table__.c, Agent.__table__.c, Offer.__table__.c, Customer.__table__.c
    qu = Queue.__table__.c
    interaction_id: Any = bindparam("interaction_id")
    agent_id: Any = bindparam("agent_id")
    held = select(func.count()).where(it.agent_id == agent_id, it.state.in_(OCCUPYING_STATES))
    declined = (
        select(of.id)
        .where(
            of.interaction_id == interaction_id,
            of.agent_id == agent_id,
            of.state.in_((OfferState.REJECTED, OfferState.EXPIRED)),
        )
        .exists()
    )
    checks = select(
        ag.capacity_units,
        ag.channel_max,
        declined.label("declined"),
        select(it.channel).where(it.id == interaction_id).scalar_subquery().label("work_channel"),
        # The offer policy of the queue the work is placed in, and the agent's pending offers.
        select(qu.offer_policy)
        .where(qu.id == select(it.queue_id).where(it.id == interaction_id).scalar_subquery())
        .scalar_subquery()
        .label("offer_policy"),
        held.where(it.state == State.OFFERED).scalar_subquery().label("pending_offers"),
        # What the agent holds now, per channel (the capacity it has left).
        *(held.where(it.channel == channel).scalar_subquery().label(channel.value) for channel in Channel),
    ).where(ag.id == agent_id)
    now: Any = bindparam("now")
    make_offered = (
        update(cast(Table, Interaction.__table__))
        .where(it.id == interaction_id, it.state.in_(_OFFERABLE))
        .values(
            state=State.OFFERED, agent_id=agent_id, version=it.version + 1, offered_at=now, updated_at=now
        )
        .returning(
            it.version,
            it.customer_id,
            it.queue_id,
            it.virtual_start_at,
            it.topic,
            it.subject,
            it.attributes,  # whether it was transferred (the PostgreSQL writers say it in SQL)
            # Subqueries, not UPDATE ... FROM: SQLite's RETURNING cannot name a FROM table.
            *(
                select(cu[name]).where(cu.id == it.customer_id).scalar_subquery().label(name)
                for name in ("display_name", "value_tier", "segments")
            ),
        )
    )
    return (
        FastStatement(checks),
        FastStatement(make_offered),
        FastStatement(insert(cast(Table, Offer.__table__))),
    )


_OFFER_CHECKS, _MAKE_OFFERED, _INSERT_OFFER = _offer_statements()


async def create_offer(
    session: AsyncSession,
    *,
    partition: str,
    epoch: int,
    interaction_id: uuid.UUID,
    agent_id: uuid.UUID,
    now: datetime,
    ttl: timedelta,
    costs: dict[str, int] = DEFAULT_CHANNEL_COST,
    fenced: bool = False,
    events: list[dict[str, Any]] | None = None,
) -> OfferMade:
    """Offer the interaction to the agent (fenced, capacity and decliners re-checked in SQL).

    The engine's hottest write, so it is SQLAlchemy Core in three round trips after the fence:
    one read (the agent's capacity, its load per channel, whether it declined this work), the
    compare-and-set UPDATE queued -> offered (joined to the customer so it returns the offer
    card's data) and the offer INSERT, whose partial unique index allows one live offer per
    interaction. ``fenced=True``: the caller already ran ``fence`` in this transaction (its row
    lock is held until commit). ``events``: the caller collects the timeline rows and writes them
    in one INSERT with the rest of its decision (``insert_events``); by default they are written here.
    """
    if not fenced:
        await fence(session, partition=partition, epoch=epoch)
    params = {"interaction_id": interaction_id, "agent_id": agent_id}
    checks = await _OFFER_CHECKS.first(session, params)
    if checks is None:
        raise NotFound("No such agent", field="agent_id")
    if checks.work_channel is None:
        raise NotFound("No such interaction", field="interaction_id")
    channel = Channel(checks.work_channel).value
    facts = OfferFacts.of(
        channel=channel,
        load_by_channel={c.value: getattr(checks, c.value) for c in Channel},
        pending=checks.pending_offers,
        capacity_units=checks.capacity_units,
        channel_max=checks.channel_max,
        offer_policy=checks.offer_policy,
        declined=bool(checks.declined),
        costs=costs,
    )
    refused = first_refusal(facts, OFFER_CHECKS)
    if refused is not None:
        raise Conflict(refused.refusal, field="agent_id")

    offered = await _MAKE_OFFERED.first(session, {**params, "now": now})
    if offered is None:
        # The checks above read this interaction, so its row exists.
        state = cast(
            State, await session.scalar(select(Interaction.state).where(Interaction.id == interaction_id))
        )
        raise Conflict(
            f"Illegal transition from {State(state).value} to offered",
            field="to_state",
            from_state=State(state).value,
            to_state=State.OFFERED.value,
        )
    offer_id, expires_at = new_id(), now + ttl
    try:
        await _INSERT_OFFER.rowcount(
            session,
            {
                "id": offer_id,
                "interaction_id": interaction_id,
                "agent_id": agent_id,
                "state": OfferState.LIVE,
                "created_at": now,
                "expires_at": expires_at,
                "engine_epoch": epoch,
            },
        )
    except IntegrityError as exc:
        # No SAVEPOINT: a Conflict always rolls the caller's whole decision back.
        raise Conflict("The interaction already has a live offer", field="interaction_id") from exc
    common = {
        "customer_id": offered.customer_id,
        "interaction_id": interaction_id,
        "channel": channel,
        "actor_type": ActorType.SYSTEM,
        "actor_id": "routing",
        "at": now,
    }
    rows = [
        event_row(
            kind="state_changed",
            data=transition_data(
                _OFFERABLE[0], State.OFFERED, "offered", offered.version, {"agent_id": agent_id}, agent_id
            ),
            **common,
        ),
        event_row(
            kind="offer_created",
            data={"offer_id": str(offer_id), "agent_id": str(agent_id), "expires_at": expires_at.isoformat()},
            **common,
        ),
    ]
    if events is None:
        await insert_events(session, rows)
    else:
        events.extend(rows)
    return OfferMade.of(offer_id, interaction_id, agent_id, expires_at, channel, offered._asdict())

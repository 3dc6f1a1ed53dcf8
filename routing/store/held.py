"""Moves of offered and held work: accept, close (reject, expire, rescind), wrap-up, complete.

Two paths for each. The portable one (``accept_offer``, ``close_offer``) reads the rows, checks
them and moves the interaction through ``interactions.service.transition``, raising the precise
Conflict. The lean one (``accept_live_offer``, ``move_held``) is one compare-and-set statement
per row, used by the engine host on its hot path; when it does not apply, the host falls back to
the portable path to learn why.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession

from customers.timeline import event_row
from interactions import service as interactions_service
from interactions.models import ActorType, Interaction
from interactions.service import transition_data
from interactions.states import Channel, State
from routing.models import Offer, OfferState
from routing.store.fence import fence
from switchboard.errors import Conflict, NotFound
from switchboard.fastsql import FastStatement


async def _live_offer(session: AsyncSession, offer_id: uuid.UUID) -> Offer:
    offer = await session.get(Offer, offer_id, populate_existing=True, with_for_update=True)
    if offer is None:
        raise NotFound("No such offer", field="offer_id")
    if offer.state is not OfferState.LIVE:
        raise Conflict(
            f"The offer is already {offer.state.value}", field="offer_id", offer_state=offer.state.value
        )
    return offer


async def accept_offer(
    session: AsyncSession,
    *,
    partition: str,
    epoch: int,
    offer_id: uuid.UUID,
    agent_id: uuid.UUID,
    now: datetime,
    received_at: datetime | None = None,
) -> Offer:
    """Offer live, the agent's own and answered in time → accepted, interaction offered → connected.

    "In time" is judged by when the API received the accept (``received_at``; ``now`` when not
    known), as the engine judges it: an accept clicked before the expiry but processed after it
    is honoured, as long as the offer is still live (fencing and the live-state check stand)."""
    await fence(session, partition=partition, epoch=epoch)
    offer = await _live_offer(session, offer_id)
    if offer.agent_id != agent_id:
        raise Conflict("This offer belongs to another agent", field="offer_id")
    if (received_at or now) > offer.expires_at:
        raise Conflict("The offer has expired", field="offer_id", offer_state="expired")
    offer.state, offer.decided_at, offer.reason = OfferState.ACCEPTED, now, "accepted"
    await session.flush()
    await interactions_service.transition(
        session,
        interaction_id=offer.interaction_id,
        to_state=State.CONNECTED,
        actor_type=ActorType.AGENT,
        actor_id=str(agent_id),
        reason="offer accepted",
        now=now,
    )
    return offer


# ---------------------------------------------------------------------- lean compare-and-set moves
#
# The engine's commonest writes after offers (accept, wrap-up, complete) as ONE Core statement
# each instead of the ORM's read-check-write-flush (five round trips): the compare-and-set is the
# WHERE clause, RETURNING gives what the timeline row and the counters need, and the timeline row
# is collected for the caller's one INSERT. ``None`` means the move did not apply: the caller
# takes the portable path, which re-reads SQL and raises the precise Conflict (or finds the move
# already made).


def _held_columns(it: Any) -> tuple[Any, ...]:
    """What a move of held work (accept, wrap-up, complete) returns: one row shape for all three."""
    return (
        it.id,
        it.version,
        it.customer_id,
        it.channel,
        it.agent_id,
        it.queue_id,
        it.connected_at,
        it.virtual_start_at,
    )


def _held_move(from_state: State, to_state: State) -> FastStatement:
    it = Interaction.__table__.c
    now: Any = bindparam("now")
    return FastStatement(
        update(cast(Table, Interaction.__table__))
        .where(it.id == bindparam("interaction_id"), it.state == from_state)
        .values(
            state=to_state,
            version=it.version + 1,
            updated_at=now,
            **{interactions_service.STATE_TIMESTAMP[to_state]: now},
        )
        .returning(*_held_columns(it))
    )


_MOVES = {
    (State.CONNECTED, State.WRAP_UP): _held_move(State.CONNECTED, State.WRAP_UP),
    (State.WRAP_UP, State.COMPLETED): _held_move(State.WRAP_UP, State.COMPLETED),
}


def _accepted_statements() -> tuple[FastStatement, FastStatement]:
    of, it = Offer.__table__.c, Interaction.__table__.c
    now: Any = bindparam("now")
    accept = (
        update(cast(Table, Offer.__table__))
        .where(
            of.id == bindparam("offer_id"),
            of.state == OfferState.LIVE,
            of.agent_id == bindparam("holder"),  # not a column's name: SQLite's path would SET it
            of.expires_at >= bindparam("answered_at"),
        )
        .values(state=OfferState.ACCEPTED, decided_at=now, reason="accepted")
        .returning(of.interaction_id)
    )
    connect = (
        update(cast(Table, Interaction.__table__))
        .where(
            it.id == bindparam("interaction_id"),
            it.state == State.OFFERED,
            it.agent_id == bindparam("holder"),
        )
        .values(state=State.CONNECTED, version=it.version + 1, updated_at=now, connected_at=now)
        .returning(*_held_columns(it))
    )
    return FastStatement(accept), FastStatement(connect)


_ACCEPT_LIVE, _CONNECT_OFFERED = _accepted_statements()


def _moved_row(
    moved: Any, from_state: State, to_state: State, reason: str, actor: tuple[ActorType, str], now: datetime
) -> dict[str, Any]:
    """The ``state_changed`` timeline row ``interactions.service.transition`` would append."""
    return event_row(
        customer_id=moved.customer_id,
        interaction_id=moved.id,
        kind="state_changed",
        channel=Channel(moved.channel).value,
        actor_type=actor[0],
        actor_id=actor[1],
        data=transition_data(from_state, to_state, reason, moved.version, {}, moved.agent_id),
        at=now,
    )


async def move_held(
    session: AsyncSession,
    *,
    interaction_id: uuid.UUID,
    from_state: State,
    to_state: State,
    reason: str,
    now: datetime,
    events: list[dict[str, Any]],
) -> Any | None:
    """connected -> wrap_up or wrap_up -> completed in one statement (the caller fenced); the
    moved row (version, customer_id, channel, agent_id, queue_id, connected_at, virtual_start_at),
    or None if the interaction was not in ``from_state``. Its timeline row goes into ``events``."""
    params = {"interaction_id": interaction_id, "now": now}
    moved = await _MOVES[(from_state, to_state)].first(session, params)
    if moved is not None:
        events.append(_moved_row(moved, from_state, to_state, reason, (ActorType.SYSTEM, "routing"), now))
    return moved


async def accept_live_offer(
    session: AsyncSession,
    *,
    offer_id: uuid.UUID,
    agent_id: uuid.UUID,
    now: datetime,
    received_at: datetime | None,
    events: list[dict[str, Any]],
) -> Any | None:
    """``accept_offer`` in two statements (the caller fenced): the offer live, the agent's own and
    answered in time -> accepted; its interaction offered to that agent -> connected. Returns the
    connected interaction's row (as ``move_held``), or None when the offer did not qualify (nothing
    written: ``accept_offer`` says why). Raises Conflict if the interaction was not offered."""
    params = {"offer_id": offer_id, "holder": agent_id, "now": now, "answered_at": received_at or now}
    accepted = await _ACCEPT_LIVE.first(session, params)
    if accepted is None:
        return None
    moved = await _CONNECT_OFFERED.first(
        session, {"interaction_id": accepted.interaction_id, "holder": agent_id, "now": now}
    )
    if moved is None:
        raise Conflict("The offered interaction moved on", field="offer_id")
    actor = (ActorType.AGENT, str(agent_id))
    events.append(_moved_row(moved, State.OFFERED, State.CONNECTED, "offer accepted", actor, now))
    return moved


async def close_offer(
    session: AsyncSession,
    *,
    partition: str,
    epoch: int,
    offer_id: uuid.UUID,
    outcome: OfferState,
    now: datetime,
    reason: str,
    requeue: bool = True,
) -> Offer:
    """Reject, expire (missed) or rescind a live offer; the interaction returns to its queue.

    The interaction keeps its virtual start time, so it keeps its place in line. With
    ``requeue=False`` (the customer hung up) the caller moves the interaction on itself.
    """
    if outcome not in (OfferState.REJECTED, OfferState.EXPIRED, OfferState.RESCINDED):
        raise ValueError(f"not a closing outcome: {outcome}")
    await fence(session, partition=partition, epoch=epoch)
    offer = await _live_offer(session, offer_id)
    offer.state, offer.decided_at, offer.reason = outcome, now, reason
    await session.flush()
    if requeue:
        await interactions_service.transition(
            session,
            interaction_id=offer.interaction_id,
            to_state=State.QUEUED,
            actor_type=ActorType.SYSTEM,
            actor_id="routing",
            reason=f"offer {outcome.value}: {reason}",
            changes={"agent_id": None},
            now=now,
        )
    return offer

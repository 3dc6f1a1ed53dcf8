"""Local repair: SQL refused a decision, so the engine is put right for what it touched only.

A decision refused by SQL (an agent's edit committed directly racing the engine, an adapter ending
work) means the engine's index is wrong about the interactions and agents that decision named —
not about the rest of the floor. Those are dropped from the index and read back from SQL: waiting
work re-enters its queue at its place (its virtual start), held work is counted against its
agent again, the agent's profile and presence are re-read. A live SQL offer for one of those
interactions is withdrawn (it keeps its place); every other offer on the floor stays as it is.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import select

from interactions.models import Interaction
from interactions.states import State
from routing import store
from routing.engine.events import Event
from routing.engine.hosted import ConsultEnded
from routing.host.floor import dt
from routing.host.persist import agents_named, hold_loaded
from routing.host.placing import enqueue_from_sql, refresh_agent, restore_held
from routing.models import Offer, OfferState
from switchboard import desktop_messages as messages

if TYPE_CHECKING:
    from routing.host.leader import Leader

log = logging.getLogger(__name__)

HELD = (State.CONNECTED, State.WRAP_UP)


def touched_by(events: Iterable[Event]) -> tuple[set[str], set[str]]:
    """The interactions and agents a decision named (a transfer's sender and target too)."""
    interactions: set[str] = set()
    agents: set[str] = set()
    for event in events:
        if isinstance(event, ConsultEnded):
            interactions |= {event.parent_id, event.child_id}
        elif interaction_id := getattr(event, "interaction_id", None):
            interactions.add(interaction_id)
        agents.update(agents_named(event))
    return interactions, agents


async def repair(leader: Leader, interaction_ids: set[str], agent_ids: set[str]) -> None:
    """Make the engine agree with SQL about these interactions and agents (see the module)."""
    host, floor = leader.host, leader.floor
    engine = floor.engine
    now = host.clock()
    interactions = set(interaction_ids)
    agents = {a for a in agent_ids if engine.has_agent(a)}
    async with host.db.sessionmaker() as session:
        hold_loaded(session)
        # The agents' held work where SQL and the engine disagree is re-read too.
        agent_uuids = [uuid.UUID(a) for a in agents]
        sql_held = {
            (str(i), str(a), state is State.WRAP_UP)
            for i, a, state in (
                await session.execute(
                    select(Interaction.id, Interaction.agent_id, Interaction.state).where(
                        Interaction.agent_id.in_(agent_uuids), Interaction.state.in_(HELD)
                    )
                )
            ).all()
        }
        engine_held = {(i, a, wrap) for a in agents for i, wrap in engine.held_by(a).items()}
        interactions |= {i for i, _, _ in sql_held ^ engine_held}
        # A consult's two legs go together: forgetting one ends the engine's record of both.
        interactions |= {c for i in list(interactions) if (c := engine.consult_child(i)) is not None}
        for interaction_id in interactions:
            dropped = engine.forget(interaction_id)
            if dropped is not None:
                floor.forget_offer(dropped)
            floor.diverted.discard(interaction_id)

        ids = [uuid.UUID(i) for i in interactions]
        # Offers SQL still holds live for them: withdrawn, the interaction keeps its place.
        live = (
            await session.scalars(
                select(Offer).where(Offer.interaction_id.in_(ids), Offer.state == OfferState.LIVE)
            )
        ).all()
        async with leader.sql_verdict("repair", session, touched=[]):
            await store.fence(session, partition=host.partition, epoch=leader.lease.epoch)
            for offer in live:
                await store.close_offer(
                    session,
                    partition=host.partition,
                    epoch=leader.lease.epoch,
                    offer_id=offer.id,
                    outcome=OfferState.RESCINDED,
                    now=dt(now),
                    reason="conflict",
                )
            await session.commit()
        if live:
            await host.publisher.publish_many(
                [messages.OfferClosed(offer_id=str(o.id), reason="conflict").to(o.agent_id) for o in live]
            )

        decided: list[Event] = []
        for agent_id in sorted(agents):
            decided += await refresh_agent(session, floor, agent_id, now)
        rows = (
            await session.scalars(
                select(Interaction)
                .where(Interaction.id.in_(ids))
                .order_by(Interaction.virtual_start_at, Interaction.id)
                .execution_options(populate_existing=True)
            )
        ).all()
        # Held work first: a consult's parent must be held again before its child resumes.
        for it in sorted(rows, key=lambda r: r.state not in HELD):
            if it.state in HELD and it.agent_id is not None and engine.has_agent(str(it.agent_id)):
                decided += restore_held(floor, it, now)
            elif it.state is State.QUEUED and (it.attributes or {}).get("routing_diverted"):
                floor.diverted.add(str(it.id))
            elif it.state is State.QUEUED:
                decided += await enqueue_from_sql(host, session, floor, it, now)
            # Anything else has ended in SQL: forgotten is right.
    log.info(
        "routing engine: repaired %d interactions and %d agents from SQL (%d offers withdrawn)",
        len(interactions),
        len(agents),
        len(live),
    )
    if decided:
        async with host.db.sessionmaker() as session:
            hold_loaded(session)
            await leader.commit_events(session, decided, context="repair")

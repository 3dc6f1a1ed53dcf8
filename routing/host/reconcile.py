"""The reconcile passes: SQL and the desktops' heartbeats against what the engine believes.

Every few seconds the leader routes queued work whose command was lost (an API process died after
its commit), counts held work it never heard of, and sets offline the agents whose every desktop
vanished.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interactions.models import Interaction
from interactions.states import State
from routing import heartbeats
from routing.engine.events import Event
from routing.host import arrivals
from routing.host.dispatch import adopt, follow_live_rule_set
from routing.host.errors import DecisionRefused
from routing.host.leader import Leader
from routing.host.placing import sync_queues
from routing.models import Offer, OfferState
from switchboard.commands import Adopt
from switchboard.fastsql import FastStatement
from workforce.models import Agent, Presence

log = logging.getLogger(__name__)

# The reconcile pass's two reads: work routing should know of, waiting and held by agents.
_WAITING = FastStatement(
    select(Interaction.id, Interaction.state).where(Interaction.state.in_((State.QUEUED, State.OFFERED)))
)
_HELD = FastStatement(
    select(Interaction.id).where(
        Interaction.state.in_((State.CONNECTED, State.WRAP_UP)), Interaction.agent_id.is_not(None)
    )
)


async def reconcile(leader: Leader) -> None:
    """Route queued work the engine never heard of; drop work SQL has ended without telling us."""
    db = leader.host.db
    async with db.sessionmaker() as session:
        # Queues a supervisor added: arrivals sync only for a queue id they do not know.
        await sync_queues(session, leader.floor)
        # A version published while its notice could not reach us (Redis down, or the notice
        # lost): SQL says which is live, and new arrivals follow it from now on.
        if await follow_live_rule_set(leader, session, if_changed=True):
            log.info(
                "routing engine: rule-set version %s is live (found by reconcile)",
                leader.engine.rule_set_version,
            )
        rows = await _WAITING.rows(session, {})
    missing = [
        str(i)
        for i, state in rows
        if state is State.QUEUED and not leader.engine.knows(str(i)) and str(i) not in leader.floor.diverted
    ]
    for interaction_id in missing:
        log.info("routing engine: reconcile found unrouted interaction %s", interaction_id)
        await arrivals.enqueue(leader, interaction_id)
    async with db.sessionmaker() as session:
        held = await _HELD.rows(session, {})
        unknown_held = [str(i) for (i,) in held if not leader.engine.knows(str(i))]
    for interaction_id in unknown_held:
        # Held without routing (an agent's own call) and no adopt command seen: count it now.
        await adopt(leader, Adopt(interaction_id=interaction_id))
    waiting_in_sql = {str(i) for i, _ in rows}
    vanished = [i for i in leader.engine.live_ids() if i not in waiting_in_sql]
    if vanished:
        # Abandoned/failed by an adapter or a supervisor: SQL is right; re-read those from it.
        log.info("routing engine: %d waiting interactions ended outside routing", len(vanished))
        await leader.repair(set(vanished), set())


async def reconcile_desktops(leader: Leader) -> list[str]:
    """Agents whose desktop vanished on every process: off "available", offers rescinded.

    Returns the agents set offline. An agent on break or training without live offers keeps
    that status; one already offline is left alone.
    """
    host = leader.host
    if host.desktop_grace_seconds is None:
        return []
    claimed = await heartbeats.claim_vanished(host.client, grace_seconds=host.desktop_grace_seconds)
    gone: list[str] = []
    for n, agent_id in enumerate(claimed):
        if not leader.engine.has_agent(agent_id):
            continue

        async def drop(session: AsyncSession, agent_id: str = agent_id) -> list[Event]:
            agent = await session.get(Agent, uuid.UUID(agent_id), populate_existing=True)
            if agent is None or agent.presence is Presence.OFFLINE:
                return []
            has_offers = await session.scalar(
                select(Offer.id).where(Offer.agent_id == agent.id, Offer.state == OfferState.LIVE).limit(1)
            )
            if agent.presence is not Presence.AVAILABLE and has_offers is None:
                return []
            # Offline rescinds every live offer (engine rule); the status change is the
            # presence event (SQL, the agent's topic, webhooks) with reason "desktop_lost".
            return leader.engine.set_presence(host.clock(), agent_id, Presence.OFFLINE, "desktop_lost")

        try:
            events = await leader.apply_in_session(drop, context=f"desktop lost {agent_id}")
        except DecisionRefused:
            # Rebuilt from SQL meanwhile: claim this agent again on the next pass.
            await heartbeats.restore(host.client, [agent_id], at=0.0)
            events = []
        except BaseException:
            # Not handled: put the rest back so the next pass (or the next leader) retries.
            await heartbeats.restore(host.client, claimed[n:], at=0.0)
            raise
        if events:
            log.info("routing engine: agent %s lost every desktop; set offline", agent_id)
            gone.append(agent_id)
    return gone

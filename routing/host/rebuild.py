"""Rebuilding the floor from SQL, and putting one piece of SQL work into the engine.

SQL is the truth, the engine only a fast index over it: a new leader (or one whose decision SQL
refused) builds a fresh floor from queues, the live rule set, agents, the work agents hold, and the
waiting work with its place in line and who declined it. Offers a previous leader left live are
withdrawn first; their interactions keep their place, so nothing is orphaned.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interactions.models import Interaction
from interactions.states import State
from routing import store
from routing.context import context_for
from routing.engine.events import Event
from routing.engine.hosted import ConsultEnded, HostedEngine
from routing.host.floor import Floor, agent_fields, dt, queue_config
from routing.lease import Lease
from routing.models import Agent, Offer, OfferState, Queue, QueueMember, RuleSetVersion
from routing.rules import RuleSet
from routing.service import live_rule_set
from switchboard import events as bus

if TYPE_CHECKING:
    from routing.host.leadership import EngineHost

log = logging.getLogger(__name__)


async def build_floor(host: EngineHost, lease: Lease) -> tuple[Floor, list[Event]]:
    """A floor rebuilt from SQL, and the decisions rebuilding made (to persist once it is in use)."""
    now = host.clock()
    async with host.db.sessionmaker() as session:
        await store.fence(session, partition=host.partition, epoch=lease.epoch)
        # Offers a previous leader left live: withdraw them; the interaction keeps its place.
        live = (await session.scalars(select(Offer).where(Offer.state == OfferState.LIVE))).all()
        for offer in live:
            await store.close_offer(
                session,
                partition=host.partition,
                epoch=lease.epoch,
                offer_id=offer.id,
                outcome=OfferState.RESCINDED,
                now=dt(now),
                reason="engine_failover",
            )
        await session.commit()
        if live:
            await host.publisher.publish_many(
                [
                    (
                        bus.agent_topic(offer.agent_id),
                        {"type": "offer_closed", "offer_id": str(offer.id), "reason": "engine_failover"},
                    )
                    for offer in live
                ]
            )

        queues = (await session.scalars(select(Queue))).all()
        engine = HostedEngine(
            [queue_config(q) for q in queues],
            rule_set=await live_rule_set(session, partition=host.partition),
            now=now,
            config=host.engine_config,
            consult_wait_seconds=host.consult_wait_seconds,
        )
        floor = Floor(engine)
        floor.remember_queues(queues)
        members: dict[uuid.UUID, set[str]] = {}
        for queue_id, agent_id in (
            await session.execute(select(QueueMember.queue_id, QueueMember.agent_id))
        ).all():
            members.setdefault(agent_id, set()).add(floor.queue_info[queue_id][0])
        agents = (await session.scalars(select(Agent))).all()
        decided: list[Event] = []
        for agent in agents:
            decided += engine.add_agent(now, **agent_fields(agent, queues, members.get(agent.id, set())))

        # Work agents hold now: it keeps their capacity until wrap-up completes.
        held = (
            await session.scalars(
                select(Interaction).where(Interaction.state.in_((State.CONNECTED, State.WRAP_UP)))
            )
        ).all()
        for it in held:
            if it.agent_id is not None:
                decided += restore_held(floor, it, now)

        # Waiting work, oldest place first, so equal keys resolve as before.
        waiting = (
            await session.scalars(
                select(Interaction)
                .where(Interaction.state == State.QUEUED)
                .order_by(Interaction.virtual_start_at, Interaction.id)
            )
        ).all()
        for it in waiting:
            if (it.attributes or {}).get("routing_diverted"):
                floor.diverted.add(str(it.id))
                continue
            decided += await enqueue_from_sql(host, session, floor, it, now)
    log.info("routing engine: rebuilt with %d agents and %d waiting", len(agents), len(waiting))
    return floor, decided


def restore_held(floor: Floor, it: Interaction, now: float) -> list[Event]:
    """Work an agent holds in SQL (connected or wrap-up) takes their capacity in the engine."""
    assert it.agent_id is not None
    return floor.engine.restore_assignment(
        now,
        str(it.id),
        it.channel.value,
        agent_id=str(it.agent_id),
        queue=floor.queue_name(it.queue_id),
        wrap_up=it.state is State.WRAP_UP,
        virtual_start=it.virtual_start_at.timestamp(),
        assigned_at=(it.connected_at or it.updated_at).timestamp(),
    )


async def sync_queues(session: AsyncSession, floor: Floor) -> list[Queue]:
    """Queues created since the engine was built join it (supervisors add queues live)."""
    queues = list((await session.scalars(select(Queue))).all())
    floor.remember_queues(queues)
    for queue in queues:
        if not floor.engine.has_queue(queue.name):
            floor.engine.add_queue(queue_config(queue))
    return queues


async def enqueue_from_sql(
    host: EngineHost,
    session: AsyncSession,
    floor: Floor,
    it: Any,
    now: float,
    context: dict[str, Any] | None = None,
) -> list[Event]:
    """Route waiting work: ``it`` is an Interaction or a row with its attributes (see
    ``routing_snapshot``, which also gives ``context``)."""
    engine = floor.engine
    if it.queue_id is not None and it.queue_id not in floor.queue_info:
        await sync_queues(session, floor)  # created since the last sync (the reconcile pass syncs too)
    # Every offer moves the interaction to "offered" and so bumps its version: a queued
    # interaction still at version <= 2 (created, queued) was never offered, so nobody declined it.
    declined = {str(a) for a in await store.declined_agent_ids(session, it.id)} if it.version > 2 else set()
    transfer = (it.attributes or {}).get("transfer") or {}
    if transfer.get("consult") == "pending" and it.parent_id is not None:
        return await _restore_consult(host, session, floor, it, transfer, now)
    # A queue chosen at creation (rule_set_version still unset) is explicit; otherwise the rules
    # route it again from its age, so escalation steps resume where they were — by the version
    # that routed it (only the supervisor's explicit re-evaluation moves it to the live one).
    explicit_queue = None
    pinned = None
    if it.queue_id is not None and it.rule_set_version is None:
        explicit_queue = floor.queue_info[it.queue_id][0]
    elif it.rule_set_version is not None and it.rule_set_version != engine.rule_set_version:
        pinned = await _pinned_version(host, session, floor, it.rule_set_version)
    return engine.enqueue(
        now,
        str(it.id),
        it.channel.value,
        queue=explicit_queue,
        priority=it.priority,
        virtual_start=it.virtual_start_at.timestamp(),
        required_skills=it.required_skills or None,
        context=context if context is not None else await context_for(session, it),
        declined=declined,
        rule_set_version=pinned,
    )


async def _pinned_version(host: EngineHost, session: AsyncSession, floor: Floor, version: int) -> int | None:
    """Load (once per floor) the rule-set version waiting work is pinned to into the engine.
    None when it cannot be used (deleted, or routes to a queue that is gone): the live one routes."""
    if floor.engine.knows_rule_set(version):
        return version
    if version not in floor.pinned:
        rule_set: RuleSet | None = None
        row = await session.scalar(
            select(RuleSetVersion).where(
                RuleSetVersion.partition == host.partition, RuleSetVersion.version == version
            )
        )
        if row is not None:
            try:
                rule_set = RuleSet.model_validate({**row.body, "version": row.version})
                floor.engine.add_rule_set(rule_set)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError too
                log.warning("routing engine: pinned rule set %d unusable (%s); using live", version, exc)
                rule_set = None
        floor.pinned[version] = rule_set
    return version if floor.pinned[version] is not None else None


async def _restore_consult(
    host: EngineHost, session: AsyncSession, floor: Floor, child: Any, transfer: dict[str, Any], now: float
) -> list[Event]:
    """A warm transfer still waiting for its target (after a take-over or a rebuild): offer it
    again while the sender keeps the parent; if the parent is no longer theirs, cancel it."""
    sender = str(transfer.get("from_agent_id"))
    to_agent = transfer.get("to_agent_id")
    queue = (await session.get(Queue, child.queue_id)).name if child.queue_id else None
    try:
        if queue is None:
            raise ValueError("the consult has no queue")
        return floor.engine.start_consult(
            now,
            str(child.parent_id),
            str(child.id),
            child.channel.value,
            sender=sender,
            queue=queue,
            priority=child.priority,
            virtual_start=child.virtual_start_at.timestamp(),
            required_skills=child.required_skills or None,
            to_agent=to_agent,  # an agent who is gone cannot take it: the consult is cancelled
            context=await context_for(session, child),
            deadline=child.created_at.timestamp() + host.consult_wait_seconds,
        )
    except ValueError as exc:
        log.info("routing engine: consult %s cannot resume (%s); cancelling it", child.id, exc)
        return [ConsultEnded(str(child.parent_id), str(child.id), sender, "parent_ended")]

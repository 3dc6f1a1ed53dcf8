"""Putting one piece of SQL work into the engine: waiting work placed (rules, pinned rule-set
versions, a warm transfer still waiting for its target), held work restored, an agent or the
queues re-read. The rebuild (``routing.host.rebuild``) does it for the whole floor at once; the
arrivals, the reconcile pass, conflict repair and the command dispatch for one piece at a time.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interactions.states import State
from routing import store
from routing.context import context_for
from routing.engine.events import Event
from routing.engine.hosted import ConsultEnded, HeldWork, HostedEngine
from routing.engine.state import LiveOffer
from routing.host.floor import Floor, agent_fields, queue_config
from routing.models import RuleSetVersion
from routing.rules import RuleSet
from workforce.models import Agent, Queue, QueueMember

if TYPE_CHECKING:
    from routing.host.leadership import EngineHost

log = logging.getLogger(__name__)


def pinned_rule_set(engine: HostedEngine, row: RuleSetVersion) -> RuleSet | None:
    try:
        rule_set = RuleSet.model_validate({**row.body, "version": row.version})
        engine.add_rule_set(rule_set)
        return rule_set
    except ValueError as exc:  # pydantic's ValidationError is a ValueError too
        log.warning("routing engine: pinned rule set %d unusable (%s); using live", row.version, exc)
        return None


def restore_held(floor: Floor, it: Any, now: float) -> list[Event]:
    """Work an agent holds in SQL (connected or wrap-up) takes their capacity in the engine."""
    return floor.engine.restore_assignments(now, [held_work(floor, it)])


def held_work(floor: Floor, it: Any) -> HeldWork:
    """Held work in SQL as ``HostedEngine.restore_assignments`` takes it."""
    assert it.agent_id is not None
    return HeldWork(
        str(it.id),
        it.channel.value,
        str(it.agent_id),
        floor.queue_name(it.queue_id),
        it.state is State.WRAP_UP,
        it.virtual_start_at.timestamp(),
        (it.connected_at or it.updated_at).timestamp(),
    )


async def sync_queues(
    session: AsyncSession, floor: Floor, now: float | None = None
) -> tuple[list[Queue], list[Event]]:
    """Queues created since the engine was built join it (supervisors add queues live); with
    ``now``, a queue a supervisor changed (its offer policy) is updated too, and what that
    decides (offers to agents who may now take more) is returned."""
    queues = list((await session.scalars(select(Queue))).all())
    floor.remember_queues(queues)
    events: list[Event] = []
    for queue in queues:
        if not floor.engine.has_queue(queue.name):
            floor.engine.add_queue(queue_config(queue))
        elif now is not None:
            events += floor.engine.update_queue(now, queue_config(queue))
    return queues, events


async def refresh_agent(session: AsyncSession, floor: Floor, agent_id: str, now: float) -> list[Event]:
    """The engine's view of one agent re-read from SQL: profile, queues and presence."""
    agent = await session.get(Agent, uuid.UUID(agent_id), populate_existing=True)
    if agent is None:
        return []
    engine = floor.engine
    queues, events = await sync_queues(session, floor, now)
    member_of = await session.scalars(select(QueueMember.queue_id).where(QueueMember.agent_id == agent.id))
    fields = agent_fields(agent, queues, {floor.queue_info[queue_id][0] for queue_id in member_of})
    fields.pop("agent_id")
    presence, reason = fields.pop("presence"), agent.presence_reason
    events += (
        engine.update_agent(now, agent_id, **fields)
        if engine.has_agent(agent_id)
        else engine.add_agent(now, agent_id, **fields)
    )
    return events + engine.set_presence(now, agent_id, presence, reason)


async def refresh_memberships(
    session: AsyncSession, floor: Floor, queues: list[Queue], now: float
) -> list[Event]:
    """Which queues each agent serves follows the queues' required skills: after a supervisor
    changes a queue, every agent on the floor is re-read against them (a set-based read)."""
    explicit: dict[uuid.UUID, set[str]] = {}
    for agent_id, queue_id in await session.execute(select(QueueMember.agent_id, QueueMember.queue_id)):
        if queue_id in floor.queue_info:
            explicit.setdefault(agent_id, set()).add(floor.queue_info[queue_id][0])
    events: list[Event] = []
    for agent in await session.scalars(select(Agent)):
        if floor.engine.has_agent(str(agent.id)):
            serves = agent_fields(agent, queues, explicit.get(agent.id, set()))["queues"]
            events += floor.engine.update_agent(now, str(agent.id), queues=serves)
    return events


async def enqueue_from_sql(
    host: EngineHost,
    session: AsyncSession,
    floor: Floor,
    it: Any,
    now: float,
    context: dict[str, Any] | None = None,
) -> list[Event]:
    """Route one waiting interaction: ``it`` is an Interaction or a row with its attributes (see
    ``routing_snapshot``, which also gives ``context``). Reads what ``place_waiting`` needs."""
    if it.queue_id is not None and it.queue_id not in floor.queue_info:
        await sync_queues(session, floor)  # created since the last sync (the reconcile pass syncs too)
    # Every offer moves the interaction to "offered" and so bumps its version: a queued
    # interaction still at version <= 2 (created, queued) was never offered, so nobody declined it.
    declined = {str(a) for a in await store.declined_agent_ids(session, it.id)} if it.version > 2 else set()
    if it.rule_set_version is not None and it.rule_set_version != floor.engine.rule_set_version:
        await _load_pinned(host, session, floor, it.rule_set_version)
    if context is None:
        context = await context_for(session, it)
    return place_waiting(floor, it, now, context, declined, host)


def place_waiting(
    floor: Floor,
    it: Any,
    now: float,
    context: dict[str, Any],
    declined: set[str],
    host: EngineHost,
    offered: LiveOffer | None = None,
) -> list[Event]:
    """Put waiting work into the engine from what SQL says of it (memory only); ``offered``: its
    live offer in SQL, kept if the engine may (``HostedEngine.kept_offer`` tells)."""
    engine = floor.engine
    transfer = (it.attributes or {}).get("transfer") or {}
    if transfer.get("consult") == "pending" and it.parent_id is not None:
        return _restore_consult(floor, it, transfer, now, context, host.consult_wait_seconds)
    # A queue chosen at creation (rule_set_version still unset) is explicit; otherwise the rules
    # route it again from its age, so escalation steps resume where they were — by the version
    # that routed it (only the supervisor's explicit re-evaluation moves it to the live one).
    explicit_queue = None
    pinned = None
    if it.queue_id is not None and it.rule_set_version is None:
        explicit_queue = floor.queue_info[it.queue_id][0]
    elif it.rule_set_version is not None and it.rule_set_version != engine.rule_set_version:
        # A pinned version that is gone or unusable was never loaded: the live one routes it.
        pinned = it.rule_set_version if engine.knows_rule_set(it.rule_set_version) else None
    if explicit_queue is None and pinned is None and engine.rule_set_version is None:
        # Nothing can route it yet (no queue chosen, no rule set published): it waits in SQL and
        # the reconcile pass places it once a rule set is live. Raising here failed the whole
        # take-over rebuild, so one such interaction (any API caller can make one) stopped routing.
        log.warning("interaction %s waits: no queue given and no rule set published", it.id)
        return []
    return engine.enqueue(
        now,
        str(it.id),
        it.channel.value,
        queue=explicit_queue,
        priority=it.priority,
        virtual_start=it.virtual_start_at.timestamp(),
        required_skills=it.required_skills or None,
        context=context,
        declined=declined,
        rule_set_version=pinned,
        offered=offered,
    )


async def _load_pinned(host: EngineHost, session: AsyncSession, floor: Floor, version: int) -> None:
    """Load (once per floor) a rule-set version waiting work is pinned to into the engine."""
    if floor.engine.knows_rule_set(version) or version in floor.pinned:
        return
    row = await session.scalar(
        select(RuleSetVersion).where(
            RuleSetVersion.partition == host.partition, RuleSetVersion.version == version
        )
    )
    floor.pinned[version] = pinned_rule_set(floor.engine, row) if row is not None else None


def _restore_consult(
    floor: Floor,
    child: Any,
    transfer: dict[str, Any],
    now: float,
    context: dict[str, Any],
    wait_seconds: float,
) -> list[Event]:
    """A warm transfer still waiting for its target (after a take-over or a rebuild): offer it
    again while the sender keeps the parent; if the parent is no longer theirs, cancel it."""
    sender = str(transfer.get("from_agent_id"))
    to_agent = transfer.get("to_agent_id")
    queue = floor.queue_name(child.queue_id)
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
            context=context,
            deadline=child.created_at.timestamp() + wait_seconds,
        )
    except ValueError as exc:
        log.info("routing engine: consult %s cannot resume (%s); cancelling it", child.id, exc)
        return [ConsultEnded(str(child.parent_id), str(child.id), sender, "parent_ended")]

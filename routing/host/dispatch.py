"""Command dispatch: each command class of ``switchboard.commands`` has one handler here.

``handle`` parses a stream entry into its typed command, runs the handler registered for its
class (``HANDLERS``) and answers the caller when it waits for a reply.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from interactions.models import Interaction
from interactions.states import State
from routing.context import context_for
from routing.engine.events import CommandRejected, Event, Queued
from routing.host import arrivals, persist
from routing.host.errors import DecisionRefused, LostLeadership, RebuildFailed
from routing.host.group import Group, Waiting, commit
from routing.host.leader import Leader
from routing.host.placing import refresh_agent, refresh_memberships, restore_held, sync_queues
from routing.host.supervise import move, reprioritise
from routing.host.transfer import transfer
from routing.rules import RuleSet
from routing.service import get_version, live_rule_set, live_version_number
from switchboard import commands
from switchboard.commands import (
    Abandon,
    Accept,
    Adopt,
    AgentChanged,
    CancelConsult,
    Command,
    Complete,
    Enqueue,
    Explain,
    Move,
    PreviewRules,
    QueuesChanged,
    Rebuild,
    Reevaluate,
    Reject,
    Reprioritise,
    RuleSetPublished,
    Transfer,
    WrapUp,
)
from switchboard.desktop_messages import Assigned
from switchboard.errors import NotFound

log = logging.getLogger(__name__)

Result = dict[str, Any]
Handler = Callable[[Leader, Any], Awaitable[Result]]
HANDLERS: dict[type[Command], Handler] = {}


def handles(*kinds: type[Command]) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for kind in kinds:
            HANDLERS[kind] = handler
        return handler

    return register


# Commands whose handlers only change the engine's memory (``Leader.apply``): while a group is
# open their decisions are written together, one transaction per read of the streams.
GROUPED: tuple[type[Command], ...] = (Accept, Reject, WrapUp, Complete, Abandon, CancelConsult)


async def handle(leader: Leader, raw: dict[str, Any], group: Group | None = None) -> None:
    """Run one command from the stream; reply if the sender waits. Only LostLeadership escapes.

    With ``group``: a command of ``GROUPED`` leaves its decision and its reply in the group
    (``flush`` writes and answers them); any other command flushes the group first, so it reads
    SQL with every earlier decision in it."""
    log.debug("routing engine: command %s", raw)
    failed: Result = {}
    try:
        command: Command | None = commands.parse(raw)
    except (commands.UnknownCommand, commands.MalformedCommand) as exc:
        command, failed = None, {"ok": False, "reason": str(exc)}
    if command is not None and group is not None and _joins(group, command):
        first = len(group.decisions)
        leader.group = group
        try:
            result = await _run(leader, command, raw)
        finally:
            leader.group = None
        group.waiting.append(Waiting(raw, result, first, len(group.decisions)))
        return
    if group:
        await flush(leader, group)
    result = failed if command is None else await _run(leader, command, raw)
    if raw.get("reply"):
        await commands.reply(leader.host.client, raw.get("request_id", ""), result)


def _joins(group: Group, command: Command) -> bool:
    """Whether the command's decision waits in the open group instead of flushing it first.

    An agent change reads that agent's row, the queues and the agent's memberships. Of those the
    engine itself writes only the agent's presence (a missed offer's not-responding), so it may
    read SQL past the group's waiting decisions unless one of them names this agent: a presence
    storm at shift start (one AgentChanged per status click) is then written one transaction per
    read of the streams, not one per click."""
    if isinstance(command, GROUPED):
        return True
    if isinstance(command, AgentChanged):
        return not any(
            command.agent_id in persist.agents_named(event) for d in group.decisions for event in d.events
        )
    return False


async def flush(leader: Leader, group: Group) -> None:
    """Write the group's decisions in one transaction, then answer its commands' callers."""
    if not group:
        return
    done = await commit(leader, group)
    await commands.reply_many(
        leader.host.client, [(w.raw.get("request_id", ""), w.result) for w in done if w.raw.get("reply")]
    )


async def _run(leader: Leader, command: Command, raw: dict[str, Any]) -> Result:
    try:
        return await HANDLERS[type(command)](leader, command)
    except (KeyError, ValueError) as exc:
        return {"ok": False, "reason": f"malformed command: {exc}"}
    except (LostLeadership, RebuildFailed):
        raise
    except DecisionRefused as exc:
        return {"ok": False, "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one bad command must not wedge the stream
        log.exception("routing engine: command %s failed", raw.get("type"))
        return {"ok": False, "reason": f"internal error: {type(exc).__name__}"}


def outcome(events: list[Event]) -> Result:
    """The reply for a command: refused if the engine said so, otherwise done."""
    for event in events:
        if isinstance(event, CommandRejected):
            return {"ok": False, "reason": event.reason}
    return {"ok": True}


# ---------------------------------------------------------------------- work arriving and held


@handles(Enqueue)
async def _enqueue(leader: Leader, command: Enqueue) -> Result:
    await arrivals.enqueue(leader, command.interaction_id)
    return {"ok": True}


@handles(Adopt)
async def adopt(leader: Leader, command: Adopt) -> Result:
    """Work an agent holds that routing never offered (an agent's own outbound call): the
    engine counts it against their capacity, and wrap-up/complete go through as for any other."""
    interaction_id = command.interaction_id
    if leader.engine.knows(interaction_id):
        return {"ok": True}
    adopted: list[str] = []

    async def take(session: AsyncSession) -> list[Event]:
        it = await session.get(Interaction, uuid.UUID(interaction_id), populate_existing=True)
        if (
            it is None
            or it.agent_id is None
            or it.state not in (State.CONNECTED, State.WRAP_UP)
            or not leader.engine.has_agent(str(it.agent_id))
        ):
            return []
        adopted.append(str(it.agent_id))
        return restore_held(leader.floor, it, leader.host.clock())

    await leader.apply_in_session(take, context=f"adopt {interaction_id}")
    for agent_id in adopted:
        # The agent's desktop opens the tab as for routed work (after the commit).
        await leader.host.publisher.publish_many([Assigned(interaction_id=interaction_id).to(agent_id)])
    return {"ok": True}


@handles(AgentChanged)
async def _agent_changed(leader: Leader, command: AgentChanged) -> Result:
    agent_id = command.agent_id

    async def change(session: AsyncSession) -> list[Event]:
        return await refresh_agent(session, leader.floor, agent_id, leader.host.clock())

    await leader.apply_after_reading(change, context=f"agent {agent_id}")
    return {"ok": True}


@handles(Accept, Reject)
async def _offer(leader: Leader, command: Accept | Reject) -> Result:
    engine_offer = leader.floor.engine_offer.get(uuid.UUID(command.offer_id))
    if engine_offer is None:
        return {"ok": False, "reason": "the offer is no longer live"}
    agent_id, received_at = command.agent_id, command.received_at
    if isinstance(command, Accept):
        return outcome(
            await leader.apply(
                lambda e, now: e.accept(now, engine_offer, agent_id, received_at), context="accept"
            )
        )
    return outcome(
        await leader.apply(
            lambda e, now: e.reject(now, engine_offer, agent_id, received_at), context="reject"
        )
    )


@handles(WrapUp, Complete, Abandon)
async def _work(leader: Leader, command: WrapUp | Complete | Abandon) -> Result:
    engine, interaction_id = leader.engine, command.interaction_id
    holder = engine.holder_of(interaction_id)
    if not isinstance(command, Abandon) and (command.agent_id is None or holder != command.agent_id):
        return {"ok": False, "reason": "the interaction is not held by this agent"}
    if isinstance(command, Complete) and not engine.in_wrap_up(interaction_id):
        # Capacity is released only after wrap-up (disposition, notes): never straight from a call.
        return {"ok": False, "reason": "wrap up the interaction before completing it"}
    method = {WrapUp: engine.wrap_up, Complete: engine.complete, Abandon: engine.abandon}[type(command)]
    return outcome(await leader.apply(lambda e, now: method(now, interaction_id), context=command.type))


@handles(Transfer)
async def _transfer(leader: Leader, command: Transfer) -> Result:
    return await transfer(leader, command)


@handles(Move)
async def _move(leader: Leader, command: Move) -> Result:
    return await move(leader, command)


@handles(Reprioritise)
async def _reprioritise(leader: Leader, command: Reprioritise) -> Result:
    return await reprioritise(leader, command)


@handles(CancelConsult)
async def _cancel_consult(leader: Leader, command: CancelConsult) -> Result:
    """The sender withdraws a warm transfer: the child is cancelled, the customer stays."""
    parent_id, agent_id = command.interaction_id, command.agent_id
    return outcome(
        await leader.apply(lambda e, now: e.cancel_consult(now, parent_id, agent_id), context="cancel")
    )


# ---------------------------------------------------------------------- rules


@handles(RuleSetPublished)
async def _rule_set_published(leader: Leader, command: RuleSetPublished) -> Result:
    """New arrivals use the new version; waiting work stays pinned to the one that routed it."""
    async with leader.host.db.sessionmaker() as session:
        await follow_live_rule_set(leader, session)
    return {"ok": True}


async def follow_live_rule_set(leader: Leader, session: AsyncSession, *, if_changed: bool = False) -> bool:
    """Route new arrivals by the version live in SQL (its queues synced first: a new version may
    use a queue added since). ``if_changed``: only when it is not the one routing already (the
    reconcile pass's check, for a publish whose notice was lost). True when a version was set."""
    partition = leader.host.partition
    if (
        if_changed
        and await live_version_number(session, partition=partition) == leader.engine.rule_set_version
    ):
        return False
    await sync_queues(session, leader.floor)
    rule_set = await live_rule_set(session, partition=partition)
    if rule_set is None:
        return False
    leader.engine.set_rule_set(rule_set)
    return True


@handles(QueuesChanged)
async def _queues_changed(leader: Leader, command: QueuesChanged) -> Result:
    """A queue was added or changed (offer policy, timeout, required skills): agents who may now
    take more, or now qualify for it, are offered its work."""

    async def change(session: AsyncSession) -> list[Event]:
        now = leader.host.clock()
        queues, events = await sync_queues(session, leader.floor, now)
        # A queue's required skills decide who serves it: memberships follow a change at once.
        return events + await refresh_memberships(session, leader.floor, queues, now)

    await leader.apply_in_session(change, context="queues changed")
    return {"ok": True}


@handles(Rebuild)
async def _rebuild(leader: Leader, command: Rebuild) -> Result:
    await leader.rebuild()
    return {"ok": True}


@handles(Reevaluate)
async def _reevaluate(leader: Leader, command: Reevaluate) -> Result:
    events = await leader.apply(lambda e, now: e.reevaluate_waiting(now), context="reevaluate")
    return {"ok": True, "moved": sum(isinstance(e, Queued) for e in events)}


@handles(PreviewRules)
async def _preview_rules(leader: Leader, command: PreviewRules) -> Result:
    """What publishing ``version`` and re-evaluating would move, against the live waiting work."""
    async with leader.host.db.sessionmaker() as session:
        row = await get_version(session, version=int(command.version), partition=leader.host.partition)
        await sync_queues(session, leader.floor)
    rule_set = RuleSet.model_validate({**row.body, "version": row.version})
    return {"ok": True, "moves": leader.engine.preview_rule_set(rule_set, leader.host.clock())}


@handles(Explain)
async def _explain(leader: Leader, command: Explain) -> Result:
    """Dry-run against the live engine: filter, step, queue, priority, ranked agents and why the
    others are not, by the live rule set or the version asked for (a draft)."""
    context = dict(command.context or {})
    rule_set: RuleSet | None = None
    async with leader.host.db.sessionmaker() as session:
        if command.interaction_id:
            it = await session.get(Interaction, uuid.UUID(command.interaction_id))
            if it is None:
                return {"ok": False, "reason": "unknown interaction"}
            context = {**await context_for(session, it), **context}
        if command.version is not None:
            try:
                row = await get_version(
                    session, version=int(command.version), partition=leader.host.partition
                )
            except NotFound:
                return {"ok": False, "reason": f"no rule set version {command.version}"}
            await sync_queues(session, leader.floor)  # a draft may use a queue added since
            rule_set = RuleSet.model_validate({**row.body, "version": row.version})
    try:
        explanation = leader.engine.explain(context, leader.host.clock(), rule_set=rule_set)
    except ValueError as exc:
        return {"ok": False, "reason": str(exc)}
    return {"ok": True, "explanation": explanation}

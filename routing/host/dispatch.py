"""Command dispatch: each command class of ``routing.commands`` has one handler here.

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
from routing import commands
from routing.commands import (
    Abandon,
    Accept,
    Adopt,
    AgentChanged,
    CancelConsult,
    Command,
    Complete,
    Enqueue,
    Explain,
    PreviewRules,
    Rebuild,
    Reevaluate,
    Reject,
    RuleSetPublished,
    Transfer,
    WrapUp,
)
from routing.context import context_for
from routing.engine.events import CommandRejected, Event, Queued
from routing.host import arrivals
from routing.host.errors import DecisionRefused, LostLeadership, RebuildFailed
from routing.host.leader import Leader
from routing.host.rebuild import refresh_agent, restore_held, sync_queues
from routing.host.transfer import transfer
from routing.rules import RuleSet
from routing.service import get_version, live_rule_set
from switchboard import events as bus

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


async def handle(leader: Leader, raw: dict[str, Any]) -> None:
    """Run one command from the stream; reply if the sender waits. Only LostLeadership escapes."""
    log.debug("routing engine: command %s", raw)
    try:
        command = commands.parse(raw)
        result = await HANDLERS[type(command)](leader, command)
    except (commands.UnknownCommand, commands.MalformedCommand) as exc:
        result = {"ok": False, "reason": str(exc)}
    except (KeyError, ValueError) as exc:
        result = {"ok": False, "reason": f"malformed command: {exc}"}
    except (LostLeadership, RebuildFailed):
        raise
    except DecisionRefused as exc:
        result = {"ok": False, "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one bad command must not wedge the stream
        log.exception("routing engine: command %s failed", raw.get("type"))
        result = {"ok": False, "reason": f"internal error: {type(exc).__name__}"}
    if raw.get("reply"):
        await commands.reply(leader.host.client, raw.get("request_id", ""), result)


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
        await leader.host.publisher.publish_many(
            [(bus.agent_topic(agent_id), {"type": "assigned", "interaction_id": interaction_id})]
        )
    return {"ok": True}


@handles(AgentChanged)
async def _agent_changed(leader: Leader, command: AgentChanged) -> Result:
    agent_id = command.agent_id

    async def change(session: AsyncSession) -> list[Event]:
        return await refresh_agent(session, leader.floor, agent_id, leader.host.clock())

    await leader.apply_in_session(change, context=f"agent {agent_id}")
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
        await sync_queues(session, leader.floor)  # a new version may use a queue added since
        rule_set = await live_rule_set(session, partition=leader.host.partition)
    if rule_set is not None:
        leader.engine.set_rule_set(rule_set)
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
    """Dry-run against the live engine: filter, step, queue, priority and ranked agents."""
    context = dict(command.context or {})
    if command.interaction_id:
        async with leader.host.db.sessionmaker() as session:
            it = await session.get(Interaction, uuid.UUID(command.interaction_id))
            if it is None:
                return {"ok": False, "reason": "unknown interaction"}
            context = {**await context_for(session, it), **context}
    try:
        return {"ok": True, "explanation": leader.engine.explain(context, leader.host.clock())}
    except ValueError as exc:
        return {"ok": False, "reason": str(exc)}

"""Putting a rule-set version live, and moving waiting work to it: what the JSON routes and the rules
editor's pages both call. Each change commits with its audit entry, then tells the running engine
(``RuleSetPublished``: it re-reads the live version; no restart). The notice is best effort: with
Redis down the change is still made (SQL is the truth) and the engine finds it on its next
reconcile pass, so the supervisor is told it is live, not a 503 for a change that was saved."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from routing import actions, service
from routing.lease import LeaseManager
from routing.models import RuleSetVersion
from switchboard import commands
from switchboard.audit import record_audit
from switchboard.auth.models import User
from switchboard.errors import Conflict, Invalid, StillProcessing


async def publish(
    session: AsyncSession, engine: actions.EngineLink, *, version: int, actor: User
) -> RuleSetVersion:
    """Make ``version`` live (audited in the same transaction), then tell the engine."""
    row = await service.publish(session, version=version, actor_id=actor.id)
    await session.commit()
    await commands.notify_rules_changed(engine.redis)
    return row


async def rollback(
    session: AsyncSession, engine: actions.EngineLink, *, to_version: int, actor: User
) -> RuleSetVersion:
    """Put an earlier published version live again (audited), then tell the engine."""
    row = await service.rollback(session, to_version=to_version, actor_id=actor.id)
    await session.commit()
    await commands.notify_rules_changed(engine.redis)
    return row


async def preview(session: AsyncSession, engine: actions.EngineLink, *, version: int) -> list[dict[str, Any]]:
    """Which waiting interactions would move (queue, filter, step, priority) if ``version`` were
    live and waiting work re-evaluated. Changes nothing."""
    row = await service.get_version(session, version=version)
    problems = await service.check_rule_set(session, row.body)
    await session.commit()  # hold no transaction while the engine works (SQLite's lock is global)
    if problems:
        raise Invalid("This version is invalid against the current queues and skills", field="version")
    reply = await actions.call_engine(engine, commands.PreviewRules(version=version))
    actions.verdict(reply, subject="Cannot preview")
    moves: list[dict[str, Any]] = reply["moves"]
    return moves


async def reevaluate(session: AsyncSession, engine: actions.EngineLink, *, actor: User) -> int:
    """Re-route waiting work with the live version (explicitly: publishing alone never moves it);
    each interaction keeps its place in line. Audited; returns how many moved."""
    await session.commit()
    if await LeaseManager(engine.redis).current_holder() is None:
        # Nothing routes in memory now. The next leader keeps waiting work on its pinned version
        # (a take-over never moves work silently), so there is nothing to re-evaluate yet: a state
        # conflict the supervisor can resolve by retrying, not a server fault.
        raise Conflict(
            "No routing engine is running; waiting work stays on the rule-set version that routed "
            "it. Re-evaluate once an engine is running."
        )
    try:
        reply = await actions.call_engine(engine, commands.Reevaluate(), owner=actor.id)
    except StillProcessing as later:
        # Asked for, and it may still happen: the request is on record now, its count unknown.
        await _audit_reevaluation(session, actor, {"moved": None, "status_url": later.status_url})
        raise
    actions.verdict(reply, subject="Cannot re-evaluate")
    moved = int(reply.get("moved", 0))
    await _audit_reevaluation(session, actor, {"moved": moved})
    return moved


async def _audit_reevaluation(session: AsyncSession, actor: User, data: dict[str, Any]) -> None:
    record_audit(
        session,
        actor_id=actor.id,
        action="rule_set.reevaluated",
        entity_type="rule_set",
        entity_id=f"{service.DEFAULT_PARTITION}:{await service.live_version_number(session)}",
        data=data,
    )
    await session.commit()

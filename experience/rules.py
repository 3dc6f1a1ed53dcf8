"""Alert rules: validated in the routing condition language, versioned, audited, seeded.

A condition is compiled against the schema of its rule's signal kind (``experience.signals``), so
an unknown attribute or a type mismatch is refused with its column, exactly as the routing rules
editor reports it (``routing.rules.condition_problem``).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from experience.models import AlertRule, OwnerRole, SignalKind
from experience.schemas import AlertRuleCreate, AlertRuleUpdate
from experience.signals import SCHEMAS
from routing.conditions import Condition, ConditionError
from routing.rules import condition_problem
from switchboard.audit import record_audit
from switchboard.db import utcnow
from switchboard.errors import Conflict, Invalid, NotFound

# The rules the bank ships with (issue #12); seeded once, then theirs to edit or disable.
DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {
        "seed_key": "unhappy-gold-customer",
        "name": "Unhappy gold or platinum customer",
        "signal": SignalKind.FEEDBACK,
        "condition": 'customer.tier in ["gold", "platinum"] and '
        "(feedback.csat <= 2 or (feedback.has_nps and feedback.nps <= 6))",
        "owner_role": OwnerRole.TEAM_LEAD,
        "escalation_role": OwnerRole.RELATIONSHIP_MANAGER,
        "due_minutes": 24 * 60,
    },
    {
        "seed_key": "repeat-contact-48h",
        "name": "Repeat contact within 48 hours on the same topic",
        "signal": SignalKind.REPEAT_CONTACT,
        "condition": "repeat.hours_since_same_topic <= 48",
        "owner_role": OwnerRole.TEAM_LEAD,
        "escalation_role": OwnerRole.QUEUE_OWNER,
        "due_minutes": 48 * 60,
    },
    {
        "seed_key": "service-level-15min",
        "name": "Service level below target for 15 minutes",
        "signal": SignalKind.SERVICE_LEVEL,
        "condition": "queue.offered >= 1 and queue.service_level < queue.sl_target",
        "owner_role": OwnerRole.QUEUE_OWNER,
        "escalation_role": OwnerRole.SUPERVISORS,
        "due_minutes": 60,
    },
    {
        "seed_key": "negative-ex-shift",
        "name": "Agent's EX pulse negative three times in a shift",
        "signal": SignalKind.EX_PULSE,
        "condition": "pulse.negative_in_shift >= 3",
        "owner_role": OwnerRole.TEAM_LEAD,
        "escalation_role": OwnerRole.SUPERVISORS,
        "due_minutes": 24 * 60,
    },
    {
        "seed_key": "vulnerable-abandon",
        "name": "Vulnerable or senior customer abandoned",
        "signal": SignalKind.ABANDON,
        "condition": "customer.vulnerable or customer.senior",
        "owner_role": OwnerRole.RELATIONSHIP_MANAGER,
        "escalation_role": OwnerRole.QUEUE_OWNER,
        "due_minutes": 4 * 60,
    },
)

_AUDITED = ("name", "condition", "owner_role", "escalation_role", "due_minutes", "enabled")


def compile_rule(signal: SignalKind, condition: str) -> Condition:
    """The compiled condition; raises ``Invalid`` naming ``condition`` with the column."""
    try:
        return Condition(condition, SCHEMAS[signal])
    except ConditionError as exc:
        problem = condition_problem("condition", condition, exc)
        raise Invalid(
            f"The condition is invalid: {problem.message}",
            errors=[{"field": "condition", "message": problem.message, "column": exc.pos + 1}],
        ) from exc


def attributes(signal: SignalKind) -> list[str]:
    """The attribute names a condition over ``signal`` may use (the editor's hint)."""
    schema = SCHEMAS[signal]
    return sorted(schema.attrs) + [f"{prefix}.<name>" for prefix in sorted(schema.maps)]


def _snapshot(rule: AlertRule) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in _AUDITED}


async def seed_default_rules(session: AsyncSession) -> int:
    """Insert the shipped rules that are missing (by ``seed_key``); safe to run at every start-up,
    in any number of processes at once. Returns how many were added."""
    present = set(await session.scalars(select(AlertRule.seed_key).where(AlertRule.seed_key.is_not(None))))
    added = 0
    for spec in DEFAULT_RULES:
        if spec["seed_key"] in present:
            continue
        compile_rule(spec["signal"], spec["condition"])  # a shipped rule must compile
        try:
            async with session.begin_nested():
                session.add(AlertRule(**spec))
            added += 1
        except IntegrityError:  # another process seeded it (or a hand-made rule took the name)
            continue
    await session.commit()
    return added


async def list_rules(session: AsyncSession) -> list[AlertRule]:
    return list(await session.scalars(select(AlertRule).order_by(AlertRule.created_at, AlertRule.name)))


async def get_rule(session: AsyncSession, rule_id: uuid.UUID) -> AlertRule:
    rule = await session.get(AlertRule, rule_id)
    if rule is None:
        raise NotFound(f"No alert rule {rule_id}", field="rule_id")
    return rule


async def _name_free(session: AsyncSession, name: str, rule_id: uuid.UUID | None = None) -> None:
    other = await session.scalar(select(AlertRule.id).where(AlertRule.name == name))
    if other is not None and other != rule_id:
        raise Conflict(f"An alert rule is already called {name!r}", field="name")


async def create_rule(session: AsyncSession, data: AlertRuleCreate, *, actor_id: uuid.UUID) -> AlertRule:
    compile_rule(data.signal, data.condition)
    await _name_free(session, data.name)
    rule = AlertRule(**data.model_dump(), updated_by_id=actor_id)
    session.add(rule)
    await session.flush()
    record_audit(
        session,
        actor_id=actor_id,
        action="alert_rule.create",
        entity_type="alert_rule",
        entity_id=rule.id,
        after={**_snapshot(rule), "signal": rule.signal, "version": rule.version},
    )
    return rule


async def update_rule(
    session: AsyncSession, rule_id: uuid.UUID, data: AlertRuleUpdate, *, actor_id: uuid.UUID
) -> AlertRule:
    rule = await session.get(AlertRule, rule_id, with_for_update=True)
    if rule is None:
        raise NotFound(f"No alert rule {rule_id}", field="rule_id")
    if data.version != rule.version:
        raise Conflict(
            f"The rule changed since you read it (version {rule.version} now)",
            field="version",
            current=rule.version,
        )
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    changes = {k: v for k, v in changes.items() if v is not None and v != getattr(rule, k)}
    if not changes:
        return rule
    if "condition" in changes:
        compile_rule(rule.signal, changes["condition"])
    if "name" in changes:
        await _name_free(session, changes["name"], rule.id)
    before = {k: getattr(rule, k) for k in changes}
    for name, value in changes.items():
        setattr(rule, name, value)
    rule.version += 1
    rule.updated_by_id = actor_id
    rule.updated_at = utcnow()
    record_audit(
        session,
        actor_id=actor_id,
        action="alert_rule.update",
        entity_type="alert_rule",
        entity_id=rule.id,
        data={"version": rule.version},
        before=before,
        after=changes,
    )
    await session.flush()
    return rule

"""What refuses a delete, from the layers above workforce: the live routing rules, interactions
and customer portfolios that name a queue, a skill or an agent (the console sits above them all)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Customer
from interactions.models import Interaction
from routing.models import Offer
from routing.rules import RuleSet
from routing.service import live_rule_set


def _steps(rules: RuleSet) -> list[Any]:
    return [step for f in [*rules.filters, rules.default_filter] for step in f.steps]


async def queue_in_rules(session: AsyncSession, row: Any) -> str | None:
    rules = await live_rule_set(session)
    if rules is None:
        return None
    named = rules.on_final_timeout == row.name or any(step.queue == row.name for step in _steps(rules))
    return f"the live rule set (version {rules.version}) routes to it" if named else None


async def queue_has_interactions(session: AsyncSession, row: Any) -> str | None:
    count = await session.scalar(select(func.count()).where(Interaction.queue_id == row.id))
    return (
        f"{count} interaction{'s' if count != 1 else ''} belong to it (their history would lose it)"
        if count
        else None
    )


async def skill_in_rules(session: AsyncSession, row: Any) -> str | None:
    rules = await live_rule_set(session)
    if rules is None:
        return None
    for step in _steps(rules):
        if row.name in step.required_skills or f"skills.{row.name}" in (step.target or ""):
            return f"the live rule set (version {rules.version}) requires it"
    return None


async def agent_has_interactions(session: AsyncSession, row: Any) -> str | None:
    count = await session.scalar(select(func.count()).where(Interaction.agent_id == row.id))
    return f"{count} interaction{'s' if count != 1 else ''} were handled by them" if count else None


async def agent_has_offers(session: AsyncSession, row: Any) -> str | None:
    count = await session.scalar(select(func.count()).where(Offer.agent_id == row.id))
    return f"{count} offer{'s were' if count != 1 else ' was'} made to them" if count else None


async def agent_has_portfolio(session: AsyncSession, row: Any) -> str | None:
    count = await session.scalar(select(func.count()).where(Customer.relationship_manager_id == row.id))
    return f"they manage {count} customer{'s' if count != 1 else ''}" if count else None

"""The demo bank's routing: its queues, skills, overflow and the rule set a fresh demo publishes.

A bank writes its own rule set in the console; this one shows what the rules can express (a
relationship manager first, seniors to someone who speaks their language, fraud jumping the line).
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from routing import service as routing_service
from routing.models import RuleSetVersion
from routing.rules import Filter, RuleSet, Step
from workforce.models import SelectionStrategy

DEMO_QUEUES = ("retail", "cards", "mortgages", "private-banking", "seniors", "collections")
DEMO_SKILLS = (
    "retail_banking",
    "cards",
    "card_fraud",
    "mortgages",
    "loans",
    "private_banking",
    "wealth",
    "seniors_care",
    "collections",
    "complaints",
)
DEMO_OVERFLOW: dict[str, str | None] = {
    "private-banking": "retail",
    "seniors": "retail",
    "cards": "retail",
    "mortgages": "retail",
    "collections": "retail",
    "retail": None,
}

_NOT_ENGLISH = 'customer.language != "en" and customer.language != ""'

DEFAULT_RULE_SET = RuleSet(
    version=1,
    filters=[
        Filter(
            name="private-banking",
            when='customer.tier == "platinum" or "private-banking" in customer.segments',
            steps=[
                # Their relationship manager first, briefly, and only if they are reachable.
                Step(
                    queue="private-banking",
                    preferred="relationship_manager",
                    required=True,
                    skip_if_unavailable=True,
                    priority=6,
                    timeout_seconds=30,
                ),
                Step(
                    queue="private-banking",
                    priority=6,
                    required_skills={"private_banking": 4},
                    order_by=SelectionStrategy.BEST_PROFICIENCY,
                    timeout_seconds=90,
                ),
                Step(
                    queue="private-banking",
                    priority=6,
                    required_skills={"private_banking": 1},
                    timeout_seconds=240,
                ),
                Step(queue="retail", priority=7, timeout_seconds=None),
            ],
        ),
        Filter(
            name="seniors-own-language",
            when=f'("senior" in customer.segments or customer.vulnerable) and {_NOT_ENGLISH}',
            steps=[
                # A short path to a person who speaks their language, then anyone who can help.
                Step(
                    queue="seniors",
                    priority=8,
                    target="customer.language in languages",
                    required_skills={"seniors_care": 1},
                    skip_if_unavailable=True,
                    timeout_seconds=20,
                ),
                Step(queue="seniors", priority=8, required_skills={"seniors_care": 1}, timeout_seconds=60),
                Step(queue="retail", priority=9, timeout_seconds=None),
            ],
        ),
        Filter(
            name="seniors",
            when='"senior" in customer.segments or customer.vulnerable',
            steps=[
                Step(queue="seniors", priority=8, required_skills={"seniors_care": 1}, timeout_seconds=60),
                Step(queue="retail", priority=9, timeout_seconds=None),
            ],
        ),
        Filter(
            name="card-fraud",
            when='interaction.topic == "card_fraud"',
            steps=[
                Step(queue="cards", priority=7, required_skills={"card_fraud": 3}, timeout_seconds=45),
                Step(queue="cards", priority=8, required_skills={"cards": 1}, timeout_seconds=None),
            ],
        ),
        Filter(
            name="cards",
            when='interaction.topic == "cards"',
            steps=[
                Step(queue="cards", priority=3, timeout_seconds=180),
                Step(queue="retail", priority=4, timeout_seconds=None),
            ],
        ),
        Filter(
            name="mortgages",
            when='interaction.topic in ["mortgages", "loans"]',
            steps=[
                Step(queue="mortgages", priority=3, required_skills={"mortgages": 3}, timeout_seconds=120),
                Step(queue="mortgages", priority=4, timeout_seconds=None),
            ],
        ),
        Filter(
            name="collections",
            when='interaction.topic == "collections"',
            steps=[Step(queue="collections", priority=2, timeout_seconds=None)],
        ),
        Filter(
            name="own-language",
            when=_NOT_ENGLISH,
            steps=[
                Step(
                    queue="retail",
                    priority=1,
                    target="customer.language in languages",
                    skip_if_unavailable=True,
                    timeout_seconds=30,
                ),
                Step(queue="retail", priority=1, timeout_seconds=None),
            ],
        ),
    ],
    default_filter=Filter(name="default", steps=[Step(queue="retail", priority=1, timeout_seconds=None)]),
    on_final_timeout="callback",
)


async def ensure_default_rule_set(session: AsyncSession, *, actor_id: uuid.UUID | None = None) -> bool:
    """Publish the demo bank's rule set when no rule set exists yet (a fresh demo install)."""
    if await session.scalar(select(func.count()).select_from(RuleSetVersion)):
        return False
    body = DEFAULT_RULE_SET.model_dump(mode="json", exclude={"version"})
    draft = await routing_service.create_draft(
        session, body=body, comment="The demo bank's rule set", actor_id=actor_id
    )
    await routing_service.publish(session, version=draft.version, actor_id=actor_id)
    return True

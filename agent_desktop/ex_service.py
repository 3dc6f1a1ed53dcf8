"""EX pulse: record how an interaction or a shift felt for the agent, and summarise it for supervisors.

Plain async functions (session first, keyword-only, no FastAPI). Supervisors only ever get
averages and counts per queue, team or day, never a row per agent: the pulse is honest only if
agents trust it is not a performance review.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from interactions.models import Interaction
from interactions.pulse_models import AgentPulse, PulseKind
from interactions.states import State
from switchboard.db import utcnow
from switchboard.errors import Conflict, Invalid, NotFound
from workforce.models import Agent, Queue

PULSE_TAGS: tuple[str, ...] = (
    "system slow",
    "angry customer",
    "missing information",
    "process unclear",
    "great teamwork",
)
MAX_COMMENT = 1000
MAX_RANGE_DAYS = 366
GroupBy = Literal["queue", "team", "day"]


def _check_scale(value: int, *, field_name: str, label: str) -> None:
    if not 1 <= value <= 5:
        raise Invalid(f"{label} is 1 to 5", field=field_name)


def _clean_tags(tags: list[str]) -> list[str]:
    for i, tag in enumerate(tags):
        if tag not in PULSE_TAGS:
            raise Invalid(f"Unknown tag {tag!r}; use one of: {', '.join(PULSE_TAGS)}", field=f"tags[{i}]")
    return list(dict.fromkeys(tags))  # a double click on a tag must not count it twice


def _clean_comment(comment: str | None) -> str | None:
    text = (comment or "").strip()
    if len(text) > MAX_COMMENT:
        raise Invalid(f"A comment is at most {MAX_COMMENT} characters", field="comment")
    return text or None


async def record_interaction_pulse(
    session: AsyncSession,
    *,
    agent: Agent,
    interaction_id: uuid.UUID,
    score: int,
    tags: list[str],
    comment: str | None = None,
) -> AgentPulse:
    """The agent's one-click rating of an interaction they completed (once per interaction)."""
    _check_scale(score, field_name="score", label="A rating")
    clean_tags = _clean_tags(tags)
    clean_comment = _clean_comment(comment)
    interaction = await session.scalar(
        select(Interaction).where(
            Interaction.id == interaction_id,
            Interaction.agent_id == agent.id,
            Interaction.state == State.COMPLETED,
        )
    )
    if interaction is None:
        raise NotFound("No completed interaction of yours with this id", field="interaction_id")
    already = await session.scalar(
        select(AgentPulse.id).where(
            AgentPulse.agent_id == agent.id, AgentPulse.interaction_id == interaction_id
        )
    )
    if already is not None:
        raise Conflict("You have already rated this interaction", field="interaction_id")
    queue_name = (
        await session.scalar(select(Queue.name).where(Queue.id == interaction.queue_id))
        if interaction.queue_id
        else None
    )
    now = utcnow()
    pulse = AgentPulse(
        agent_id=agent.id,
        interaction_id=interaction_id,
        kind=PulseKind.INTERACTION,
        score=score,
        tags=clean_tags,
        comment=clean_comment,
        queue=queue_name,
        team=_team(agent),
        day=now.date(),
        created_at=now,
    )
    session.add(pulse)
    await session.flush()
    return pulse


async def record_shift_checkin(
    session: AsyncSession, *, agent: Agent, energy: int, workload: int, comment: str | None = None
) -> AgentPulse:
    """End-of-shift check-in: energy (stored as the score) and workload, 1-5 each, and free text."""
    _check_scale(energy, field_name="energy", label="Energy")
    _check_scale(workload, field_name="workload", label="Workload")
    now = utcnow()
    pulse = AgentPulse(
        agent_id=agent.id,
        interaction_id=None,
        kind=PulseKind.SHIFT,
        score=energy,
        workload=workload,
        tags=[],
        comment=_clean_comment(comment),
        queue=None,  # a shift spans queues
        team=_team(agent),
        day=now.date(),
        created_at=now,
    )
    session.add(pulse)
    await session.flush()
    return pulse


def _team(agent: Agent) -> str | None:
    # An agent's first team is their home team (the demo bank lists exactly one).
    return agent.teams[0] if agent.teams else None


# ------------------------------------------------------------------ supervisor summary


@dataclass
class PulseGroup:
    key: str | None
    interaction_count: int = 0
    average_rating: float | None = None
    tags: dict[str, int] = field(default_factory=dict)
    shift_count: int = 0
    average_energy: float | None = None
    average_workload: float | None = None


def _round(value: float | None) -> float | None:
    return round(float(value), 2) if value is not None else None


async def pulse_summary(
    session: AsyncSession, *, start: date, end: date, group_by: GroupBy
) -> list[PulseGroup]:
    """Averages and counts per group over ``start``..``end`` (inclusive days, UTC)."""
    if end < start:
        raise Invalid("'to' is before 'from'", field="to")
    if end - start > timedelta(days=MAX_RANGE_DAYS):
        raise Invalid(f"At most {MAX_RANGE_DAYS} days at a time", field="to")
    column = {"queue": AgentPulse.queue, "team": AgentPulse.team, "day": AgentPulse.day}[group_by]
    in_range = (AgentPulse.day >= start, AgentPulse.day <= end)
    rows = await session.execute(
        select(
            column,
            AgentPulse.kind,
            func.count(),
            func.avg(AgentPulse.score),
            func.avg(AgentPulse.workload),
        )
        .where(*in_range)
        .group_by(column, AgentPulse.kind)
    )
    groups: dict[str | None, PulseGroup] = {}
    for key, kind, count, avg_score, avg_workload in rows.all():
        name = key.isoformat() if isinstance(key, date) else key
        group = groups.setdefault(name, PulseGroup(key=name))
        if kind is PulseKind.INTERACTION:
            group.interaction_count, group.average_rating = int(count), _round(avg_score)
        else:
            group.shift_count = int(count)
            group.average_energy, group.average_workload = _round(avg_score), _round(avg_workload)
    # Tags are JSON arrays: counted here rather than with per-dialect JSON functions (a day's
    # pulses are a few thousand short rows at most).
    tag_rows = await session.execute(
        select(column, AgentPulse.tags).where(*in_range, AgentPulse.kind == PulseKind.INTERACTION)
    )
    counters: dict[str | None, Counter[str]] = defaultdict(Counter)
    for key, tags in tag_rows.all():
        counters[key.isoformat() if isinstance(key, date) else key].update(tags or [])
    for name, counter in counters.items():
        if name in groups:
            groups[name].tags = dict(sorted(counter.items()))
    return sorted(groups.values(), key=lambda g: (g.key is None, g.key or ""))

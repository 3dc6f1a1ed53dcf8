"""Adherence for a day, read from SQL: the published shifts (``workforce.schedule_models``) and
the presence log (``workforce.presence_log``), judged by ``workforce.adherence``."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from workforce.adherence import (
    ACTUAL,
    AgentAdherence,
    PublishedShift,
    actual_spans,
    adherence,
    planned_spans,
    scheduled_at,
)
from workforce.models import Agent, Presence
from workforce.presence_log import presence_stretches
from workforce.schedule_models import Schedule, ScheduledShift, ScheduleStatus


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _published(row: ScheduledShift) -> PublishedShift:
    breaks = tuple(
        (datetime.fromisoformat(start), datetime.fromisoformat(end)) for start, end in (row.breaks or [])
    )
    return PublishedShift(start=row.start, end=row.end, breaks=breaks)


async def published_shifts(
    session: AsyncSession, *, since: datetime, until: datetime, agent_ids: list[uuid.UUID] | None = None
) -> dict[uuid.UUID, list[PublishedShift]]:
    """Each agent's published shifts overlapping [since, until)."""
    query = (
        select(ScheduledShift)
        .join(Schedule, Schedule.id == ScheduledShift.schedule_id)
        .where(
            Schedule.status == ScheduleStatus.PUBLISHED,
            ScheduledShift.start < until,
            ScheduledShift.end > since,
        )
        .order_by(ScheduledShift.start)
    )
    if agent_ids is not None:
        query = query.where(ScheduledShift.agent_id.in_(agent_ids))
    shifts: dict[uuid.UUID, list[PublishedShift]] = {}
    for row in (await session.scalars(query)).all():
        shifts.setdefault(row.agent_id, []).append(_published(row))
    return shifts


async def day_adherence(
    session: AsyncSession, *, day: date, now: datetime, team: str | None = None
) -> list[AgentAdherence]:
    """Every agent with a published shift that day (or in ``team``), judged from the day's start
    to now (or the day's end, for a past day)."""
    since, end = day_bounds(day)
    until = min(end, now)
    if until <= since:
        return []
    shifts = await published_shifts(session, since=since, until=end)
    agents = (
        (
            await session.execute(
                select(Agent.id, Agent.display_name, Agent.teams).where(Agent.id.in_(list(shifts)))
            )
        ).all()
        if shifts
        else []
    )
    if team is not None:
        agents = [a for a in agents if team in (a.teams or [])]
    stretches = await presence_stretches(session, [a.id for a in agents], since=since, until=until)
    rows = []
    for agent in agents:
        planned = planned_spans(shifts[agent.id])
        actual = actual_spans(stretches.get(agent.id, []))
        doing = actual[-1].activity if actual else ACTUAL[Presence.OFFLINE]
        asked, _ = scheduled_at(planned, until)
        rows.append(
            AgentAdherence(
                agent_id=agent.id,
                name=agent.display_name,
                teams=tuple(agent.teams or ()),
                result=adherence(planned, actual, since=since, now=until),
                doing=doing,
                asked=asked,
            )
        )
    return sorted(rows, key=lambda r: (r.result.out_since is None, r.name))

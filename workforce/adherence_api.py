"""``GET /api/workforce/adherence``: each scheduled agent's adherence and conformance for a day,
per team too, and who is out of adherence now (supervisors)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from switchboard.db import utcnow
from switchboard.deps import DbSession, RequireSupervisor
from switchboard.errors import Invalid
from workforce.adherence import Adherence, AgentAdherence, out_of_adherence, team_figures
from workforce.adherence_service import day_adherence

router = APIRouter(tags=["workforce"])
MAX_DAYS_BACK = 366


class AdherenceFigures(BaseModel):
    scheduled_minutes: float
    in_adherence_minutes: float
    adherence: float | None
    scheduled_on_queue_minutes: float
    on_queue_minutes: float
    conformance: float | None

    @classmethod
    def of(cls, r: Adherence) -> AdherenceFigures:
        return cls(
            scheduled_minutes=r.scheduled.total_seconds() / 60,
            in_adherence_minutes=r.in_adherence.total_seconds() / 60,
            adherence=r.adherence,
            scheduled_on_queue_minutes=r.scheduled_on_queue.total_seconds() / 60,
            on_queue_minutes=r.on_queue.total_seconds() / 60,
            conformance=r.conformance,
        )


class AgentAdherenceOut(BaseModel):
    agent_id: uuid.UUID
    name: str
    teams: list[str]
    figures: AdherenceFigures
    scheduled_now: str
    doing_now: str
    out_of_adherence_minutes: float | None  # beyond the grace; None when in adherence

    @classmethod
    def of(cls, row: AgentAdherence, now: datetime) -> AgentAdherenceOut:
        lasted = out_of_adherence(row.result, now)
        return cls(
            agent_id=row.agent_id,
            name=row.name,
            teams=list(row.teams),
            figures=AdherenceFigures.of(row.result),
            scheduled_now=row.asked.value,
            doing_now=row.doing.value,
            out_of_adherence_minutes=lasted.total_seconds() / 60 if lasted is not None else None,
        )


class AdherenceDay(BaseModel):
    day: date
    agents: list[AgentAdherenceOut]
    teams: dict[str, AdherenceFigures]


def checked_day(day: date | None, now: datetime) -> date:
    today = now.date()
    if day is None:
        return today
    if day > today or day < today - timedelta(days=MAX_DAYS_BACK):
        raise Invalid(f"A day from {MAX_DAYS_BACK} days ago to today", field="query.day")
    return day


async def read_day(
    session: DbSession, *, day: date | None, team: str | None
) -> tuple[AdherenceDay, datetime]:
    now = utcnow()
    the_day = checked_day(day, now)
    rows = await day_adherence(session, day=the_day, now=now, team=team)
    until = min(now, datetime.combine(the_day + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo))
    return (
        AdherenceDay(
            day=the_day,
            agents=[AgentAdherenceOut.of(r, until) for r in rows],
            teams={name: AdherenceFigures.of(f) for name, f in team_figures(rows).items()},
        ),
        now,
    )


@router.get("/api/workforce/adherence", response_model=AdherenceDay)
async def adherence_of_a_day(
    session: DbSession,
    user: RequireSupervisor,
    day: Annotated[date | None, Query(description="UTC day (default: today)")] = None,
    team: Annotated[str | None, Query(max_length=60)] = None,
) -> AdherenceDay:
    """Each agent with a published shift that day: adherence (time in the scheduled activity /
    scheduled time) and conformance (time on queue / scheduled on-queue time) so far, what the
    schedule asks and what they do now, and how long they have been out of adherence beyond a
    5-minute grace; the same sums per team."""
    found, _ = await read_day(session, day=day, team=team or None)
    await session.commit()
    return found

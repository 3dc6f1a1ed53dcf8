"""Supervisors' JSON view of the EX pulse: averages and counts, never individual answers."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from agent_desktop import ex_service
from agent_desktop.ex_schemas import PulseGroupRead, PulseSummaryRead
from switchboard.db import utcnow
from switchboard.deps import DbSession, RequireSupervisor

router = APIRouter(prefix="/api/ex", tags=["ex"])


@router.get("/pulse", response_model=PulseSummaryRead, response_model_by_alias=True)
async def pulse_summary(
    session: DbSession,
    _user: RequireSupervisor,
    from_: Annotated[
        date | None, Query(alias="from", description="First day (UTC), default 6 days ago")
    ] = None,
    to: Annotated[date | None, Query(description="Last day (UTC, inclusive), default today")] = None,
    group_by: Literal["queue", "team", "day"] = "queue",
) -> PulseSummaryRead:
    end = to or utcnow().date()
    start = from_ or end - timedelta(days=6)
    groups = await ex_service.pulse_summary(session, start=start, end=end, group_by=group_by)
    await session.commit()
    return PulseSummaryRead(
        from_=start, to=end, group_by=group_by, groups=[PulseGroupRead(**asdict(g)) for g in groups]
    )

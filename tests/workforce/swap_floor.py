"""A published schedule placed by hand, with agents who sign in, for the swap and time-off tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from switchboard.auth.models import Role
from switchboard.db import Database
from tests.factories import agent_profile
from workforce.schedule_models import AgentContract, Schedule, ScheduledShift, ScheduleStatus

LONDON = ZoneInfo("Europe/London")
# A Monday 8 to 14 days ahead: the shifts have not started whenever the tests run.
_TODAY = datetime.now(UTC).date()
MONDAY = _TODAY + timedelta(days=14 - _TODAY.weekday())
DAYS = 2


def local(day: int, hour: int, minute: int = 0) -> datetime:
    d = MONDAY + timedelta(days=day)
    return datetime(d.year, d.month, d.day, hour, minute, tzinfo=LONDON).astimezone(UTC)


def requirement(spans: list[tuple[int, int, int, int]]) -> list[int]:
    """(day, from hour, to hour, agents) -> agents needed per 15-minute interval."""
    start = local(0, 0)
    need = [0] * (DAYS * 96)
    for slot in range(len(need)):
        at = (start + timedelta(minutes=15 * slot)).astimezone(LONDON)
        for day, first, last, agents in spans:
            if at.date() == MONDAY + timedelta(days=day) and first <= at.hour < last:
                need[slot] = agents
    return need


@dataclass
class Floor:
    schedule_id: uuid.UUID
    agents: dict[str, uuid.UUID]  # name -> agent id
    headers: dict[str, dict[str, str]]  # name -> auth headers
    shifts: dict[str, uuid.UUID]  # label -> shift id


async def published_floor(
    db: Database,
    make_user,
    *,
    need: list[int],
    shifts: dict[str, tuple[str, int, int, int]],  # label -> (agent name, day, from hour, to hour)
    rest_minutes: dict[str, int] | None = None,
) -> Floor:
    names = sorted({agent for agent, *_ in shifts.values()})
    agents, headers = {}, {}
    for name in names:
        user, auth = await make_user(Role.AGENT)
        agents[name] = (await agent_profile(db, user, name=name)).id
        headers[name] = auth
    async with db.sessionmaker() as s:
        schedule = Schedule(
            first_day=MONDAY,
            days=DAYS,
            time_zone="Europe/London",
            status=ScheduleStatus.PUBLISHED,
            requirement=need,
            published_at=datetime.now(UTC),
        )
        s.add(schedule)
        await s.flush()
        for name, minutes in (rest_minutes or {}).items():
            s.add(AgentContract(agent_id=agents[name], min_rest_minutes=minutes, max_minutes_week=40 * 60))
        ids = {}
        for label, (agent, day, first, last) in shifts.items():
            row = ScheduledShift(
                schedule_id=schedule.id,
                agent_id=agents[agent],
                template="day",
                start=local(day, first),
                end=local(day, last),
                breaks=[],
            )
            s.add(row)
            await s.flush()
            ids[label] = row.id
        await s.commit()
        return Floor(schedule.id, agents, headers, ids)

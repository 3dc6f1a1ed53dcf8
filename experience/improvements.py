"""The big loop: follow-ups that share a topic and a cause, across teams, grouped into one
improvement item with a cross-team owner and a status; its age, and the weekly trend."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from experience.models import FollowUp, FollowUpState, Improvement, ImprovementStatus
from experience.schemas import ImprovementCandidate, ImprovementCreate, ImprovementOut, ImprovementUpdate
from switchboard.audit import record_audit
from switchboard.auth.models import Role, User
from switchboard.db import utcnow
from switchboard.errors import Invalid, NotFound
from workforce.models import Agent, Queue

TREND_WEEKS = 8


class Trend(BaseModel):
    """Per week (Monday first): follow-ups raised, those grouped into an item, items still open."""

    weeks: list[str]
    raised: list[int]
    grouped: list[int]
    open_items: list[int]


async def _team_of(session: AsyncSession, follow_ups: list[FollowUp]) -> dict[uuid.UUID, str]:
    """The team each follow-up belongs to: its agent's first team, else its queue, else none."""
    agent_ids = {f.agent_id for f in follow_ups if f.agent_id}
    queue_ids = {f.queue_id for f in follow_ups if f.queue_id}
    teams = {
        aid: (teams[0] if teams else "")
        for aid, teams in (
            await session.execute(select(Agent.id, Agent.teams).where(Agent.id.in_(agent_ids)))
        ).all()
    }
    queues = dict((await session.execute(select(Queue.id, Queue.name).where(Queue.id.in_(queue_ids)))).all())
    out = {}
    for f in follow_ups:
        team = teams.get(f.agent_id, "") if f.agent_id else ""
        out[f.id] = team or (f"queue {queues[f.queue_id]}" if f.queue_id in queues else "")
    return out


async def candidates(session: AsyncSession) -> list[ImprovementCandidate]:
    """Unlinked follow-ups with a cause, grouped by (topic, cause), most follow-ups first."""
    found = list(
        await session.scalars(
            select(FollowUp).where(FollowUp.improvement_id.is_(None), FollowUp.cause.is_not(None))
        )
    )
    team = await _team_of(session, found)
    groups: dict[tuple[str, str], list[FollowUp]] = defaultdict(list)
    for f in found:
        groups[(f.topic, f.cause or "")].append(f)
    out = [
        ImprovementCandidate(
            topic=topic,
            cause=cause,
            follow_ups=len(members),
            teams=len({team[f.id] for f in members if team[f.id]}),
        )
        for (topic, cause), members in groups.items()
    ]
    return sorted(out, key=lambda c: (-c.follow_ups, c.topic, c.cause))


async def describe(
    session: AsyncSession, item: Improvement, *, now: datetime | None = None
) -> ImprovementOut:
    now = now or utcnow()
    members = list(await session.scalars(select(FollowUp).where(FollowUp.improvement_id == item.id)))
    team = await _team_of(session, members)
    end = item.done_at or now
    return ImprovementOut.model_validate(item).model_copy(
        update={
            "follow_ups": len(members),
            "open_follow_ups": sum(1 for f in members if f.state != FollowUpState.RESOLVED),
            "teams": len({t for t in team.values() if t}),
            "age_days": round((end - item.created_at).total_seconds() / 86400, 1),
        }
    )


async def list_improvements(session: AsyncSession, *, include_done: bool = False) -> list[ImprovementOut]:
    query = select(Improvement).order_by(Improvement.created_at)
    if not include_done:
        query = query.where(Improvement.status != ImprovementStatus.DONE)
    return [await describe(session, item) for item in await session.scalars(query)]


async def _check_owner(session: AsyncSession, owner_user_id: uuid.UUID | None) -> None:
    if owner_user_id is None:
        return
    role = await session.scalar(select(User.role).where(User.id == owner_user_id, User.is_active.is_(True)))
    if role not in (Role.SUPERVISOR, Role.ADMIN):
        raise Invalid("The owner must be an active supervisor or admin", field="owner_user_id")


async def create_improvement(
    session: AsyncSession, data: ImprovementCreate, *, actor_id: uuid.UUID
) -> Improvement:
    """A new item, and every unlinked follow-up with its topic and cause linked to it."""
    await _check_owner(session, data.owner_user_id)
    cause = data.cause.strip().lower()
    if not cause:
        raise Invalid("A cause is needed to group follow-ups", field="cause")
    now = utcnow()
    item = Improvement(
        title=data.title.strip(),
        topic=data.topic.strip(),
        cause=cause,
        owner_user_id=data.owner_user_id,
        status=ImprovementStatus.OPEN,
        created_by_id=actor_id,
        created_at=now,
        updated_at=now,
    )
    session.add(item)
    await session.flush()
    linked = await session.execute(
        update(FollowUp)
        .where(FollowUp.improvement_id.is_(None), FollowUp.topic == item.topic, FollowUp.cause == cause)
        .values(improvement_id=item.id)
        .execution_options(synchronize_session=False)
    )
    record_audit(
        session,
        actor_id=actor_id,
        action="improvement.create",
        entity_type="improvement",
        entity_id=item.id,
        data={"follow_ups_linked": getattr(linked, "rowcount", 0)},
        after={
            "title": item.title,
            "topic": item.topic,
            "cause": cause,
            "owner_user_id": str(data.owner_user_id or ""),
        },
    )
    return item


async def update_improvement(
    session: AsyncSession, improvement_id: uuid.UUID, data: ImprovementUpdate, *, actor_id: uuid.UUID
) -> Improvement:
    item = await session.get(Improvement, improvement_id, with_for_update=True)
    if item is None:
        raise NotFound(f"No improvement item {improvement_id}", field="improvement_id")
    changes = data.model_dump(exclude_unset=True)
    if "owner_user_id" in changes:
        await _check_owner(session, data.owner_user_id)
    changes = {
        k: v for k, v in changes.items() if v != getattr(item, k) and (v is not None or k == "owner_user_id")
    }
    if not changes:
        return item
    before = {k: str(getattr(item, k)) if getattr(item, k) is not None else None for k in changes}
    for name, value in changes.items():
        setattr(item, name, value)
    now = utcnow()
    item.updated_at = now
    if "status" in changes:
        item.done_at = now if item.status == ImprovementStatus.DONE else None
    record_audit(
        session,
        actor_id=actor_id,
        action="improvement.update",
        entity_type="improvement",
        entity_id=item.id,
        before=before,
        after={k: str(v) if v is not None else None for k, v in changes.items()},
    )
    await session.flush()
    return item


def _week_start(at: datetime) -> datetime:
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


async def trend(session: AsyncSession, *, now: datetime | None = None, weeks: int = TREND_WEEKS) -> Trend:
    now = now or utcnow()
    starts = [_week_start(now) - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]
    first = starts[0]
    raised = [0] * weeks
    grouped = [0] * weeks
    rows = (
        await session.execute(
            select(FollowUp.created_at, FollowUp.improvement_id).where(FollowUp.created_at >= first)
        )
    ).all()
    for created_at, improvement_id in rows:
        index = min((created_at - first).days // 7, weeks - 1)
        raised[index] += 1
        grouped[index] += improvement_id is not None
    items = (await session.execute(select(Improvement.created_at, Improvement.done_at))).all()
    open_items = []
    for start in starts:
        end = start + timedelta(weeks=1)
        open_items.append(
            sum(1 for created, done in items if created < end and (done is None or done >= end))
        )
    return Trend(
        weeks=[s.date().isoformat() for s in starts], raised=raised, grouped=grouped, open_items=open_items
    )

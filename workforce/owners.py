"""Who answers for a team and a queue: ``teams.lead_user_id`` and ``queues.owner_user_id``, the
owners that alert follow-ups go to (experience/, issue #12). Set by supervisors through
``/api/workforce/teams/{name}/lead`` and ``/api/workforce/queues/{id}/owner`` or the console page
``/supervisor/owners``; both call the functions here, audited in the same transaction."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.audit import record_audit
from switchboard.auth.models import Role, User
from switchboard.deps import DbSession, RequireSupervisor
from switchboard.errors import Invalid, NotFound
from workforce.models import Agent, Queue, Team

router = APIRouter(prefix="/api/workforce", tags=["workforce"])


class TeamRead(BaseModel):
    name: str
    lead_user_id: uuid.UUID | None
    agents: int


class LeadUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lead_user_id: uuid.UUID | None = Field(description="A supervisor or admin; null: no lead")


class OwnerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner_user_id: uuid.UUID | None = Field(description="A supervisor or admin; null: no owner")


async def list_teams(session: AsyncSession) -> list[TeamRead]:
    """Every team named by an agent or with a row of its own, with its lead and head count."""
    counts: dict[str, int] = {}
    for teams in await session.scalars(select(Agent.teams)):
        for name in teams or []:
            counts[name] = counts.get(name, 0) + 1
    leads = {name: lead for name, lead in (await session.execute(select(Team.name, Team.lead_user_id))).all()}
    return [
        TeamRead(name=n, lead_user_id=leads.get(n), agents=counts.get(n, 0))
        for n in sorted({*counts, *leads})
    ]


async def _check_staff(session: AsyncSession, user_id: uuid.UUID | None, field: str) -> None:
    if user_id is None:
        return
    role = await session.scalar(select(User.role).where(User.id == user_id, User.is_active.is_(True)))
    if role not in (Role.SUPERVISOR, Role.ADMIN):
        raise Invalid("Choose an active supervisor or admin", field=field)


async def set_team_lead(
    session: AsyncSession, *, name: str, lead_user_id: uuid.UUID | None, actor: User
) -> Team:
    name = name.strip()
    if not name or len(name) > 60:
        raise Invalid("A team name is 1 to 60 characters", field="name")
    await _check_staff(session, lead_user_id, "lead_user_id")
    team = await session.scalar(select(Team).where(Team.name == name))
    before = team.lead_user_id if team else None
    if team is None:
        team = Team(name=name)
        session.add(team)
    team.lead_user_id = lead_user_id
    await session.flush()
    record_audit(
        session,
        actor_id=actor.id,
        action="team.lead_changed",
        entity_type="team",
        entity_id=team.id,
        data={"team": name},
        before={"lead_user_id": str(before) if before else None},
        after={"lead_user_id": str(lead_user_id) if lead_user_id else None},
    )
    return team


async def set_queue_owner(
    session: AsyncSession, *, queue_id: uuid.UUID, owner_user_id: uuid.UUID | None, actor: User
) -> Queue:
    queue = await session.get(Queue, queue_id)
    if queue is None:
        raise NotFound("No such queue", field="queue_id")
    await _check_staff(session, owner_user_id, "owner_user_id")
    before = queue.owner_user_id
    queue.owner_user_id = owner_user_id
    record_audit(
        session,
        actor_id=actor.id,
        action="queue.owner_changed",
        entity_type="queue",
        entity_id=queue.id,
        data={"queue": queue.name},
        before={"owner_user_id": str(before) if before else None},
        after={"owner_user_id": str(owner_user_id) if owner_user_id else None},
    )
    await session.flush()
    return queue


@router.get("/teams", response_model=list[TeamRead])
async def teams(session: DbSession, user: RequireSupervisor) -> list[TeamRead]:
    found = await list_teams(session)
    await session.commit()
    return found


@router.put("/teams/{name}/lead", response_model=TeamRead)
async def put_team_lead(name: str, body: LeadUpdate, session: DbSession, user: RequireSupervisor) -> TeamRead:
    team = await set_team_lead(session, name=name, lead_user_id=body.lead_user_id, actor=user)
    await session.commit()
    return next(t for t in await list_teams(session) if t.name == team.name)


@router.put("/queues/{queue_id}/owner", response_model=OwnerUpdate)
async def put_queue_owner(
    queue_id: uuid.UUID, body: OwnerUpdate, session: DbSession, user: RequireSupervisor
) -> OwnerUpdate:
    queue = await set_queue_owner(session, queue_id=queue_id, owner_user_id=body.owner_user_id, actor=user)
    await session.commit()
    return OwnerUpdate(owner_user_id=queue.owner_user_id)

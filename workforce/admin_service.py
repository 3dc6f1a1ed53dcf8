"""Administration of the floor's people and structure: skills, teams, queues and agents.

Each is a ``switchboard.crud`` service: checks that need the database (names taken, skills and
teams that exist, a user who may work as an agent) raise before anything is written, naming the
field. What refuses a delete from this layer is here too (``*_in_use``); the console adds what the
layers above know (interactions, rules, portfolios).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard import commands
from switchboard.auth.models import Role, User
from switchboard.crud import OrmService, json_value
from switchboard.errors import Conflict, Invalid
from workforce.admin_schemas import CHANNELS, AgentWrite, QueueWrite, SkillWrite, TeamWrite
from workforce.models import Agent, AgentSkill, Presence, Queue, Skill, Team


async def _name_free(session: AsyncSession, model: Any, name: str, row: Any) -> None:
    taken = await session.scalar(select(model.id).where(model.name == name))
    if taken is not None and (row is None or taken != row.id):
        raise Conflict(f"The name {name!r} is taken", field="name")


async def _known(session: AsyncSession, model: Any, names: Iterable[str], field: str, what: str) -> None:
    wanted = set(names)
    if not wanted:
        return
    found = set((await session.scalars(select(model.name).where(model.name.in_(wanted)))).all())
    missing = sorted(wanted - found)
    if missing:
        raise Invalid(f"No such {what}: {', '.join(missing)}", field=field)


def _channels(names: Iterable[str], field: str) -> None:
    unknown = sorted(set(names) - set(CHANNELS))
    if unknown:
        raise Invalid(
            f"No such channel: {', '.join(unknown)} (choose from {', '.join(CHANNELS)})", field=field
        )


# ---------------------------------------------------------------------------------------- skills


def read_skill(row: Skill) -> dict[str, Any]:
    return {"id": str(row.id), "name": row.name, "description": row.description}


async def _check_skill(session: AsyncSession, data: SkillWrite, row: Skill | None) -> None:
    await _name_free(session, Skill, data.name, row)


skills = OrmService(Skill, order_by=Skill.name, read=read_skill, check=_check_skill)


async def skill_in_use(session: AsyncSession, row: Skill) -> str | None:
    holders = await session.scalar(select(func.count()).where(AgentSkill.skill_name == row.name))
    queues = [
        q.display_name for q in await session.scalars(select(Queue)) if row.name in (q.required_skills or {})
    ]
    reasons = []
    if holders:
        reasons.append(f"{holders} agent{'s' if holders != 1 else ''} hold it")
    if queues:
        reasons.append(f"queues {', '.join(sorted(queues))} require it")
    return "; ".join(reasons) or None


# ----------------------------------------------------------------------------------------- teams


def read_team(row: Team) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "display_name": row.display_name or row.name,
        "description": row.description,
        "lead_user_id": json_value(row.lead_user_id),
    }


async def _staff(session: AsyncSession, user_id: Any, field: str) -> None:
    if user_id is not None:
        user = await session.get(User, user_id)
        if user is None or user.role is Role.CUSTOMER:
            raise Invalid("No such staff user", field=field)


async def _check_team(session: AsyncSession, data: TeamWrite, row: Team | None) -> None:
    await _name_free(session, Team, data.name, row)
    await _staff(session, data.lead_user_id, "lead_user_id")


teams = OrmService(Team, order_by=Team.display_name, read=read_team, check=_check_team)


async def team_in_use(session: AsyncSession, row: Team) -> str | None:
    members = sum(1 for t in await session.scalars(select(Agent.teams)) if row.name in (t or ()))
    return f"{members} agent{'s are' if members != 1 else ' is'} in it" if members else None


# ---------------------------------------------------------------------------------------- queues


def read_queue(row: Queue) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "display_name": row.display_name,
        "channels": list(row.channels or []),
        "sl_target_percent": row.sl_target_percent,
        "sl_threshold_seconds": row.sl_threshold_seconds,
        "offer_timeout_seconds": row.offer_timeout_seconds,
        "wrap_up_seconds": row.wrap_up_seconds,
        "offer_policy": json_value(row.offer_policy),
        "strategy": json_value(row.strategy),
        "required_skills": dict(row.required_skills or {}),
        "owner_user_id": json_value(row.owner_user_id),
    }


async def _check_queue(session: AsyncSession, data: QueueWrite, row: Queue | None) -> None:
    await _name_free(session, Queue, data.name, row)
    _channels(data.channels, "channels")
    await _known(session, Skill, data.required_skills, "required_skills", "skill")
    await _staff(session, data.owner_user_id, "owner_user_id")


queues = OrmService(Queue, order_by=Queue.display_name, read=read_queue, check=_check_queue)


def queue_notices(row: Queue) -> list[commands.Command]:
    # The engine re-reads the queues and which agents now qualify for them (required skills).
    return [commands.QueuesChanged()]


# ---------------------------------------------------------------------------------------- agents


def read_agent(row: Agent) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "user_id": str(row.user_id),
        "display_name": row.display_name,
        "languages": list(row.languages or []),
        "teams": list(row.teams or []),
        "skills": dict(sorted(row.skill_levels().items())),
        "channel_max": dict(row.channel_max or {}),
        "presence": json_value(row.presence),
    }


async def _check_agent(session: AsyncSession, data: AgentWrite, row: Agent | None) -> None:
    if row is None:
        await _staff(session, data.user_id, "user_id")
        user = await session.get(User, data.user_id)
        if await session.scalar(select(Agent.id).where(Agent.user_id == data.user_id)) is not None:
            raise Conflict(
                f"{user.username if user else 'This user'} already has an agent profile", field="user_id"
            )
    await _known(session, Skill, data.skills, "skills", "skill")
    await _known(session, Team, data.teams, "teams", "team")
    _channels(data.channel_max, "channel_max")


def _apply_agent(row: Agent, data: AgentWrite) -> None:
    if row.user_id is None:
        row.user_id = data.user_id
    row.display_name = data.display_name
    row.languages = list(dict.fromkeys(data.languages))
    row.teams = list(dict.fromkeys(data.teams))
    row.channel_max = dict(data.channel_max)
    held = {s.skill_name: s for s in row.skills} if row.id is not None else {}
    kept = []
    for name, level in data.skills.items():
        skill = held.get(name) or AgentSkill(skill_name=name, proficiency=level)
        skill.proficiency = level
        kept.append(skill)
    row.skills = kept  # delete-orphan removes the rest


agents = OrmService(
    Agent, order_by=Agent.display_name, read=read_agent, check=_check_agent, apply=_apply_agent
)


def agent_notices(row: Agent) -> list[commands.Command]:
    # The engine re-reads the agent: skills, limits, teams, and the queues those qualify them for.
    return [commands.AgentChanged(agent_id=str(row.id))]


async def agent_in_use(session: AsyncSession, row: Agent) -> str | None:
    if row.presence is not Presence.OFFLINE:
        return f"{row.display_name} is signed in ({row.presence.value}); delete once they are offline"
    return None

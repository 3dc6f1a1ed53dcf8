"""Every change of an agent's presence, kept: what adherence (time in the scheduled activity) and
occupancy are measured from. ``agents.presence`` holds only the current state; this log holds
when each state began. Written by both writers of presence — the agent's or a supervisor's
change (``routing.actions.set_presence``) and the engine's decisions (``routing.host.persist``) —
in the transaction that changes ``agents``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import ForeignKey, Index, String, Table, and_, delete, func, insert, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import Base, UTCDateTime
from switchboard.pii import MaskedString
from switchboard.types import BigIntPK, str_enum
from workforce.models import Presence


class PresenceChange(Base):
    __tablename__ = "agent_presence_log"
    __table_args__ = (Index("ix_agent_presence_log_agent_at", "agent_id", "at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    presence: Mapped[Presence] = mapped_column(str_enum(Presence))
    reason: Mapped[str | None] = mapped_column(MaskedString(60))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    by: Mapped[str] = mapped_column(String(16), default="agent")  # agent, supervisor, engine


_LOG = cast(Table, PresenceChange.__table__)
_COLUMNS = ("agent_id", "presence", "reason", "at", "by")


async def record_presence(
    session: AsyncSession,
    *,
    agent_id: uuid.UUID,
    presence: Presence | str,
    reason: str | None,
    at: datetime,
    by: str,
) -> None:
    """Log the change in the caller's transaction (it commits with the ``agents`` row), unless
    the agent is already logged in that presence: the engine re-applies an agent's own change
    when it is told of it, and that is not a second change."""
    presence = Presence(presence)
    last = (
        select(PresenceChange.presence)
        .where(PresenceChange.agent_id == agent_id)
        .order_by(PresenceChange.at.desc(), PresenceChange.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    values = {"agent_id": agent_id, "presence": presence, "reason": reason, "at": at, "by": by}
    row = select(*(literal(values[name], type_=_LOG.c[name].type).label(name) for name in _COLUMNS))
    await session.execute(
        insert(_LOG).from_select(list(_COLUMNS), row.where(or_(last.is_(None), last != presence)))
    )


async def forget_presence(session: AsyncSession, *, agent_id: uuid.UUID, at: datetime) -> None:
    """Undo ``record_presence`` of a change that was itself undone (routing could not be told)."""
    await session.execute(
        delete(PresenceChange).where(PresenceChange.agent_id == agent_id, PresenceChange.at == at)
    )


@dataclass(frozen=True, slots=True)
class Stretch:
    """An agent in one presence from ``start`` to ``end``."""

    presence: Presence
    start: datetime
    end: datetime


async def presence_stretches(
    session: AsyncSession, agent_ids: list[uuid.UUID], *, since: datetime, until: datetime
) -> dict[uuid.UUID, list[Stretch]]:
    """Each agent's presence over [since, until): the state in force at ``since`` (the last
    change before it; offline when none) and every change after, cut to the window."""
    if not agent_ids:
        return {}
    latest = (
        select(PresenceChange.agent_id, func.max(PresenceChange.at).label("at"))
        .where(PresenceChange.agent_id.in_(agent_ids), PresenceChange.at < since)
        .group_by(PresenceChange.agent_id)
        .subquery()
    )
    before = (
        select(PresenceChange.agent_id, PresenceChange.presence)
        .join(latest, and_(PresenceChange.agent_id == latest.c.agent_id, PresenceChange.at == latest.c.at))
        .order_by(PresenceChange.id)
    )
    opening: dict[uuid.UUID, Presence] = {}
    for row in (await session.execute(before)).all():
        opening[row.agent_id] = Presence(row.presence)  # the last written of a tie wins
    changes = (
        await session.execute(
            select(PresenceChange.agent_id, PresenceChange.presence, PresenceChange.at)
            .where(
                PresenceChange.agent_id.in_(agent_ids),
                PresenceChange.at >= since,
                PresenceChange.at < until,
            )
            .order_by(PresenceChange.at, PresenceChange.id)
        )
    ).all()
    result: dict[uuid.UUID, list[Stretch]] = {}
    current = {a: (opening.get(a, Presence.OFFLINE), since) for a in agent_ids}
    for change in changes:
        presence, start = current[change.agent_id]
        if change.at > start:
            result.setdefault(change.agent_id, []).append(Stretch(presence, start, change.at))
        current[change.agent_id] = (Presence(change.presence), change.at)
    for agent_id, (presence, start) in current.items():
        if until > start:
            result.setdefault(agent_id, []).append(Stretch(presence, start, until))
    return result

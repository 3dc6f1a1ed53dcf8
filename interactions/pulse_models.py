"""Employee-experience (EX) pulse: how agents feel about each interaction and about their shift.

Stored beside the customer's feedback (CSAT and friends) and shaped like it: every row is
attributable to an interaction (when there is one), a queue, a team and a day, so supervisors can
read EX and CX side by side. Queue and team are copied onto the row when it is written: a pulse
describes the situation at that moment, and must not move when an agent later changes team.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import Base, JSONType, UTCDateTime, new_id, utcnow
from switchboard.pii import MaskedString
from switchboard.types import str_enum


class PulseKind(enum.StrEnum):
    INTERACTION = "interaction"  # one-click rating after a completed interaction
    SHIFT = "shift"  # end-of-shift check-in


class AgentPulse(Base):
    __tablename__ = "agent_pulses"
    __table_args__ = (
        # One rating per agent and interaction; shift rows (interaction NULL) are never equal.
        UniqueConstraint("agent_id", "interaction_id"),
        CheckConstraint("score BETWEEN 1 AND 5", name="score_range"),
        CheckConstraint("workload IS NULL OR workload BETWEEN 1 AND 5", name="workload_range"),
        Index("ix_agent_pulses_day_kind", "day", "kind"),
        # The experience rollup finds new pulses by creation time and joins them to interactions.
        Index("ix_agent_pulses_created_at", "created_at"),
        Index("ix_agent_pulses_interaction_id", "interaction_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    agent_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    interaction_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("interactions.id", ondelete="SET NULL")
    )
    kind: Mapped[PulseKind] = mapped_column(str_enum(PulseKind))
    # Interaction: the rating 1-5. Shift: energy 1-5 (workload is its own column).
    score: Mapped[int] = mapped_column(Integer)
    workload: Mapped[int | None] = mapped_column(Integer)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    comment: Mapped[str | None] = mapped_column(MaskedString(1000))
    queue: Mapped[str | None] = mapped_column(String(60))
    team: Mapped[str | None] = mapped_column(String(60))
    day: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

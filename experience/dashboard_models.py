"""The experience dashboard's rollups (issue #12 item 2): figures per UTC day and dimension, filled
by ``experience.rollup`` so a year of data is read as a few hundred thousand small rows instead of
millions of answers.

Only sums and counts are stored (never averages), so any range of days adds up exactly. Agents'
EX is stored per team, queue, channel, tier and for the whole centre, never per agent: the
dashboard cannot leak one agent's pulse because the rollup does not hold it. Who answered (the
respondents table) is kept only to tell whether a group over a range has enough distinct agents
to be shown at all.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import Date, Float, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import Base, UTCDateTime


class Dimension(enum.StrEnum):
    AGENT = "agent"
    TEAM = "team"
    QUEUE = "queue"
    CHANNEL = "channel"
    TIER = "tier"
    ALL = "all"  # the whole centre (key ""): the per-day trend


class ExperienceDaily(Base):
    """Customer answers (by the day they answered) and agents' pulses (by the pulse's day) of one
    group on one day. ``key`` is the agent id, team, queue or channel name or tier ("" = none)."""

    __tablename__ = "experience_daily"
    __table_args__ = (Index("ix_experience_daily_dimension_day", "dimension", "day"),)

    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    # Customer experience: answers and their sums (NPS as promoters and detractors).
    csat_n: Mapped[int] = mapped_column(Integer, default=0)
    csat_sum: Mapped[int] = mapped_column(Integer, default=0)
    nps_n: Mapped[int] = mapped_column(Integer, default=0)
    nps_promoters: Mapped[int] = mapped_column(Integer, default=0)
    nps_detractors: Mapped[int] = mapped_column(Integer, default=0)
    ces_n: Mapped[int] = mapped_column(Integer, default=0)
    ces_sum: Mapped[int] = mapped_column(Integer, default=0)
    # Agent experience: interaction pulses (1-5), end-of-shift check-ins (energy, workload 1-5),
    # and how many distinct agents answered that day.
    pulse_n: Mapped[int] = mapped_column(Integer, default=0)
    pulse_sum: Mapped[int] = mapped_column(Integer, default=0)
    shift_n: Mapped[int] = mapped_column(Integer, default=0)
    energy_sum: Mapped[int] = mapped_column(Integer, default=0)
    workload_n: Mapped[int] = mapped_column(Integer, default=0)
    workload_sum: Mapped[int] = mapped_column(Integer, default=0)
    respondents: Mapped[int] = mapped_column(Integer, default=0)
    # Service level that day (queue rows: the queue's; the centre's row: all queues), from the
    # engine's interval statistics; target_weight = target % x denominator (a blended target).
    sl_answered: Mapped[int] = mapped_column(Integer, default=0)
    sl_denominator: Mapped[int] = mapped_column(Integer, default=0)
    sl_target_weight: Mapped[float] = mapped_column(Float, default=0.0)


class ExperienceRespondent(Base):
    """That ``agent_id`` answered a pulse in this group on this day (for the minimum group size)."""

    __tablename__ = "experience_respondents"
    __table_args__ = (Index("ix_experience_respondents_dimension_day", "dimension", "day"),)

    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)


class ExperienceRespondentMonthly(Base):
    """The respondents of a whole UTC month (``month`` = its first day), from the daily rows: a
    year reads 12 of these per agent and group instead of ~365 (2.9 million rows at 10 million
    contacts a year), the range's ragged ends still per day. ``below_days`` / ``met_days``: days of
    the month the agent answered in this group when the group's service level was below / met its
    target (days without a service level count in neither), for the dashboard's comparison."""

    __tablename__ = "experience_respondents_monthly"
    __table_args__ = (Index("ix_experience_respondents_monthly_dimension_month", "dimension", "month"),)

    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    below_days: Mapped[int] = mapped_column(Integer, default=0)
    met_days: Mapped[int] = mapped_column(Integer, default=0)


class ExperienceTagDaily(Base):
    """Customer answers (by answer day) on interactions an agent tagged ``tag`` in their pulse."""

    __tablename__ = "experience_tag_daily"

    tag: Mapped[str] = mapped_column(String(60), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    csat_n: Mapped[int] = mapped_column(Integer, default=0)
    csat_sum: Mapped[int] = mapped_column(Integer, default=0)
    nps_n: Mapped[int] = mapped_column(Integer, default=0)
    nps_promoters: Mapped[int] = mapped_column(Integer, default=0)
    nps_detractors: Mapped[int] = mapped_column(Integer, default=0)
    ces_n: Mapped[int] = mapped_column(Integer, default=0)
    ces_sum: Mapped[int] = mapped_column(Integer, default=0)


class RollupState(Base):
    """How far the incremental rollup has read (rows created before ``watermark`` minus an overlap
    are in the rollup)."""

    __tablename__ = "experience_rollup_state"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    watermark: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

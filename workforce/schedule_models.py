"""Shift templates, agents' contracts, and schedules with their shifts (issue #13 item 3)."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import Base, JSONType, UTCDateTime, new_id, utcnow
from switchboard.types import str_enum


class ShiftTemplate(Base):
    """A kind of shift: when it may start (local time), how long it is, where its breaks go."""

    __tablename__ = "shift_templates"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    earliest_start_minute: Mapped[int] = mapped_column(Integer)  # after local midnight
    latest_start_minute: Mapped[int] = mapped_column(Integer)
    start_step_minutes: Mapped[int] = mapped_column(Integer, default=30)
    length_minutes: Mapped[int] = mapped_column(Integer)
    # [{"minutes": 30, "earliest_after": 210, "latest_after": 300}, ...] (minutes into the shift)
    breaks: Mapped[list[dict[str, int]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AgentContract(Base):
    """What an agent may be scheduled for: weekly hours and days, rest between shifts, the
    templates they work, and when they are available (local time, per weekday)."""

    __tablename__ = "agent_contracts"

    agent_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    min_minutes_week: Mapped[int] = mapped_column(Integer, default=0)
    max_minutes_week: Mapped[int] = mapped_column(Integer, default=40 * 60)
    max_days_week: Mapped[int] = mapped_column(Integer, default=5)
    min_rest_minutes: Mapped[int] = mapped_column(Integer, default=11 * 60)
    templates: Mapped[list[str]] = mapped_column(JSONType, default=list)  # empty: any
    # {"0": [[480, 1080]], ...}: weekday (0 = Monday) -> windows in local minutes; empty: any time
    availability: Mapped[dict[str, list[list[int]]]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScheduleStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class Schedule(Base):
    """Shifts for a run of days against the requirement they were planned for."""

    __tablename__ = "schedules"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    queue_name: Mapped[str | None] = mapped_column(String(60))
    channel: Mapped[str | None] = mapped_column(String(16))
    first_day: Mapped[date] = mapped_column(Date)
    days: Mapped[int] = mapped_column(Integer)
    time_zone: Mapped[str] = mapped_column(String(60))
    status: Mapped[ScheduleStatus] = mapped_column(str_enum(ScheduleStatus), default=ScheduleStatus.DRAFT)
    # Agents needed on the phones per 15-minute interval from first_day's local midnight.
    requirement: Mapped[list[int]] = mapped_column(JSONType, default=list)
    solver: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # status, seconds, gap
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ScheduledShift(Base):
    __tablename__ = "scheduled_shifts"
    __table_args__ = (Index("ix_scheduled_shifts_agent_start", "agent_id", "start"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    schedule_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("schedules.id", ondelete="CASCADE"), index=True
    )
    agent_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("agents.id", ondelete="CASCADE"))
    template: Mapped[str] = mapped_column(String(60), default="")
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    breaks: Mapped[list[list[str]]] = mapped_column(JSONType, default=list)  # [[start, end] ISO 8601]

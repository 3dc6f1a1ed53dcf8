"""What supervisors add to the forecast: per-interval overrides and the holiday list."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Date, Float, ForeignKey, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import Base, UTCDateTime, new_id, utcnow
from switchboard.pii import MaskedString


class ForecastOverride(Base):
    """A supervisor's own figure for one interval (a campaign, a mailing, an outage), used instead
    of the model's; the model's figure is kept beside it on the page."""

    __tablename__ = "forecast_overrides"
    __table_args__ = (
        UniqueConstraint(
            "queue_name",
            "channel",
            "interval_minutes",
            "interval_start",
            name="uq_forecast_overrides_interval",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    queue_name: Mapped[str] = mapped_column(String(60))
    channel: Mapped[str] = mapped_column(String(16))
    interval_minutes: Mapped[int] = mapped_column(Integer)
    interval_start: Mapped[datetime] = mapped_column(UTCDateTime)
    contacts: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(MaskedString(255), default="")
    set_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Holiday(Base):
    """A day the centre's traffic is not a usual weekday's (the forecast learns one factor for them)."""

    __tablename__ = "forecast_holidays"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    name: Mapped[str] = mapped_column(MaskedString(120))
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

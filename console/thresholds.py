"""Per-queue wallboard colours (issue #11 item 1): when a queue's longest wait or its service level
turns the wallboard amber (warning) or red (critical). Display only: routing never reads them.

A queue without a row gets defaults from its service-level objective (wait: warning at the
threshold, critical at twice it; service level: warning below the target, critical 10 points
below), so a new queue is coloured sensibly before anyone sets anything."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import ForeignKey, Integer, Uuid, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.audit import record_audit
from switchboard.auth.models import User
from switchboard.db import Base, UTCDateTime, utcnow
from switchboard.errors import NotFound
from workforce.models import Queue


class QueueThreshold(Base):
    __tablename__ = "queue_thresholds"

    queue_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True
    )
    wait_warning_seconds: Mapped[int] = mapped_column(Integer)
    wait_critical_seconds: Mapped[int] = mapped_column(Integer)
    sl_warning_percent: Mapped[int] = mapped_column(Integer)
    sl_critical_percent: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))


class ThresholdsWrite(BaseModel):
    """Longest wait in seconds (warning < critical); service level in % (critical < warning)."""

    model_config = ConfigDict(extra="forbid")

    wait_warning_seconds: int = Field(ge=1, le=86_400)
    wait_critical_seconds: int = Field(ge=1, le=86_400)
    sl_warning_percent: int = Field(ge=1, le=100)
    sl_critical_percent: int = Field(ge=0, le=99)

    # Field validators so the error names the field that is out of order.
    @field_validator("wait_critical_seconds")
    @classmethod
    def _critical_wait_after_warning(cls, value: int, info: ValidationInfo) -> int:
        warning = info.data.get("wait_warning_seconds")
        if warning is not None and value <= warning:
            raise ValueError(f"the critical wait must be longer than the warning ({warning} s)")
        return value

    @field_validator("sl_critical_percent")
    @classmethod
    def _critical_sl_below_warning(cls, value: int, info: ValidationInfo) -> int:
        warning = info.data.get("sl_warning_percent")
        if warning is not None and value >= warning:
            raise ValueError(f"the critical service level must be below the warning ({warning} %)")
        return value


@dataclass(frozen=True)
class Thresholds:
    wait_warning_seconds: int
    wait_critical_seconds: int
    sl_warning_percent: int
    sl_critical_percent: int
    custom: bool = False  # False: derived from the queue's service-level objective

    def wait_level(self, seconds: float | None) -> str:
        if seconds is None:
            return "ok"
        if seconds >= self.wait_critical_seconds:
            return "critical"
        return "warning" if seconds >= self.wait_warning_seconds else "ok"

    def sl_level(self, fraction: float | None) -> str:
        if fraction is None:
            return "ok"
        percent = fraction * 100
        if percent < self.sl_critical_percent:
            return "critical"
        return "warning" if percent < self.sl_warning_percent else "ok"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def default_thresholds(queue: Queue) -> Thresholds:
    return Thresholds(
        wait_warning_seconds=queue.sl_threshold_seconds,
        wait_critical_seconds=queue.sl_threshold_seconds * 2,
        sl_warning_percent=queue.sl_target_percent,
        sl_critical_percent=max(queue.sl_target_percent - 10, 0),
    )


def _of(row: QueueThreshold) -> Thresholds:
    return Thresholds(
        row.wait_warning_seconds,
        row.wait_critical_seconds,
        row.sl_warning_percent,
        row.sl_critical_percent,
        True,
    )


async def all_thresholds(session: AsyncSession) -> dict[str, Thresholds]:
    """Every queue's colours by queue name (its own, or the defaults)."""
    rows = await session.execute(select(Queue, QueueThreshold).outerjoin(QueueThreshold))
    return {q.name: (_of(t) if t is not None else default_thresholds(q)) for q, t in rows.all()}


async def _queue(session: AsyncSession, key: str) -> Queue:
    """A queue by name or id (the pages use ids, the API and rules names)."""
    try:
        found = await session.get(Queue, uuid.UUID(key))
    except ValueError:
        found = await session.scalar(select(Queue).where(Queue.name == key))
    if found is None:
        raise NotFound(f"No queue {key!r}", field="queue")
    return found


async def thresholds_of(session: AsyncSession, *, queue: str) -> tuple[Queue, Thresholds]:
    q = await _queue(session, queue)
    row = await session.get(QueueThreshold, q.id)
    return q, (_of(row) if row is not None else default_thresholds(q))


async def set_thresholds(
    session: AsyncSession, *, queue: str, data: ThresholdsWrite, actor: User
) -> tuple[Queue, Thresholds]:
    """Store the queue's colours; audited (before -> after) in the caller's transaction."""
    q, before = await thresholds_of(session, queue=queue)
    row = await session.get(QueueThreshold, q.id)
    if row is None:
        row = QueueThreshold(queue_id=q.id, **data.model_dump())
        session.add(row)
    else:
        for name, value in data.model_dump().items():
            setattr(row, name, value)
    row.updated_at, row.updated_by_id = utcnow(), actor.id
    after = Thresholds(**data.model_dump(), custom=True)
    record_audit(
        session,
        actor_id=actor.id,
        action="queue.thresholds_updated",
        entity_type="queue",
        entity_id=q.id,
        data={"queue": q.name},
        before=before.as_json(),
        after=after.as_json(),
    )
    await session.flush()
    return q, after

"""Shift swaps and time off (issue #13 item 5): an agent's request about one of their published
shifts, the named peer's answer (swaps only) and the supervisor's decision."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db import Base, UTCDateTime, new_id, utcnow
from switchboard.pii import MaskedString
from switchboard.types import str_enum


class RequestKind(enum.StrEnum):
    SWAP = "swap"
    TIME_OFF = "time_off"


class RequestState(enum.StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"  # by the peer (swaps only): waiting for a supervisor
    APPROVED = "approved"
    REFUSED = "refused"
    CANCELLED = "cancelled"


OPEN_STATES = (RequestState.REQUESTED, RequestState.ACCEPTED)


class ShiftRequest(Base):
    __tablename__ = "shift_requests"
    __table_args__ = (
        Index("ix_shift_requests_agent", "agent_id", "created_at"),
        Index("ix_shift_requests_peer", "peer_id", "created_at"),
        Index("ix_shift_requests_state", "state", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    kind: Mapped[RequestKind] = mapped_column(str_enum(RequestKind, name="shift_request_kind"))
    state: Mapped[RequestState] = mapped_column(
        str_enum(RequestState, name="shift_request_state"), default=RequestState.REQUESTED
    )
    agent_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("agents.id", ondelete="CASCADE"))
    # The shift the request is about; kept as ids (not foreign keys) so a request's history
    # outlives a shift a supervisor later removes.
    schedule_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("schedules.id", ondelete="CASCADE"))
    shift_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    shift_start: Mapped[datetime] = mapped_column(UTCDateTime)
    shift_end: Mapped[datetime] = mapped_column(UTCDateTime)
    # Swap: the named peer and the peer's shift given in exchange.
    peer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("agents.id", ondelete="CASCADE"))
    peer_shift_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    peer_shift_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    peer_shift_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Time off: the part of the shift asked off (the whole shift when it is the shift's span).
    off_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    off_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(MaskedString(280), default="")
    decided_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    decision_note: Mapped[str] = mapped_column(MaskedString(280), default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

"""``/api/workforce/my/shift-requests`` (agents: their own swap and time-off requests, and the
swaps they are named in) and ``/api/workforce/shift-requests`` (supervisors: the open ones, and
approval or refusal). Each change is audited and told to the agents concerned on their desktop."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.db import utcnow
from switchboard.deps import DbSession, RequireSupervisor
from switchboard.desktop_messages import ShiftRequestChanged
from switchboard.errors import Invalid
from switchboard.events import publish_many
from workforce import swap_service as swaps
from workforce.deps import CurrentAgent
from workforce.schedule_models import Schedule
from workforce.swap_models import ShiftRequest

router = APIRouter(prefix="/api/workforce", tags=["workforce"])


class RequestWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["swap", "time_off"]
    shift_id: uuid.UUID = Field(description="Your published shift the request is about")
    peer_shift_id: uuid.UUID | None = Field(default=None, description="Swap: the peer's shift you would take")
    start: datetime | None = Field(default=None, description="Time off: from (default: the shift's start)")
    end: datetime | None = Field(default=None, description="Time off: to (default: the shift's end)")
    note: Annotated[str, Field(max_length=280)] = ""


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Annotated[str, Field(max_length=280)] = ""


class RequestRead(BaseModel):
    id: uuid.UUID
    kind: str
    state: str
    agent_id: uuid.UUID
    agent: str
    schedule_id: uuid.UUID
    shift_id: uuid.UUID
    shift_start: datetime
    shift_end: datetime
    peer_id: uuid.UUID | None
    peer: str | None
    peer_shift_id: uuid.UUID | None
    peer_shift_start: datetime | None
    peer_shift_end: datetime | None
    off_start: datetime | None
    off_end: datetime | None
    note: str
    decision_note: str
    summary: str
    awaits_supervisor: bool
    created_at: datetime
    updated_at: datetime


async def _zone(session: AsyncSession, row: ShiftRequest) -> ZoneInfo:
    schedule = await session.get(Schedule, row.schedule_id)
    return ZoneInfo(schedule.time_zone if schedule else "UTC")


async def reads(session: AsyncSession, rows: list[ShiftRequest]) -> list[RequestRead]:
    names = await swaps.agent_names(session, rows)
    out = []
    for r in rows:
        out.append(
            RequestRead(
                id=r.id,
                kind=r.kind.value,
                state=r.state.value,
                agent_id=r.agent_id,
                agent=names.get(r.agent_id, ""),
                schedule_id=r.schedule_id,
                shift_id=r.shift_id,
                shift_start=r.shift_start,
                shift_end=r.shift_end,
                peer_id=r.peer_id,
                peer=names.get(r.peer_id) if r.peer_id else None,
                peer_shift_id=r.peer_shift_id,
                peer_shift_start=r.peer_shift_start,
                peer_shift_end=r.peer_shift_end,
                off_start=r.off_start,
                off_end=r.off_end,
                note=r.note,
                decision_note=r.decision_note,
                summary=swaps.describe(r, await _zone(session, r), names),
                awaits_supervisor=swaps.awaits_supervisor(r),
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
        )
    return out


async def commit_and_tell(session: AsyncSession, request: Request, row: ShiftRequest) -> RequestRead:
    """Commit the change, then tell the requester and the peer on their desktops."""
    (read,) = await reads(session, [row])
    await session.commit()
    state = read.state.replace("_", " ")
    message = ShiftRequestChanged(
        request_id=str(row.id), kind=read.kind, state=read.state, summary=f"{read.summary}: {state}"
    )
    agents = [row.agent_id] + ([row.peer_id] if row.peer_id else [])
    await publish_many(request.app.state.redis_client, [message.to(a) for a in agents])
    return read


async def create_request(
    session: AsyncSession, body: RequestWrite, agent_id: uuid.UUID, actor_id: uuid.UUID
) -> ShiftRequest:
    if body.kind == "swap":
        if body.peer_shift_id is None:
            raise Invalid("Choose the peer's shift to swap with", field="peer_shift_id")
        if body.start is not None or body.end is not None:
            raise Invalid("A swap exchanges whole shifts", field="start")
        return await swaps.request_swap(
            session,
            agent_id=agent_id,
            shift_id=body.shift_id,
            peer_shift_id=body.peer_shift_id,
            note=body.note,
            actor_id=actor_id,
            now=utcnow(),
        )
    if body.peer_shift_id is not None:
        raise Invalid("Time off names no peer", field="peer_shift_id")
    return await swaps.request_time_off(
        session,
        agent_id=agent_id,
        shift_id=body.shift_id,
        start=body.start,
        end=body.end,
        note=body.note,
        actor_id=actor_id,
        now=utcnow(),
    )


@router.get("/my/shift-requests", response_model=list[RequestRead])
async def my_requests(session: DbSession, agent: CurrentAgent) -> list[RequestRead]:
    """The requests you made and the swaps you are named in, newest first."""
    out = await reads(session, await swaps.requests_for_agent(session, agent.id))
    await session.commit()
    return out


@router.post("/my/shift-requests", response_model=RequestRead, status_code=201)
async def post_my_request(
    body: RequestWrite, request: Request, session: DbSession, agent: CurrentAgent
) -> RequestRead:
    """Ask to swap one of your published shifts with a peer's, or for time off (all or part of a
    shift). A swap then waits for the peer; time off waits for a supervisor."""
    row = await create_request(session, body, agent.id, agent.user_id)
    return await commit_and_tell(session, request, row)


@router.post("/my/shift-requests/{request_id}/accept", response_model=RequestRead)
async def accept_swap(
    request_id: uuid.UUID, request: Request, session: DbSession, agent: CurrentAgent
) -> RequestRead:
    """The named peer accepts the swap; it then waits for a supervisor."""
    row = await swaps.answer_as_peer(
        session, request_id=request_id, agent_id=agent.id, accept=True, actor_id=agent.user_id
    )
    return await commit_and_tell(session, request, row)


@router.post("/my/shift-requests/{request_id}/decline", response_model=RequestRead)
async def decline_swap(
    request_id: uuid.UUID, request: Request, session: DbSession, agent: CurrentAgent
) -> RequestRead:
    row = await swaps.answer_as_peer(
        session, request_id=request_id, agent_id=agent.id, accept=False, actor_id=agent.user_id
    )
    return await commit_and_tell(session, request, row)


@router.post("/my/shift-requests/{request_id}/cancel", response_model=RequestRead)
async def cancel_request(
    request_id: uuid.UUID, request: Request, session: DbSession, agent: CurrentAgent
) -> RequestRead:
    row = await swaps.cancel(session, request_id=request_id, agent_id=agent.id, actor_id=agent.user_id)
    return await commit_and_tell(session, request, row)


@router.get("/shift-requests", response_model=list[RequestRead])
async def open_requests(session: DbSession, _user: RequireSupervisor) -> list[RequestRead]:
    """Requests still open (waiting for the peer or for a supervisor), oldest first."""
    out = await reads(session, await swaps.open_requests(session))
    await session.commit()
    return out


@router.post("/shift-requests/{request_id}/approve", response_model=RequestRead)
async def approve(
    request_id: uuid.UUID, request: Request, session: DbSession, user: RequireSupervisor
) -> RequestRead:
    """Apply the swap or time off to the schedule: refused (409, nothing saved) when a contract rule
    breaks (the field names whose: ``agent_id`` or ``peer_id``) or coverage would fall short
    (``coverage-short``, with ``intervals``: start, end, required, scheduled, short_by, worse_by)."""
    row = await swaps.approve(session, request_id=request_id, actor_id=user.id)
    return await commit_and_tell(session, request, row)


@router.post("/shift-requests/{request_id}/refuse", response_model=RequestRead)
async def refuse(
    request_id: uuid.UUID, body: Decision, request: Request, session: DbSession, user: RequireSupervisor
) -> RequestRead:
    row = await swaps.refuse(session, request_id=request_id, note=body.note, actor_id=user.id)
    return await commit_and_tell(session, request, row)

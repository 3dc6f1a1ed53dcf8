"""Shift swaps and time off (issue #13 item 5): requests by agents about their published shifts,
the peer's answer, and the supervisor's decision.

Approval reuses the schedule service's rule checks (``check_shift``: overlap, rest rule,
availability, weekly hours and days) and coverage (``coverage``), so a swap or time off is judged
exactly as a hand edit would be. It is refused, before anything is written, when either agent's
contract would break or when any 15-minute interval would fall further short of the requirement
than it already is; the refusal names those intervals and by how much."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from switchboard.audit import record_audit
from switchboard.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from workforce import schedule_service as svc
from workforce.models import Agent
from workforce.schedule_models import Schedule, ScheduledShift, ScheduleStatus
from workforce.scheduler import SLOT_MINUTES
from workforce.swap_models import OPEN_STATES, RequestKind, RequestState, ShiftRequest

LIST_LIMIT = 100


class CoverageShort(Conflict):
    """The change would leave intervals short of the requirement: ``intervals`` lists them."""

    type_slug = "coverage-short"


@dataclass(frozen=True)
class ShortInterval:
    start: datetime
    end: datetime
    required: int
    scheduled: int  # on the phones after the change
    short_by: int  # after the change
    worse_by: int  # how much further short than before

    def as_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "required": self.required,
            "scheduled": self.scheduled,
            "short_by": self.short_by,
            "worse_by": self.worse_by,
        }


def short_intervals(before: svc.Coverage, after: svc.Coverage) -> list[ShortInterval]:
    """The intervals the change leaves further short of the requirement than they were."""
    step = timedelta(minutes=SLOT_MINUTES)
    return [
        ShortInterval(at, at + step, need, have, now_short, now_short - was_short)
        for at, need, have, now_short, was_short in zip(
            after.starts, after.requirement, after.coverage, after.shortfall, before.shortfall, strict=True
        )
        if now_short > was_short
    ]


# ------------------------------------------------------------------------------------ reading


async def get_request(session: AsyncSession, request_id: uuid.UUID) -> ShiftRequest:
    row = await session.get(ShiftRequest, request_id)
    if row is None:
        raise NotFound("No such request", field="request_id")
    return row


async def _visible(session: AsyncSession, request_id: uuid.UUID, agent_id: uuid.UUID) -> ShiftRequest:
    """An agent sees only the requests they made or were named in; others are not found."""
    row = await session.get(ShiftRequest, request_id)
    if row is None or agent_id not in (row.agent_id, row.peer_id):
        raise NotFound("No such request", field="request_id")
    return row


async def requests_for_agent(session: AsyncSession, agent_id: uuid.UUID) -> list[ShiftRequest]:
    return list(
        await session.scalars(
            select(ShiftRequest)
            .where(or_(ShiftRequest.agent_id == agent_id, ShiftRequest.peer_id == agent_id))
            .order_by(ShiftRequest.created_at.desc())
            .limit(LIST_LIMIT)
        )
    )


async def open_requests(session: AsyncSession) -> list[ShiftRequest]:
    return list(
        await session.scalars(
            select(ShiftRequest)
            .where(ShiftRequest.state.in_(OPEN_STATES))
            .order_by(ShiftRequest.created_at)
            .limit(LIST_LIMIT)
        )
    )


def awaits_supervisor(row: ShiftRequest) -> bool:
    return (row.kind == RequestKind.SWAP and row.state == RequestState.ACCEPTED) or (
        row.kind == RequestKind.TIME_OFF and row.state == RequestState.REQUESTED
    )


async def agent_names(session: AsyncSession, rows: list[ShiftRequest]) -> dict[uuid.UUID, str]:
    ids = {r.agent_id for r in rows} | {r.peer_id for r in rows if r.peer_id}
    if not ids:
        return {}
    rows_ = await session.execute(select(Agent.id, Agent.display_name).where(Agent.id.in_(ids)))
    return {agent_id: name for agent_id, name in rows_.all()}


def describe(row: ShiftRequest, zone: ZoneInfo, names: dict[uuid.UUID, str]) -> str:
    """One line for people: what is asked, in the centre's time zone."""

    def at(when: datetime) -> str:
        return f"{when.astimezone(zone):%a %d %b %H:%M}"

    if row.kind == RequestKind.SWAP and row.peer_shift_start is not None and row.peer_id is not None:
        return (
            f"{names.get(row.agent_id, 'Agent')}'s shift {at(row.shift_start)} swapped with "
            f"{names.get(row.peer_id, 'Agent')}'s {at(row.peer_shift_start)}"
        )
    start, end = row.off_start or row.shift_start, row.off_end or row.shift_end
    return f"Time off for {names.get(row.agent_id, 'Agent')} {at(start)} to {end.astimezone(zone):%H:%M}"


def request_json(row: ShiftRequest) -> dict[str, Any]:
    return {
        "kind": row.kind.value,
        "state": row.state.value,
        "shift_id": str(row.shift_id),
        "peer_shift_id": str(row.peer_shift_id) if row.peer_shift_id else None,
        "off_start": row.off_start.isoformat() if row.off_start else None,
        "off_end": row.off_end.isoformat() if row.off_end else None,
    }


# ------------------------------------------------------------------------------------ agents


async def _future_published_shift(
    session: AsyncSession, shift_id: uuid.UUID, *, now: datetime, field: str
) -> tuple[ScheduledShift, Schedule]:
    shift = await session.get(ScheduledShift, shift_id)
    schedule = await session.get(Schedule, shift.schedule_id) if shift is not None else None
    if shift is None or schedule is None or schedule.status != ScheduleStatus.PUBLISHED:
        raise NotFound("No such published shift", field=field)
    if shift.start <= now:
        raise Invalid("The shift has already started", field=field)
    return shift, schedule


async def _no_open_request(session: AsyncSession, shift_ids: list[uuid.UUID], field: str) -> None:
    clash = await session.scalar(
        select(ShiftRequest.id).where(
            ShiftRequest.state.in_(OPEN_STATES),
            or_(ShiftRequest.shift_id.in_(shift_ids), ShiftRequest.peer_shift_id.in_(shift_ids)),
        )
    )
    if clash is not None:
        raise Conflict("The shift already has an open request", field=field)


def _on_mark(at: datetime, field: str) -> datetime:
    if at.tzinfo is None:
        raise Invalid("Give the time with its UTC offset", field=field)
    at = at.astimezone(UTC)
    if at.second or at.microsecond or at.minute % SLOT_MINUTES:
        raise Invalid("On a 15-minute mark", field=field)
    return at


async def request_swap(
    session: AsyncSession,
    *,
    agent_id: uuid.UUID,
    shift_id: uuid.UUID,
    peer_shift_id: uuid.UUID,
    note: str,
    actor_id: uuid.UUID,
    now: datetime,
) -> ShiftRequest:
    shift, schedule = await _future_published_shift(session, shift_id, now=now, field="shift_id")
    if shift.agent_id != agent_id:
        raise NotFound("No such published shift of yours", field="shift_id")
    theirs, _ = await _future_published_shift(session, peer_shift_id, now=now, field="peer_shift_id")
    if theirs.schedule_id != shift.schedule_id:
        raise Invalid("Choose a shift in the same published schedule", field="peer_shift_id")
    if theirs.agent_id == agent_id:
        raise Invalid("Choose another agent's shift", field="peer_shift_id")
    await _no_open_request(session, [shift.id, theirs.id], "shift_id")
    row = ShiftRequest(
        kind=RequestKind.SWAP,
        agent_id=agent_id,
        schedule_id=schedule.id,
        shift_id=shift.id,
        shift_start=shift.start,
        shift_end=shift.end,
        peer_id=theirs.agent_id,
        peer_shift_id=theirs.id,
        peer_shift_start=theirs.start,
        peer_shift_end=theirs.end,
        note=note,
    )
    return await _created(session, row, actor_id)


async def request_time_off(
    session: AsyncSession,
    *,
    agent_id: uuid.UUID,
    shift_id: uuid.UUID,
    start: datetime | None,
    end: datetime | None,
    note: str,
    actor_id: uuid.UUID,
    now: datetime,
) -> ShiftRequest:
    """Time off for the whole shift, or for the part of it from ``start`` to ``end``."""
    shift, schedule = await _future_published_shift(session, shift_id, now=now, field="shift_id")
    if shift.agent_id != agent_id:
        raise NotFound("No such published shift of yours", field="shift_id")
    off_start = _on_mark(start, "start") if start is not None else shift.start
    off_end = _on_mark(end, "end") if end is not None else shift.end
    if not shift.start <= off_start < shift.end:
        raise Invalid("Within the shift", field="start")
    if not off_start < off_end <= shift.end:
        raise Invalid("After the start, within the shift", field="end")
    await _no_open_request(session, [shift.id], "shift_id")
    row = ShiftRequest(
        kind=RequestKind.TIME_OFF,
        agent_id=agent_id,
        schedule_id=schedule.id,
        shift_id=shift.id,
        shift_start=shift.start,
        shift_end=shift.end,
        off_start=off_start,
        off_end=off_end,
        note=note,
    )
    return await _created(session, row, actor_id)


async def _created(session: AsyncSession, row: ShiftRequest, actor_id: uuid.UUID) -> ShiftRequest:
    session.add(row)
    await session.flush()
    record_audit(
        session,
        actor_id=actor_id,
        action="shift_request.requested",
        entity_type="shift_request",
        entity_id=row.id,
        after=request_json(row),
    )
    return row


async def _moved(
    session: AsyncSession,
    row: ShiftRequest,
    to: RequestState,
    actor_id: uuid.UUID,
    note: str = "",
    *,
    decided: bool = False,
) -> None:
    """Move the request to ``to`` by compare-and-set on its version: a decision taken on a request
    someone else changed meanwhile (two supervisors approving at once) is refused, not applied twice."""
    before = row.state
    values: dict[str, Any] = {"state": to, "version": row.version + 1, "updated_at": datetime.now(UTC)}
    if note:
        values["decision_note"] = note
    if decided:
        values["decided_by"] = actor_id
    result = await session.execute(
        update(ShiftRequest)
        .where(ShiftRequest.id == row.id, ShiftRequest.version == row.version, ShiftRequest.state == before)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("The request changed meanwhile; reload it", field="state")
    for key, value in values.items():
        set_committed_value(row, key, value)
    record_audit(
        session,
        actor_id=actor_id,
        action=f"shift_request.{to.value}",
        entity_type="shift_request",
        entity_id=row.id,
        before={"state": before.value},
        after={"state": to.value, **({"note": note} if note else {})},
    )


async def answer_as_peer(
    session: AsyncSession, *, request_id: uuid.UUID, agent_id: uuid.UUID, accept: bool, actor_id: uuid.UUID
) -> ShiftRequest:
    """The named peer accepts the swap (it then waits for a supervisor) or declines it (refused)."""
    row = await _visible(session, request_id, agent_id)
    if row.kind != RequestKind.SWAP or row.peer_id != agent_id:
        raise Forbidden("Only the named peer answers a swap", field="request_id")
    if row.state != RequestState.REQUESTED:
        raise Conflict(f"The request is {row.state.value}", field="state")
    await _moved(session, row, RequestState.ACCEPTED if accept else RequestState.REFUSED, actor_id)
    await session.flush()
    return row


async def cancel(
    session: AsyncSession, *, request_id: uuid.UUID, agent_id: uuid.UUID, actor_id: uuid.UUID
) -> ShiftRequest:
    row = await _visible(session, request_id, agent_id)
    if row.agent_id != agent_id:
        raise Forbidden("Only the agent who asked cancels a request", field="request_id")
    if row.state not in OPEN_STATES:
        raise Conflict(f"The request is {row.state.value}", field="state")
    await _moved(session, row, RequestState.CANCELLED, actor_id)
    await session.flush()
    return row


# ------------------------------------------------------------------------------- supervisors


async def refuse(
    session: AsyncSession, *, request_id: uuid.UUID, note: str, actor_id: uuid.UUID
) -> ShiftRequest:
    row = await get_request(session, request_id)
    if row.state not in OPEN_STATES:
        raise Conflict(f"The request is {row.state.value}", field="state")
    await _moved(session, row, RequestState.REFUSED, actor_id, note, decided=True)
    await session.flush()
    return row


def _unchanged(
    shift: ScheduledShift | None, agent_id: uuid.UUID | None, start: Any, end: Any, field: str
) -> ScheduledShift:
    if shift is None or shift.agent_id != agent_id or shift.start != start or shift.end != end:
        raise Conflict("The shift has changed since the request; refuse it and ask again", field=field)
    return shift


def _cut(shift: ScheduledShift, off_start: datetime, off_end: datetime) -> list[ScheduledShift]:
    """What remains of ``shift`` around the time off, each piece keeping the breaks inside it."""
    spans = []
    if shift.start < off_start:
        spans.append((shift.start, off_start))
    if off_end < shift.end:
        spans.append((off_end, shift.end))
    return [
        ScheduledShift(
            schedule_id=shift.schedule_id,
            agent_id=shift.agent_id,
            template=shift.template,
            start=a,
            end=b,
            breaks=[
                [x, y]
                for x, y in shift.breaks
                if a <= datetime.fromisoformat(x) and datetime.fromisoformat(y) <= b
            ],
        )
        for a, b in spans
    ]


async def _rules_hold(
    session: AsyncSession,
    schedule: Schedule,
    *,
    agent_id: uuid.UUID,
    takes: ScheduledShift,
    gives: ScheduledShift,
    field: str,
) -> None:
    """The schedule service's own checks for ``agent_id`` working ``takes`` instead of ``gives``."""
    try:
        await svc.check_shift(
            session, schedule, agent_id=agent_id, start=takes.start, end=takes.end, ignore=gives.id
        )
    except DomainError as exc:
        name = await session.scalar(select(Agent.display_name).where(Agent.id == agent_id))
        raise type(exc)(f"{name}'s contract: {exc.detail}", field=field, rule=exc.field) from None


async def approve(session: AsyncSession, *, request_id: uuid.UUID, actor_id: uuid.UUID) -> ShiftRequest:
    """Apply the request to the schedule when every rule and the coverage still hold; otherwise
    raise (nothing written): ``CoverageShort`` lists the intervals left short."""
    row = await get_request(session, request_id)
    if not awaits_supervisor(row):
        waiting = row.kind == RequestKind.SWAP and row.state == RequestState.REQUESTED
        raise Conflict(
            "The peer has not accepted the swap" if waiting else f"The request is {row.state.value}",
            field="state",
        )
    schedule = await svc.get_schedule(session, row.schedule_id)
    shifts = await svc.shifts_of(session, schedule.id)
    by_id = {s.id: s for s in shifts}
    mine = _unchanged(by_id.get(row.shift_id), row.agent_id, row.shift_start, row.shift_end, "shift_id")
    if row.kind == RequestKind.SWAP:
        assert row.peer_shift_id is not None and row.peer_id is not None
        theirs = _unchanged(
            by_id.get(row.peer_shift_id),
            row.peer_id,
            row.peer_shift_start,
            row.peer_shift_end,
            "peer_shift_id",
        )
        await _rules_hold(
            session, schedule, agent_id=row.agent_id, takes=theirs, gives=mine, field="agent_id"
        )
        await _rules_hold(session, schedule, agent_id=row.peer_id, takes=mine, gives=theirs, field="peer_id")
        after = [s for s in shifts if s.id not in (mine.id, theirs.id)] + [
            _as(theirs, row.agent_id),
            _as(mine, row.peer_id),
        ]
        pieces: list[ScheduledShift] = []
    else:
        assert row.off_start is not None and row.off_end is not None
        pieces = _cut(mine, row.off_start, row.off_end)
        after = [s for s in shifts if s.id != mine.id] + pieces
    short = short_intervals(svc.coverage(schedule, shifts), svc.coverage(schedule, after))
    if short:
        total = sum(i.worse_by for i in short)
        raise CoverageShort(
            f"Coverage would fall short in {len(short)} interval{'s' if len(short) != 1 else ''} "
            f"({total} agent-interval{'s' if total != 1 else ''} more short)",
            field="coverage",
            intervals=[i.as_json() for i in short],
        )
    # Everything holds: claim the request first (compare-and-set), then write the schedule.
    await _moved(session, row, RequestState.APPROVED, actor_id, decided=True)
    if row.kind == RequestKind.SWAP:
        assert row.peer_id is not None
        mine.agent_id, theirs.agent_id = row.peer_id, row.agent_id
    else:
        await session.delete(mine)
        session.add_all(pieces)
    schedule.version += 1
    record_audit(
        session,
        actor_id=actor_id,
        action="schedule.request_applied",
        entity_type="schedule",
        entity_id=schedule.id,
        after={"request": str(row.id), **request_json(row)},
    )
    await session.flush()
    return row


def _as(shift: ScheduledShift, agent_id: uuid.UUID) -> ScheduledShift:
    """A copy of ``shift`` worked by ``agent_id`` (not added to the session: for coverage only)."""
    return ScheduledShift(
        schedule_id=shift.schedule_id,
        agent_id=agent_id,
        template=shift.template,
        start=shift.start,
        end=shift.end,
        breaks=list(shift.breaks),
    )

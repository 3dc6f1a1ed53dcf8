"""Routing JSON routes: rule-set versions (supervisors) and, later, engine commands and stats."""

from __future__ import annotations

import enum
import json
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import select

from interactions.models import Interaction
from routing import actions, condition_help, dryrun, history, rule_actions, service
from routing.condition_help import ConditionKind
from routing.host import stats_key
from routing.models import Offer, OfferState
from routing.schemas import (
    AgentStatusRead,
    CommandResult,
    ConditionAttributesRead,
    ConditionCheck,
    ConditionCheckRead,
    DryRunRequest,
    OfferRead,
    PresenceUpdate,
    RollbackRequest,
    RuleProblem,
    RuleSetValidationRead,
    RuleSetVersionCreate,
    RuleSetVersionRead,
    RuleSetVersionUpdate,
    TransferRead,
    TransferRequest,
)
from switchboard import commands, replies
from switchboard.bounds import INT32_MAX, ApiDateTime
from switchboard.db import utcnow
from switchboard.deps import CurrentUser, DbSession, RequireSupervisor
from switchboard.errors import (
    Invalid,
    NotFound,
)
from switchboard.middleware import received_at
from workforce.deps import CurrentAgent, MaybeAgent

router = APIRouter(prefix="/api/routing", tags=["routing"])


class HistoryInterval(enum.IntEnum):
    """Interval lengths of the history (an enum, not ``Literal[15, 30, 60]``: a query string's "30"
    is text, and a literal of ints never matched it, so only the default was reachable)."""

    QUARTER_HOUR = 15
    HALF_HOUR = 30
    HOUR = 60


RuleSetVersionNo = Annotated[int, Path(ge=1, le=INT32_MAX)]


async def _read(session, row) -> RuleSetVersionRead:
    live = await service.live_version_number(session)
    return RuleSetVersionRead.model_validate(row).model_copy(update={"live": row.version == live})


@router.get("/rule-sets", response_model=list[RuleSetVersionRead])
async def list_rule_sets(session: DbSession, _user: RequireSupervisor) -> list[RuleSetVersionRead]:
    """Every version, newest first, with who made and published it; ``live`` marks the one in force."""
    return [await _read(session, row) for row in await service.list_versions(session)]


@router.post("/rule-sets", response_model=RuleSetVersionRead, status_code=status.HTTP_201_CREATED)
async def create_rule_set(
    body: RuleSetVersionCreate, session: DbSession, user: RequireSupervisor
) -> RuleSetVersionRead:
    """Save a draft. It is validated on save; a 422 lists every problem with its path."""
    row = await service.create_draft(session, body=body.body, comment=body.comment, actor_id=user.id)
    await session.commit()
    return await _read(session, row)


@router.post("/rule-sets/validate", response_model=RuleSetValidationRead)
async def validate_rule_set(
    body: RuleSetVersionCreate, session: DbSession, _user: RequireSupervisor
) -> RuleSetValidationRead:
    """Check a rule set without saving it (the editor calls this as the supervisor types)."""
    errors = await service.check_rule_set(session, body.body)
    return RuleSetValidationRead(valid=not errors, errors=[RuleProblem(**e) for e in errors])


@router.post("/rule-sets/rollback", response_model=RuleSetVersionRead)
async def rollback_rule_set(
    body: RollbackRequest, request: Request, session: DbSession, user: RequireSupervisor
) -> RuleSetVersionRead:
    """Put an earlier published version live again; audited, and the engine uses it at once."""
    row = await rule_actions.rollback(
        session, actions.EngineLink.of(request), to_version=body.to_version, actor=user
    )
    return await _read(session, row)


@router.post("/rule-sets/reevaluate", responses=actions.ACCEPTED_LATER)
async def reevaluate_waiting(request: Request, session: DbSession, user: RequireSupervisor) -> Any:
    """Re-route waiting work with the live version (explicitly: publishing alone never moves it).
    Each interaction keeps its place in line; only rule-routed work is affected."""
    return {"moved": await rule_actions.reevaluate(session, actions.EngineLink.of(request), actor=user)}


@router.post("/rule-sets/{version}/preview")
async def preview_rule_set(
    version: RuleSetVersionNo, request: Request, session: DbSession, _user: RequireSupervisor
) -> dict[str, Any]:
    """Which waiting interactions would move (queue, filter, step, priority) if this version were
    live and waiting work re-evaluated. Changes nothing."""
    moves = await rule_actions.preview(session, actions.EngineLink.of(request), version=version)
    return {"version": version, "moves": moves}


@router.get("/rule-sets/{version}", response_model=RuleSetVersionRead)
async def get_rule_set(
    version: RuleSetVersionNo, session: DbSession, _user: RequireSupervisor
) -> RuleSetVersionRead:
    return await _read(session, await service.get_version(session, version=version))


@router.put("/rule-sets/{version}", response_model=RuleSetVersionRead)
async def update_rule_set(
    version: RuleSetVersionNo, body: RuleSetVersionUpdate, session: DbSession, user: RequireSupervisor
) -> RuleSetVersionRead:
    row = await service.update_draft(
        session, version=version, body=body.body, comment=body.comment, actor_id=user.id
    )
    await session.commit()
    return await _read(session, row)


@router.post("/rule-sets/{version}/publish", response_model=RuleSetVersionRead)
async def publish_rule_set(
    version: RuleSetVersionNo, request: Request, session: DbSession, user: RequireSupervisor
) -> RuleSetVersionRead:
    """Make this version live, atomically. On any error the previous version stays live."""
    row = await rule_actions.publish(session, actions.EngineLink.of(request), version=version, actor=user)
    return await _read(session, row)


# ---------------------------------------------------------------------- agents at work
# Thin routes over ``routing.actions`` (the desktop's pages call the same functions).


REQUEST_ID = Path(pattern=r"^[0-9a-f]{32}\.[0-9a-f]{32}$")


@router.get("/commands/{request_id}", name="command_status")
async def command_status(
    user: CurrentUser, request: Request, request_id: Annotated[str, REQUEST_ID]
) -> JSONResponse:
    """The outcome of a command answered ``202 Accepted``: ``pending`` until the engine applies
    it, then ``done`` with the engine's verdict (``ok``, ``reason`` and anything it returned, such
    as a transfer's child). Only the user it was handed to can read it; kept for 10 minutes."""
    client = request.app.state.redis_client
    if await replies.pending_owner(client, request_id) != str(user.id):
        raise NotFound("No such pending command (or its status has expired)", field="request_id")
    result = await replies.stored_result(client, request_id)
    if result is None:
        return JSONResponse({"request_id": request_id, "status": "pending"}, headers={"Retry-After": "1"})
    return JSONResponse({"request_id": request_id, "status": "done", **result})


@router.post("/presence", response_model=AgentStatusRead, responses=actions.ACCEPTED_LATER)
async def set_presence(
    body: PresenceUpdate, session: DbSession, request: Request, agent: CurrentAgent
) -> AgentStatusRead:
    """The agent's own status. Routing reacts at once (offers start, stop or are rescinded).

    Saved only if routing can be told: Redis refusing the command undoes the change (503), so
    the agent never shows one status while routing acts on another."""
    changed = await actions.set_presence(
        session, actions.EngineLink.of(request), agent, presence=body.presence, reason=body.reason
    )
    return AgentStatusRead.model_validate(changed)


@router.get("/offers", response_model=list[OfferRead])
async def my_offers(session: DbSession, agent: MaybeAgent) -> list[OfferRead]:
    """The agent's live offers (the desktop's toast on load/reconnect)."""
    if agent is None:
        return []
    rows = await session.scalars(
        select(Offer)
        .where(Offer.agent_id == agent.id, Offer.state == OfferState.LIVE)
        .order_by(Offer.created_at)
    )
    return [OfferRead.model_validate(o) for o in rows]


@router.post("/offers/{offer_id}/accept", response_model=CommandResult, responses=actions.ACCEPTED_LATER)
async def accept_offer(
    offer_id: uuid.UUID, session: DbSession, request: Request, agent: CurrentAgent
) -> CommandResult:
    """Accept an offer. 409 when it expired, was rescinded or is another agent's; nothing changes."""
    link = actions.EngineLink.of(request)
    return await actions.accept(session, link, agent, offer_id, received_at=received_at(request.scope))


@router.post("/offers/{offer_id}/reject", response_model=CommandResult, responses=actions.ACCEPTED_LATER)
async def reject_offer(
    offer_id: uuid.UUID, session: DbSession, request: Request, agent: CurrentAgent
) -> CommandResult:
    link = actions.EngineLink.of(request)
    return await actions.reject(session, link, agent, offer_id, received_at=received_at(request.scope))


@router.post(
    "/interactions/{interaction_id}/wrap-up", response_model=CommandResult, responses=actions.ACCEPTED_LATER
)
async def start_wrap_up(
    interaction_id: uuid.UUID, session: DbSession, request: Request, agent: CurrentAgent
) -> CommandResult:
    """The conversation ended: after-contact work starts; the agent keeps the capacity until complete."""
    return await actions.wrap_up(session, actions.EngineLink.of(request), agent, interaction_id)


@router.post(
    "/interactions/{interaction_id}/complete", response_model=CommandResult, responses=actions.ACCEPTED_LATER
)
async def complete(
    interaction_id: uuid.UUID, session: DbSession, request: Request, agent: CurrentAgent
) -> CommandResult:
    """Wrap-up done: the interaction completes and the agent's capacity is released.

    A completed interaction always carries a wrap-up code: set it first
    (``PUT /api/interactions/{id}/disposition``, or the desktop's wrap-up form)."""
    return await actions.complete(session, actions.EngineLink.of(request), agent, interaction_id)


@router.post(
    "/interactions/{interaction_id}/transfer", response_model=TransferRead, responses=actions.ACCEPTED_LATER
)
async def transfer(
    interaction_id: uuid.UUID,
    body: TransferRequest,
    session: DbSession,
    request: Request,
    agent: CurrentAgent,
) -> TransferRead:
    """Hand a connected interaction to a queue or a named agent; a child interaction keeps the
    customer's place in line and carries the note.

    ``blind``: it ends here as ``transferred`` at once. ``warm``: a consult — you stay connected
    (``consult: pending``) until the target accepts the child, then it ends as ``transferred``;
    if they reject or miss it, or nobody could take it in time, the child is cancelled and the
    customer stays with you. Follow it with ``GET .../transfer``; withdraw it with ``.../cancel``."""
    return await actions.transfer(session, actions.EngineLink.of(request), agent, interaction_id, body)


@router.get("/interactions/{interaction_id}/transfer", response_model=TransferRead)
async def transfer_status(interaction_id: uuid.UUID, session: DbSession, agent: CurrentAgent) -> TransferRead:
    """The latest transfer of an interaction you hold or held, with its consult status."""
    return await actions.transfer_status(session, agent, interaction_id)


@router.post(
    "/interactions/{interaction_id}/transfer/cancel",
    response_model=TransferRead,
    responses=actions.ACCEPTED_LATER,
)
async def cancel_transfer(
    interaction_id: uuid.UUID, session: DbSession, request: Request, agent: CurrentAgent
) -> TransferRead:
    """Withdraw a warm transfer still waiting for its target: the child is cancelled and you keep
    the customer. 409 when none is in progress (e.g. the target has just accepted)."""
    return await actions.cancel_transfer(session, actions.EngineLink.of(request), agent, interaction_id)


@router.post(
    "/interactions/{interaction_id}/abandon", response_model=CommandResult, responses=actions.ACCEPTED_LATER
)
async def abandon(
    interaction_id: uuid.UUID, session: DbSession, request: Request, user: RequireSupervisor
) -> CommandResult:
    """The customer gave up (channel adapters call the same command): it leaves the queue."""
    interaction = await session.get(Interaction, interaction_id)
    await session.commit()
    if interaction is None:
        raise NotFound("No such interaction", field="interaction_id")
    command = commands.Abandon(interaction_id=str(interaction_id))
    reply = await actions.call_engine(actions.EngineLink.of(request), command, owner=user.id)
    return actions.verdict(reply, subject="Cannot abandon")


# ---------------------------------------------------------------------- supervisors


@router.post("/dry-run")
async def dry_run(
    body: DryRunRequest, request: Request, session: DbSession, _user: RequireSupervisor
) -> dict[str, Any]:
    """Where would this interaction go now: the filters tried and the steps passed over (``trace``),
    filter, step, queue, effective priority, the eligible agents ranked (by name, with the reason
    for each rank) and why the queue's other agents are not eligible (``others``). Give an
    ``interaction_id`` (real waiting work), a ``contact`` described in plain terms, or raw rule
    ``context`` attributes; ``version`` tries a draft instead of the live rule set. Changes nothing."""
    context = dict(body.context)
    if body.contact is not None:
        context = {**dryrun.contact_context(body.contact), **context}
    return await dryrun.dry_run(
        session,
        actions.EngineLink.of(request),
        context=context,
        interaction_id=body.interaction_id,
        version=body.version,
    )


@router.post("/conditions/validate", response_model=ConditionCheckRead)
async def validate_condition(
    body: ConditionCheck, session: DbSession, _user: RequireSupervisor
) -> ConditionCheckRead:
    """Parse a filter's ``when`` or a step's ``target`` with the engine's own parser: the first
    problem with its position (0-based ``position``, 1-based ``column``), and completions for the
    word at the end of the text (attribute names, keywords, known values)."""
    verdict = condition_help.check(body.text, body.kind)
    wanted = condition_help.value_source(body.text)
    values = await condition_help.known_values(session, agents_too=wanted in condition_help.AGENT_SOURCES)
    await session.commit()
    return ConditionCheckRead(
        valid=verdict.valid,
        message=verdict.message or None,
        position=None if verdict.valid else verdict.position,
        column=None if verdict.valid else verdict.column,
        completions=condition_help.completions(body.text, body.kind, values),
    )


@router.get("/conditions/attributes", response_model=ConditionAttributesRead)
async def condition_attributes(
    session: DbSession, _user: RequireSupervisor, kind: ConditionKind = "when"
) -> ConditionAttributesRead:
    """The attribute names a condition of this kind may read, and the values the floor knows."""
    values = await condition_help.known_values(session)
    await session.commit()
    return ConditionAttributesRead(
        kind=kind,
        attributes=condition_help.attribute_names(kind, values["skills"]),
        values={
            name: values[source]
            for name, source in condition_help.VALUE_SOURCES.items()
            if name in condition_help.SCHEMAS[kind].attrs
        },
    )


@router.get("/stats/history")
async def stats_history(
    session: DbSession,
    _user: RequireSupervisor,
    start: ApiDateTime | None = None,
    end: ApiDateTime | None = None,
    queue: str | None = Query(default=None, max_length=60),
    interval_minutes: HistoryInterval = HistoryInterval.QUARTER_HOUR,
) -> dict[str, Any]:
    """Cumulative figures per queue and interval (default: today, UTC), durable across fail-overs."""
    now = utcnow()
    start = _aware(start, "query.start") if start else now.replace(hour=0, minute=0, second=0, microsecond=0)
    end = _aware(end, "query.end") if end else now + timedelta(minutes=1)
    if end <= start:
        raise Invalid("end must be after start", field="query.end")
    if end - start > timedelta(days=93):
        raise Invalid("at most 93 days per request", field="query.end")
    rows = await history.history(session, start=start, end=end, queue=queue, minutes=int(interval_minutes))
    return {"start": start.isoformat(), "end": end.isoformat(), "intervals": rows}


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise Invalid("give a time zone offset (e.g. 2026-11-23T09:00:00Z)", field=field)
    return value


@router.get("/stats")
async def realtime_stats(request: Request, _user: RequireSupervisor) -> dict[str, Any]:
    """Real-time queue figures (waiting, longest wait, offered/accepted/rejected/missed/abandoned,
    service level, AHT) and agent-state counts, kept incrementally by the engine."""
    raw = await request.app.state.redis_client.get(stats_key())
    if raw is None:
        # No leader has published for 30 s: say so plainly; the wallboard shows "engine offline".
        return {"available": False, "queues": {}, "agents_by_presence": {}, "totals": {}}
    return {"available": True, **json.loads(raw)}

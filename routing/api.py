"""Routing JSON routes: rule-set versions (supervisors) and, later, engine commands and stats."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import select, update

from interactions.models import Interaction
from routing import commands, history, replies, service
from routing import transfer as transfers
from routing.host import stats_key
from routing.lease import LeaseManager
from routing.models import Agent, Offer, OfferState, Presence
from routing.schemas import (
    AgentStatusRead,
    CommandResult,
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
from switchboard.audit import record_audit
from switchboard.db import utcnow
from switchboard.deps import CurrentUser, DbSession, MaybeAgent, RequireSupervisor
from switchboard.errors import (
    OUTAGE_ERRORS,
    Conflict,
    Invalid,
    NotFound,
    ServiceUnavailable,
    StillProcessing,
)

router = APIRouter(prefix="/api/routing", tags=["routing"])


async def _notify_rules_changed(request: Request) -> None:
    await commands.send(request.app.state.redis_client, commands.RuleSetPublished())


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
    row = await service.rollback(session, to_version=body.to_version, actor_id=user.id)
    await session.commit()
    await _notify_rules_changed(request)
    return await _read(session, row)


@router.post("/rule-sets/reevaluate")
async def reevaluate_waiting(request: Request, session: DbSession, user: RequireSupervisor) -> Any:
    """Re-route waiting work with the live version (explicitly: publishing alone never moves it).
    Each interaction keeps its place in line; only rule-routed work is affected."""
    if await LeaseManager(request.app.state.redis_client).current_holder() is None:
        # Nothing routes in memory now. The next leader keeps waiting work on its pinned version
        # (a take-over never moves work silently), so there is nothing to re-evaluate yet: a state
        # conflict the supervisor can resolve by retrying, not a server fault.
        raise Conflict(
            "No routing engine is running; waiting work stays on the rule-set version that routed "
            "it. Re-evaluate once an engine is running."
        )
    reply = await _engine_call(request, commands.Reevaluate(), owner=user.id)
    _result(reply, subject="Cannot re-evaluate")
    record_audit(
        session,
        actor_id=user.id,
        action="rule_set.reevaluated",
        entity_type="rule_set",
        entity_id=f"{service.DEFAULT_PARTITION}:{await service.live_version_number(session)}",
        data={"moved": reply.get("moved", 0)},
    )
    await session.commit()
    return {"moved": reply.get("moved", 0)}


@router.post("/rule-sets/{version}/preview")
async def preview_rule_set(
    version: int, request: Request, session: DbSession, _user: RequireSupervisor
) -> dict[str, Any]:
    """Which waiting interactions would move (queue, filter, step, priority) if this version were
    live and waiting work re-evaluated. Changes nothing."""
    row = await service.get_version(session, version=version)
    problems = await service.check_rule_set(session, row.body)
    await session.commit()  # hold no transaction while the engine works (SQLite's lock is global)
    if problems:
        raise Invalid("This version is invalid against the current queues and skills", field="version")
    reply = await _engine_call(request, commands.PreviewRules(version=version))
    _result(reply, subject="Cannot preview")
    return {"version": version, "moves": reply["moves"]}


@router.get("/rule-sets/{version}", response_model=RuleSetVersionRead)
async def get_rule_set(version: int, session: DbSession, _user: RequireSupervisor) -> RuleSetVersionRead:
    return await _read(session, await service.get_version(session, version=version))


@router.put("/rule-sets/{version}", response_model=RuleSetVersionRead)
async def update_rule_set(
    version: int, body: RuleSetVersionUpdate, session: DbSession, user: RequireSupervisor
) -> RuleSetVersionRead:
    row = await service.update_draft(
        session, version=version, body=body.body, comment=body.comment, actor_id=user.id
    )
    await session.commit()
    return await _read(session, row)


@router.post("/rule-sets/{version}/publish", response_model=RuleSetVersionRead)
async def publish_rule_set(
    version: int, request: Request, session: DbSession, user: RequireSupervisor
) -> RuleSetVersionRead:
    """Make this version live, atomically. On any error the previous version stays live."""
    row = await service.publish(session, version=version, actor_id=user.id)
    await session.commit()
    await _notify_rules_changed(request)
    return await _read(session, row)


# ---------------------------------------------------------------------- agents at work


async def _engine_call(
    request: Request, command: commands.Command, *, owner: uuid.UUID | None = None
) -> dict[str, Any]:
    """The engine's reply. ``owner``: the user a changing command acts for. If the engine does not
    answer in time, such a command is still in its stream and may be applied later, so the answer
    is 202 with a status link only ``owner`` can follow (as Genesys Cloud answers participant
    changes 202 and the desktop learns the outcome from its notifications: ours from its socket).
    A read-only query (no owner) changes nothing later: 503 with Retry-After."""
    client = request.app.state.redis_client
    try:
        return await commands.call(client, command)
    except commands.EngineUnavailable as exc:
        if owner is None or exc.request_id is None:
            raise ServiceUnavailable(str(exc)) from exc
        await replies.remember_pending(client, exc.request_id, owner=str(owner))
        raise StillProcessing(
            "The routing engine has not answered yet; the command will be applied when it does. "
            "Follow status_url for the outcome.",
            status_url=str(request.url_for("command_status", request_id=exc.request_id).path),
            request_id=exc.request_id,
        ) from exc


def _result(reply: dict[str, Any], *, subject: str) -> CommandResult:
    if not reply.get("ok"):
        raise Conflict(f"{subject}: {reply.get('reason', 'refused')}", reason=reply.get("reason"))
    return CommandResult(ok=True)


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


def _require_profile(agent: Agent | None) -> Agent:
    if agent is None:
        raise NotFound("This user has no agent profile", field="agent")
    return agent


async def _own_offer(session: DbSession, offer_id: uuid.UUID, agent: Agent | None) -> Offer:
    """The offer, if it was made to this agent: unknown is 404, someone else's is 409."""
    offer = await session.get(Offer, offer_id)
    await session.commit()
    if offer is None:
        raise NotFound("No such offer", field="offer_id")
    if agent is None or offer.agent_id != agent.id:
        raise Conflict("This offer was made to another agent", field="offer_id")
    return offer


async def _held_interaction(
    session: DbSession, interaction_id: uuid.UUID, agent: Agent | None
) -> Interaction:
    interaction = await session.get(Interaction, interaction_id)
    await session.commit()
    if interaction is None or agent is None or interaction.agent_id != agent.id:
        raise NotFound("No such interaction held by this agent", field="interaction_id")
    return interaction


@router.post("/presence", response_model=AgentStatusRead)
async def set_presence(
    body: PresenceUpdate, request: Request, session: DbSession, maybe_agent: MaybeAgent
) -> AgentStatusRead:
    """The agent's own status. Routing reacts at once (offers start, stop or are rescinded).

    Saved only if routing can be told: Redis refusing the command undoes the change (503), so
    the agent never shows one status while routing acts on another."""
    agent = await session.merge(_require_profile(maybe_agent))
    before: dict[str, Any] = {"presence": agent.presence, "presence_reason": agent.presence_reason}
    before["presence_since"] = agent.presence_since
    agent.presence = Presence(body.presence)
    agent.presence_reason = body.reason
    agent.presence_since = since = utcnow()
    await session.commit()
    try:
        await commands.send(request.app.state.redis_client, commands.AgentChanged(agent_id=str(agent.id)))
    except OUTAGE_ERRORS as exc:
        # Only our own change, and only if nothing changed it since (the engine, another tab).
        await session.execute(
            update(Agent)
            .where(Agent.id == agent.id, Agent.presence_since == since)
            .values(**before)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        detail = "Routing is unavailable: your status was not changed. Retry shortly."
        raise ServiceUnavailable(detail) from exc
    return AgentStatusRead.model_validate(agent)


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


async def _offer_command(
    kind: type[commands.Accept | commands.Reject],
    offer_id: uuid.UUID,
    request: Request,
    session: DbSession,
    agent: Agent | None,
    subject: str,
) -> CommandResult:
    # The agent answered now: the engine judges the answer against the offer's expiry by this
    # time, however long the command then waits behind others (``Engine._live_offer``).
    received_at = time.time()
    offer = await _own_offer(session, offer_id, agent)
    command = kind(offer_id=str(offer.id), agent_id=str(offer.agent_id), received_at=received_at)
    reply = await _engine_call(request, command, owner=agent.user_id if agent else None)
    return _result(reply, subject=subject)


@router.post("/offers/{offer_id}/accept", response_model=CommandResult)
async def accept_offer(
    offer_id: uuid.UUID, request: Request, session: DbSession, agent: MaybeAgent
) -> CommandResult:
    """Accept an offer. 409 when it expired, was rescinded or is another agent's; nothing changes."""
    return await _offer_command(
        commands.Accept, offer_id, request, session, agent, "The offer cannot be accepted"
    )


@router.post("/offers/{offer_id}/reject", response_model=CommandResult)
async def reject_offer(
    offer_id: uuid.UUID, request: Request, session: DbSession, agent: MaybeAgent
) -> CommandResult:
    return await _offer_command(
        commands.Reject, offer_id, request, session, agent, "The offer cannot be rejected"
    )


async def _work_command(
    kind: type[commands.WrapUp | commands.Complete],
    interaction_id: uuid.UUID,
    request: Request,
    session: DbSession,
    agent: Agent | None,
    subject: str,
) -> CommandResult:
    held = await _held_interaction(session, interaction_id, agent)
    reply = await _engine_call(
        request,
        kind(interaction_id=str(held.id), agent_id=str(held.agent_id)),
        owner=agent.user_id if agent else None,
    )
    return _result(reply, subject=subject)


@router.post("/interactions/{interaction_id}/wrap-up", response_model=CommandResult)
async def start_wrap_up(
    interaction_id: uuid.UUID, request: Request, session: DbSession, agent: MaybeAgent
) -> CommandResult:
    """The conversation ended: after-contact work starts; the agent keeps the capacity until complete."""
    return await _work_command(
        commands.WrapUp, interaction_id, request, session, agent, "Cannot start wrap-up"
    )


@router.post("/interactions/{interaction_id}/complete", response_model=CommandResult)
async def complete(
    interaction_id: uuid.UUID, request: Request, session: DbSession, agent: MaybeAgent
) -> CommandResult:
    """Wrap-up done: the interaction completes and the agent's capacity is released.

    A completed interaction always carries a wrap-up code: set it first
    (``PUT /api/interactions/{id}/disposition``, or the desktop's wrap-up form)."""
    held = await _held_interaction(session, interaction_id, agent)
    if not held.disposition:
        raise Invalid("Set a wrap-up code (disposition) before completing", field="disposition")
    return await _work_command(commands.Complete, interaction_id, request, session, agent, "Cannot complete")


@router.post("/interactions/{interaction_id}/transfer", response_model=TransferRead)
async def transfer(
    interaction_id: uuid.UUID, body: TransferRequest, request: Request, session: DbSession, agent: MaybeAgent
) -> TransferRead:
    """Hand a connected interaction to a queue or a named agent; a child interaction keeps the
    customer's place in line and carries the note.

    ``blind``: it ends here as ``transferred`` at once. ``warm``: a consult — you stay connected
    (``consult: pending``) until the target accepts the child, then it ends as ``transferred``;
    if they reject or miss it, or nobody could take it in time, the child is cancelled and the
    customer stays with you. Follow it with ``GET .../transfer``; withdraw it with ``.../cancel``."""
    held = await _held_interaction(session, interaction_id, agent)
    if body.to_agent_id is not None and body.to_agent_id == held.agent_id:
        raise Invalid("You cannot transfer to yourself", field="body.to_agent_id")
    command = commands.Transfer(
        interaction_id=str(held.id),
        agent_id=str(held.agent_id),
        mode=body.mode,
        note=body.note,
        to_queue=body.to_queue,
        to_agent_id=str(body.to_agent_id) if body.to_agent_id is not None else None,
    )
    reply = await _engine_call(request, command, owner=agent.user_id if agent else None)
    _result(reply, subject="Cannot transfer")
    return TransferRead(
        ok=True, child_interaction_id=reply.get("child_interaction_id"), consult=reply.get("consult")
    )


async def _transfer_status(session: DbSession, parent_id: uuid.UUID) -> TransferRead:
    found = await transfers.consult_status(session, parent_id=parent_id)
    await session.commit()
    if found is None:
        raise NotFound("This interaction was not transferred", field="interaction_id")
    child, consult, outcome = found
    return TransferRead(ok=True, child_interaction_id=child.id, consult=consult, consult_outcome=outcome)


@router.get("/interactions/{interaction_id}/transfer", response_model=TransferRead)
async def transfer_status(interaction_id: uuid.UUID, session: DbSession, agent: MaybeAgent) -> TransferRead:
    """The latest transfer of an interaction you hold or held, with its consult status."""
    held = await _held_interaction(session, interaction_id, agent)
    return await _transfer_status(session, held.id)


@router.post("/interactions/{interaction_id}/transfer/cancel", response_model=TransferRead)
async def cancel_transfer(
    interaction_id: uuid.UUID, request: Request, session: DbSession, agent: MaybeAgent
) -> TransferRead:
    """Withdraw a warm transfer still waiting for its target: the child is cancelled and you keep
    the customer. 409 when none is in progress (e.g. the target has just accepted)."""
    held = await _held_interaction(session, interaction_id, agent)
    reply = await _engine_call(
        request,
        commands.CancelConsult(interaction_id=str(held.id), agent_id=str(held.agent_id)),
        owner=agent.user_id if agent else None,
    )
    _result(reply, subject="Cannot cancel the transfer")
    return await _transfer_status(session, held.id)


@router.post("/interactions/{interaction_id}/abandon", response_model=CommandResult)
async def abandon(
    interaction_id: uuid.UUID, request: Request, session: DbSession, user: RequireSupervisor
) -> CommandResult:
    """The customer gave up (channel adapters call the same command): it leaves the queue."""
    interaction = await session.get(Interaction, interaction_id)
    await session.commit()
    if interaction is None:
        raise NotFound("No such interaction", field="interaction_id")
    reply = await _engine_call(request, commands.Abandon(interaction_id=str(interaction_id)), owner=user.id)
    return _result(reply, subject="Cannot abandon")


# ---------------------------------------------------------------------- supervisors


@router.post("/dry-run")
async def dry_run(body: DryRunRequest, request: Request, _user: RequireSupervisor) -> dict[str, Any]:
    """Where would this interaction go now: filter, step, queue, effective priority, and the
    currently eligible agents ranked with the reason for each rank. Changes nothing."""
    if body.interaction_id is None and "channel" not in body.context:
        raise Invalid("Give an interaction_id, or a context with at least a channel", field="body.context")
    command = commands.Explain(
        context=body.context,
        interaction_id=str(body.interaction_id) if body.interaction_id is not None else None,
    )
    reply = await _engine_call(request, command)
    if not reply.get("ok"):
        raise Invalid(f"Cannot explain: {reply.get('reason')}", field="body")
    return reply["explanation"]


@router.get("/stats/history")
async def stats_history(
    session: DbSession,
    _user: RequireSupervisor,
    start: datetime | None = None,
    end: datetime | None = None,
    queue: str | None = Query(default=None, max_length=60),
    interval_minutes: Literal[15, 30, 60] = 15,
) -> dict[str, Any]:
    """Cumulative figures per queue and interval (default: today, UTC), durable across fail-overs."""
    now = utcnow()
    start = _aware(start, "query.start") if start else now.replace(hour=0, minute=0, second=0, microsecond=0)
    end = _aware(end, "query.end") if end else now + timedelta(minutes=1)
    if end <= start:
        raise Invalid("end must be after start", field="query.end")
    if end - start > timedelta(days=93):
        raise Invalid("at most 93 days per request", field="query.end")
    rows = await history.history(session, start=start, end=end, queue=queue, minutes=interval_minutes)
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

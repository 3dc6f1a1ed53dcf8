"""JSON API of the loop: ``/api/alert-rules`` (supervisors), ``/api/follow-ups`` (owners: an
agent sees only their own) and ``/api/improvements`` (supervisors). Thin: the work is in
``rules``, ``follow_ups`` and ``improvements``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from experience import follow_ups, improvements, rules
from experience.models import FollowUp, FollowUpState, SignalKind
from experience.schemas import (
    AlertRuleCreate,
    AlertRuleOut,
    AlertRuleUpdate,
    EvaluationOut,
    FollowUpChange,
    FollowUpList,
    FollowUpOut,
    ImprovementCandidate,
    ImprovementCreate,
    ImprovementOut,
    ImprovementUpdate,
    NoteOut,
)
from switchboard.db import utcnow
from switchboard.deps import DbSession, RequireAgent, RequireSupervisor

router = APIRouter(tags=["experience"])


# --------------------------------------------------------------------------- alert rules


@router.get("/api/alert-rules", response_model=list[AlertRuleOut])
async def list_alert_rules(session: DbSession, user: RequireSupervisor) -> list[AlertRuleOut]:
    found = await rules.list_rules(session)
    await session.commit()
    return [AlertRuleOut.model_validate(r) for r in found]


@router.get("/api/alert-rules/attributes", response_model=dict[str, list[str]])
async def alert_rule_attributes(user: RequireSupervisor) -> dict[str, list[str]]:
    """What a condition may name, per signal kind."""
    return {kind.value: rules.attributes(kind) for kind in SignalKind}


@router.post("/api/alert-rules", response_model=AlertRuleOut, status_code=201)
async def create_alert_rule(
    body: AlertRuleCreate, session: DbSession, user: RequireSupervisor
) -> AlertRuleOut:
    rule = await rules.create_rule(session, body, actor_id=user.id)
    out = AlertRuleOut.model_validate(rule)
    await session.commit()
    return out


@router.get("/api/alert-rules/{rule_id}", response_model=AlertRuleOut)
async def get_alert_rule(rule_id: uuid.UUID, session: DbSession, user: RequireSupervisor) -> AlertRuleOut:
    out = AlertRuleOut.model_validate(await rules.get_rule(session, rule_id))
    await session.commit()
    return out


@router.patch("/api/alert-rules/{rule_id}", response_model=AlertRuleOut)
async def update_alert_rule(
    rule_id: uuid.UUID, body: AlertRuleUpdate, session: DbSession, user: RequireSupervisor
) -> AlertRuleOut:
    rule = await rules.update_rule(session, rule_id, body, actor_id=user.id)
    out = AlertRuleOut.model_validate(rule)
    await session.commit()
    return out


@router.post("/api/alert-rules/evaluate", response_model=EvaluationOut)
async def evaluate_now(session: DbSession, user: RequireSupervisor) -> EvaluationOut:
    """Run the rules now (the worker runs them every minute); raises nothing twice."""
    result = await follow_ups.evaluate(session)
    return EvaluationOut(signals=result.signals, raised=result.raised)


# --------------------------------------------------------------------------- follow-ups


async def follow_up_out(session: DbSession, found: list[FollowUp]) -> list[FollowUpOut]:
    now = utcnow()
    links, notes = await follow_ups.links_and_notes(session, [f.id for f in found])
    return [
        FollowUpOut.model_validate(f).model_copy(
            update={
                "overdue": follow_ups.is_overdue(f, now),
                "interaction_ids": links[f.id],
                "notes": [NoteOut.model_validate(n) for n in notes[f.id]],
            }
        )
        for f in found
    ]


@router.get("/api/follow-ups", response_model=FollowUpList)
async def list_follow_ups(
    session: DbSession,
    user: RequireAgent,
    owner: Annotated[str, Query(description="me, unassigned, all (supervisors) or a user id")] = "all",
    state: Annotated[list[FollowUpState] | None, Query()] = None,
    signal: SignalKind | None = None,
    customer_id: uuid.UUID | None = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> FollowUpList:
    found = await follow_ups.list_follow_ups(
        session,
        user,
        owner=owner,
        states=state,
        signal=signal,
        customer_id=customer_id,
        overdue=overdue,
        limit=limit,
    )
    items = await follow_up_out(session, found)
    await session.commit()
    return FollowUpList(items=items)


@router.get("/api/follow-ups/{follow_up_id}", response_model=FollowUpOut)
async def get_follow_up(follow_up_id: uuid.UUID, session: DbSession, user: RequireAgent) -> FollowUpOut:
    found = await follow_ups.get_follow_up(session, follow_up_id, user)
    (out,) = await follow_up_out(session, [found])
    await session.commit()
    return out


@router.patch("/api/follow-ups/{follow_up_id}", response_model=FollowUpOut)
async def change_follow_up(
    follow_up_id: uuid.UUID, body: FollowUpChange, session: DbSession, user: RequireAgent
) -> FollowUpOut:
    changed = await follow_ups.change_follow_up(session, follow_up_id, body, user=user)
    await session.commit()
    (out,) = await follow_up_out(session, [changed])
    await session.commit()
    return out


# --------------------------------------------------------------------------- improvements


@router.get("/api/improvements", response_model=list[ImprovementOut])
async def list_improvements(
    session: DbSession, user: RequireSupervisor, include_done: bool = False
) -> list[ImprovementOut]:
    found = await improvements.list_improvements(session, include_done=include_done)
    await session.commit()
    return found


@router.get("/api/improvements/candidates", response_model=list[ImprovementCandidate])
async def improvement_candidates(session: DbSession, user: RequireSupervisor) -> list[ImprovementCandidate]:
    found = await improvements.candidates(session)
    await session.commit()
    return found


@router.get("/api/improvements/trend", response_model=improvements.Trend)
async def improvement_trend(session: DbSession, user: RequireSupervisor) -> improvements.Trend:
    trend = await improvements.trend(session)
    await session.commit()
    return trend


@router.post("/api/improvements", response_model=ImprovementOut, status_code=201)
async def create_improvement(
    body: ImprovementCreate, session: DbSession, user: RequireSupervisor
) -> ImprovementOut:
    item = await improvements.create_improvement(session, body, actor_id=user.id)
    await session.commit()
    return await improvements.describe(session, item)


@router.patch("/api/improvements/{improvement_id}", response_model=ImprovementOut)
async def update_improvement(
    improvement_id: uuid.UUID, body: ImprovementUpdate, session: DbSession, user: RequireSupervisor
) -> ImprovementOut:
    item = await improvements.update_improvement(session, improvement_id, body, actor_id=user.id)
    await session.commit()
    return await improvements.describe(session, item)

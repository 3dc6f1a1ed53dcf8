"""``/supervisor/follow-ups``: the owner's console for follow-ups raised by alert rules (issue #12).

The list is a plain GET form of filters (owner, state, signal, overdue) and a table; one follow-up
opens on its own page with its linked interactions, its notes, the customer's timeline and one
form to change the state, set the cause and add a note (all by keyboard: Tab, arrows, Enter).
The form calls ``experience.follow_ups.change_follow_up``, as the JSON API does, so both are
audited the same way. ``/supervisor/improvements`` is the big loop: open items, their age, the
groups that could become one, and the weekly trend as a chart.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from console.context import console_context, supervisor_or_login
from experience import follow_ups, improvements
from experience.models import AlertRule, FollowUpState, SignalKind
from experience.schemas import FollowUpChange, ImprovementCreate, ImprovementUpdate
from interactions.models import Interaction
from interactions.service import customer_timeline
from switchboard.auth.models import Role, User
from switchboard.db import utcnow
from switchboard.deps import AppSettings, DbSession, OptionalUser
from switchboard.errors import DomainError, Invalid
from switchboard.templating import templates

router = APIRouter(tags=["pages"], include_in_schema=False)
ModelT = TypeVar("ModelT", bound=BaseModel)

TIMELINE_LIMIT = 30
STATE_LABELS = {
    FollowUpState.OPEN: "Open",
    FollowUpState.IN_PROGRESS: "In progress",
    FollowUpState.RESOLVED: "Resolved",
    FollowUpState.ESCALATED: "Escalated",
}
SIGNAL_LABELS = {
    SignalKind.FEEDBACK: "Customer feedback",
    SignalKind.REPEAT_CONTACT: "Repeat contact",
    SignalKind.SERVICE_LEVEL: "Service level",
    SignalKind.EX_PULSE: "Agent experience",
    SignalKind.ABANDON: "Abandoned contact",
}


async def _names(session: AsyncSession, ids: set[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {
        uid: name
        for uid, name in (
            await session.execute(select(User.id, User.display_name).where(User.id.in_(wanted)))
        ).all()
    }


@router.get("/supervisor/follow-ups", response_class=HTMLResponse)
async def follow_ups_page(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    params = request.query_params
    form = {
        "owner": params.get("owner", "all"),
        "state": params.get("state", "active"),
        "signal": params.get("signal", ""),
        "overdue": params.get("overdue", ""),
    }
    states = (
        [FollowUpState.OPEN, FollowUpState.IN_PROGRESS, FollowUpState.ESCALATED]
        if form["state"] == "active"
        else [FollowUpState(form["state"])]
        if form["state"] in {s.value for s in FollowUpState}
        else None
    )
    signal = SignalKind(form["signal"]) if form["signal"] in {s.value for s in SignalKind} else None
    owner = form["owner"] if form["owner"] in ("me", "unassigned", "all") else "all"
    found = await follow_ups.list_follow_ups(
        session, staff, owner=owner, states=states, signal=signal, overdue=True if form["overdue"] else None
    )
    names = await _names(session, {f.owner_user_id for f in found})
    context = await console_context(
        request,
        staff,
        settings,
        session,
        form=form,
        items=found,
        names=names,
        now=utcnow(),
        state_labels=STATE_LABELS,
        signal_labels=SIGNAL_LABELS,
    )
    await session.commit()
    return templates.TemplateResponse(request, "console/follow_ups.html", context)


async def _detail(
    request: Request,
    staff: User,
    settings: AppSettings,
    session: AsyncSession,
    follow_up_id: uuid.UUID,
    *,
    error: DomainError | None = None,
    saved: bool = False,
) -> Response:
    item = await follow_ups.get_follow_up(session, follow_up_id, staff)
    links, notes = await follow_ups.links_and_notes(session, [item.id])
    interactions = (
        list(
            await session.scalars(
                select(Interaction).where(Interaction.id.in_(links[item.id])).order_by(Interaction.created_at)
            )
        )
        if links[item.id]
        else []
    )
    timeline = (
        (await customer_timeline(session, customer_id=item.customer_id, limit=TIMELINE_LIMIT)).items
        if item.customer_id
        else []
    )
    rule = await session.get(AlertRule, item.rule_id)
    names = await _names(
        session,
        {item.owner_user_id, item.escalated_from_user_id, *(n.author_user_id for n in notes[item.id])},
    )
    context = await console_context(
        request,
        staff,
        settings,
        session,
        item=item,
        rule=rule,
        interactions=interactions,
        notes=notes[item.id],
        timeline=timeline,
        names=names,
        now=utcnow(),
        moves=sorted(follow_ups.TRANSITIONS[item.state], key=list(FollowUpState).index),
        state_labels=STATE_LABELS,
        signal_labels=SIGNAL_LABELS,
        error=error,
        saved=saved,
    )
    await session.commit()
    return templates.TemplateResponse(
        request, "console/follow_up.html", context, status_code=error.status if error else 200
    )


@router.get("/supervisor/follow-ups/{follow_up_id}", response_class=HTMLResponse)
async def follow_up_page(
    follow_up_id: uuid.UUID,
    request: Request,
    user: OptionalUser,
    settings: AppSettings,
    session: DbSession,
    saved: str = "",
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    return await _detail(request, staff, settings, session, follow_up_id, saved=bool(saved))


@router.post("/supervisor/follow-ups/{follow_up_id}", response_class=HTMLResponse)
async def change_follow_up(
    follow_up_id: uuid.UUID, request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    form = await request.form()
    fields: dict[str, Any] = {}
    for name in ("state", "cause", "note"):
        value = str(form.get(name, "")).strip()
        if value:
            fields[name] = value
    try:
        change = _parse(FollowUpChange, fields)
        await follow_ups.change_follow_up(session, follow_up_id, change, user=staff)
    except DomainError as exc:
        await session.rollback()
        if exc.status == 404:
            raise
        return await _detail(request, staff, settings, session, follow_up_id, error=exc)
    await session.commit()
    return RedirectResponse(f"/supervisor/follow-ups/{follow_up_id}?saved=1", status_code=303)


# --------------------------------------------------------------------------- big loop


async def _supervisors(session: AsyncSession) -> list[User]:
    return list(
        await session.scalars(
            select(User)
            .where(User.role.in_((Role.SUPERVISOR, Role.ADMIN)), User.is_active.is_(True))
            .order_by(User.display_name)
        )
    )


@router.get("/supervisor/improvements", response_class=HTMLResponse)
async def improvements_page(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    items = await improvements.list_improvements(session)
    trend = await improvements.trend(session)
    context = await console_context(
        request,
        staff,
        settings,
        session,
        items=items,
        candidates=await improvements.candidates(session),
        names=await _names(session, {i.owner_user_id for i in items}),
        supervisors=await _supervisors(session),
        trend=trend,
        chart=json.dumps(trend.model_dump()),
        notice=request.query_params.get("saved", ""),
    )
    await session.commit()
    return templates.TemplateResponse(request, "console/improvements.html", context)


def _parse(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    """A form's fields through the API's model; a bad one is a problem naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise Invalid(first["msg"], field=str(first["loc"][0]) if first["loc"] else "body") from None


def _owner(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


@router.post("/supervisor/improvements", response_class=HTMLResponse)
async def create_improvement(request: Request, user: OptionalUser, session: DbSession) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    form = await request.form()
    body = _parse(
        ImprovementCreate,
        {
            "title": str(form.get("title", "")).strip()
            or f"{form.get('topic', '')}: {form.get('cause', '')}",
            "topic": str(form.get("topic", "")),
            "cause": str(form.get("cause", "")),
            "owner_user_id": _owner(str(form.get("owner_user_id", ""))),
        },
    )
    await improvements.create_improvement(session, body, actor_id=staff.id)
    await session.commit()
    return RedirectResponse("/supervisor/improvements?saved=created", status_code=303)


@router.post("/supervisor/improvements/{improvement_id}", response_class=HTMLResponse)
async def update_improvement(
    improvement_id: uuid.UUID, request: Request, user: OptionalUser, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    form = await request.form()
    body = _parse(
        ImprovementUpdate,
        {
            "status": str(form.get("status", "")) or None,
            "owner_user_id": _owner(str(form.get("owner_user_id", ""))),
        },
    )
    await improvements.update_improvement(session, improvement_id, body, actor_id=staff.id)
    await session.commit()
    return RedirectResponse(f"/supervisor/improvements?saved=updated#item-{improvement_id}", status_code=303)

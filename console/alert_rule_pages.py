"""``/supervisor/alert-rules``: the alert rules as a page (issue #12). One form per rule (its
condition in the routing language, owners, due time, on/off) and one to add a rule; a bad
condition comes back at its rule with the column, as the JSON API reports it. Both call
``experience.rules``, so every change is versioned and audited the same way."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from console.context import console_context, supervisor_or_login
from experience import rules
from experience.models import OwnerRole, SignalKind
from experience.schemas import AlertRuleCreate, AlertRuleUpdate
from switchboard.auth.models import User
from switchboard.deps import AppSettings, DbSession, OptionalUser
from switchboard.errors import DomainError, Invalid
from switchboard.templating import templates

router = APIRouter(tags=["pages"], include_in_schema=False)

ROLE_LABELS = {
    OwnerRole.TEAM_LEAD: "Team lead",
    OwnerRole.RELATIONSHIP_MANAGER: "Relationship manager",
    OwnerRole.QUEUE_OWNER: "Queue owner",
    OwnerRole.SUPERVISORS: "All supervisors",
}
NEW = "new"


async def _page(
    request: Request,
    staff: User,
    settings: AppSettings,
    session: AsyncSession,
    *,
    error: tuple[str, DomainError] | None = None,
    form: dict[str, Any] | None = None,
    saved: str = "",
) -> Response:
    context = await console_context(
        request,
        staff,
        settings,
        session,
        rules=await rules.list_rules(session),
        attributes={kind: rules.attributes(kind) for kind in SignalKind},
        signals=list(SignalKind),
        role_labels=ROLE_LABELS,
        error_at=error[0] if error else None,
        error=error[1] if error else None,
        form=form or {},
        saved=saved,
    )
    await session.commit()
    return templates.TemplateResponse(
        request, "console/alert_rules.html", context, status_code=error[1].status if error else 200
    )


@router.get("/supervisor/alert-rules", response_class=HTMLResponse)
async def alert_rules_page(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession, saved: str = ""
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    return await _page(request, staff, settings, session, saved=saved)


def _fields(form: Any, names: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {name: str(form.get(name, "")).strip() for name in names if name in form}
    out["enabled"] = form.get("enabled") == "on"
    return out


def _model(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise Invalid(first["msg"], field=str(first["loc"][0]) if first["loc"] else "body") from None


@router.post("/supervisor/alert-rules", response_class=HTMLResponse)
async def create_alert_rule(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    data = _fields(
        await request.form(), ("name", "signal", "condition", "owner_role", "escalation_role", "due_minutes")
    )
    try:
        rule = await rules.create_rule(session, _model(AlertRuleCreate, data), actor_id=staff.id)
    except DomainError as exc:
        await session.rollback()
        return await _page(request, staff, settings, session, error=(NEW, exc), form=data)
    await session.commit()
    return RedirectResponse(f"/supervisor/alert-rules?saved={rule.id}#rule-{rule.id}", status_code=303)


@router.post("/supervisor/alert-rules/{rule_id}", response_class=HTMLResponse)
async def update_alert_rule(
    rule_id: uuid.UUID, request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    data = _fields(
        await request.form(), ("version", "name", "condition", "owner_role", "escalation_role", "due_minutes")
    )
    try:
        await rules.update_rule(session, rule_id, _model(AlertRuleUpdate, data), actor_id=staff.id)
    except DomainError as exc:
        await session.rollback()
        if exc.status == 404:
            raise
        return await _page(request, staff, settings, session, error=(str(rule_id), exc), form=data)
    await session.commit()
    return RedirectResponse(f"/supervisor/alert-rules?saved={rule_id}#rule-{rule_id}", status_code=303)

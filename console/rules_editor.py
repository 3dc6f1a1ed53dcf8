"""The rules editor's form pages: ``/supervisor/rules/new`` (a draft from a version, the live one by
default) and ``/supervisor/rules/{version}/edit`` (change a draft), and the check that runs as a
condition is typed (``/supervisor/rules/check``: the engine's parser, the caret at the problem,
completions in a ``<datalist>``). Saving goes through ``routing.service`` as the JSON API does:
validated against today's queues and skills, audited in the same transaction, nothing half-saved."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from console import rules_form
from console.context import ConsoleStaff, console_context
from routing import condition_help, service
from routing.api import RuleSetVersionNo
from routing.condition_help import ConditionKind
from routing.models import RuleSetStatus
from switchboard.auth.models import User
from switchboard.bounds import INT32_MAX
from switchboard.deps import AppSettings, DbSession
from switchboard.errors import Conflict, Invalid
from switchboard.settings import Settings
from switchboard.templating import templates
from workforce.models import SelectionStrategy

router = APIRouter(tags=["pages"], include_in_schema=False)

# A rule set to start from when nothing has been written yet: everything to one queue.
_STARTER = {
    "filters": [{"name": "everything", "when": 'channel != ""', "steps": []}],
    "default_filter": {"name": "default", "steps": []},
    "on_final_timeout": "callback",
}


async def _render(
    request: Request,
    staff: User,
    settings: Settings,
    session: AsyncSession,
    *,
    state: dict[str, Any],
    version: int | None,
    based_on: int | None,
    errors: dict[str, str] | None = None,
    checks: dict[str, condition_help.Verdict] | None = None,
    focus: str = "",
    status_code: int = 200,
) -> Response:
    values = await condition_help.known_values(session)
    context = await console_context(
        request,
        staff,
        settings,
        session,
        state=state,
        version=version,
        based_on=based_on,
        errors=errors or {},
        checks=checks or {},
        describe=rules_form.describe,
        focus=focus,
        queues=values["queues"],
        skills=values["skills"],
        strategies=[s.value for s in SelectionStrategy],
        final_actions=("callback", "voicemail"),
        when_names=condition_help.attribute_names("when", values["skills"]),
        target_names=condition_help.attribute_names("target", values["skills"]),
    )
    await session.commit()
    return templates.TemplateResponse(request, "console/rules_editor.html", context, status_code=status_code)


@router.get("/supervisor/rules/new", response_class=HTMLResponse)
async def new_draft(
    request: Request,
    staff: ConsoleStaff,
    settings: AppSettings,
    session: DbSession,
    base: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    base = base or await service.live_version_number(session)
    body, comment = _STARTER, ""
    if base is not None:
        row = await service.get_version(session, version=base)
        body, comment = row.body, f"Changed from version {base}"
    state = rules_form.body_to_state(body, comment)
    if not state["default"]["steps"]:
        queues = (await condition_help.known_values(session))["queues"]
        state["default"]["steps"] = [rules_form.blank_step(queues[0] if queues else "")]
        for f in state["filters"]:
            f["steps"] = f["steps"] or [rules_form.blank_step(queues[0] if queues else "")]
    return await _render(request, staff, settings, session, state=state, version=None, based_on=base)


@router.get("/supervisor/rules/{version}/edit", response_class=HTMLResponse)
async def edit_draft(
    version: RuleSetVersionNo,
    request: Request,
    staff: ConsoleStaff,
    settings: AppSettings,
    session: DbSession,
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    row = await service.get_version(session, version=version)
    if row.status is not RuleSetStatus.DRAFT:
        return RedirectResponse(f"/supervisor/rules/new?base={version}", status_code=303)
    state = rules_form.body_to_state(row.body, row.comment)
    return await _render(request, staff, settings, session, state=state, version=version, based_on=None)


async def _submit(
    request: Request, staff: User, settings: Settings, session: AsyncSession, *, version: int | None
) -> Response:
    form = dict((await request.form()).items())
    state = rules_form.form_to_state(form)
    op = str(form.get("op", "check"))
    based_on = int(str(form["based_on"])) if str(form.get("based_on", "")).isdigit() else None

    async def again(shown: dict[str, Any], **extra: Any) -> Response:
        return await _render(
            request, staff, settings, session, state=shown, version=version, based_on=based_on, **extra
        )

    if op not in ("save", "check"):
        queues = (await condition_help.known_values(session))["queues"]
        changed, focus = rules_form.apply_op(state, op, first_queue=queues[0] if queues else "")
        return await again(changed, focus=focus)
    body, errors = rules_form.state_to_body(state)
    problems = await service.check_rule_set(session, body)
    errors |= rules_form.errors_by_field(problems)
    # Every condition through the parser too (a structural problem elsewhere stops the rule-set
    # validation before it reaches them), each shown with its caret.
    checks = {}
    for name, (kind, text) in rules_form.conditions(state).items():
        verdict = condition_help.check(text, "target" if kind == "target" else "when")
        if not verdict.valid:
            checks[name] = verdict
            errors[name] = f"{verdict.message} at column {verdict.column}"
    if errors or op == "check":
        focus = "problems" if errors else ""
        return await again(
            state, errors=errors, checks=checks, focus=focus, status_code=422 if errors else 200
        )
    try:
        if version is None:
            row = await service.create_draft(session, body=body, comment=state["comment"], actor_id=staff.id)
        else:
            row = await service.update_draft(
                session, version=version, body=body, comment=state["comment"], actor_id=staff.id
            )
    except (Invalid, Conflict) as exc:
        await session.rollback()
        return await again(state, errors={"problems": exc.detail}, focus="problems", status_code=exc.status)
    await session.commit()
    return RedirectResponse(f"/supervisor/rules/{row.version}?saved=1", status_code=303)


@router.post("/supervisor/rules/new", response_class=HTMLResponse)
async def post_new(
    request: Request, staff: ConsoleStaff, settings: AppSettings, session: DbSession
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    return await _submit(request, staff, settings, session, version=None)


@router.post("/supervisor/rules/{version}/edit", response_class=HTMLResponse)
async def post_edit(
    version: RuleSetVersionNo,
    request: Request,
    staff: ConsoleStaff,
    settings: AppSettings,
    session: DbSession,
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    await service.get_version(session, version=version)  # 404 before reading the form
    return await _submit(request, staff, settings, session, version=version)


@router.post("/supervisor/rules/check", response_class=HTMLResponse)
async def check_condition(request: Request, staff: ConsoleStaff, session: DbSession) -> Response:
    """htmx, as a condition is typed: the verdict at its field, and completions for its datalist."""
    if staff is None:
        return Response(status_code=401)
    form = await request.form()
    field = str(form.get("field", ""))
    kind: ConditionKind = "target" if str(form.get("kind")) == "target" else "when"
    if not field or len(field) > 40:
        raise Invalid("Name the field being checked", field="field")
    text = str(form.get(field, ""))[:2000]
    verdict = condition_help.check(text, kind) if text.strip() else None
    wanted = condition_help.value_source(text)
    values = await condition_help.known_values(session, agents_too=wanted in condition_help.AGENT_SOURCES)
    await session.commit()
    return templates.TemplateResponse(
        request,
        "console/_rules_check.html",
        {
            "field": field,
            "text": text,
            "verdict": verdict,
            "completions": condition_help.completions(text, kind, values),
            "oob": True,
        },
    )

"""``/supervisor/workforce/staffing``: the Erlang calculator as a page. A plain GET form (the
browser's keyboard handling, history and bookmarks work); the answer, the agents around it and a
chart of service level against agents, all from ``workforce.staffing_api.answer``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from console.context import console_context, supervisor_or_login
from switchboard.deps import AppSettings, DbSession, OptionalUser
from switchboard.errors import Invalid
from switchboard.templating import templates
from workforce.staffing_api import StaffingRequest, StaffingResponse, answer

router = APIRouter(tags=["pages"], include_in_schema=False)

FIELDS = (
    "contacts",
    "interval_minutes",
    "aht_seconds",
    "service_level_target",
    "target_answer_seconds",
    "shrinkage",
    "patience_seconds",
    "agents",
)
EXAMPLE = {
    "contacts": "100",
    "interval_minutes": "30",
    "aht_seconds": "180",
    "service_level_target": "0.8",
    "target_answer_seconds": "20",
    "shrinkage": "0.3",
    "patience_seconds": "",
    "agents": "",
}
# Agents shown either side of the answer, in the table and the chart.
BELOW, ABOVE = 4, 6


def _curve(request: StaffingRequest, agents: int) -> list[StaffingResponse]:
    first = max(agents - BELOW, 1)
    return [answer(request.model_copy(update={"agents": n})) for n in range(first, agents + ABOVE + 1)]


def _compute(request: StaffingRequest) -> tuple[StaffingResponse, list[StaffingResponse]]:
    result = answer(request)
    return result, _curve(request, result.agents)


@router.get("/supervisor/workforce/staffing", response_class=HTMLResponse)
async def staffing_page(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    asked = any(k in request.query_params for k in FIELDS)
    form = {k: request.query_params.get(k, "") for k in FIELDS} if asked else dict(EXAMPLE)
    context: dict[str, Any] = await console_context(
        request, staff, settings, session, form=form, errors={}, result=None, curve=[], chart=None
    )
    await session.commit()
    if not asked:
        return templates.TemplateResponse(request, "console/workforce/staffing.html", context)
    try:
        body = StaffingRequest.model_validate({k: v for k, v in form.items() if v.strip() != ""})
        result, curve = await run_in_threadpool(_compute, body)
    except ValidationError as exc:
        context["errors"] = {str(e["loc"][0]) if e["loc"] else "": e["msg"] for e in exc.errors()}
        return templates.TemplateResponse(
            request, "console/workforce/staffing.html", context, status_code=422
        )
    except Invalid as exc:
        context["errors"] = {exc.field or "": exc.detail}
        return templates.TemplateResponse(
            request, "console/workforce/staffing.html", context, status_code=422
        )
    context.update(
        result=result,
        curve=curve,
        chart=json.dumps(
            {
                "agents": [row.agents for row in curve],
                "service_level": [round(row.service_level * 100, 2) for row in curve],
                "target": round(body.service_level_target * 100, 2),
                "occupancy": [round(row.occupancy * 100, 2) for row in curve],
            }
        ),
    )
    return templates.TemplateResponse(request, "console/workforce/staffing.html", context)

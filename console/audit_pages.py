"""``/supervisor/audit``: the audit log as a page (filters in a plain GET form, so the browser's
keyboard handling, history and bookmarks all work), paged, with a link to its CSV export."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from console.audit_api import read_page
from console.audit_schemas import AuditQuery
from console.context import console_context, supervisor_or_login
from switchboard.audit import shown
from switchboard.deps import AppSettings, DbSession, OptionalUser
from switchboard.templating import templates

router = APIRouter(tags=["pages"], include_in_schema=False)

FORM_FIELDS = ("actor", "action", "entity_type", "entity_id", "since", "until")


@router.get("/supervisor/audit", response_class=HTMLResponse)
async def audit_page(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    raw = {k: v for k, v in request.query_params.items() if k in (*FORM_FIELDS, "cursor", "limit")}
    form = {k: raw.get(k, "") for k in FORM_FIELDS}
    context = await console_context(
        request, staff, settings, session, form=form, shown=shown, errors={}, page=None
    )
    try:
        query = AuditQuery.model_validate(raw)
    except ValidationError as exc:
        await session.commit()
        context["errors"] = {str(e["loc"][0]) if e["loc"] else "": e["msg"] for e in exc.errors()}
        return templates.TemplateResponse(request, "console/audit.html", context, status_code=422)
    context["page"] = await read_page(session, query)
    filters = {k: v for k, v in form.items() if v}
    context["export_url"] = "/api/audit/export.csv" + (f"?{urlencode(filters)}" if filters else "")
    if context["page"].next_cursor is not None:
        context["older_url"] = "/supervisor/audit?" + urlencode(
            {**filters, "cursor": context["page"].next_cursor, "limit": query.limit}
        )
    return templates.TemplateResponse(request, "console/audit.html", context)

"""The public support form (/support/new): no sign-in, large clear fields, errors named per field.

There is no CSRF token: the form never reads the session cookie, so a forged post carries no
authority a stranger lacks; submitting it anonymously from anywhere is its purpose.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from interactions.email.schemas import TicketCreate
from interactions.tickets import submit_ticket
from switchboard.deps import AppSettings, DbSession
from switchboard.errors import DomainError
from switchboard.templating import templates

router = APIRouter(tags=["pages"], include_in_schema=False)

FIELDS = ("name", "email", "subject", "message")
LABELS = {"name": "Your name", "email": "Email address", "subject": "Subject", "message": "Your message"}


def _form(
    request: Request,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    values = dict(values or {})
    values.setdefault("submission_id", str(uuid.uuid4()))
    context = {"values": values, "errors": errors or {}, "labels": LABELS, "user": None, "csrf_token": ""}
    return templates.TemplateResponse(request, "tickets/form.html", context, status_code=status_code)


@router.get("/support/new", response_class=HTMLResponse)
async def support_form(request: Request) -> Response:
    return _form(request)


@router.post("/support/new", response_class=HTMLResponse)
async def submit_support_form(request: Request, session: DbSession, settings: AppSettings) -> Response:
    form = await request.form()
    values = {k: v for k in (*FIELDS, "submission_id") if isinstance(v := form.get(k), str)}
    raw: dict[str, Any] = {k: v for k, v in values.items() if v.strip()}
    try:
        data = TicketCreate.model_validate(raw)
    except ValidationError as exc:
        return _form(request, values=values, errors=_field_errors(exc), status_code=422)
    try:
        result = await submit_ticket(request, session, settings, data)
    except DomainError as exc:
        field = exc.field if exc.field in FIELDS else "form"
        return _form(request, values=values, errors={field: exc.detail}, status_code=exc.status)
    context = {"reference": result.reference, "email": data.email, "user": None, "csrf_token": ""}
    return templates.TemplateResponse(request, "tickets/submitted.html", context)


def _field_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "form"
        field = name if name in FIELDS else "form"
        label = LABELS.get(field, "This form")
        if err["type"] == "missing":
            message = f"{label} is required."
        elif field == "email":
            message = f"{label} is not valid: enter it like name@example.com."
        elif err["type"] == "string_too_short":
            message = f"{label} is too short (at least {err['ctx']['min_length']} characters)."
        elif err["type"] == "string_too_long":
            message = f"{label} is too long (at most {err['ctx']['max_length']} characters)."
        else:
            message = f"{label}: {err['msg']}."
        errors.setdefault(field, message)
    return errors

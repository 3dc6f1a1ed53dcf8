"""The customer's survey page behind a link (``/survey/{token}``): no sign-in, one answer per link.

A forged or altered link is a 404 page, an expired one 410, one already answered 409, each in
plain words; nothing about the customer is shown on them. Like the public support form there is
no CSRF token: the page never reads the session cookie, and the link itself is the authority.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from experience import surveys
from switchboard.deps import AppSettings, DbSession
from switchboard.errors import Conflict
from switchboard.templating import templates

router = APIRouter(tags=["pages"], include_in_schema=False)

PROBLEM_PAGES = {
    surveys.LinkProblem.FORGED: (
        404,
        "This survey link is not valid",
        "Please use the link exactly as we sent it.",
    ),
    surveys.LinkProblem.EXPIRED: (
        410,
        "This survey has closed",
        "The link was valid for a limited time. Thank you all the same.",
    ),
    surveys.LinkProblem.ANSWERED: (
        409,
        "You have answered this survey already",
        "Thank you: we have your answer.",
    ),
}


THANKS = {"title": "Thank you", "text": "Your answer helps us do better."}


def _problem(request: Request, problem: surveys.LinkProblem) -> Response:
    status, title, text = PROBLEM_PAGES[problem]
    context = {"title": title, "text": text, "user": None, "csrf_token": ""}
    return templates.TemplateResponse(request, "survey/closed.html", context, status_code=status)


def _form(
    request: Request,
    survey: surveys.OpenSurvey,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "questions": survey.invitation.questions,
        "scales": surveys.SCALES,
        "prompts": surveys.PROMPTS,
        "ends": surveys.ENDS,
        "values": values,
        "errors": errors,
        "when": survey.interaction.created_at,
        "channel": survey.interaction.channel.value,
        "user": None,
        "csrf_token": "",
    }
    return templates.TemplateResponse(request, "survey/form.html", context, status_code=status)


@router.get("/survey/{token}", response_class=HTMLResponse)
async def survey_page(token: str, request: Request, session: DbSession, settings: AppSettings) -> Response:
    opened = await surveys.open_link(session, token, settings)
    await session.commit()
    if isinstance(opened, surveys.LinkProblem):
        return _problem(request, opened)
    return _form(request, opened, values={}, errors={})


def _number(raw: object) -> int | None:
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError:
        return -1  # out of every scale: reported as "choose a number"


@router.post("/survey/{token}", response_class=HTMLResponse)
async def answer_survey(token: str, request: Request, session: DbSession, settings: AppSettings) -> Response:
    opened = await surveys.open_link(session, token, settings)
    if isinstance(opened, surveys.LinkProblem):
        await session.commit()
        return _problem(request, opened)
    form = await request.form()
    values = {k: v for k in (*surveys.QUESTIONS, "comment") if isinstance(v := form.get(k), str)}
    comment = values.get("comment", "").strip() or None
    answers = surveys.Answers(
        **{q: _number(values.get(q)) for q in surveys.QUESTIONS if q in opened.invitation.questions},
        comment=comment,
    )
    errors = surveys.check_answers(opened.invitation.questions, answers)
    if errors:
        await session.commit()
        return _form(request, opened, values=values, errors=errors, status=422)
    try:
        await surveys.answer(session, opened, answers)
    except Conflict:
        await session.rollback()
        return _problem(request, surveys.LinkProblem.ANSWERED)
    await session.commit()
    context = {**THANKS, "user": None, "csrf_token": ""}
    return templates.TemplateResponse(request, "survey/closed.html", context)

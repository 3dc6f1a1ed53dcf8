"""``/supervisor/experience``: customer and agent experience side by side (issue #12 item 2), and
``/supervisor/experience/interactions``, the answers behind a figure. A plain GET form (keyboard,
history and bookmarks work); every table links its CSV (the JSON API with ``format=csv``)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from console.context import console_context, supervisor_or_login
from console.journey_pages import percent
from experience import dashboard, journey
from experience.dashboard_models import Dimension
from experience.dashboard_schemas import MIN_GROUP, ExperienceQuery, ExperienceSummary, ExperienceTrend
from experience.resolution_rollup import resolution_between
from switchboard.deps import AppSettings, DbSession, OptionalUser
from switchboard.templating import templates

router = APIRouter(tags=["pages"], include_in_schema=False)

FIELDS = ("from", "to", "dimension", "key", "tag")
DIMENSIONS = (
    (Dimension.TEAM, "Team"),
    (Dimension.QUEUE, "Queue"),
    (Dimension.CHANNEL, "Channel"),
    (Dimension.TIER, "Customer tier"),
    (Dimension.AGENT, "Agent"),
)


def _errors(exc: ValidationError) -> dict[str, str]:
    return {str(e["loc"][-1]) if e["loc"] else "": e["msg"] for e in exc.errors()}


def _parse(request: Request) -> tuple[dict[str, str], ExperienceQuery | None, dict[str, str]]:
    form = {k: request.query_params.get(k, "") for k in FIELDS}
    try:
        return form, ExperienceQuery.model_validate({k: v for k, v in form.items() if v.strip()}), {}
    except ValidationError as exc:
        return form, None, _errors(exc)


def _link(path: str, q: ExperienceQuery, **extra: str) -> str:
    params = {
        "from": q.first_day().isoformat(),
        "to": q.last_day().isoformat(),
        "dimension": q.dimension.value,
    }
    params.update({k: v for k, v in extra.items() if v is not None})
    return f"{path}?{urlencode(params)}"


def _charts(summary: ExperienceSummary, trend: ExperienceTrend) -> tuple[str, str]:
    days = trend.days
    trend_chart = {
        "days": [d.day.isoformat() for d in days],
        "csat": [d.cx.csat for d in days],
        "ces": [d.cx.ces for d in days],
        "nps": [d.cx.nps for d in days],
        "pulse": [d.ex.pulse for d in days],
        "energy": [d.ex.energy for d in days],
        "service_level": [d.service_level for d in days],
    }
    groups_chart = {
        "labels": [r.label for r in summary.rows],
        "csat": [r.cx.csat for r in summary.rows],
        "pulse": [r.ex.pulse for r in summary.rows],
        "energy": [r.ex.energy for r in summary.rows],
    }
    return json.dumps(trend_chart), json.dumps(groups_chart)


async def _resolution(
    session: AsyncSession, q: ExperienceQuery
) -> tuple[list[journey.ResolutionRow], list[journey.ResolutionRow]]:
    """First-contact resolution and repeat rate per queue and agent for the days shown, summed
    from their daily rollup (experience.resolution_rollup)."""
    return await resolution_between(session, q.first_day(), q.last_day())


@router.get("/supervisor/experience", response_class=HTMLResponse)
async def experience_page(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    form, q, errors = _parse(request)
    context: dict[str, Any] = {
        "form": form,
        "errors": errors,
        "dimensions": DIMENSIONS,
        "min_group": MIN_GROUP,
    }
    if q is not None:
        summary = await dashboard.summary(session, q)
        trend = await dashboard.trend(session, q.model_copy(update={"key": None}))
        together = await dashboard.together(session, q)
        resolution = await _resolution(session, q)
        trend_chart, groups_chart = _charts(summary, trend)
        form.update(
            {
                "from": q.first_day().isoformat(),
                "to": q.last_day().isoformat(),
                "dimension": q.dimension.value,
            }
        )
        context.update(
            q=q,
            summary=summary,
            trend=trend,
            together=together,
            resolution=resolution,
            percent=percent,
            trend_chart=trend_chart,
            groups_chart=groups_chart,
            link=_link,
        )
    context = await console_context(request, staff, settings, session, **context)
    await session.commit()  # the SQLite rule: end the read before rendering
    return templates.TemplateResponse(
        request, "console/experience.html", context, status_code=422 if errors else 200
    )


@router.get("/supervisor/experience/interactions", response_class=HTMLResponse)
async def experience_interactions_page(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    form, q, errors = _parse(request)
    context: dict[str, Any] = {"form": form, "errors": errors, "drill": None}
    if q is not None:
        context.update(q=q, drill=await dashboard.drill(session, q), link=_link)
    context = await console_context(request, staff, settings, session, **context)
    await session.commit()
    return templates.TemplateResponse(
        request, "console/experience_interactions.html", context, status_code=422 if errors else 200
    )

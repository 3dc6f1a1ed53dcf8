"""``/supervisor/journeys`` (a topic's paths, funnel and first-contact resolution, with CSV
exports) and ``/supervisor/customers/{id}/journey`` (one customer's touchpoints on one line).
Plain GET forms: the filters are in the URL, so a view can be bookmarked and shared."""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console.context import ConsoleStaff, console_context
from customers.models import Customer, ValueTier
from experience import journey
from experience.journey_api import Filters, customer_line, read_topic_journeys
from switchboard.csv_export import csv_download
from switchboard.deps import AppSettings, DbSession
from switchboard.labels import label
from switchboard.templating import templates

router = APIRouter(tags=["pages"], include_in_schema=False)

DAY_CHOICES = (7, 30, 60, 90)
RESOLUTION_COLUMNS = (
    "name", "received", "reached_agent", "judged", "resolved_first_time", "fcr", "repeats", "repeat_rate"
)


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _path_text(path: tuple[str, ...]) -> str:
    return " → ".join(label(channel) for channel in path)


def _csv(found: journey.TopicJourneys, table: str) -> Response:
    f = found.funnel
    if table == "funnel":
        rows: list[list[Any]] = [
            ["started", f.started],
            ["reached an agent", f.reached_agent],
            ["resolved first time", f.resolved_first_time],
            ["repeated within 7 days", f.repeated],
            ["still open (younger than 7 days)", f.still_open],
        ]
        return csv_download("journey-funnel.csv", ("step", "journeys"), rows)
    if table == "paths":
        return csv_download(
            "journey-paths.csv",
            ("path", "journeys", "dropped"),
            ([_path_text(p.path), p.journeys, p.dropped] for p in found.paths),
        )
    rows_of = found.queues if table == "queues" else found.agents
    return csv_download(
        f"journey-{table}.csv",
        RESOLUTION_COLUMNS,
        (
            [
                r.name,
                r.received,
                r.handled,
                r.judged,
                r.resolved_first_time,
                "" if r.fcr is None else round(r.fcr, 4),
                r.repeats,
                "" if r.repeat_rate is None else round(r.repeat_rate, 4),
            ]
            for r in rows_of
        ),
    )


@router.get("/supervisor/journeys", response_class=HTMLResponse)
async def journeys_page(
    request: Request,
    staff: ConsoleStaff,
    settings: AppSettings,
    session: DbSession,
    filters: Filters,
    export: Literal["funnel", "paths", "queues", "agents"] | None = Query(None),
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    found = await read_topic_journeys(session, filters)
    if export is not None:
        await session.commit()
        return _csv(found, export)
    f = found.funnel
    chart = {
        "labels": ["Started", "Reached an agent", "Resolved first time", "Repeated within 7 days"],
        "values": [f.started, f.reached_agent, f.resolved_first_time, f.repeated],
    }
    context = await console_context(
        request,
        staff,
        settings,
        session,
        found=found,
        filters=filters,
        day_choices=DAY_CHOICES,
        tiers=list(ValueTier),
        chart=json.dumps(chart),
        percent=percent,
        path_text=_path_text,
        query=request.url.query,
    )
    await session.commit()
    return templates.TemplateResponse(request, "console/journeys.html", context)


@router.get("/supervisor/customers/{customer_id}/journey", response_class=HTMLResponse)
async def customer_journey_page(
    request: Request, customer_id: uuid.UUID, staff: ConsoleStaff, settings: AppSettings, session: DbSession
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    line = await customer_line(session, staff, customer_id)
    customer = await session.get(Customer, customer_id)
    context = await console_context(request, staff, settings, session, customer=customer, line=line)
    await session.commit()
    return templates.TemplateResponse(request, "console/customer_journey.html", context)

"""``/supervisor/workforce/simulation``: the what-if simulator as a page (issue #13 item 6).

A form compares two sides on the same seeded traffic: each picks a stored rule-set version (or no
rules: each contact to its queue) and a share of today's agents. The traffic is built from the
queues in the database (their channels, a tier mix, handle times and patience per channel).
Posting queues an RQ job (``routing.simulation.api.start``, the JSON API's path) and redirects to
``?job=<id>``; the results section polls ``/supervisor/workforce/simulation/jobs/<id>`` with htmx
every second, showing progress until the figures, a table per side and a service-level chart.
The form's values travel with the job (``job.meta["form"]``), so the page shows what was run.
"""

from __future__ import annotations

import contextlib
import json
from datetime import date
from typing import Any

import redis
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from rq.job import Job

from console.context import ConsoleStaff, console_context, supervisor_or_login
from console.forecast_run import ForecastQuery, run_forecast
from interactions.states import Channel
from routing import service as routing_service
from routing.simulation.api import read_job, start
from routing.simulation.scenario import ResolutionModel, Traffic
from routing.simulation.schemas import SideRequest, SimulationRequest
from routing.simulation.service import db_queues, db_roster, default_classes
from switchboard.deps import AppSettings, DbSession, OptionalUser
from switchboard.errors import DomainError, Invalid, NotFound
from switchboard.redis import RedisHandle
from switchboard.settings import Settings
from switchboard.templating import templates

router = APIRouter(tags=["pages"], include_in_schema=False)

PAGE = "/supervisor/workforce/simulation"
TEMPLATE = "console/workforce/simulation.html"
FRAGMENT = "console/workforce/_simulation_result.html"
NO_RULES = "none"
TIERS = ("platinum", "gold", "silver", "standard")
NUMBER_FIELDS = (
    "seed",
    "interval_minutes",
    "handle_voice",
    "handle_chat",
    "handle_email",
    "patience_voice",
    "patience_chat",
    *(f"tier_{t}" for t in TIERS),
    "a_staffing",
    "b_staffing",
)


def defaults(agents: int, live: int | None) -> dict[str, str]:
    # About 4 contacts per agent per half hour: a busy but not drowning day for the default mix.
    peak = max(10, agents * 4)
    shape = (0.6, 0.8, 1.0, 1.0, 0.9, 0.8, 0.9, 1.0, 1.0, 0.9, 0.7, 0.5)
    rules = str(live) if live is not None else NO_RULES
    return {
        "seed": "1",
        "interval_minutes": "30",
        "volumes": ", ".join(str(round(peak * s)) for s in shape),
        "forecast_day": "",
        "handle_voice": "300",
        "handle_chat": "600",
        "handle_email": "900",
        "patience_voice": "180",
        "patience_chat": "300",
        "tier_platinum": "5",
        "tier_gold": "15",
        "tier_silver": "30",
        "tier_standard": "50",
        "resolution": "on",
        "a_label": "Today",
        "a_rules": rules,
        "a_staffing": "100",
        "b_label": "10 % fewer agents",
        "b_rules": rules,
        "b_staffing": "90",
    }


async def _options(session: DbSession) -> tuple[list[tuple[str, str]], int | None]:
    live = await routing_service.live_version_number(session)
    options = [
        (str(v.version), f"Version {v.version} ({'live' if v.version == live else v.status.value})")
        for v in await routing_service.list_versions(session)
    ]
    options.append((NO_RULES, "No rules: each contact to its own queue, in arrival order"))
    return options, live


def _number(form: dict[str, str], name: str, errors: dict[str, str], *, blank: bool = False) -> float | None:
    text = form.get(name, "").strip()
    if text == "":
        if blank:
            return None
        errors[name] = "required"
        return None
    try:
        value = float(text)
    except ValueError:
        errors[name] = "not a number"
        return None
    if value != value or value in (float("inf"), float("-inf")):
        errors[name] = "not a number"
        return None
    return value


# Where an error from the request model shows on the form.
_FIELD_OF = {
    "traffic.volumes": "volumes",
    "traffic.interval_minutes": "interval_minutes",
    "traffic.handle_seconds": "handle_voice",
    "traffic.patience_seconds": "patience_voice",
    "traffic.classes": "volumes",
    "seed": "seed",
    "sides.0": "a_rules",
    "sides.1": "b_rules",
    "sides.0.staffing_percent": "a_staffing",
    "sides.1.staffing_percent": "b_staffing",
    "sides.0.label": "a_label",
    "sides.1.label": "b_label",
    "sides.0.rule_set_version": "a_rules",
    "sides.1.rule_set_version": "b_rules",
}


def _form_field(path: str) -> str:
    best = ""
    for prefix in _FIELD_OF:
        if (path == prefix or path.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    return _FIELD_OF.get(best, "")


async def forecast_profiles(
    request: Request,
    session: DbSession,
    settings: Settings,
    queues: list[Any],
    day: date,
    interval_minutes: int,
) -> tuple[dict[tuple[str, str], list[float]], float]:
    """Each queue and channel's forecast for ``day`` (those with history to forecast from), and
    the day's first moment (Unix seconds) in the centre's time zone."""
    profiles: dict[tuple[str, str], list[float]] = {}
    start = 0.0
    for q in queues:
        for channel in q.channels or ["voice"]:
            if channel not in ("voice", "chat", "email"):
                continue
            query = ForecastQuery(
                queue=q.name,
                channel=Channel(channel),
                interval_minutes=interval_minutes,
                start=day,
                horizon_days=1,
            )
            try:
                result = await run_forecast(
                    session, request.app.state.redis_client, query, time_zone=settings.default_timezone
                )
            except Invalid:
                continue  # no history for this queue and channel: no contacts from it
            profiles[(q.name, channel)] = [i.contacts for i in result.intervals]
            start = result.horizon_start.timestamp()
    return profiles, start


async def build_request(
    session: DbSession,
    form: dict[str, str],
    *,
    request: Request | None = None,
    settings: Settings | None = None,
) -> tuple[SimulationRequest | None, dict[str, str]]:
    errors: dict[str, str] = {}
    numbers = {n: _number(form, n, errors, blank=n.startswith("patience_")) for n in NUMBER_FIELDS}
    day: date | None = None
    if form.get("forecast_day", "").strip():
        try:
            day = date.fromisoformat(form["forecast_day"].strip())
        except ValueError:
            errors["forecast_day"] = "a date as YYYY-MM-DD, or blank to use the contacts per interval"
        if numbers["interval_minutes"] not in (15, 30):
            errors["interval_minutes"] = "the forecast has 15- or 30-minute intervals"
    volumes: list[float] = []
    for part in form.get("volumes", "").replace(";", ",").split(","):
        if part.strip() and day is None:
            try:
                volumes.append(float(part))
            except ValueError:
                errors["volumes"] = f"{part.strip()!r} is not a number"
                break
    if not volumes and day is None and "volumes" not in errors and "forecast_day" not in errors:
        errors["volumes"] = "give the contacts expected in each interval, separated by commas"
    if errors:
        return None, errors
    queues = await db_queues(session)
    if not queues:
        return None, {"": "there are no queues to simulate yet"}
    tier_mix = {t: float(numbers[f"tier_{t}"] or 0.0) for t in TIERS}
    if any(v < 0 for v in tier_mix.values()) or sum(tier_mix.values()) <= 0:
        return None, {"tier_platinum": "tier shares must not be negative and must add up to more than 0"}
    handle = {
        "voice": numbers["handle_voice"],
        "chat": numbers["handle_chat"],
        "email": numbers["handle_email"],
    }
    handle["ticket"] = handle["email"]
    patience = {
        c: numbers[f"patience_{c}"] for c in ("voice", "chat") if numbers[f"patience_{c}"] is not None
    }

    profiles: dict[tuple[str, str], list[float]] | None = None
    start_epoch: float | None = None
    if day is not None and request is not None and settings is not None:
        profiles, start_epoch = await forecast_profiles(
            request, session, settings, queues, day, int(numbers["interval_minutes"] or 30)
        )
        if not profiles:
            return None, {"forecast_day": "no queue has history to forecast this day from"}
        queues = [q for q in queues if any(name == q.name for name, _c in profiles)]

    sides = []
    for prefix in ("a", "b"):
        rules = form.get(f"{prefix}_rules", NO_RULES)
        try:
            sides.append(
                SideRequest.model_validate(
                    {
                        "label": form.get(f"{prefix}_label", "").strip() or prefix.upper(),
                        "rule_set_version": None if rules == NO_RULES else rules,
                        "staffing_percent": numbers[f"{prefix}_staffing"],
                    }
                )
            )
        except ValidationError as exc:
            for e in exc.errors():
                name = {"label": "label", "rule_set_version": "rules"}.get(str(e["loc"][0]), "staffing")
                errors.setdefault(f"{prefix}_{name}", str(e["msg"]).removeprefix("Value error, "))
    if errors:
        return None, errors
    try:
        traffic = Traffic.model_validate(
            {
                "interval_minutes": numbers["interval_minutes"],
                "volumes": volumes,
                "classes": [c.model_dump() for c in default_classes(queues, tier_mix, profiles)],
                "handle_seconds": handle,
                "patience_seconds": patience,
            }
        )
        body = SimulationRequest(
            traffic=traffic,
            resolution=ResolutionModel() if form.get("resolution") else None,
            seed=int(numbers["seed"] or 0),
            start_epoch=start_epoch,
            sides=sides,
        )
    except ValidationError as exc:
        for e in exc.errors():
            loc = [str(p) for p in e["loc"]]
            name = {
                "interval_minutes": "interval_minutes",
                "volumes": "volumes",
                "handle_seconds": "handle_voice",
                "patience_seconds": "patience_voice",
                "seed": "seed",
            }.get(loc[0] if loc[0] != "traffic" or len(loc) < 2 else loc[1], "")
            errors.setdefault(name, str(e["msg"]).removeprefix("Value error, "))
        return None, errors
    return body, errors


async def _page(
    request: Request,
    staff: Any,
    settings: AppSettings,
    session: DbSession,
    *,
    form: dict[str, str] | None,
    errors: dict[str, str],
    job_id: str | None = None,
    code: int = 200,
) -> Response:
    options, live = await _options(session)
    agents = len(await db_roster(session))
    queues = await db_queues(session)
    context = await console_context(
        request,
        staff,
        settings,
        session,
        form=form or defaults(agents, live),
        errors=errors,
        rule_options=options,
        agents=agents,
        queues=[q.name for q in queues],
        job_id=job_id,
    )
    await session.commit()
    return templates.TemplateResponse(request, TEMPLATE, context, status_code=code)


def _form_of(handle: RedisHandle, job_id: str) -> dict[str, str] | None:
    connection = handle.sync_client()
    try:
        try:
            form = Job.fetch(job_id, connection=connection).get_meta().get("form")
        except Exception:  # an unknown or expired job: the page shows the defaults
            return None
        return {str(k): str(v) for k, v in form.items()} if isinstance(form, dict) else None
    finally:
        connection.close()


def _remember_form(handle: RedisHandle, job_id: str, form: dict[str, str]) -> None:
    connection = handle.sync_client()
    try:
        job = Job.fetch(job_id, connection=connection)
        job.meta["form"] = form
        job.save_meta()
    finally:
        connection.close()


@router.get(PAGE, response_class=HTMLResponse)
async def simulation_page(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession, job: str | None = None
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    form = None
    if job is not None:
        job = job[:64]
        form = await run_in_threadpool(_form_of, request.app.state.redis, job)
    return await _page(request, staff, settings, session, form=form, errors={}, job_id=job)


@router.post(PAGE, response_class=HTMLResponse)
async def run_simulation(
    request: Request, user: OptionalUser, settings: AppSettings, session: DbSession
) -> Response:
    staff = supervisor_or_login(request, user)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    form = {k: str(v) for k, v in (await request.form()).items() if k != "csrf_token"}
    body, errors = await build_request(session, form, request=request, settings=settings)
    if body is None:
        return await _page(request, staff, settings, session, form=form, errors=errors, code=422)
    try:
        job_id = await start(request, session, body)
    except Invalid as exc:
        field = _form_field(exc.field or "")
        return await _page(request, staff, settings, session, form=form, errors={field: exc.detail}, code=422)
    except DomainError as exc:
        return await _page(
            request, staff, settings, session, form=form, errors={"": exc.detail}, code=exc.status
        )
    # The run goes on without it; the page would only show the defaults beside it.
    with contextlib.suppress(redis.RedisError):
        await run_in_threadpool(_remember_form, request.app.state.redis, job_id, form)
    return RedirectResponse(f"{PAGE}?job={job_id}", status_code=303)


def chart_data(result: dict[str, Any]) -> str:
    sides = result["sides"]
    first = sides[0]["result"]["by_interval"]
    return json.dumps(
        {
            "labels": [f"{row['start_minutes'] // 60:02d}:{row['start_minutes'] % 60:02d}" for row in first],
            "series": [
                {
                    "label": s["label"],
                    "service_level": [
                        None if row["service_level"] is None else round(row["service_level"] * 100, 1)
                        for row in s["result"]["by_interval"]
                    ],
                }
                for s in sides
            ],
        }
    )


@router.get(PAGE + "/jobs/{job_id}", response_class=HTMLResponse)
async def simulation_result(job_id: str, request: Request, staff: ConsoleStaff) -> Response:
    """The results section: progress while the job runs (htmx polls it), then the figures."""
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    try:
        job = await run_in_threadpool(read_job, request.app.state.redis, job_id[:64])
    except NotFound:
        return templates.TemplateResponse(request, FRAGMENT, {"job": None, "job_id": job_id}, status_code=404)
    chart = chart_data(job.result) if job.result else None
    return templates.TemplateResponse(request, FRAGMENT, {"job": job, "job_id": job_id, "chart": chart})

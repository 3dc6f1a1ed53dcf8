"""``/api/experience/...``: the experience dashboard's figures as JSON or, with ``format=csv``, as
the same table in CSV (supervisors and admins). Bad filters are a 422 naming the field."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from experience import dashboard
from experience.dashboard_schemas import (
    CX,
    EX,
    ExperienceDrill,
    ExperienceQuery,
    ExperienceSummary,
    ExperienceTogether,
    ExperienceTrend,
)
from switchboard.csv_export import csv_download
from switchboard.deps import DbSession, RequireSupervisor

router = APIRouter(prefix="/api/experience", tags=["experience"])

CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "With format=csv: the same rows as CSV"}
}
CX_FIELDS = tuple(CX.model_fields)
EX_FIELDS = ("shown", "respondents", "pulse_n", "pulse", "shift_n", "energy", "workload", "note")


def csv_response(name: str, header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Response:
    return csv_download(f"experience-{name}.csv", header, rows)


def _cx(cx: CX, prefix: str = "") -> list[Any]:
    return [getattr(cx, f) for f in CX_FIELDS]


def _ex(ex: EX) -> list[Any]:
    return [getattr(ex, f) for f in EX_FIELDS]


def summary_csv(result: ExperienceSummary) -> Response:
    header = ["key", "label", *CX_FIELDS, *(f"ex_{f}" for f in EX_FIELDS)]
    rows = [[r.key, r.label, *_cx(r.cx), *_ex(r.ex)] for r in [*result.rows, result.total]]
    return csv_response(f"{result.dimension.value}", header, rows)


def trend_csv(result: ExperienceTrend) -> Response:
    header = ["day", *CX_FIELDS, *(f"ex_{f}" for f in EX_FIELDS), "service_level", "service_level_target"]
    rows = [
        [d.day.isoformat(), *_cx(d.cx), *_ex(d.ex), d.service_level, d.service_level_target]
        for d in result.days
    ]
    return csv_response("trend", header, rows)


def tags_csv(result: ExperienceTogether) -> Response:
    header = ["tag", *(f"tagged_{f}" for f in CX_FIELDS), *(f"rest_{f}" for f in CX_FIELDS)]
    return csv_response("tags", header, ([t.tag, *_cx(t.tagged), *_cx(t.rest)] for t in result.tags))


def service_level_csv(result: ExperienceTogether) -> Response:
    header = ["scope", "group", "days", *CX_FIELDS, *(f"ex_{f}" for f in EX_FIELDS)]
    rows = ([c.scope, c.group, c.days, *_cx(c.cx), *_ex(c.ex)] for c in result.service_level)
    return csv_response("service-level", header, rows)


def drill_csv(result: ExperienceDrill) -> Response:
    fields = ("interaction_id", "customer_id", "answered_at", "channel", "queue", "agent", "tier", "topic")
    header = [*fields, "csat", "nps", "ces", "comment"]
    rows = ([*(getattr(r, f) for f in fields), r.csat, r.nps, r.ces, r.comment] for r in result.rows)
    return csv_response("interactions", header, rows)


Filters = Annotated[ExperienceQuery, Query()]


@router.get("/summary", response_model=ExperienceSummary, responses=CSV_RESPONSE)
async def get_summary(q: Filters, session: DbSession, _user: RequireSupervisor) -> Any:
    """CX and EX side by side per group of ``dimension`` over the days ``from``..``to``."""
    result = await dashboard.summary(session, q)
    await session.commit()  # the SQLite rule: end the read before answering
    return summary_csv(result) if q.format == "csv" else result


@router.get("/trend", response_model=ExperienceTrend, responses=CSV_RESPONSE)
async def get_trend(q: Filters, session: DbSession, _user: RequireSupervisor) -> Any:
    """Per day: the centre's figures, or one group's (``dimension`` and ``key``)."""
    result = await dashboard.trend(session, q)
    await session.commit()
    return trend_csv(result) if q.format == "csv" else result


@router.get("/together", response_model=ExperienceTogether, responses=CSV_RESPONSE)
async def get_together(
    q: Filters,
    session: DbSession,
    _user: RequireSupervisor,
    table: Annotated[str, Query(pattern="^(tags|service_level)$")] = "tags",
) -> Any:
    """CSAT on interactions agents tagged vs the rest, and EX on days below the service-level
    target vs the rest, with counts (``table`` picks the CSV)."""
    result = await dashboard.together(session, q)
    await session.commit()
    if q.format == "csv":
        return tags_csv(result) if table == "tags" else service_level_csv(result)
    return result


@router.get("/interactions", response_model=ExperienceDrill, responses=CSV_RESPONSE)
async def get_interactions(
    q: Filters,
    session: DbSession,
    _user: RequireSupervisor,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    """The newest customer answers behind a figure (filter by ``dimension`` + ``key``, ``tag``)."""
    result = await dashboard.drill(session, q, limit=limit)
    await session.commit()
    return drill_csv(result) if q.format == "csv" else result

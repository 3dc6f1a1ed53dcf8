"""``GET /api/audit`` (a page of entries, newest first) and ``GET /api/audit/export.csv`` (every
matching entry, streamed), for supervisors and admins."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from console.audit_schemas import AuditPage, AuditQuery, AuditRead
from switchboard.audit import AuditEntry, AuditFilter, changes_of, search_audit, shown
from switchboard.csv_export import csv_text
from switchboard.db import Database
from switchboard.deps import DbSession, RequireSupervisor

router = APIRouter(prefix="/api/audit", tags=["audit"])

EXPORT_BATCH = 500
CSV_COLUMNS = ("id", "at", "actor", "action", "entity_type", "entity_id", "changes", "data")


async def read_page(session: DbSession, query: AuditQuery) -> AuditPage:
    rows = await search_audit(session, query.filter(), limit=query.limit + 1, before_id=query.cursor)
    await session.commit()  # the SQLite rule: end the read before answering
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return AuditPage(
        items=[AuditRead.of(entry, username) for entry, username in rows],
        next_cursor=rows[-1][0].id if more and rows else None,
    )


@router.get("", response_model=AuditPage)
async def list_audit_entries(
    query: Annotated[AuditQuery, Query()], session: DbSession, _user: RequireSupervisor
) -> AuditPage:
    """Who changed what and when, with each change's fields before -> after; filter by actor,
    action or kind, entity and time; page with ``cursor``."""
    return await read_page(session, query)


def csv_row(entry: AuditEntry, username: str | None) -> list[Any]:
    changes = "; ".join(f"{c.field}: {shown(c.before)} -> {shown(c.after)}" for c in changes_of(entry.data))
    return [
        entry.id,
        entry.at.isoformat(),
        username or "",
        entry.action,
        entry.entity_type,
        entry.entity_id,
        changes,
        json.dumps(entry.data, sort_keys=True, ensure_ascii=False),
    ]


async def _export(db: Database, where: AuditFilter) -> AsyncIterator[str]:
    """One short read per batch (keyset on id): no transaction stays open while the client reads."""
    yield csv_text([CSV_COLUMNS])
    before_id: int | None = None
    while True:
        async with db.sessionmaker() as session:
            rows = await search_audit(session, where, limit=EXPORT_BATCH, before_id=before_id)
            await session.commit()
        if not rows:
            return
        yield csv_text(csv_row(entry, username) for entry, username in rows)
        if len(rows) < EXPORT_BATCH:
            return
        before_id = rows[-1][0].id


@router.get(
    "/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "Every matching entry, newest first"}},
)
async def export_audit_csv(
    request: Request, query: Annotated[AuditQuery, Query()], _user: RequireSupervisor
) -> StreamingResponse:
    """The same filters as ``GET /api/audit`` (``limit`` and ``cursor`` are ignored): every
    matching entry as CSV, streamed; cells a spreadsheet would run as formulas are neutralised."""
    return StreamingResponse(
        _export(request.app.state.db, query.filter()),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )

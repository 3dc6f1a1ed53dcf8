"""``/supervisor/rules``: the rule-set versions (author, time, comment; the live one marked), one
version with its diff against the live one, and the buttons that put a version live (publish,
roll back) or move waiting work to it. Each calls ``routing.rule_actions`` as the JSON API does:
audited in the same transaction, and the running engine told at once (no restart)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from console.context import ConsoleStaff, console_context
from console.rules_dryrun import contact_choices, waiting_work
from routing import actions, rule_actions, rules_diff, service
from routing.api import RuleSetVersionNo
from routing.models import RuleSetStatus
from switchboard.auth.models import User
from switchboard.deps import AppSettings, DbSession
from switchboard.errors import DomainError
from switchboard.templating import templates

router = APIRouter(tags=["pages"], include_in_schema=False)

NOTICES = {
    "saved": "Draft saved.",
    "published": "Published: new contacts are routed by this version now.",
    "rolled_back": "Rolled back: this version is live again.",
}


async def _people(session: AsyncSession, ids: set[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(select(User.id, User.display_name, User.username).where(User.id.in_(wanted)))
    return {uid: f"{name} ({username})" for uid, name, username in rows}


@router.get("/supervisor/rules", response_class=HTMLResponse)
async def rules_index(
    request: Request, staff: ConsoleStaff, settings: AppSettings, session: DbSession, notice: str = ""
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    versions = await service.list_versions(session)
    people = await _people(
        session, {v.created_by_id for v in versions} | {v.published_by_id for v in versions}
    )
    context = await console_context(
        request,
        staff,
        settings,
        session,
        versions=versions,
        live=await service.live_version_number(session),
        people=people,
        notice=notice[:200],
    )
    await session.commit()
    return templates.TemplateResponse(request, "console/rules.html", context)


async def _version_context(session: AsyncSession, version: int) -> dict[str, Any]:
    row = await service.get_version(session, version=version)
    live = await service.live_version_number(session)
    live_body = None if live is None else (await service.get_version(session, version=live)).body
    return {
        "row": row,
        "live": live,
        "is_live": live == row.version,
        "is_draft": row.status is RuleSetStatus.DRAFT,
        "changes": rules_diff.diff(live_body, row.body),
        "problems": await service.check_rule_set(session, row.body),
        "people": await _people(session, {row.created_by_id, row.published_by_id}),
        "waiting": await waiting_work(session),
        "choices": contact_choices(),
        "show": rules_diff.show,
    }


@router.get("/supervisor/rules/{version}", response_class=HTMLResponse)
async def version_page(
    version: RuleSetVersionNo,
    request: Request,
    staff: ConsoleStaff,
    settings: AppSettings,
    session: DbSession,
    saved: str = "",
    done: str = "",
    error: str = "",
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    extra = await _version_context(session, version)
    notice = NOTICES.get(done) or (NOTICES["saved"] if saved else None)
    context = await console_context(
        request, staff, settings, session, **extra, notice=notice, error=error[:300] or None
    )
    await session.commit()
    return templates.TemplateResponse(request, "console/rules_version.html", context)


async def _act(
    request: Request, staff: User | None, session: AsyncSession, version: int, what: str
) -> Response:
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    link = actions.EngineLink.of(request)
    try:
        if what == "published":
            await rule_actions.publish(session, link, version=version, actor=staff)
        else:
            await rule_actions.rollback(session, link, to_version=version, actor=staff)
    except DomainError as exc:
        await session.rollback()
        if exc.status == 404:
            raise
        return RedirectResponse(
            f"/supervisor/rules/{version}?error={quote(exc.detail[:300])}", status_code=303
        )
    return RedirectResponse(f"/supervisor/rules/{version}?done={what}", status_code=303)


@router.post("/supervisor/rules/{version}/publish", response_class=HTMLResponse)
async def publish_page(
    version: RuleSetVersionNo, request: Request, staff: ConsoleStaff, session: DbSession
) -> Response:
    return await _act(request, staff, session, version, "published")


@router.post("/supervisor/rules/{version}/rollback", response_class=HTMLResponse)
async def rollback_page(
    version: RuleSetVersionNo, request: Request, staff: ConsoleStaff, session: DbSession
) -> Response:
    return await _act(request, staff, session, version, "rolled_back")

"""``/api/queue-thresholds``: each queue's wallboard colours as JSON (supervisors; audited). The
queue page (console.queue_pages) saves the same way."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from console.thresholds import ThresholdsWrite, all_thresholds, set_thresholds, thresholds_of
from switchboard.deps import DbSession, RequireSupervisor

router = APIRouter(prefix="/api/queue-thresholds", tags=["administration"])


@router.get("", summary="Every queue's wallboard colours")
async def list_thresholds(session: DbSession, _user: RequireSupervisor) -> dict[str, Any]:
    found = await all_thresholds(session)
    await session.commit()
    return {"items": [{"queue": name, **t.as_json()} for name, t in sorted(found.items())]}


@router.get("/{queue}", summary="One queue's wallboard colours (by name or id)")
async def read_thresholds(queue: str, session: DbSession, _user: RequireSupervisor) -> dict[str, Any]:
    q, found = await thresholds_of(session, queue=queue)
    await session.commit()
    return {"queue": q.name, **found.as_json()}


@router.put("/{queue}", summary="Set one queue's wallboard colours")
async def replace_thresholds(
    queue: str, body: ThresholdsWrite, session: DbSession, user: RequireSupervisor
) -> dict[str, Any]:
    q, saved = await set_thresholds(session, queue=queue, data=body, actor=user)
    await session.commit()
    return {"queue": q.name, **saved.as_json()}

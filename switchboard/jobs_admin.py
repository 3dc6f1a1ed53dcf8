"""Failed background jobs, for admins: a page (``/admin/jobs``) and its JSON twin
(``/api/admin/jobs``), each job with its error, and "retry" / "discard" actions (audited).

A job lands here when it failed after its retries, or its worker died with none left
(switchboard.jobs). RQ's registries are read with the synchronous client RQ needs, in a thread.
Redis unreachable: 503 problem+json with Retry-After, like every other outage.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import redis
from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry
from sqlalchemy.ext.asyncio import AsyncSession

from switchboard.audit import record_audit
from switchboard.auth.models import User
from switchboard.auth.pages import admin_or_login, page_context
from switchboard.deps import AppSettings, DbSession, OptionalUser, RequireAdmin
from switchboard.errors import NotFound, problem
from switchboard.jobs import QUEUES
from switchboard.redis import RedisHandle
from switchboard.templating import templates

router = APIRouter(tags=["admin"])
pages = APIRouter(include_in_schema=False)

Action = Literal["retry", "discard"]
_JOB_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
_JOB_ID = re.compile(_JOB_ID_PATTERN)
JobId = Annotated[str, Path(pattern=_JOB_ID_PATTERN)]
_VERBS: dict[str, str] = {"retry": "queued again", "discard": "discarded"}
RETRY_AFTER_SECONDS = 5
MAX_LISTED = 200  # per queue, newest first


@dataclass(frozen=True)
class FailedJob:
    id: str
    queue: str
    function: str
    error: str  # the exception's last line, e.g. "OperationalError: connection refused"
    traceback: str
    enqueued_at: datetime | None
    failed_at: datetime | None


class FailedJobRead(BaseModel):
    id: str
    queue: str
    function: str
    error: str
    traceback: str
    enqueued_at: datetime | None
    failed_at: datetime | None


class FailedJobs(BaseModel):
    items: list[FailedJobRead]


class JobActionDone(BaseModel):
    id: str
    action: Action


# ------------------------------------------------------------------ RQ (synchronous, in a thread)


def _failed_jobs(handle: RedisHandle) -> list[FailedJob]:
    connection = handle.sync_client()
    try:
        found: list[FailedJob] = []
        for name in QUEUES:
            registry = FailedJobRegistry(name, connection=connection)
            ids = registry.get_job_ids(0, MAX_LISTED - 1, desc=True)
            for job in Job.fetch_many(ids, connection=connection):
                if job is not None:
                    found.append(_described(job, name))
        return sorted(found, key=lambda j: j.failed_at.timestamp() if j.failed_at else 0.0, reverse=True)
    finally:
        connection.close()


def _described(job: Job, queue: str) -> FailedJob:
    result = job.latest_result()
    trace = (result.exc_string if result is not None else None) or job._exc_info or ""  # noqa: SLF001
    lines = [line for line in trace.strip().splitlines() if line.strip()]
    return FailedJob(
        id=job.id,
        queue=queue,
        function=job.func_name or "?",
        error=lines[-1] if lines else "(no error recorded)",
        traceback=trace,
        enqueued_at=job.enqueued_at,
        failed_at=(result.created_at if result is not None else None) or job.ended_at,
    )


def _act(handle: RedisHandle, job_id: str, action: Action) -> FailedJob:
    """Retry (back to its queue, a fresh run) or discard (deleted) one failed job; NotFound when it
    is not in a failed registry (already retried or discarded, e.g. by another admin)."""
    connection = handle.sync_client()
    try:
        for name in QUEUES:
            registry = FailedJobRegistry(name, connection=connection)
            if job_id not in registry.get_job_ids():
                continue
            job = Job.fetch(job_id, connection=connection)
            described = _described(job, name)
            if action == "retry":
                registry.requeue(job)
            else:
                registry.remove(job, delete_job=True)
            return described
    except (NoSuchJobError, InvalidJobOperation):
        pass
    finally:
        connection.close()
    raise NotFound(f"No failed job {job_id}", field="job_id")


# ------------------------------------------------------------------ shared by page and JSON


def _unavailable(request: Request) -> Response:
    return problem(
        503,
        "Service unavailable",
        "The job queue (Redis) is not reachable; try again shortly",
        type_slug="unavailable",
        instance=request.url.path,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _list(request: Request) -> list[FailedJob] | Response:
    try:
        return await run_in_threadpool(_failed_jobs, request.app.state.redis)
    except redis.RedisError:
        return _unavailable(request)


async def _audited_action(
    request: Request, session: AsyncSession, user: User, job_id: str, action: Action
) -> FailedJob | Response:
    try:
        job = await run_in_threadpool(_act, request.app.state.redis, job_id, action)
    except redis.RedisError:
        return _unavailable(request)
    record_audit(
        session,
        actor_id=user.id,
        action=f"job.{'retried' if action == 'retry' else 'discarded'}",
        entity_type="job",
        entity_id=job.id,
        data={"queue": job.queue, "function": job.function, "error": job.error},
    )
    await session.commit()
    return job


# ------------------------------------------------------------------ JSON


@router.get("/api/admin/jobs", response_model=FailedJobs)
async def list_failed_jobs(request: Request, _admin: RequireAdmin) -> Any:
    """Failed background jobs, newest first, each with its error and traceback."""
    jobs = await _list(request)
    if isinstance(jobs, Response):
        return jobs
    return FailedJobs(items=[FailedJobRead(**asdict(j)) for j in jobs])


@router.post("/api/admin/jobs/{job_id}/{action}", response_model=JobActionDone)
async def act_on_failed_job(
    job_id: JobId, action: Action, request: Request, session: DbSession, admin: RequireAdmin
) -> Any:
    """``retry``: back to its queue for a fresh run; ``discard``: deleted. Both audited."""
    done = await _audited_action(request, session, admin, job_id, action)
    if isinstance(done, Response):
        return done
    return JobActionDone(id=done.id, action=action)


# ------------------------------------------------------------------ page


@pages.get("/admin/jobs", response_class=HTMLResponse)
async def failed_jobs_page(request: Request, user: OptionalUser, settings: AppSettings) -> Response:
    admin = admin_or_login(request, user)
    if isinstance(admin, Response):
        return admin
    jobs = await _list(request)
    if isinstance(jobs, Response):
        return jobs
    return templates.TemplateResponse(
        request,
        "admin/jobs.html",
        page_context(request, admin, settings, jobs=jobs, notice=_done_notice(request)),
    )


def _done_notice(request: Request) -> str | None:
    """After a plain form post (no htmx: scripts off, or a button pressed before htmx had wired
    the freshly swapped list) the page says what was done, as the htmx response does. Only the
    job's id comes from the address, checked as a job id: nothing else a link could make it say."""
    action, job_id = request.query_params.get("done"), request.query_params.get("job") or ""
    if action not in _VERBS or not _JOB_ID.fullmatch(job_id):
        return None
    return f"Job {job_id[:8]} {_VERBS[action]}."


# One route per action (not /{action}): a signed-out caller must get 401 before any 422.
@pages.post("/admin/jobs/{job_id}/retry", response_class=HTMLResponse)
async def retry_failed_job(
    job_id: JobId, request: Request, session: DbSession, settings: AppSettings, user: OptionalUser
) -> Response:
    return await _page_action(request, session, settings, user, job_id, "retry")


@pages.post("/admin/jobs/{job_id}/discard", response_class=HTMLResponse)
async def discard_failed_job(
    job_id: JobId, request: Request, session: DbSession, settings: AppSettings, user: OptionalUser
) -> Response:
    return await _page_action(request, session, settings, user, job_id, "discard")


async def _page_action(
    request: Request, session: AsyncSession, settings: Any, user: User | None, job_id: str, action: Action
) -> Response:
    """The page's buttons: htmx gets the refreshed list (with a notice); a plain form post is sent
    back to the page."""
    admin = admin_or_login(request, user)
    if isinstance(admin, Response):
        return admin
    done = await _audited_action(request, session, admin, job_id, action)
    if isinstance(done, Response):
        return done
    if request.headers.get("hx-request") != "true":
        return RedirectResponse(f"/admin/jobs?{urlencode({'done': action, 'job': done.id})}", status_code=303)
    jobs = await _list(request)
    if isinstance(jobs, Response):
        return jobs
    notice = f"Job {done.function} ({done.id[:8]}) {_VERBS[action]}."
    return templates.TemplateResponse(
        request, "admin/_failed_jobs.html", page_context(request, admin, settings, jobs=jobs, notice=notice)
    )

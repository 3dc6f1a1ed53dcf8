"""``/api/workforce/simulations``: what-if runs on the real routing engine, as RQ jobs.

``POST`` checks the request (422 naming the field), queues the job and answers 202 with its id;
``GET /{id}`` answers its status, progress (0 to 1) and, once finished, the figures per side.
Supervisors only. The console page (console/simulation_pages.py) uses the same functions.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import redis
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from routing.simulation import jobs as simulation_jobs
from routing.simulation.schemas import SimulationJob, SimulationRequest
from routing.simulation.service import prepare
from switchboard import jobs
from switchboard.deps import DbSession, RequireSupervisor
from switchboard.errors import NotFound, ServiceUnavailable
from switchboard.redis import RedisHandle

router = APIRouter(prefix="/api/workforce/simulations", tags=["workforce"])

JOB_TIMEOUT_SECONDS = 900
JOB_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
RESULT_TTL_SECONDS = 24 * 3600


def job_url(job_id: str) -> str:
    return f"/api/workforce/simulations/{job_id}"


def enqueue(handle: RedisHandle, payload: dict[str, Any]) -> str:
    connection = handle.sync_client()
    try:
        job = jobs.enqueue(
            connection,
            simulation_jobs.simulate_job,
            payload,
            job_timeout=JOB_TIMEOUT_SECONDS,
            result_ttl=RESULT_TTL_SECONDS,
            failure_ttl=RESULT_TTL_SECONDS,
        )
        job.meta["progress"] = 0.0
        job.save_meta()
        return str(job.id)
    finally:
        connection.close()


def read_job(handle: RedisHandle, job_id: str) -> SimulationJob:
    """A simulation job's state; 404 for an unknown id or a job that is not a simulation."""
    if not JOB_ID.fullmatch(job_id):  # RQ's ids are UUIDs: anything else is no job of ours
        raise NotFound("No such simulation", field="job_id")
    connection = handle.sync_client()
    try:
        try:
            job = Job.fetch(job_id, connection=connection)
        except NoSuchJobError:
            raise NotFound("No such simulation (finished ones are kept for a day)", field="job_id") from None
        if job.func_name != simulation_jobs.JOB_NAME:
            raise NotFound("No such simulation", field="job_id")
        status = job.get_status(refresh=True)
        progress = float(job.get_meta(refresh=True).get("progress", 0.0))
        error = None
        result = None
        state: Literal["queued", "started", "finished", "failed"]
        if status == JobStatus.FINISHED:
            state, progress, result = "finished", 1.0, job.return_value()
        elif status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            state = "failed"
            latest = job.latest_result()
            error = "the simulation failed" + (
                f": {latest.exc_string.strip().splitlines()[-1]}" if latest and latest.exc_string else ""
            )
        elif status == JobStatus.STARTED:
            state = "started"
        else:
            state = "queued"
        return SimulationJob(
            id=job_id, status=state, progress=progress, url=job_url(job_id), error=error, result=result
        )
    finally:
        connection.close()


async def start(request: Request, session: DbSession, body: SimulationRequest) -> str:
    payload = await prepare(session, body)
    await session.commit()
    try:
        return await run_in_threadpool(enqueue, request.app.state.redis, payload)
    except redis.RedisError as exc:
        raise ServiceUnavailable("the job queue is unavailable; try again") from exc


@router.post("", response_model=SimulationJob, status_code=202)
async def create_simulation(
    body: SimulationRequest, request: Request, session: DbSession, _user: RequireSupervisor
) -> JSONResponse:
    """Queue a what-if run (one or two sides on the same seeded traffic)."""
    job_id = await start(request, session, body)
    answer = SimulationJob(id=job_id, status="queued", progress=0.0, url=job_url(job_id))
    return JSONResponse(
        answer.model_dump(mode="json"), status_code=202, headers={"Location": job_url(job_id)}
    )


@router.get("/{job_id}", response_model=SimulationJob)
async def get_simulation(job_id: str, request: Request, _user: RequireSupervisor) -> SimulationJob:
    return await run_in_threadpool(read_job, request.app.state.redis, job_id)

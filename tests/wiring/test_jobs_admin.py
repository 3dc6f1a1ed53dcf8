"""Failed background jobs for admins (switchboard.jobs_admin): listed with their error on a page
and in JSON, retried or discarded (audited), refused to everyone but admins."""

from __future__ import annotations

import uuid

import pytest
import rq
from rq.job import Job
from rq.registry import FailedJobRegistry
from sqlalchemy import select

from switchboard.audit import AuditEntry
from switchboard.auth.models import Role
from switchboard.redis import RedisHandle
from tests.wiring.failing_jobs import fail_with
from tests.workers import run_burst_worker


@pytest.fixture
async def failed_job(settings, redis_handle, redis_sync):
    """A job that raised, in the default queue's failed registry (enqueued without retries)."""
    connection = redis_handle.sync_client()
    message = f"ledger offline {uuid.uuid4().hex[:8]}"
    job = rq.Queue("default", connection=connection).enqueue(fail_with, message)
    await run_burst_worker(settings)
    assert job.get_status(refresh=True) == rq.job.JobStatus.FAILED
    yield job, message, connection
    connection.close()


async def _audit(db) -> list[tuple[str, str, uuid.UUID | None]]:
    async with db.sessionmaker() as s:
        rows = (await s.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
        return [(r.action, r.entity_id, r.actor_id) for r in rows]


async def test_admin_sees_the_failed_job_with_its_error(client, make_user, failed_job):
    job, message, _ = failed_job
    _, admin = await make_user(Role.ADMIN)
    listed = await client.get("/api/admin/jobs", headers=admin)
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert item["id"] == job.id and item["queue"] == "default"
    assert item["function"] == "tests.wiring.failing_jobs.fail_with"
    assert item["error"] == f"RuntimeError: {message}"
    assert "Traceback" in item["traceback"] and item["failed_at"]

    page = await client.get("/admin/jobs", headers={**admin, "Accept": "text/html"})
    assert page.status_code == 200, page.text
    assert f"RuntimeError: {message}" in page.text
    assert f'action="/admin/jobs/{job.id}/retry"' in page.text
    assert f'action="/admin/jobs/{job.id}/discard"' in page.text


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR])
async def test_only_admins_see_or_touch_failed_jobs(client, make_user, failed_job, role, db):
    job, _, connection = failed_job
    _, headers = await make_user(role)
    assert (await client.get("/api/admin/jobs", headers=headers)).status_code == 403
    assert (await client.get("/admin/jobs", headers=headers)).status_code == 403
    for url in (f"/api/admin/jobs/{job.id}/retry", f"/admin/jobs/{job.id}/discard"):
        assert (await client.post(url, headers=headers)).status_code == 403
    assert (await client.get("/api/admin/jobs")).status_code == 401
    assert (await client.get("/admin/jobs")).status_code == 401
    signed_out = await client.get("/admin/jobs", headers={"Accept": "text/html"})  # a browser
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/login"
    assert job.id in FailedJobRegistry("default", connection=connection).get_job_ids()
    assert await _audit(db) == []


async def test_retry_and_discard_are_done_and_audited(client, make_user, failed_job, db, settings):
    job, message, connection = failed_job
    admin_user, admin = await make_user(Role.ADMIN)
    failed = FailedJobRegistry("default", connection=connection)

    retried = await client.post(f"/api/admin/jobs/{job.id}/retry", headers=admin)
    assert retried.status_code == 200, retried.text
    assert retried.json() == {"id": job.id, "action": "retry"}
    assert job.id not in failed.get_job_ids()
    assert job.id in rq.Queue("default", connection=connection).job_ids
    again = await client.post(f"/api/admin/jobs/{job.id}/retry", headers=admin)
    assert again.status_code == 404 and again.json()["errors"][0]["field"] == "job_id"

    await run_burst_worker(settings)  # fails again
    assert job.id in failed.get_job_ids()
    # The page's button (htmx): the refreshed list, a notice that takes the focus, no row for it.
    discarded = await client.post(f"/admin/jobs/{job.id}/discard", headers={**admin, "HX-Request": "true"})
    assert discarded.status_code == 200, discarded.text
    assert 'id="failed-jobs"' in discarded.text and "discarded" in discarded.text
    assert "autofocus" in discarded.text and f"job-{job.id}" not in discarded.text
    assert not Job.exists(job.id, connection=connection)

    assert await _audit(db) == [
        ("job.retried", job.id, admin_user.id),
        ("job.discarded", job.id, admin_user.id),
    ]
    async with db.sessionmaker() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "job.discarded"))
        assert entry.data["error"] == f"RuntimeError: {message}"


async def test_a_plain_form_post_comes_back_to_the_page_saying_what_was_done(client, make_user, failed_job):
    """Scripts off, or Enter pressed on a freshly swapped list before htmx wired its forms (seen in
    CI): the browser posts the form itself, and the page it is sent back to says what was done."""
    job, _, connection = failed_job
    _, admin = await make_user(Role.ADMIN)
    posted = await client.post(f"/admin/jobs/{job.id}/discard", headers=admin)
    assert posted.status_code == 303
    assert posted.headers["location"] == f"/admin/jobs?done=discard&job={job.id}"
    assert not Job.exists(job.id, connection=connection)
    page = await client.get(posted.headers["location"], headers={**admin, "Accept": "text/html"})
    assert page.status_code == 200
    assert (
        f'<p id="jobs-notice" role="status" tabindex="-1" autofocus>Job {job.id[:8]} discarded.</p>'
        in page.text
    )
    # A made-up address says nothing (only a well-formed job id and a known action are shown).
    for query in ("done=delete&job=abc", "done=discard&job=<b>x</b>", "done=discard"):
        forged = await client.get(f"/admin/jobs?{query}", headers={**admin, "Accept": "text/html"})
        assert forged.status_code == 200 and 'id="jobs-notice"' not in forged.text


async def test_redis_down_is_a_503_with_retry_after(app, client, make_user, monkeypatch):
    _, admin = await make_user(Role.ADMIN)
    monkeypatch.setattr(app.state, "redis", RedisHandle(url="redis://127.0.0.1:1/0"))  # nothing listens
    for response in (
        await client.get("/api/admin/jobs", headers=admin),
        await client.get("/admin/jobs", headers=admin),
        await client.post("/api/admin/jobs/some-job/retry", headers=admin),
    ):
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "5"

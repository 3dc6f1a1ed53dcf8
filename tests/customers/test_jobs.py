"""Background jobs that are not lost (switchboard.jobs): a real ``switchboard worker`` process is
killed with SIGKILL in the middle of the tier recompute; its job must be re-queued within seconds,
run again by the next worker and leave its effect exactly once (counted in SQL)."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import rq
from sqlalchemy import func, select

from customers.jobs import recompute_all_tiers_job
from customers.models import Customer, ValueTier
from customers.service import recompute_all_tiers, set_tier_policy
from customers.tier_policy import DEFAULT_TIER_POLICY, TierPolicy
from interactions.models import TimelineEvent
from switchboard import jobs
from tests.factories import make_customer
from tests.helpers import eventually
from tests.workers import worker_env

CUSTOMERS = 6
BATCH = 2
PAUSE_SECONDS = 1.5  # between batches: the kill lands while the job is half done
# A killed worker's lease lapses within JOB_MONITORING_INTERVAL + LEASE_GRACE (15 s); the next
# worker looks every MAINTENANCE_INTERVAL (10 s); then the job runs again (~5 s). Slack for 2 cores.
RERUN_WITHIN_SECONDS = 45


@pytest.fixture
async def start_worker(settings, redis_handle, tmp_path: Path) -> AsyncIterator[Callable[[], Any]]:
    """``await start_worker()`` -> a running ``switchboard worker`` process on the test database."""
    processes: list[asyncio.subprocess.Process] = []
    env = worker_env(settings)

    async def start() -> asyncio.subprocess.Process:
        log = (tmp_path / f"worker-{len(processes)}.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchboard.cli", "worker", env=env, stdout=log, stderr=log
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _retiered(db) -> int:
    async with db.sessionmaker() as s:
        return int(
            await s.scalar(
                select(func.count()).select_from(Customer).where(Customer.value_tier == ValueTier.SILVER)
            )
            or 0
        )


async def _tier_events(db) -> dict[Any, int]:
    async with db.sessionmaker() as s:
        rows = await s.execute(
            select(TimelineEvent.customer_id, func.count())
            .where(TimelineEvent.kind == "tier_changed")
            .group_by(TimelineEvent.customer_id)
        )
        return dict(rows.all())


async def test_a_worker_killed_mid_job_has_its_job_rerun_and_applied_once(
    db, settings, redis_handle, redis_sync, start_worker
):
    async with db.sessionmaker() as s:
        for _ in range(CUSTOMERS):
            await make_customer(s, relationship_balance=Decimal("700000"))  # 70 points
        await recompute_all_tiers(s)  # all gold (70 points) under the default policy
        data = DEFAULT_TIER_POLICY.model_dump(mode="json")
        data["thresholds"]["gold"] = 80  # 70 points: silver now
        await set_tier_policy(s, policy=TierPolicy.model_validate(data), actor_id=None)
        await s.commit()
    before = await _tier_events(db)
    assert sorted(before.values()) == [1] * CUSTOMERS  # standard -> gold

    connection = redis_handle.sync_client()
    job = jobs.enqueue(
        connection,
        recompute_all_tiers_job,
        settings.database_url,
        settings.database_schema,
        batch_size=BATCH,
        pause_seconds=PAUSE_SECONDS,
    )
    first = await start_worker()
    await eventually(lambda: _at_least(db, BATCH), within=60, what="the first batch")
    first.send_signal(signal.SIGKILL)
    await first.wait()
    killed_at = time.monotonic()
    await asyncio.sleep(0.5)
    done_at_kill = await _retiered(db)
    assert BATCH <= done_at_kill < CUSTOMERS, "the kill did not land mid-job"
    # The work horse died with its worker: nothing moves while no worker runs.
    await asyncio.sleep(PAUSE_SECONDS * 2)
    assert await _retiered(db) == done_at_kill
    job.refresh()
    assert job.get_status() == rq.job.JobStatus.STARTED

    await start_worker()

    async def finished() -> bool:
        job.refresh()
        return job.get_status() == rq.job.JobStatus.FINISHED

    await eventually(finished, within=RERUN_WITHIN_SECONDS, what="the re-queued job to finish")
    rerun_seconds = time.monotonic() - killed_at
    print(f"kill -9 -> job re-run and finished in {rerun_seconds:.1f} s")
    assert job.retries_left == len(jobs.RETRY_INTERVALS) - 1  # the abandoned run used one retry
    # The re-run skipped what the killed run had committed and did the rest.
    assert job.return_value()["tier_changed"] == CUSTOMERS - done_at_kill

    assert await _retiered(db) == CUSTOMERS
    after = await _tier_events(db)
    assert {c: n - before[c] for c, n in after.items()} == dict.fromkeys(before, 1)  # gold -> silver, once
    connection.close()


async def _at_least(db, n: int) -> bool:
    return await _retiered(db) >= n


async def test_two_recomputes_at_once_move_each_tier_once(db):
    """A retried job beside a new one: the batch's row locks make the second re-read what the first
    wrote (PostgreSQL; SQLite serialises the two writers), so each tier moves with one event."""
    async with db.sessionmaker() as s:
        for _ in range(CUSTOMERS):
            await make_customer(s, relationship_balance=Decimal("700000"))
        await s.commit()
    before = await _tier_events(db)

    async def run() -> dict[str, int]:
        async with db.sessionmaker() as s:
            return await recompute_all_tiers(s, batch_size=BATCH, pause_seconds=0.05)

    counts = await asyncio.gather(run(), run())
    assert sum(c["tier_changed"] for c in counts) == CUSTOMERS, counts
    after = await _tier_events(db)
    assert {c: n - before.get(c, 0) for c, n in after.items()} == dict.fromkeys(after, 1)

"""The workers' maintenance pass queues each periodic job once per period across all workers, and
every periodic job named in the table resolves to a function RQ can run."""

from __future__ import annotations

import rq
from rq.utils import import_attribute

from switchboard.jobs import PERIODIC_JOBS, PERIODIC_LOCK_PREFIX, enqueue_periodic_jobs


def test_each_periodic_job_is_queued_once_per_period(redis_sync):
    names = [p.job for p in PERIODIC_JOBS]
    assert enqueue_periodic_jobs(redis_sync) == names
    assert enqueue_periodic_jobs(redis_sync) == []  # a second worker's pass: the locks hold
    queued = [job.func_name for job in rq.Queue("default", connection=redis_sync).jobs]
    assert queued == names
    for periodic in PERIODIC_JOBS:
        assert callable(import_attribute(periodic.job))
        assert 0 < redis_sync.ttl(PERIODIC_LOCK_PREFIX + periodic.job) <= periodic.every_seconds

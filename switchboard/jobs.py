"""Background jobs (RQ) that are not lost: retried, re-queued promptly when their worker dies, and
failed ones listed for admins (switchboard.jobs_admin) until retried or discarded.

* **Retries.** ``enqueue`` gives every job ``retry_policy()``: up to 3 more runs after a failure
  or a dead worker, the first at once (a dead worker's job should not wait, and a transient
  error often passes), then 1 min and 5 min later. Jobs must therefore be safe to run again
  (the tier recompute is: it commits per batch, writes only what changed and locks the rows it
  re-scores).
* **A dead worker's job is back within ~25 s, not minutes.** RQ lists a running job in the
  queue's StartedJobRegistry with a lease its worker renews every ``JOB_MONITORING_INTERVAL``;
  stock RQ lets it lapse 60 s after the last renewal and looks for lapsed leases every 10 min. Our
  worker renews every 5 s with a 10 s grace (``LEASE_GRACE``), so a killed worker's lease lapses
  within 15 s, and every worker runs the maintenance pass (which re-queues a lapsed job while it
  has retries left, or fails it) on start and every ``MAINTENANCE_INTERVAL`` (10 s) while idle.
  The work horse (RQ forks one per job, in its own process group) is told to die with its worker
  (Linux ``PR_SET_PDEATHSIG``): a job whose worker was killed must not go on running beside its
  re-queued copy.
* **Retries without a scheduler process.** The maintenance pass also moves retries that are due
  from the scheduled registry back to their queue (what RQ's separate scheduler process does), so
  nothing is left orphaned when a worker is killed.
* **Periodic jobs** (``PERIODIC_JOBS``: the purge of expired ``Idempotency-Key`` rows, the
  survey sender, the alert rules, ...): the pass queues each one once per period across all
  workers, for a work horse. The worker process itself never opens the database, and a periodic
  job that fails is listed with the other failed jobs.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from rq import Queue, Retry, Worker
from rq.job import Job
from rq.scheduler import RQScheduler

from switchboard.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

QUEUES = ("default", "feedback")
RETRY_INTERVALS = [0, 60, 300]
JOB_MONITORING_INTERVAL = 5
LEASE_GRACE = 10
MAINTENANCE_INTERVAL = 10
WORKER_TTL = MAINTENANCE_INTERVAL + 15  # RQ blocks on an idle dequeue for WORKER_TTL - 15 s
PR_SET_PDEATHSIG = 1
PUBSUB_POLL_SECONDS = 1.0
PERIODIC_LOCK_PREFIX = "switchboard:maintenance:periodic:"


@dataclass(frozen=True)
class Periodic:
    """A job every worker's maintenance pass queues once per period across all workers (the
    Redis key ``PERIODIC_LOCK_PREFIX + job`` is the lock). Named, not imported: the core imports
    no domain. Each job must be safe to run twice (idempotent steps, claims in SQL)."""

    job: str
    every_seconds: int


PERIODIC_JOBS = (
    Periodic("interactions.jobs.purge_idempotency_keys_job", 600),
    Periodic("experience.survey_jobs.send_due_surveys_job", 30),
    Periodic("experience.jobs.alerts_job", 60),  # alert rules -> follow-ups; overdue escalation
    Periodic("experience.jobs.experience_rollup_job", 300),  # the experience dashboard's days
)


def retry_policy() -> Retry:
    return Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS)


def enqueue(
    connection: redis.Redis, func: Callable[..., Any], *args: Any, queue: str = "default", **kwargs: Any
) -> Job:
    """Queue ``func`` with the retry policy (every job goes through here)."""
    return Queue(queue, connection=connection).enqueue(func, *args, retry=retry_policy(), **kwargs)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also when called from a thread that already runs a loop (an in-process
    SimpleWorker inside an async app or test): then the coroutine gets a private thread and loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="job") as pool:
        return pool.submit(asyncio.run, coro).result()


def _die_with(parent_pid: int) -> None:
    """In a work horse: be killed when the worker that forked it dies (Linux; elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:  # pragma: no cover - always allowed
        log.warning("work horse %s: PR_SET_PDEATHSIG refused (errno %s)", os.getpid(), ctypes.get_errno())
    if os.getppid() != parent_pid:  # the worker died before the request took effect
        os._exit(1)


class SwitchboardWorker(Worker):
    """RQ's forking worker with short job leases and a maintenance pass of our own (module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("job_monitoring_interval", JOB_MONITORING_INTERVAL)
        kwargs.setdefault("maintenance_interval", MAINTENANCE_INTERVAL)
        kwargs.setdefault("worker_ttl", WORKER_TTL)
        super().__init__(*args, **kwargs)
        self._worker_pid = os.getpid()

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        # RQ's is the same with a fixed 60 s grace: a dead worker's job would wait that long.
        if job.timeout and job.timeout > 0:
            return int(min(job.timeout - working_time, self.job_monitoring_interval)) + LEASE_GRACE
        return self.job_monitoring_interval + LEASE_GRACE

    def subscribe(self) -> None:
        # RQ's, with the command listener polling every second instead of every 60 s: stopping the
        # worker joins that thread, and redis-py may hold it in a 60 s wait for the subscription
        # (a short burst run then took a minute to exit).
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]  # rq types it None
            sleep_time=PUBSUB_POLL_SECONDS, daemon=True, exception_handler=self._pubsub_exception_handler
        )

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        _die_with(self._worker_pid)
        super().main_work_horse(job, queue)

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()  # lapsed leases: re-queued (retries left) or failed
        try:
            enqueue_due_retries(self.connection, [q.name for q in self.queues])
            enqueue_periodic_jobs(self.connection)
        except redis.RedisError:
            log.exception("maintenance: not done (the next pass tries again)")


def enqueue_periodic_jobs(connection: redis.Redis) -> list[str]:
    """Queue each periodic job whose period has passed (one worker wins each lock); returns them."""
    queued = []
    for periodic in PERIODIC_JOBS:
        if connection.set(PERIODIC_LOCK_PREFIX + periodic.job, "1", nx=True, ex=periodic.every_seconds):
            Queue("default", connection=connection).enqueue(periodic.job, retry=retry_policy())
            queued.append(periodic.job)
    return queued


def enqueue_due_retries(connection: redis.Redis, queue_names: list[str]) -> None:
    """Move scheduled jobs that are due (retries after their back-off) to their queues, as RQ's
    scheduler process would; its per-queue lock keeps two workers from doing it at once."""
    scheduler = RQScheduler(queue_names, connection=connection)
    if scheduler.acquire_locks(auto_start=False):
        try:
            scheduler.enqueue_scheduled_jobs()
        finally:
            scheduler.release_locks()


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    from switchboard.redis import open_redis

    handle = open_redis(settings.redis_url, settings.data_dir)
    connection = handle.sync_client()
    queues = [Queue(name, connection=connection) for name in QUEUES]
    SwitchboardWorker(queues, connection=connection).work(with_scheduler=False, burst=burst)

"""The simulation as an RQ job: a long run (two sides of a busy day) must not hold a web worker,
and the page shows its progress (``job.meta["progress"]``, 0 to 1) while it runs.

Safe to run again (a retry): it only computes; the answer is the job's result.
"""

from __future__ import annotations

import time
from typing import Any

from rq import get_current_job

from routing.simulation.service import run_sides

JOB_NAME = "routing.simulation.jobs.simulate_job"
# Progress is written to Redis at most this often (each write is a round trip).
PROGRESS_EVERY_SECONDS = 0.5


def simulate_job(payload: dict[str, Any]) -> dict[str, Any]:
    job = get_current_job()
    last = 0.0

    def progress(fraction: float) -> None:
        nonlocal last
        now = time.monotonic()
        if job is not None and (now - last >= PROGRESS_EVERY_SECONDS or fraction >= 1.0):
            last = now
            job.meta["progress"] = round(min(max(fraction, 0.0), 1.0), 4)
            job.save_meta()

    progress(0.0)
    return run_sides(payload, progress)

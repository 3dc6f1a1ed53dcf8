"""Stopping background tasks so that shutdown never hangs.

On Python 3.11 a cancellation that arrives in the same loop iteration as an inner timeout firing
(``asyncio.timeout`` / ``wait_for``, which redis-py's ``get_message(timeout=…)`` and blocking reads
use) can be swallowed: the task goes on with its ``while True`` loop and an ``await task`` after a
single ``cancel()`` waits forever (CPython fixed this in 3.12). Every stop path cancels through
``cancel_and_wait``, which cancels again until the task is really gone, but only after giving the
task's own clean-up (``finally`` blocks that release a lease, close a connection) time to finish:
cancelling every fraction of a second interrupted those clean-ups and left leases and workers behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from typing import Any

RETRY_SECONDS = 5.0  # longer than any stop path's own clean-up
# A task still running after this long of cancellations is abandoned (logged with where it is
# stuck) rather than holding the whole shutdown: the process is stopping anyway.
GIVE_UP_SECONDS = 30.0

log = logging.getLogger(__name__)


async def cancel_and_wait(
    task: asyncio.Future[Any] | None,
    *,
    retry_seconds: float = RETRY_SECONDS,
    give_up_seconds: float = GIVE_UP_SECONDS,
) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling again if a cancellation was lost;
    after ``give_up_seconds`` it is left behind with an error naming where it is stuck.

    Its outcome is consumed (a task that failed is not reported twice); a cancellation of the
    caller itself still propagates."""
    if task is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_seconds
    while not task.done():
        if loop.time() >= deadline:
            where = io.StringIO()
            if isinstance(task, asyncio.Task):
                task.print_stack(file=where)
            log.error(
                "%r did not stop within %.0f s; left behind at:\n%s", task, give_up_seconds, where.getvalue()
            )
            return
        task.cancel()
        await asyncio.wait({task}, timeout=min(retry_seconds, max(deadline - loop.time(), 0.01)))
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()

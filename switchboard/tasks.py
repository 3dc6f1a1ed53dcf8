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
from typing import Any

RETRY_SECONDS = 5.0  # longer than any stop path's own clean-up


async def cancel_and_wait(task: asyncio.Future[Any] | None, *, retry_seconds: float = RETRY_SECONDS) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling again if a cancellation was lost.

    Its outcome is consumed (a task that failed is not reported twice); a cancellation of the
    caller itself still propagates."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=retry_seconds)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()

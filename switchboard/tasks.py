"""Stopping background tasks so that shutdown never hangs.

On Python 3.11 a cancellation that arrives in the same loop iteration as an inner timeout firing
(``asyncio.timeout`` / ``wait_for``, which redis-py's ``get_message(timeout=…)`` and blocking reads
use) can be swallowed: the task goes on with its ``while True`` loop and an ``await task`` after a
single ``cancel()`` waits forever (CPython fixed this in 3.12). Every stop path cancels through
``cancel_and_wait``, which cancels again until the task is really gone.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

RETRY_SECONDS = 0.2


async def cancel_and_wait(task: asyncio.Future[Any] | None) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling again if a cancellation was lost.

    Its outcome is consumed (a task that failed is not reported twice); a cancellation of the
    caller itself still propagates."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RETRY_SECONDS)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()

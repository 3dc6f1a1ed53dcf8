"""cancel_and_wait: a background task whose cancellation is swallowed (as Python 3.11's timeouts
can do) is cancelled again until it ends, so shutdown never hangs on it."""

from __future__ import annotations

import asyncio
import contextlib

from switchboard.tasks import cancel_and_wait


async def test_a_task_that_swallows_cancellations_is_still_stopped() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while swallowed < 3:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                swallowed += 1  # what a lost cancellation looks like from outside: the loop goes on

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    # One cancel + await would hang here; the clean-up grace is shortened for the test.
    await asyncio.wait_for(cancel_and_wait(task, retry_seconds=0.05), timeout=5)
    assert task.done() and swallowed == 3


async def test_a_failed_or_missing_task_is_fine() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await cancel_and_wait(task)  # its error was already the task's own business
    await cancel_and_wait(None)
    assert task.done()


async def test_a_task_that_never_stops_is_left_behind_not_waited_for_forever(caplog) -> None:
    deaf_to_cancel = True

    async def deaf() -> None:
        while deaf_to_cancel:
            with contextlib.suppress(asyncio.CancelledError):  # swallows every cancellation
                await asyncio.sleep(30)

    task = asyncio.create_task(deaf())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task, retry_seconds=0.05, give_up_seconds=0.3), timeout=5)
    assert not task.done()
    assert "did not stop within" in caplog.text and "deaf" in caplog.text  # where it is stuck
    deaf_to_cancel = False  # the test's own loop must not keep it
    await cancel_and_wait(task)
    assert task.done()

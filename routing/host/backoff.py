"""Retrying a rebuild with back-off: a database blip must not end a leadership, nor spin."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from routing.host.errors import LostLeadership, RebuildFailed

log = logging.getLogger(__name__)

T = TypeVar("T")


async def retry(
    attempt: Callable[[], Awaitable[T]],
    *,
    tries: int | None,
    what: str,
    first_delay: float = 0.05,
    max_delay: float = 2.0,
    keep_going: Callable[[], bool] = lambda: True,
) -> T:
    """Run ``attempt`` until it succeeds, sleeping 50 ms, 100 ms, ... up to ``max_delay`` between
    tries. After ``tries`` failures (None: no limit), or once ``keep_going()`` is false, raises
    RebuildFailed from the last error. LostLeadership is never retried."""
    delay, failures = first_delay, 0
    while True:
        try:
            return await attempt()
        except LostLeadership:
            raise
        except Exception as exc:  # noqa: BLE001 - SQL down, a connection killed, SQL moved under us
            failures += 1
            if (tries is not None and failures >= tries) or not keep_going():
                raise RebuildFailed(f"{what} failed {failures} times: {exc!r}") from exc
            log.warning(
                "routing engine: %s failed (%s: %s); retry %d in %.2f s",
                what,
                exc.__class__.__name__,
                _first_line(exc),
                failures,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)


def _first_line(exc: BaseException) -> str:
    """What went wrong, without a statement's SQL (a DBAPIError's later lines): the same error
    at every retry says the cause is not going away by itself."""
    lines = str(exc).splitlines()
    return lines[0][:200] if lines else ""

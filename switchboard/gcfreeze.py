"""Keep long-lived objects out of the cyclic garbage collector's passes.

A collection walks every tracked object of the generations it collects. Measured on the desktop
bench (one app process, 1,000 sockets, 100 interactions/s): the young generations kept filling
with objects that outlive a request (sockets' state, the engine's items, caches), and each
generation-1 pass took 8-20 ms with nothing to free; the requests in flight waited, and those
pauses were the bench's p99. So objects alive at start-up and the engine's state after a rebuild
are frozen (``gc.freeze``, O(1)), and a running app freezes what survived every second, which
keeps the collected generations small. Unfreezing first, on a rebuild and every ten minutes,
lets what was frozen and has died since (cyclic garbage only: the rest is freed by reference
counting as usual) be collected, in one full pass, instead of kept forever.
"""

from __future__ import annotations

import asyncio
import gc
import time

FREEZE_EVERY_SECONDS = 1.0
RECLAIM_EVERY_SECONDS = 600.0


def freeze_long_lived() -> None:
    """Collect everything (frozen objects included), then freeze the survivors."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


async def keep_frozen(
    *, every: float = FREEZE_EVERY_SECONDS, reclaim_every: float = RECLAIM_EVERY_SECONDS
) -> None:
    """Run for the app's lifetime (a task): freeze survivors every ``every`` seconds, reclaim
    every ``reclaim_every``."""
    reclaimed = time.monotonic()
    while True:
        await asyncio.sleep(every)
        if time.monotonic() - reclaimed >= reclaim_every:
            freeze_long_lived()
            reclaimed = time.monotonic()
        else:
            gc.freeze()

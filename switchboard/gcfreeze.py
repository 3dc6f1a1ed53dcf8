"""Keep long-lived objects out of the cyclic garbage collector's passes.

A full collection walks every tracked object; with the routing engine's indexes or a few thousand
sockets' worth of state, that is a pause every request in flight waits for. Objects alive at
start-up, and the engine's state after a rebuild, live about as long as the process, so they are
frozen (``gc.freeze``). Unfreezing first lets what was frozen earlier and has died since (an
engine a rebuild replaced) be collected instead of kept forever.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    gc.unfreeze()
    gc.collect()
    gc.freeze()

"""The engine host, as a package: see ``routing.host.leadership`` for the whole picture.

- ``leadership``: the lease and the serve loop (``EngineHost``);
- ``leader``: what exists only while leading (``Leader``: lease, floor, decisions to SQL);
- ``floor``: the engine and its maps onto SQL, replaced whole by a rebuild;
- ``rebuild``: the floor from SQL;
- ``dispatch`` (and ``transfer``): one handler per command class of ``routing.commands``;
- ``arrivals``: routing queued work, with PostgreSQL's one-statement fast path;
- ``persist``: one writer per engine event type;
- ``reconcile``: SQL and desktops' heartbeats against the engine.
"""

from routing.host.errors import DecisionRefused, LostLeadership, RebuildFailed
from routing.host.leader import Leader, stats_key
from routing.host.leadership import EngineHost

__all__ = ["DecisionRefused", "EngineHost", "Leader", "LostLeadership", "RebuildFailed", "stats_key"]

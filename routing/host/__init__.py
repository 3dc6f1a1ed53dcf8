"""The engine host, as a package: see ``routing.host.leadership`` for the whole picture.

- ``leadership``: the lease and the serve loop (``EngineHost``);
- ``leader``: what exists only while leading (``Leader``: lease, floor, decisions to SQL);
- ``floor``: the engine and its maps onto SQL, replaced whole by a rebuild;
- ``rebuild``: the floor from SQL (``offers``: its offers written set-based on PostgreSQL);
- ``dispatch`` (and ``transfer``): one handler per command class of ``switchboard.commands``;
- ``arrivals``: routing queued work, with PostgreSQL's one-statement fast path;
- ``persist``: one writer per engine event type;
- ``group``: the decisions of one read of the streams committed together, each with its outcome;
- ``reconcile``: SQL and desktops' heartbeats against the engine.
"""

from routing.host.errors import DecisionRefused, LostLeadership, RebuildFailed
from routing.host.leader import Leader, stats_key
from routing.host.leadership import EngineHost

__all__ = ["DecisionRefused", "EngineHost", "Leader", "LostLeadership", "RebuildFailed", "stats_key"]

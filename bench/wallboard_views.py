"""CPU of one wallboard push cycle's in-memory part (issue #11 item 1): the floor filtered and paged
for each socket's view and rendered, on a 5,000-agent snapshot shaped as bench/wallboard.py seeds
it (100 teams of 50, all members of "retail"; 10 sockets: 2 on the whole floor, 8 on one team
each). The floor's SQL read and the Redis reads are left out: the same once per cycle whatever the
sharing. Pure CPU, no database: a quick, repeatable figure where the full bench needs a quiet
machine.

    .venv/bin/python bench/wallboard_views.py                    # this checkout
    .venv/bin/python bench/wallboard_views.py --against 4165c12  # and console/floor.py as it was

"this checkout" renders once per distinct view (as console.wallboard.Wallboards does);
``--against REV`` also times ``console/floor.py`` of that commit rendering once per socket (as
the wallboard did before Wallboards). The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from console import floor as current  # noqa: E402
from console.floor import in_state  # noqa: E402
from switchboard.db import utcnow  # noqa: E402
from switchboard.templating import templates  # noqa: E402
from workforce.models import Presence  # noqa: E402

SOCKETS: list[tuple[str | None, str | None]] = [(None, None)] * 2 + [
    (None, f"team-{t:03d}") for t in range(8)
]


def floor_module_at(rev: str) -> ModuleType:
    """``console/floor.py`` as it was at ``rev``, imported beside the current one."""
    source = subprocess.run(
        ["git", "show", f"{rev}:console/floor.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "floor_then.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("floor_then", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["floor_then"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def snapshot(module: Any, agents: int) -> Any:
    rng = random.Random(1)
    start = utcnow() - timedelta(hours=3)
    states = [Presence.AVAILABLE] * 7 + [Presence.BREAK] * 2 + [Presence.TRAINING]
    online = [
        module.SnapshotAgent(
            uuid.uuid4(),
            f"Wb Agent {n:05d}",
            rng.choice(states),
            None,
            start + timedelta(seconds=n),
            (f"team-{n // 50:03d}",),
            frozenset({"retail"}),
        )
        for n in range(agents)
    ]
    return module.Snapshot(
        queues=[module.QueueInfo("hold", "Hold", 20, 80), module.QueueInfo("retail", "Retail", 20, 80)],
        online=online,
        work={},
        thresholds={},
        team_queues={f"team-{t:03d}": frozenset({"retail"}) for t in range(agents // 50 + 1)},
    )


def cycle(module: Any, views: list[tuple[str | None, str | None]], agents: int) -> tuple[float, float]:
    """CPU seconds to filter and page, then to render, every view of one push on a new snapshot."""
    snap = snapshot(module, agents)  # a new snapshot each cycle, as after a floor read
    template = templates.get_template("console/_floor.html")
    now = utcnow()
    began = time.process_time()
    floors = [module.view(snap, now=now, queue=q, team=t, page=1) for q, t in views]
    filtered = time.process_time()
    for f in floors:
        template.render(stats=None, floor=f, history=None, chart="", in_state=in_state, pushed="now")
    return filtered - began, time.process_time() - filtered


def median_ms(
    module: Any, views: list[tuple[str | None, str | None]], agents: int, cycles: int
) -> dict[str, Any]:
    timed = [cycle(module, views, agents) for _ in range(cycles)]
    filt = sorted(f for f, _ in timed)[cycles // 2] * 1000
    rend = sorted(r for _, r in timed)[cycles // 2] * 1000
    return {
        "views": len(views),
        "filter_ms": round(filt, 1),
        "render_ms": round(rend, 1),
        "total_ms": round(filt + rend, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--against", help="a commit whose console/floor.py renders once per socket")
    args = parser.parse_args()
    distinct = sorted(set(SOCKETS), key=str)
    results: dict[str, Any] = {"agents": args.agents, "sockets": len(SOCKETS)}
    results["per_distinct_view"] = median_ms(current, distinct, args.agents, args.cycles)
    if args.against:
        results["against"] = args.against
        results["per_socket_then"] = median_ms(
            floor_module_at(args.against), SOCKETS, args.agents, args.cycles
        )
    for key in ("per_socket_then", "per_distinct_view"):
        if key in results:
            r = results[key]
            print(
                f"{key}: {r['views']} renders, filter+page {r['filter_ms']} ms + render "
                f"{r['render_ms']} ms = {r['total_ms']} ms CPU per push cycle (median of {args.cycles})"
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()

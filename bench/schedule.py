"""Auto-scheduling at size: 200 agents × 14 days × 15-minute intervals with CP-SAT.

    python bench/schedule.py [--agents 200] [--days 14] [--time-limit 45] [--seed 1]

Pure (no database): a requirement shaped like a bank's voice queue (weekdays 08:00–20:00 with a
late-morning peak, Saturday mornings, Sundays closed) sized so that the agents can just about
cover it; three shift templates (early, middle, late; 8 h with a 15-minute break and a
30-minute lunch placed in windows); contracts of 30–40 h a week, at most 5 days, 11 h rest; one
agent in five works part-time (16–24 h, at most 4 days) and one in ten is not available on
Saturdays. Prints the solve time, the solver's status and gap, and the coverage gap against the
requirement (agent-intervals short, intervals short, share of the requirement covered).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workforce.scheduler import AgentPlan, BreakRule, Horizon, Template, solve  # noqa: E402

TEMPLATES = [
    Template("early", 7 * 60, 9 * 60, 8 * 60, (BreakRule(15, 90, 150), BreakRule(30, 210, 300))),
    Template("middle", 9 * 60 + 30, 11 * 60 + 30, 8 * 60, (BreakRule(15, 90, 150), BreakRule(30, 210, 300))),
    Template("late", 11 * 60 + 30, 12 * 60, 8 * 60, (BreakRule(15, 90, 150), BreakRule(30, 210, 300))),
]


def requirement(horizon: Horizon, scale: float) -> list[int]:
    need = []
    for slot in range(horizon.slots):
        local = horizon.at(slot).astimezone(horizon.zone)
        hour = local.hour + local.minute / 60
        weekday = local.weekday()
        if weekday == 6 or hour < 8 or hour >= 20 or (weekday == 5 and hour >= 13):
            need.append(0)
            continue
        level = (
            0.55
            + 0.45 * math.exp(-(((hour - 11) / 2.5) ** 2))
            + 0.2 * math.exp(-(((hour - 15.5) / 1.5) ** 2))
        )
        need.append(max(1, round(scale * level * (0.6 if weekday == 5 else 1.0))))
    return need


def agents(count: int, rng: random.Random) -> list[AgentPlan]:
    plans = []
    for i in range(count):
        part_time = i % 5 == 0
        plans.append(
            AgentPlan(
                agent_id=f"agent-{i:03d}",
                min_minutes_week=(16 if part_time else 30) * 60,
                max_minutes_week=(24 if part_time else 40) * 60,
                max_days_week=4 if part_time else 5,
                availability={d: ((0, 24 * 60),) for d in range(5)} if i % 10 == 3 else {},
            )
        )
    rng.shuffle(plans)
    return plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--time-limit", type=float, default=45.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", type=float, default=0.0, help="peak agents (default: agents x 0.45)")
    args = parser.parse_args()
    horizon = Horizon(date(2027, 1, 4), args.days, ZoneInfo("Europe/London"))  # a Monday
    need = requirement(horizon, args.scale or args.agents * 0.45)
    started = time.perf_counter()
    result = solve(
        horizon=horizon,
        requirement=need,
        templates=TEMPLATES,
        agents=agents(args.agents, random.Random(args.seed)),
        time_limit_s=args.time_limit,
    )
    elapsed = time.perf_counter() - started
    required = sum(need)
    short = sum(result.shortfall)
    print(f"agents {args.agents}, days {args.days}, intervals {horizon.slots} x 15 min")
    gap = "-" if result.objective_gap is None else f"{result.objective_gap:.3f}"
    print(f"solve: {elapsed:.1f} s wall, status {result.status}, gap to bound {gap}")
    print(
        f"shifts {len(result.shifts)}, agent-intervals required {required}, given {sum(result.coverage)}"
    )
    short_intervals = sum(1 for s in result.shortfall if s)
    staffed = sum(1 for n in need if n)
    covered = 100 * (required - short) / required
    print(
        f"coverage gap: {short} agent-intervals short in {short_intervals} of {staffed} staffed intervals; "
        f"{covered:.2f} % of the requirement covered"
    )


if __name__ == "__main__":
    main()

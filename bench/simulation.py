"""What-if simulator benchmark (DESIGN §7, issue #13 item 6): one simulated day of a 1,000-agent
centre, about 100,000 contacts, on the real routing engine, in ≤ 60 s.

    .venv/bin/python bench/simulation.py [--seed 7] [--contacts 100000] [--agents 1000]

The centre: 10 queues, each joined by skill; 1,000 agents in three staggered 8-hour shifts over a
12-hour day (70 % voice, 30 % digital: 3 chats and 5 emails at once), 2 to 4 skills each at
levels 1-5; traffic in 24 half-hour intervals shaped like the staffing, 60 % voice / 30 % chat /
10 % email, four value tiers; a tiered rule set (platinum first to the premier queue by
proficiency, fraud at high priority, each topic to its queue asking for level 2 for two minutes
and then anyone there, the rest to the general queue). Patience: voice 3 min, chat 5 min, email
none. Handle: voice 290 s, chat 12 min, email 10 min (exponential). A resolution model is on, so
misrouted work is transferred.

Prints the run's figures and, as the last stdout line, one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routing.rules import Filter, RuleSet, Step  # noqa: E402
from routing.simulation.run import draw_traffic, simulate  # noqa: E402
from routing.simulation.scenario import (  # noqa: E402
    AgentGroup,
    ResolutionModel,
    Scenario,
    SimQueue,
    Traffic,
    TrafficClass,
)
from workforce.models import SelectionStrategy  # noqa: E402

TARGET_SECONDS = 60.0
TOPICS = (
    "general",
    "cards",
    "fraud",
    "loans",
    "mortgages",
    "savings",
    "business",
    "premier",
    "collections",
    "digital",
)
TOPIC_WEIGHTS = (30, 14, 6, 8, 8, 8, 6, 4, 6, 10)
TIERS = (("platinum", 3), ("gold", 15), ("silver", 32), ("standard", 50))
CHANNELS = (("voice", 60), ("chat", 30), ("email", 10))
# Share of the day's staff on shift per half hour (three staggered 8-hour shifts) and traffic to match.
SHIFTS = ((0, 480, 0.4), (120, 600, 0.3), (240, 720, 0.3))


def staffed_share(minute: float) -> float:
    return sum(share for start, end, share in SHIFTS if start <= minute < end)


def scenario(seed: int, contacts: int, agents: int) -> tuple[Scenario, RuleSet]:
    rng = random.Random(seed)
    strategies = [SelectionStrategy.LONGEST_IDLE, SelectionStrategy.BEST_PROFICIENCY]
    queues = [
        SimQueue(name=t, strategy=strategies[i % 2], required_skills={t: 1}) for i, t in enumerate(TOPICS)
    ]
    roster = []
    for n in range(agents):
        start, end, _share = rng.choices(SHIFTS, weights=[s for _a, _b, s in SHIFTS])[0]
        skills = {"general": rng.randint(1, 5)}
        for topic in rng.sample(TOPICS[1:], rng.randint(1, 3)):
            skills[topic] = rng.randint(1, 5)
        voice = rng.random() < 0.7
        roster.append(
            AgentGroup(
                name=f"a{n:04d}",
                skills=skills,
                channel_max={"voice": 1, "chat": 0, "email": 0, "ticket": 0}
                if voice
                else {"voice": 0, "chat": 3, "email": 5, "ticket": 5},
                shift_start_minutes=start,
                shift_end_minutes=end,
            )
        )
    shape = [staffed_share(30 * k) for k in range(24)]
    volumes = [contacts * s / sum(shape) for s in shape]
    classes = []
    for topic, tw in zip(TOPICS, TOPIC_WEIGHTS, strict=True):
        for tier, w in TIERS:
            for channel, cw in CHANNELS:
                classes.append(
                    TrafficClass(
                        share=tw * w * cw,
                        channel=channel,
                        tier=tier,
                        topic=topic,
                        queue=topic,
                        needs_skill=topic,
                        segments=["private-banking"] if tier == "platinum" else [],
                    )
                )
    traffic = Traffic(
        interval_minutes=30,
        volumes=volumes,
        classes=classes,
        handle_seconds={"voice": 290.0, "chat": 720.0, "email": 600.0},
        patience_seconds={"voice": 180.0, "chat": 300.0},
    )
    filters = [
        Filter(
            name="platinum",
            when='customer.tier == "platinum"',
            steps=[
                Step(
                    queue="premier",
                    priority=6,
                    order_by=SelectionStrategy.BEST_PROFICIENCY,
                    timeout_seconds=60,
                ),
                Step(queue="general", priority=7),
            ],
        ),
        Filter(
            name="fraud",
            when='interaction.topic == "fraud"',
            steps=[Step(queue="fraud", priority=8)],
        ),
    ]
    for topic in TOPICS[1:]:
        if topic == "fraud":
            continue
        boost = 2 if topic in ("premier", "collections") else 0
        filters.append(
            Filter(
                name=topic,
                when=f'interaction.topic == "{topic}"',
                steps=[
                    Step(queue=topic, priority=1 + boost, required_skills={topic: 2}, timeout_seconds=120),
                    Step(queue=topic, priority=2 + boost),
                ],
            )
        )
    rule_set = RuleSet(
        version=1,
        filters=filters,
        default_filter=Filter(name="default", steps=[Step(queue="general", priority=0)]),
        on_final_timeout="callback",
    )
    return (
        Scenario(
            queues=queues,
            roster=roster,
            traffic=traffic,
            resolution=ResolutionModel(),
            seed=seed,
        ),
        rule_set,
    )


def run(seed: int, contacts: int, agents: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    sc, rules = scenario(seed, contacts, agents)
    drawn = draw_traffic(sc.traffic, sc.seed)
    built = time.perf_counter() - t0
    gc.collect()
    c0, t1 = time.process_time(), time.perf_counter()
    result = simulate(sc, rules, contacts=drawn)
    wall, cpu = time.perf_counter() - t1, time.process_time() - c0
    o = result.overall
    return {
        "agents": agents,
        "contacts": result.contacts,
        "engine_commands": result.engine_commands,
        "simulated_hours": round(result.simulated_seconds / 3600, 2),
        "run_s": round(wall, 2),
        "run_cpu_s": round(cpu, 2),
        "setup_s": round(built, 2),
        "contacts_per_s": round(result.contacts / wall),
        "service_level": round(o["service_level"], 4),
        "asa_s": round(o["asa_seconds"], 2),
        "abandon_rate": round(o["abandon_rate"], 4),
        "occupancy": round(result.occupancy or 0.0, 4),
        "transfers": o["transfers"],
        "fcr": round(o["first_contact_resolution"], 4),
        "escalations": result.escalations,
        "platinum_service_level": round(result.by_tier["platinum"]["service_level"], 4),
        "seed": seed,
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--contacts", type=int, default=100_000, help="expected contacts in the day")
    parser.add_argument("--agents", type=int, default=1000)
    args = parser.parse_args()
    r = run(args.seed, args.contacts, args.agents)
    met = "yes" if r["run_s"] <= TARGET_SECONDS else "NO"
    print(
        f"simulated day: {r['agents']} agents, {r['contacts']:,} contacts, "
        f"seed {r['seed']}, Python {r['python']}"
    )
    print(f"  run {r['run_s']} s wall ({r['run_cpu_s']} s CPU), target <= {TARGET_SECONDS:.0f} s: {met}")
    print(
        f"  {r['engine_commands']:,} engine commands, {r['contacts_per_s']:,} contacts/s, "
        f"setup {r['setup_s']} s"
    )
    print(
        f"  service level {r['service_level']:.1%} (platinum {r['platinum_service_level']:.1%}), "
        f"ASA {r['asa_s']} s, "
        f"abandon {r['abandon_rate']:.1%}, occupancy {r['occupancy']:.1%}, transfers {r['transfers']:,}, "
        f"FCR {r['fcr']:.1%}, escalations {r['escalations']:,}"
    )
    print(json.dumps(r, separators=(",", ":")))


if __name__ == "__main__":
    main()

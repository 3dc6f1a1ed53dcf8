"""Routing strategy study (issue #13 item 7): the product's value-tier + skills rules against
simpler strategies, on the same seeded traffic of the demo bank, through the real routing engine.

    .venv/bin/python bench/strategy_study.py [--seeds 10] [--per-interval 85] [--json]

The demo bank (``demo.bank.build_demo_plan``, its default seed, a fixed day): its 6 queues,
30 agents (skills, languages, teams, channel limits, relationship managers) and 200 customers
(tier, segments, language, relationship manager). Contacts follow the demo's own mix: who calls
(seniors 3x, private-banking 2x as often as others), which queue's topics they bring
(``demo.bank.plan._queue_for``'s odds), which channel (``_channel_for``'s: the preferred channel 70 %).
A 10-hour day in 20 half-hour intervals with a morning and an afternoon peak; every agent on shift
all day. See docs/routing-strategy-study.md for the model and the figures.

Strategies (each its queues and rule set, the same roster and the same contacts):

* ``value-tier + skills``: the demo's queues (membership by skill) and its published rule set
  (``demo.rules.DEFAULT_RULE_SET``: relationship manager first, private banking by proficiency,
  seniors in their language, fraud at high priority, topics to their queues, escalation to retail).
* ``value-tier + skills, no RM wait``: the same without the private-banking filter's first step
  (30 s reserved for the customer's relationship manager).
* ``skills only``: the same queues; each contact to the queue of its topic asking for the
  topic's skill, no priorities, no escalation (arrival order in each queue, longest idle agent).
* ``FIFO``: one queue every agent serves; arrival order; the first free agent in roster order
  (best-proficiency on a roster-rank attribute, which only orders the agents).
* ``longest idle``: one queue every agent serves; arrival order; the agent idle longest.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.bank import build_demo_plan  # noqa: E402
from demo.bank.catalogue import QUEUES, TOPICS  # noqa: E402
from demo.bank.specs import CustomerSpec  # noqa: E402
from demo.rules import DEFAULT_RULE_SET  # noqa: E402
from routing.rules import Filter, RuleSet, Step  # noqa: E402
from routing.simulation.run import Result, draw_traffic, simulate  # noqa: E402
from routing.simulation.scenario import (  # noqa: E402
    AgentGroup,
    ResolutionModel,
    Scenario,
    SimQueue,
    Traffic,
    TrafficClass,
)
from workforce.models import SelectionStrategy  # noqa: E402

STUDY_DAY = date(2026, 1, 5)  # the demo plan depends on "today" (ages, tenure): fixed for reproducibility
# Which skill a contact needs, by the queue whose topics it brings (demo.bank.catalogue.TOPICS) and its topic:
# a private-banking client's payment is private-banking work; a senior's card problem needs cards.
NEEDS: dict[tuple[str, str], str] = {
    **{("retail", t): "retail_banking" for t, _s, _d in TOPICS["retail"]},
    ("cards", "cards"): "cards",
    ("cards", "card_fraud"): "card_fraud",
    ("mortgages", "mortgages"): "mortgages",
    ("mortgages", "loans"): "loans",
    **{("private-banking", t): "private_banking" for t, _s, _d in TOPICS["private-banking"]},
    ("seniors", "account"): "retail_banking",
    ("seniors", "digital"): "retail_banking",
    ("seniors", "payments"): "retail_banking",
    ("seniors", "cards"): "cards",
    ("collections", "collections"): "collections",
}
# The queue holding each skill: where a misrouted contact is transferred (asking for the skill).
SKILL_QUEUE = {
    "retail_banking": "retail",
    "cards": "cards",
    "card_fraud": "cards",
    "mortgages": "mortgages",
    "loans": "mortgages",
    "private_banking": "private-banking",
    "collections": "collections",
}
# Shape of the day (half hours from 08:00): a morning peak, a lunch dip, an afternoon peak.
SHAPE = (
    0.55,
    0.75,
    0.95,
    1.0,
    1.0,
    0.95,
    0.85,
    0.7,
    0.65,
    0.7,
    0.8,
    0.9,
    0.95,
    0.95,
    0.9,
    0.8,
    0.7,
    0.6,
    0.5,
    0.4,
)
HANDLE = {
    "voice": 330.0,
    "chat": 540.0,
    "email": 600.0,
    "ticket": 600.0,
    "voice/platinum": 420.0,  # private-banking conversations run longer
    "chat/platinum": 660.0,
}
PATIENCE = {"voice": 150.0, "chat": 240.0, "voice/platinum": 120.0}
RESOLUTION = ResolutionModel(
    by_proficiency=[0.0, 0.70, 0.76, 0.82, 0.88, 0.93], transfer_below=1, misroute_handle_share=0.4
)
STRATEGIES = ("value-tier + skills", "value-tier + skills, no RM wait", "skills only", "FIFO", "longest idle")


def _queue_odds(customer: CustomerSpec) -> dict[str, float]:
    """``demo.bank.plan._queue_for`` as probabilities."""
    if "private-banking" in customer.segments:
        return {"private-banking": 0.8, "retail": 0.2}
    if "senior" in customer.segments:
        return {"seniors": 0.75, "retail": 0.125, "cards": 0.125}
    return {"retail": 0.5, "cards": 0.25, "mortgages": 0.15, "collections": 0.10}


def _channel_odds(customer: CustomerSpec, channels: tuple[str, ...]) -> dict[str, float]:
    """``demo.bank.plan._channel_for`` as probabilities (70 % the preferred channel when the queue has it)."""
    preferred = customer.preferred_channel.value if customer.preferred_channel else None
    odds = {c: 0.3 / len(channels) if preferred in channels else 1 / len(channels) for c in channels}
    if preferred in channels:
        odds[preferred] += 0.7
    return odds


def build(per_interval: float, seed: int) -> dict[str, tuple[Scenario, RuleSet | None]]:
    plan = build_demo_plan(today=STUDY_DAY)
    queues_by_name = {q.name: q for q in QUEUES}
    shares: dict[tuple[int, str, str, str], float] = defaultdict(float)
    for index, customer in enumerate(plan.customers):
        weight = 3 if "senior" in customer.segments else 2 if "private-banking" in customer.segments else 1
        for queue, q_odds in _queue_odds(customer).items():
            topics = TOPICS[queue]
            for channel, c_odds in _channel_odds(customer, queues_by_name[queue].channels).items():
                for topic, _subject, _dispositions in topics:
                    shares[(index, queue, topic, channel)] += weight * q_odds * c_odds / len(topics)
    classes = []
    for (index, queue, topic, channel), share in sorted(shares.items()):
        customer = plan.customers[index]
        need = NEEDS[(queue, topic)]
        classes.append(
            TrafficClass(
                share=share,
                channel=channel,
                tier=customer.intended_tier.value,
                segments=list(customer.segments),
                language=customer.language,
                topic=topic,
                relationship_manager=customer.relationship_manager or "",
                queue=SKILL_QUEUE[need],
                needs_skill=need,
            )
        )
    traffic = Traffic(
        interval_minutes=30,
        volumes=[per_interval * s for s in SHAPE],
        classes=classes,
        handle_seconds=HANDLE,
        patience_seconds=PATIENCE,
    )
    roster = [
        AgentGroup(
            name=a.username,
            skills=dict(a.skills),
            languages=list(a.languages),
            teams=[a.team],
            channel_max=dict(a.channel_max),
        )
        for a in plan.agents
    ]
    demo_queues = [
        SimQueue(
            name=q.name,
            strategy=q.strategy,
            sl_threshold_seconds=float(q.sl_threshold_seconds),
            required_skills=dict(q.required_skills),
        )
        for q in QUEUES
    ]

    # In one shared queue a misrouted contact is transferred back to it, asking for the skill.
    pooled = traffic.model_copy(update={"classes": [c.model_copy(update={"queue": "all"}) for c in classes]})

    def scenario(queues: list[SimQueue], agents: list[AgentGroup]) -> Scenario:
        t = pooled if queues[0].name == "all" else traffic
        return Scenario(queues=queues, roster=agents, traffic=t, resolution=RESOLUTION, seed=seed)

    # Skills only: rules see the topic, not the need, so route on what the topic says: private
    # banking clients to their queue (their segment), the rest by topic, each asking for the skill.
    by_topic = [
        Filter(
            name="private-banking",
            when='"private-banking" in customer.segments',
            steps=[Step(queue="private-banking", required_skills={"private_banking": 1})],
        )
    ]
    for topic, need in (
        ("card_fraud", "card_fraud"),
        ("cards", "cards"),
        ("mortgages", "mortgages"),
        ("loans", "loans"),
        ("collections", "collections"),
    ):
        by_topic.append(
            Filter(
                name=topic,
                when=f'interaction.topic == "{topic}"',
                steps=[Step(queue=SKILL_QUEUE[need], required_skills={need: 1})],
            )
        )
    skills_only = RuleSet(
        version=1,
        filters=by_topic,
        default_filter=Filter(
            name="default", steps=[Step(queue="retail", required_skills={"retail_banking": 1})]
        ),
        on_final_timeout="callback",
    )
    # The skills-only queues rank agents longest idle (the product's queues keep their strategies).
    plain_queues = [q.model_copy(update={"strategy": SelectionStrategy.LONGEST_IDLE}) for q in demo_queues]
    one_queue = RuleSet(
        version=1,
        filters=[],
        default_filter=Filter(name="everyone", steps=[Step(queue="all")]),
        on_final_timeout="callback",
    )
    ranked = [
        g.model_copy(update={"skills": {**g.skills, "roster_rank": len(roster) - k}, "queues": ["all"]})
        for k, g in enumerate(roster)
    ]
    everyone = [g.model_copy(update={"queues": ["all"]}) for g in roster]
    # The product's rules without their first private-banking step (30 s for the relationship
    # manager, who counts as available while logged in, even on a call): what that wait costs.
    no_rm_wait = DEFAULT_RULE_SET.model_copy(
        update={
            "filters": [
                f.model_copy(update={"steps": [s for s in f.steps if s.preferred is None]})
                for f in DEFAULT_RULE_SET.filters
            ]
        }
    )
    return {
        "value-tier + skills": (scenario(demo_queues, roster), DEFAULT_RULE_SET),
        "value-tier + skills, no RM wait": (scenario(demo_queues, roster), no_rm_wait),
        "skills only": (scenario(plain_queues, roster), skills_only),
        "FIFO": (
            scenario(
                [
                    SimQueue(
                        name="all",
                        strategy=SelectionStrategy.BEST_PROFICIENCY,
                        required_skills={"roster_rank": 0},
                    )
                ],
                ranked,
            ),
            one_queue,
        ),
        "longest idle": (scenario([SimQueue(name="all")], everyone), one_queue),
    }


def figures(result: Result) -> dict[str, Any]:
    o = result.overall
    tiers = result.by_tier
    return {
        "contacts": result.contacts,
        "platinum_sl": tiers.get("platinum", {}).get("service_level"),
        "gold_sl": tiers.get("gold", {}).get("service_level"),
        "silver_sl": tiers.get("silver", {}).get("service_level"),
        "standard_sl": tiers.get("standard", {}).get("service_level"),
        "overall_sl": o["service_level"],
        "voice_sl": result.by_channel.get("voice", {}).get("service_level"),
        "asa_s": o["asa_seconds"],
        "abandon": o["abandon_rate"],
        "misroutes": o["transfer_rate"],
        "misroute_count": o["transfers"],
        "fcr": o["first_contact_resolution"],
        "occupancy": result.occupancy,
        "occupancy_spread": result.agent_occupancy_spread,
        "diverted": o["diverted"],
    }


def run(seeds: int, per_interval: float) -> dict[str, Any]:
    per: dict[str, list[dict[str, Any]]] = {s: [] for s in STRATEGIES}
    started = time.perf_counter()
    for seed in range(1, seeds + 1):
        scenarios = build(per_interval, seed)
        first = scenarios[STRATEGIES[0]][0]
        contacts = draw_traffic(first.traffic, seed)  # one draw: the same customers for every strategy
        for name in STRATEGIES:
            scenario, rules = scenarios[name]
            per[name].append(figures(simulate(scenario, rules, contacts=contacts)))
    summary = {}
    for name, rows in per.items():
        summary[name] = {}
        for key in rows[0]:
            values = [r[key] for r in rows if r[key] is not None]
            if values:
                summary[name][key] = {
                    "mean": statistics.fmean(values),
                    "min": min(values),
                    "max": max(values),
                }
    return {
        "seeds": seeds,
        "per_interval_peak": per_interval,
        "seconds": round(time.perf_counter() - started, 1),
        "summary": summary,
        "runs": per,
    }


def table(report: dict[str, Any]) -> str:
    rows = [
        ("platinum service level", "platinum_sl", "pct"),
        ("gold service level", "gold_sl", "pct"),
        ("silver service level", "silver_sl", "pct"),
        ("standard service level", "standard_sl", "pct"),
        ("overall service level", "overall_sl", "pct"),
        ("voice service level", "voice_sl", "pct"),
        ("average speed of answer", "asa_s", "s"),
        ("abandoned", "abandon", "pct"),
        ("misroutes (transferred)", "misroutes", "pct"),
        ("first-contact resolution", "fcr", "pct"),
        ("occupancy", "occupancy", "pct"),
        ("occupancy spread (max - min agent)", "occupancy_spread", "pct"),
    ]
    summary = report["summary"]
    out = ["| figure | " + " | ".join(STRATEGIES) + " |", "|---|" + "---|" * len(STRATEGIES)]
    for label, key, unit in rows:
        cells = []
        for name in STRATEGIES:
            f = summary[name].get(key)
            if f is None:
                cells.append("–")
            elif unit == "pct":
                cells.append(f"{f['mean'] * 100:.1f} % ({f['min'] * 100:.1f}–{f['max'] * 100:.1f})")
            else:
                cells.append(f"{f['mean']:.1f} s ({f['min']:.1f}–{f['max']:.1f})")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    contacts = summary[STRATEGIES[0]]["contacts"]["mean"]
    out.append("")
    out.append(
        f"Mean of {report['seeds']} seeds (range in brackets), {contacts:,.0f} contacts a day on average; "
        f"{report['seconds']} s."
    )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 1..N, each one day of traffic")
    parser.add_argument("--per-interval", type=float, default=85.0, help="contacts in a peak half hour")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    args = parser.parse_args()
    report = run(args.seeds, args.per_interval)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(table(report))


if __name__ == "__main__":
    main()

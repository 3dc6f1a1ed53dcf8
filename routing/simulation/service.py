"""Turning a simulation request into runnable sides, with what the database knows (queues, agents,
stored rule-set versions), and running them (the RQ job calls :func:`run_sides`).

Everything is checked before a job is queued, so a bad request is a 422 naming the field, never a
failed job: unknown rule-set versions, rule sets routing to queues the run does not have, rosters
and traffic the scenario's bounds refuse.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from routing import service as routing_service
from routing.rules import RuleSet, validate_rule_set
from routing.simulation.run import draw_traffic, simulate
from routing.simulation.scenario import AgentGroup, Scenario, SimQueue, TrafficClass
from routing.simulation.schemas import SimulationRequest
from switchboard.errors import Invalid, NotFound
from workforce.models import Agent, OfferPolicy, Queue, QueueMember

DEFAULT_TIER_MIX = {"platinum": 5.0, "gold": 15.0, "silver": 30.0, "standard": 50.0}


async def db_queues(session: AsyncSession) -> list[Queue]:
    return list((await session.scalars(select(Queue).order_by(Queue.name))).all())


def sim_queues(queues: list[Queue]) -> list[SimQueue]:
    return [
        SimQueue(
            name=q.name,
            strategy=q.strategy,
            sl_threshold_seconds=float(q.sl_threshold_seconds),
            required_skills=dict(q.required_skills or {}),
            one_offer_at_a_time=q.offer_policy is not OfferPolicy.UP_TO_CAPACITY,
        )
        for q in queues
    ]


async def db_roster(session: AsyncSession) -> list[AgentGroup]:
    """Every agent in the database as a group of one (named by id), on shift all run, serving
    their explicit queues besides skill membership (as the engine host builds them)."""
    agents = (
        await session.scalars(select(Agent).options(selectinload(Agent.skills)).order_by(Agent.id))
    ).all()
    queue_names = {q.id: q.name for q in await db_queues(session)}
    explicit: dict[Any, list[str]] = {}
    for queue_id, agent_id in (
        await session.execute(select(QueueMember.queue_id, QueueMember.agent_id))
    ).all():
        explicit.setdefault(agent_id, []).append(queue_names[queue_id])
    return [
        AgentGroup(
            name=str(a.id),
            skills=a.skill_levels(),
            languages=list(a.languages or ["en"]),
            teams=list(a.teams or []),
            channel_max=dict(a.channel_max or {}),
            capacity_units=a.capacity_units,
            queues=sorted(explicit.get(a.id, [])),
        )
        for a in agents
    ]


def default_classes(
    queues: list[Queue],
    tier_mix: dict[str, float] | None = None,
    profiles: dict[tuple[str, str], list[float]] | None = None,
) -> list[TrafficClass]:
    """Traffic classes for a centre the simulator knows only from its queues: each queue's work
    split evenly over its channels and by ``tier_mix``, its topic the queue's name, needing the
    queue's first skill. With ``profiles`` ((queue, channel) -> contacts per interval, e.g. the
    forecast), exactly those queues and channels, each arriving on its own profile."""
    mix = tier_mix or DEFAULT_TIER_MIX
    total = sum(mix.values())
    classes = []
    for q in queues:
        channels = [c for c in (q.channels or ["voice"]) if c in ("voice", "chat", "email", "ticket")]
        channels = channels or ["voice"]
        if profiles is not None:
            channels = [c for c in channels if (q.name, c) in profiles]
        need = sorted(q.required_skills or {})[:1]
        for channel in channels:
            profile = profiles.get((q.name, channel)) if profiles is not None else None
            for tier, share in mix.items():
                classes.append(
                    TrafficClass(
                        share=share / len(channels),
                        channel=channel,
                        tier=tier,
                        segments=["private-banking"] if tier == "platinum" else [],
                        topic=q.name,
                        queue=q.name,
                        needs_skill=need[0] if need else None,
                        volumes=[v * share / total for v in profile] if profile is not None else None,
                    )
                )
    return classes


def scaled(roster: list[AgentGroup], percent: int) -> list[AgentGroup]:
    """The roster with ``percent`` of its agents, each group's share kept (largest remainder;
    ties to the earlier group)."""
    if percent == 100:
        return roster
    total = sum(g.count for g in roster)
    target = round(total * percent / 100)
    exact = [g.count * target / total if total else 0.0 for g in roster]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(roster)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: target - sum(counts)]:
        counts[i] += 1
    return [g.model_copy(update={"count": n}) for g, n in zip(roster, counts, strict=True) if n > 0]


def _invalid(prefix: str, exc: ValidationError) -> Invalid:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    field = f"{prefix}.{loc}" if loc else prefix
    if not loc and ":" in message.split(" ")[0]:  # model-level checks start with the field name
        head = message.split(":", 1)[0]
        field = f"{prefix}.{head}"
    return Invalid(message, field=field)


async def prepare(session: AsyncSession, request: SimulationRequest) -> dict[str, Any]:
    """The job's payload: per side its label, scenario and rule set, all validated."""
    queue_rows = await db_queues(session) if request.queues is None else []
    queues = request.queues if request.queues is not None else sim_queues(queue_rows)
    if not queues:
        raise Invalid("there are no queues to simulate; create queues or give them", field="queues")
    roster = request.roster if request.roster is not None else await db_roster(session)
    if not roster:
        raise Invalid("there are no agents to simulate; add agents or give a roster", field="roster")
    queue_names = {q.name for q in queues}
    sides = []
    for i, side in enumerate(request.sides):
        where = f"sides.{i}"
        rule_set: RuleSet | None = side.rule_set
        if side.rule_set_version is not None:
            try:
                row = await routing_service.get_version(session, version=side.rule_set_version)
            except NotFound as exc:
                raise Invalid(str(exc), field=f"{where}.rule_set_version") from exc
            rule_set = RuleSet.model_validate({**row.body, "version": row.version})
        side_roster = scaled(side.roster if side.roster is not None else roster, side.staffing_percent)
        if not side_roster:
            raise Invalid("no agent is left on this side", field=f"{where}.staffing_percent")
        try:
            scenario = Scenario(
                queues=queues,
                roster=side_roster,
                traffic=request.traffic,
                resolution=request.resolution,
                seed=request.seed,
                answer_seconds=request.answer_seconds,
                warmup_seconds=request.warmup_seconds,
                **({"start_epoch": request.start_epoch} if request.start_epoch is not None else {}),
            )
        except ValidationError as exc:
            raise _invalid(where, exc) from exc
        if rule_set is None:
            missing = [k for k, c in enumerate(request.traffic.classes) if c.queue is None]
            if missing:
                raise Invalid(
                    "without a rule set every traffic class needs a queue",
                    field=f"traffic.classes.{missing[0]}.queue",
                )
        else:
            skills = {s for g in side_roster for s in g.skills} | {
                s for q in queues for s in q.required_skills
            }
            skills |= {c.needs_skill for c in request.traffic.classes if c.needs_skill}
            field = f"{where}.rule_set_version" if side.rule_set_version is not None else f"{where}.rule_set"
            problems = validate_rule_set(rule_set, known_queues=queue_names, known_skills=skills)
            if problems:
                raise Invalid(f"this rule set cannot route the simulated queues: {problems[0]}", field=field)
        if side.rule_set_version is not None:
            rule_set_label = f"version {side.rule_set_version}"
        elif rule_set is not None:
            rule_set_label = "written for the run"
        else:
            rule_set_label = "each class to its queue"
        sides.append(
            {
                "label": side.label,
                "rule_set_label": rule_set_label,
                "scenario": scenario.model_dump(mode="json"),
                "rule_set": rule_set.model_dump(mode="json") if rule_set is not None else None,
                "agents": sum(g.count for g in side_roster),
            }
        )
    return {"sides": sides, "contacts_expected": round(sum(request.traffic.volumes))}


def run_sides(payload: dict[str, Any], progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Run every side on the same drawn traffic; ``progress`` gets 0..1 across the sides."""
    sides = payload["sides"]
    scenarios = [Scenario.model_validate(s["scenario"]) for s in sides]
    contacts = draw_traffic(scenarios[0].traffic, scenarios[0].seed)  # one draw: the same customers
    out = []
    for k, (side, scenario) in enumerate(zip(sides, scenarios, strict=True)):
        rule_set = RuleSet.model_validate(side["rule_set"]) if side["rule_set"] is not None else None

        def report(fraction: float, k: int = k) -> None:
            if progress is not None:
                progress((k + fraction) / len(sides))

        result = simulate(scenario, rule_set, contacts=contacts, progress=report)
        out.append(
            {
                "label": side["label"],
                "rule_set": side["rule_set_label"],
                "agents": side["agents"],
                "result": result.as_dict(),
            }
        )
        report(1.0)
    return {"contacts": len(contacts), "seed": scenarios[0].seed, "sides": out}

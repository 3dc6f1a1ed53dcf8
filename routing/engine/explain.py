"""Dry-run: where would an interaction go now, who would be offered it, and why not the others.

Reads the engine's live state with the engine's own predicates (``_route`` with a trace of
``routing.rules.evaluate``, ``_can_take``, ``_open_to_offers``, ``_fits``) and ranks with
``routing.ranking``, so the answer is what the engine would decide; it changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from routing import ranking
from routing.engine.state import AgentState, Item
from routing.rules import RuleSet, TraceLine
from workforce.models import Presence

if TYPE_CHECKING:
    from routing.engine.core import Engine

# How many ineligible agents a dry-run lists (the count says how many more there are).
OTHERS_LIMIT = 50


def explain(
    engine: Engine,
    interaction_ctx: dict[str, Any],
    now: float,
    *,
    rule_set: RuleSet | None = None,
    limit: int = 10,
) -> dict[str, Any]:
    rs = rule_set or engine._ruleset
    if rs is None:
        raise ValueError("no rule set published")
    channel = str(interaction_ctx.get("channel", "voice"))
    vs = float(
        interaction_ctx.get("interaction.started_at", now - float(interaction_ctx.get("interaction.age", 0)))
    )
    probe = Item("(dry-run)", 0, channel, vs, interaction_ctx)
    engine._flush()
    trace: list[TraceLine] = []
    saved_now, engine._now = engine._now, now
    try:
        routing = engine._route(rs, probe, None, trace)
    finally:
        engine._now = saved_now
    out: dict[str, Any] = {
        "rule_set_version": rs.version,
        "filter": routing.filter_name,
        "step": routing.step_index,
        "queue": routing.queue,
        "final_action": routing.final_action,
        "priority": routing.effective_priority,
        "effective_priority": routing.effective_priority + engine._rate * (now - vs),
        "required_skills": dict(routing.required_skills),
        "target": routing.target,
        "preferred_agent": routing.preferred_agent,
        "trace": [
            {"kind": t.kind, "index": t.index, "name": t.name, "outcome": t.outcome, "detail": t.detail}
            for t in trace
        ],
        "agents": [],
        "others": [],
        "others_total": 0,
    }
    if routing.queue is None or routing.queue not in engine._queues:
        return out
    from routing.engine.indexes import compile_target

    probe.required_skills = dict(routing.required_skills)
    probe.preferred, probe.preferred_required = routing.preferred_agent, routing.preferred_required
    if routing.target:
        probe.target_fn = compile_target(routing.target).bind(interaction=probe.ctx)
    queue = engine._queues[routing.queue]
    strategy = routing.order_by or queue.strategy
    shown = tuple(probe.required_skills)
    eligible: list[AgentState] = []
    others: list[dict[str, Any]] = []
    for a in engine._agents.values():
        if queue.name not in a.queues and a.id != routing.preferred_agent:
            continue  # the preferred agent is offered work outside their queues too (_match_item)
        why = _why_not(engine, a, probe, queue.name)
        if why is None:
            eligible.append(a)
        else:
            others.append({"agent_id": a.id, "reason": why})
    # The preferred agent first (as _match_item offers), then the queue's strategy: its real keys.
    eligible.sort(key=lambda a: (a.id != routing.preferred_agent, ranking.agent_key(strategy, a, queue)))
    out["agents"] = [
        {
            "agent_id": a.id,
            "rank": n,
            "reason": ("preferred agent; " if a.id == routing.preferred_agent else f"{strategy.value}: ")
            + ranking.reason(a, queue, now, shown),
        }
        for n, a in enumerate(eligible[:limit], start=1)
    ]
    out["eligible_total"] = len(eligible)
    out["others"] = sorted(others, key=lambda o: str(o["agent_id"]))[:OTHERS_LIMIT]
    out["others_total"] = len(others)
    return out


def _why_not(engine: Engine, a: AgentState, probe: Item, queue: str) -> str | None:
    """Why agent ``a`` could not be offered ``probe`` now, or None if it could (queue membership is
    the caller's). The first reason found, in the order the engine checks them."""
    if a.presence is not Presence.AVAILABLE:
        state = a.presence.value.replace("_", " ")
        return f"{state} ({a.reason})" if a.reason else state
    if a.pending is not None:
        return f"going to {a.pending[0].value.replace('_', ' ')} once the pending offer is answered"
    channel = probe.channel
    if not engine._can_take(a, channel):
        if engine._voice_blocks and a.counts["voice"]:
            return "on a call"
        if a.counts[channel] >= a.channel_max.get(channel, 0):
            return f"{channel} limit reached ({a.counts[channel]} of {a.channel_max.get(channel, 0)})"
        return f"no capacity free ({a.capacity - a.used} of {a.capacity} units; {channel} needs more)"
    if not engine._open_to_offers(a, queue):
        return "has an offer pending (the queue offers one at a time)"
    if engine._fits(probe, a):
        return None
    if probe.preferred_required and a.id != probe.preferred:
        return "this step is reserved for the customer's preferred agent"
    missing = [
        f"{s}={a.skills.get(s, 0)}, needs {lvl}"
        for s, lvl in probe.required_skills.items()
        if a.skills.get(s, 0) < lvl
    ]
    if missing:
        return "skill too low: " + "; ".join(missing)
    return "does not satisfy the step's target expression"

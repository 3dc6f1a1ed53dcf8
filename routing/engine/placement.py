"""Placement: where waiting work goes by the rule set (routing.rules), and back to its place.

An interaction routed by rules is pinned to the rule set version it arrived under; each step has
a deadline by age, and when it passes (a "step" timer) the step that applies at that age takes
over (an escalation). Work that comes back from an offer keeps its virtual start, so it keeps its
place in line; if its step expired meanwhile, the next step applies at once.
"""

from __future__ import annotations

from routing.engine.events import Diverted, Escalated, Requeued
from routing.engine.indexes import compile_target
from routing.engine.matching import Matching
from routing.engine.state import Item, Status
from routing.rules import Routing, RuleSet, Step, TraceLine, evaluate
from workforce.models import Presence

AVAILABLE = Presence.AVAILABLE


class Placement(Matching):
    """Where waiting work goes: the rule set's step for its age, or back to its place after an offer."""

    def _route(
        self, rs: RuleSet, it: Item, filter_name: str | None, trace: list[TraceLine] | None = None
    ) -> Routing:
        ctx = dict(it.ctx)
        ctx.pop("interaction.started_at", None)
        ctx["interaction.age"] = self._now - it.vs
        ctx["interaction.priority"] = it.base_priority
        return evaluate(
            rs,
            ctx,
            self._now,
            filter_name=filter_name,
            available=lambda s, p: self._step_available(s, p, it),
            trace=trace,
        )

    def _step_available(self, step: Step, preferred: str | None, it: Item) -> bool:
        """skip_if_unavailable: could anyone take this step's work right now?"""
        self._flush()
        if preferred is not None:
            a = self._agents.get(preferred)
            return a is not None and a.presence is AVAILABLE and preferred not in it.declined
        strategy = step.order_by or self._queues[step.queue].strategy
        probe = Item(it.id, it.seq, it.channel, it.vs, it.ctx)
        probe.declined = it.declined
        probe.required_skills = dict(step.required_skills)
        if step.target is not None:
            probe.target_fn = compile_target(step.target).bind(interaction=it.ctx)
        agents = self._agents
        return any(
            self._fits(probe, agents[e[-1]]) for e in self._avail.get((step.queue, it.channel, strategy), ())
        )

    def _apply_routing(self, it: Item, r: Routing) -> bool:
        """Point a (not indexed) item at a rule-set routing; False when it left live routing."""
        it.filter_name, it.step_index, it.ruleset_version = r.filter_name, r.step_index, r.ruleset_version
        it.timer_token += 1
        if r.queue is None:  # callback / voicemail
            self._finish_item(it, Status.DIVERTED)
            it.step_deadline = None
            if it.queue:
                self.stats.bump(it.queue, "diverted")
            else:  # every step was skipped on arrival
                self.stats.totals["diverted"] += 1
            self._events.append(Diverted(it.id, r.final_action or ""))
            return False
        it.queue, it.priority = r.queue, r.effective_priority
        it.required_skills = dict(r.required_skills)
        it.target = r.target
        it.target_fn = compile_target(r.target).bind(interaction=it.ctx) if r.target else None
        it.preferred, it.preferred_required = r.preferred_agent, r.preferred_required
        it.order_by = r.order_by
        if r.order_by is not None:
            self._ensure_strategy(r.queue, r.order_by)
        it.step_deadline = None
        if r.step_deadline is not None and r.final_action is None:
            it.step_deadline = it.vs + r.step_deadline
            self._push_timer(it.step_deadline, "step", it.id, it.timer_token)
        it.key = self._item_key(it)
        self._insert_item(it)
        return True

    def _reroute(self, it: Item) -> None:
        """The active step expired: move to the step that applies at this age (not indexed on entry)."""
        rs = self._rulesets[it.ruleset_version or 0]
        old_queue = it.queue
        routing = self._route(rs, it, it.filter_name)
        if self._apply_routing(it, routing):
            self.stats.bump(it.queue, "escalated_in")
            self.stats.totals["escalated"] += 1
            self._events.append(Escalated(it.id, old_queue, it.queue, it.step_index or 0, it.priority))

    def _requeue(self, it: Item, reason: str) -> None:
        """Back to its place (virtual start kept); a step that expired meanwhile applies now."""
        if it.step_deadline is not None and it.step_deadline <= self._now:
            self._events.append(Requeued(it.id, it.queue, reason))
            self._reroute(it)
            return
        self._insert_item(it)
        self._events.append(Requeued(it.id, it.queue, reason))

"""The single-writer matching engine (DESIGN §3): pure, deterministic, clock injected.

Every command takes ``now`` (seconds; never read from the system clock), first runs the timers
due by then (offer expiries, rule-step escalations), applies itself, then matches whatever it
made matchable, and returns the resulting :mod:`events <routing.engine.events>` in order.

Ordering of work
    effective priority = priority + r * (now - virtual_start) with one ageing rate ``r`` per
    engine. Because ``r * now`` is common to every item, the order is fixed by the static key
    ``(r * virtual_start - priority, virtual_start, seq)`` (smaller first): items never need
    re-sorting as time passes, keys from different queues compare directly (one global ordering
    across all of an agent's queues), and a low-priority item overtakes any newly arriving one once
    it has waited ``(p_high - p_low) / r`` seconds longer — so it cannot starve.

One class, ``Engine``, built in layers, each a module that only calls the layers below it:

    core.py       Engine: the public commands (this module)
    outcomes.py   command plumbing (clock, timers) and how offers end
    placement.py  rule-set routing: the step that applies to waiting work at its age
    matching.py   who gets offered what (the arrival and agent triggers)
    indexes.py    the state, its indexes, the primitives that keep them consistent, a snapshot

They are base classes rather than helpers so the per-decision loops stay plain method calls on
``self`` (no extra indirection: routing/engine is benchmarked).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from typing import Any

from routing.engine import explain
from routing.engine.events import (
    Abandoned,
    Assigned,
    CommandRejected,
    Completed,
    Event,
    OfferRejected,
    Queued,
    Reprioritised,
    Transferred,
    WrapUpStarted,
)
from routing.engine.indexes import compile_target
from routing.engine.outcomes import Outcomes
from routing.engine.state import (
    ASSIGNED,
    CHANNELS,
    AgentState,
    EngineConfig,
    Item,
    LiveOffer,
    QueueConfig,
    Status,
)
from routing.rules import RuleSet
from workforce.models import Presence

AVAILABLE = Presence.AVAILABLE
WAITING = Status.WAITING


class Engine(Outcomes):
    """The engine's commands: each runs the timers due, applies itself, matches, returns its events."""

    def __init__(
        self,
        queues: Iterable[QueueConfig] = (),
        *,
        config: EngineConfig | None = None,
        rule_set: RuleSet | None = None,
        now: float = 0.0,
    ) -> None:
        super().__init__(config=config, now=now)
        for q in queues:
            self.add_queue(q)
        if rule_set is not None:
            self.set_rule_set(rule_set)

    # ------------------------------------------------------------------ configuration

    def add_queue(self, queue: QueueConfig) -> None:
        if queue.name in self._queues:
            raise ValueError(f"queue {queue.name!r} already exists")
        self._queues[queue.name] = queue
        self._strategies[queue.name] = [queue.strategy]
        self.stats.queue(queue.name)

    def update_queue(self, now: float, queue: QueueConfig) -> list[Event]:
        """A supervisor changed a queue (its offer policy, strategy, service level): agents
        serving it are re-filed, and one that may now take more work is matched."""
        if queue.name not in self._queues:
            raise ValueError(f"unknown queue {queue.name!r}")
        self._begin(now)
        if queue == self._queues[queue.name]:
            return self._finish()
        self._queues[queue.name] = queue
        strategies = self._strategies[queue.name]
        if queue.strategy not in strategies:
            strategies.insert(0, queue.strategy)
        for a in self._agents.values():
            if queue.name in a.queues:
                a.slots = self._slots(a)
                self._stale[a.id] = a
                self._dirty_agents[a.id] = None
        return self._finish()

    def set_rule_set(self, rule_set: RuleSet) -> None:
        """Publish a rule set: new interactions use it; waiting ones stay pinned to their version."""
        for f in [*rule_set.filters, rule_set.default_filter]:
            for step in f.steps:
                if step.queue not in self._queues:
                    raise ValueError(f"rule set {rule_set.version} routes to unknown queue {step.queue!r}")
                if step.order_by is not None:
                    self._ensure_strategy(step.queue, step.order_by)
        self._rulesets[rule_set.version] = rule_set
        self._ruleset = rule_set

    # ------------------------------------------------------------------ agents

    def add_agent(
        self,
        now: float,
        agent_id: str,
        *,
        skills: Mapping[str, int] | None = None,
        languages: Iterable[str] = (),
        teams: Iterable[str] = (),
        capacity_units: int = 100,
        channel_max: Mapping[str, int] | None = None,
        presence: Presence = Presence.OFFLINE,
        queues: Iterable[str] = (),
    ) -> list[Event]:
        if agent_id in self._agents:
            raise ValueError(f"agent {agent_id!r} already exists")
        self._begin(now)
        self._agent_seq += 1
        a = AgentState(agent_id, self._agent_seq, now)
        self._agents[agent_id] = a
        a.presence = Presence(presence)
        self.stats.presence_changed(None, a.presence)
        self._configure_agent(
            a,
            skills=skills or {},
            languages=languages,
            teams=teams,
            capacity_units=capacity_units,
            channel_max=channel_max if channel_max is not None else self.config.default_channel_max,
            queues=queues,
        )
        return self._finish()

    def update_agent(
        self,
        now: float,
        agent_id: str,
        *,
        skills: Mapping[str, int] | None = None,
        languages: Iterable[str] | None = None,
        teams: Iterable[str] | None = None,
        capacity_units: int | None = None,
        channel_max: Mapping[str, int] | None = None,
        queues: Iterable[str] | None = None,
    ) -> list[Event]:
        """Change an agent's profile. Live offers and assigned work are kept as they are."""
        a = self._agent(agent_id)
        self._begin(now)
        self._configure_agent(
            a,
            skills=skills,
            languages=languages,
            teams=teams,
            capacity_units=capacity_units,
            channel_max=channel_max,
            queues=queues,
        )
        return self._finish()

    def _configure_agent(
        self,
        a: AgentState,
        *,
        skills: Mapping[str, int] | None,
        languages: Iterable[str] | None,
        teams: Iterable[str] | None,
        capacity_units: int | None,
        channel_max: Mapping[str, int] | None,
        queues: Iterable[str] | None,
    ) -> None:
        if queues is not None:
            qs = tuple(sorted(set(queues)))
            unknown = [q for q in qs if q not in self._queues]
            if unknown:
                raise ValueError(f"unknown queues {unknown}")
            a.queues = qs
            a.slots = self._slots(a)
        if skills is not None:
            a.skills = dict(skills)
        if languages is not None:
            a.languages = tuple(languages)
        if teams is not None:
            a.teams = tuple(teams)
        if capacity_units is not None:
            a.capacity = int(capacity_units)
        if channel_max is not None:
            a.channel_max = {c: int(channel_max.get(c, 0)) for c in CHANNELS}
        a.refresh_ctx()
        self._stale[a.id] = a
        self._dirty_agents[a.id] = None

    def set_presence(
        self, now: float, agent_id: str, presence: Presence, reason: str | None = None
    ) -> list[Event]:
        """Agent-chosen presence. Going offline rescinds live offers. Another status asked for by
        an available agent with an offer pending (a break) waits until the offer is answered or
        expires (``AgentState.pending``): no new offer meanwhile, and a miss then is not silence."""
        a = self._agent(agent_id)
        presence = Presence(presence)
        self._begin(now)
        if a.offers and a.presence is AVAILABLE and presence not in (AVAILABLE, Presence.OFFLINE):
            if a.pending != (presence, reason):
                a.pending = (presence, reason)
                self._stale[a.id] = a  # out of the availability index until it takes effect
            return self._finish()
        if a.pending is not None:  # changed their mind (or went offline): the request is dropped
            a.pending = None
            self._stale[a.id] = a
            self._dirty_agents[a.id] = None
        self._change_presence(a, presence, reason)
        if a.presence is Presence.OFFLINE:
            for offer in list(a.offers.values()):
                self._rescind(offer, "agent_offline")
        return self._finish()

    # ------------------------------------------------------------------ interactions

    def enqueue(
        self,
        now: float,
        interaction_id: str,
        channel: str,
        *,
        queue: str | None = None,
        priority: int = 0,
        virtual_start: float | None = None,
        required_skills: Mapping[str, int] | None = None,
        target: str | None = None,
        preferred_agent: str | None = None,
        preferred_until: float | None = None,
        preferred_required: bool = False,
        context: Mapping[str, Any] | None = None,
        offered: LiveOffer | None = None,
    ) -> list[Event]:
        """Queue an interaction. With ``queue`` the routing is explicit; without it the current
        rule set routes it (and escalates it by age) from ``context`` (customer attributes...).
        ``offered``: a previous engine's live offer of it, kept if it still may be (a rebuild)."""
        if interaction_id in self._items or interaction_id in self._finished:
            raise ValueError(f"interaction {interaction_id!r} already enqueued")
        if channel not in self._cost:
            raise ValueError(f"unknown channel {channel!r}")
        if queue is not None and queue not in self._queues:
            raise ValueError(f"unknown queue {queue!r}")
        if queue is None and self._ruleset is None:
            raise ValueError("no queue given and no rule set published")
        cond = compile_target(target) if target is not None else None  # validate before mutating
        self._begin(now)
        self._item_seq += 1
        vs = now if virtual_start is None else float(virtual_start)
        ctx = {**(context or {}), "channel": channel}
        it = Item(interaction_id, self._item_seq, channel, vs, ctx)
        it.base_priority = int(priority)
        self._items[interaction_id] = it
        self.stats.totals["enqueued"] += 1
        if queue is not None:
            it.queue, it.priority = queue, int(priority)
            it.required_skills = dict(required_skills or {})
            if cond is not None:
                it.target, it.target_fn = target, cond.bind(interaction=it.ctx)
            if preferred_agent is not None:
                it.preferred, it.preferred_required = preferred_agent, preferred_required
                if preferred_until is not None:
                    it.preferred_until = preferred_until
                    it.timer_token += 1
                    self._push_timer(preferred_until, "pref", it.id, it.timer_token)
            it.key = self._item_key(it)
            self._insert_item(it)
            self._events.append(Queued(it.id, it.queue, it.priority))
        else:
            assert self._ruleset is not None
            routing = self._route(self._ruleset, it, None)
            if self._apply_routing(it, routing):
                self._events.append(
                    Queued(it.id, it.queue, it.priority, routing.filter_name, routing.step_index)
                )
        if offered is not None:
            self._keep_offer(it, offered)
        return self._finish()

    # ------------------------------------------------------------------ offer outcomes

    def accept(
        self, now: float, offer_id: str, agent_id: str, received_at: float | None = None
    ) -> list[Event]:
        self._begin(now, expire_offers=received_at is None)
        offer = self._live_offer("accept", offer_id, agent_id, received_at)
        if offer is not None:
            self._forget_offer(offer)
            it, a = self._items[offer.interaction_id], self._agents[agent_id]
            del a.offers[offer.id]
            a.work[it.id] = offer.channel  # capacity stays held until complete()
            it.offer, it.status, it.agent_id, it.assigned_at = None, Status.CONNECTED, a.id, now
            self.stats.bump(it.queue, "accepted")
            if now - it.vs <= self._queues[it.queue].sl_threshold_seconds:
                self.stats.bump(it.queue, "answered_within_sl")
            self._events.append(Assigned(offer.id, it.id, a.id, received_at))
            self._offer_closed(a)
        return self._finish()

    def reject(
        self, now: float, offer_id: str, agent_id: str, received_at: float | None = None
    ) -> list[Event]:
        self._begin(now, expire_offers=received_at is None)
        offer = self._live_offer("reject", offer_id, agent_id, received_at)
        if offer is not None:
            it, a = self._end_offer(offer)
            it.declined.add(a.id)
            self.stats.bump(it.queue, "rejected")
            self._events.append(OfferRejected(offer.id, it.id, a.id))
            self._offer_closed(a)
            self._requeue(it, "rejected")
        return self._finish()

    def tick(self, now: float) -> list[Event]:
        """Advance the clock: expire offers, escalate rule steps, match what that freed."""
        self._begin(now)
        return self._finish()

    def next_timer_due(self) -> float | None:
        """When the next timer that can still fire falls due (a driver with its own clock, the
        simulator, ticks then). Timers that can never fire again are dropped from the front first,
        exactly those ``_run_timers`` would skip: ended offers, superseded tokens, finished or
        assigned work (an assigned item goes back to waiting only by a transfer, which bumps its
        token). A waiting or offered item's timer is kept."""
        timers = self._timers
        while timers:
            due, _seq, kind, ref, token = timers[0]
            if kind == "offer":
                if ref in self._offers:
                    return due
            else:
                it = self._items.get(ref)
                if (
                    it is not None
                    and it.timer_token == token
                    and it.status in (Status.WAITING, Status.OFFERED)
                ):
                    return due
            heapq.heappop(timers)
        return None

    # ------------------------------------------------------------------ work lifecycle

    def _item(self, command: str, interaction_id: str, allowed: Iterable[Status]) -> Item | None:
        it = self._items.get(interaction_id)
        if it is None:
            done = self._finished.get(interaction_id)
            reason = "unknown interaction" if done is None else f"interaction is {done.value}"
            self._events.append(CommandRejected(command, interaction_id, reason))
        elif it.status not in allowed:
            self._events.append(CommandRejected(command, interaction_id, f"interaction is {it.status.value}"))
        else:
            return it
        return None

    def wrap_up(self, now: float, interaction_id: str) -> list[Event]:
        """The conversation ended; the agent is in wrap-up and still holds the capacity."""
        self._begin(now)
        it = self._item("wrap_up", interaction_id, (Status.CONNECTED,))
        if it is not None and it.agent_id is not None:
            it.status = Status.WRAP_UP
            self._events.append(WrapUpStarted(it.id, it.agent_id))
        return self._finish()

    def complete(self, now: float, interaction_id: str) -> list[Event]:
        """Wrap-up done (or the work finished): the only way assigned work releases capacity."""
        self._begin(now)
        it = self._item("complete", interaction_id, ASSIGNED)
        if it is not None and it.agent_id is not None:
            a = self._agents[it.agent_id]
            self._release(a, a.work.pop(it.id), self._cost[it.channel])
            self._finish_item(it, Status.COMPLETED)
            q = self.stats.queue(it.queue)
            q.completed += 1
            q.handle_seconds += now - (it.assigned_at or now)
            self.stats.totals["completed"] += 1
            self._events.append(Completed(it.id, a.id))
        return self._finish()

    def abandon(self, now: float, interaction_id: str) -> list[Event]:
        """The customer gave up while waiting or while being offered."""
        self._begin(now)
        it = self._item("abandon", interaction_id, (Status.WAITING, Status.OFFERED))
        if it is not None:
            was = it.status.value
            if it.offer is not None:
                self._rescind(it.offer, "abandoned")
            else:
                self._remove_item(it)
            self._finish_item(it, Status.ABANDONED)
            self.stats.bump(it.queue, "abandoned")
            if now - it.vs <= self._queues[it.queue].sl_threshold_seconds:
                self.stats.bump(it.queue, "abandoned_within_sl")
            self._events.append(Abandoned(it.id, was))
        return self._finish()

    def transfer(
        self, now: float, interaction_id: str, *, to_queue: str | None = None, to_agent: str | None = None
    ) -> list[Event]:
        """Move waiting, offered or connected work to another queue or a named agent, keeping its
        virtual start (its place). The transferring agent's leg ends and frees its capacity, and
        that agent is not offered the interaction again."""
        if (to_queue is None) == (to_agent is None):
            raise ValueError("transfer needs exactly one of to_queue / to_agent")
        if to_queue is not None and to_queue not in self._queues:
            raise ValueError(f"unknown queue {to_queue!r}")
        if to_agent is not None:
            self._agent(to_agent)
        self._begin(now)
        it = self._item("transfer", interaction_id, (Status.WAITING, Status.OFFERED, Status.CONNECTED))
        if it is not None:
            from_agent = it.agent_id
            if it.status is Status.WAITING:
                self._remove_item(it)
            elif it.offer is not None:
                self._rescind(it.offer, "transferred")
            elif from_agent is not None:
                a = self._agents[from_agent]
                self._release(a, a.work.pop(it.id), self._cost[it.channel])
                it.declined.add(from_agent)
                it.agent_id = None
            # Explicitly placed now: rule steps no longer apply.
            it.timer_token += 1
            it.filter_name = it.step_index = it.step_deadline = None
            it.target, it.target_fn, it.required_skills, it.order_by = None, None, {}, None
            if to_queue is not None:
                it.queue, it.preferred, it.preferred_required = to_queue, None, False
            else:
                it.preferred, it.preferred_required = to_agent, True
            it.key = self._item_key(it)
            self._insert_item(it)
            self._events.append(Transferred(it.id, from_agent, to_queue, to_agent))
        return self._finish()

    def reprioritise(self, now: float, interaction_id: str, priority: int) -> list[Event]:
        """A supervisor's new base priority for waiting work: its place is recomputed at once (the
        ageing rate still applies, from its virtual start). Rule steps that raise priority later
        start from the new value."""
        self._begin(now)
        it = self._item("reprioritise", interaction_id, (Status.WAITING,))
        if it is not None:
            self._remove_item(it)
            it.priority = it.base_priority = int(priority)
            it.key = self._item_key(it)
            self._insert_item(it)
            self._events.append(Reprioritised(it.id, it.queue, it.priority))
        return self._finish()

    # ------------------------------------------------------------------ repair (SQL disagreed)

    def forget(self, interaction_id: str) -> str | None:
        """Drop an interaction from the index without deciding anything (SQL disagreed with a
        decision about it): its queue entries, its live offer and the capacity it held are
        released, and it may be enqueued or restored again. Emits nothing; returns the id of the
        live offer dropped, if any."""
        self._finished.pop(interaction_id, None)
        it = self._items.pop(interaction_id, None)
        if it is None:
            return None
        dropped = None
        if it.offer is not None:
            offer = it.offer
            self._forget_offer(offer)
            a = self._agents[offer.agent_id]
            del a.offers[offer.id]
            it.offer = None
            self._release(a, offer.channel, offer.cost)
            self._offer_closed(a)  # a status asked for meanwhile is not left waiting forever
            dropped = offer.id
        elif it.queue_token:
            self._remove_item(it)
        elif it.agent_id is not None and it.status in ASSIGNED:
            a = self._agents[it.agent_id]
            channel = a.work.pop(it.id, None)
            if channel is not None:
                self._release(a, channel, self._cost[channel])
        self._dirty_items.pop(interaction_id, None)
        return dropped

    def held_by(self, agent_id: str) -> dict[str, bool]:
        """The work the engine counts against an agent: interaction id -> in wrap-up."""
        a = self._agents.get(agent_id)
        if a is None:
            return {}
        return {iid: self._items[iid].status is Status.WRAP_UP for iid in a.work if iid in self._items}

    # ------------------------------------------------------------------ read side

    def longest_wait(self, queue: str, now: float) -> float:
        return self.stats.longest_wait(queue, now)

    def explain(
        self,
        interaction_ctx: Mapping[str, Any],
        now: float,
        *,
        limit: int = 10,
        rule_set: RuleSet | None = None,
    ) -> dict[str, Any]:
        """Dry-run: where would this interaction go (by the live rule set, or ``rule_set``) and
        who would be offered it, with reasons, and why the queue's other agents would not.
        Changes nothing (``now`` is only used to compute age and idle times)."""
        return explain.explain(self, dict(interaction_ctx), now, rule_set=rule_set, limit=limit)

    @property
    def now(self) -> float:
        return self._now

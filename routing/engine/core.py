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

Indexes (W waiting interactions, A agents)
    work[(queue, channel)]          sorted list of waiting items by the key above
    personal[agent]                 items reserved for / preferring one agent
    avail[(queue, channel, strat)]  sorted list of AVAILABLE agents that can take one more item of
                                    that channel right now, by the queue's selection strategy
    timers                          heap of (due, seq, kind, ref, token), lazily invalidated

    Arrival (work looks for an agent): walk ``avail[(q, c, s)]`` from the best agent and stop at the
    first that fits (skills, target predicate, not declined): O(1 + k_a) checks, k_a = agents at
    the front that this interaction cannot use, then O(Q_a * C * log A) index updates for the chosen
    agent (Q_a = queues it serves, C = 4 channels).
    Agent frees capacity: for each of its queues and each channel it can still take, take the first
    fitting item of ``work[(q, c)]`` and keep the smallest key: O(Q_a * C * (1 + k_w)) checks,
    k_w = items ahead that this agent may not take (declined by it, needs a skill it lacks); a
    bucket is abandoned as soon as its next key cannot beat the best found.
    Insertions and removals are ``bisect`` on Python lists (O(log n) compares + a C memmove), which
    at contact-centre sizes (thousands) beats a balanced tree written in Python. No step scans all
    agents or all waiting work.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from typing import Any

from routing import ranking
from routing.conditions import TARGET_SCHEMA, Condition
from routing.engine import explain
from routing.engine.events import (
    Abandoned,
    AgentStatusChanged,
    Assigned,
    CommandRejected,
    Completed,
    Diverted,
    Escalated,
    Event,
    OfferCreated,
    OfferExpired,
    OfferRejected,
    OfferRescinded,
    Queued,
    Reprioritised,
    Requeued,
    Transferred,
    WrapUpStarted,
)
from routing.engine.state import (
    ASSIGNED,
    CHANNELS,
    AgentState,
    EngineConfig,
    Entry,
    Item,
    Offer,
    QueueConfig,
    Status,
)
from routing.engine.stats import Stats
from routing.rules import Routing, RuleSet, Step, TraceLine, evaluate
from workforce.models import Presence, SelectionStrategy

AVAILABLE = Presence.AVAILABLE
WAITING = Status.WAITING

_TARGETS: dict[str, Condition] = {}


def compile_target(text: str) -> Condition:
    cond = _TARGETS.get(text)
    if cond is None:
        cond = _TARGETS[text] = Condition(text, TARGET_SCHEMA)
    return cond


def _remove_entries(entries: list[tuple[list[Entry], Entry]]) -> None:
    for lst, entry in entries:
        del lst[bisect_left(lst, entry)]
    entries.clear()


class Engine:
    def __init__(
        self,
        queues: Iterable[QueueConfig] = (),
        *,
        config: EngineConfig | None = None,
        rule_set: RuleSet | None = None,
        now: float = 0.0,
    ) -> None:
        self.config = config or EngineConfig()
        self._cost = dict(self.config.channel_cost)
        self._ttl = dict(self.config.offer_ttl)
        self._rate = float(self.config.ageing_per_second)
        self._voice_blocks = self.config.voice_blocks_other_work
        self._grace = float(self.config.answer_grace_seconds)
        self._queues: dict[str, QueueConfig] = {}
        self._strategies: dict[str, list[SelectionStrategy]] = {}
        self._avail: dict[tuple[str, str, SelectionStrategy], list[Entry]] = {}
        self._work: dict[tuple[str, str], list[Entry]] = {}
        self._personal: dict[str, list[Entry]] = {}
        self._agents: dict[str, AgentState] = {}
        self._items: dict[str, Item] = {}
        self._offers: dict[str, Offer] = {}  # live offers only
        # Recently ended offers / finished interactions, so late commands get a precise answer;
        # bounded (oldest dropped first) so a long-running engine does not grow without limit.
        self._ended_offers: dict[str, None] = {}
        self._finished: dict[str, Status] = {}
        self._retention = 100_000
        # Agents whose availability entries are out of date; re-filed once per command (see _flush).
        self._stale: dict[str, AgentState] = {}
        self._timers: list[tuple[float, int, str, str, int]] = []
        self._timer_seq = self._item_seq = self._agent_seq = self._offer_seq = self._token_seq = 0
        self._now = now
        self._rulesets: dict[int, RuleSet] = {}
        self._ruleset: RuleSet | None = None
        self._events: list[Event] = []
        self._dirty_items: dict[str, None] = {}
        self._dirty_agents: dict[str, None] = {}
        self.stats = Stats(self._still_waiting)
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

    def _ensure_strategy(self, queue: str, strategy: SelectionStrategy) -> None:
        if strategy not in self._strategies[queue]:
            self._strategies[queue].append(strategy)
            for a in self._agents.values():
                if queue in a.queues:
                    a.slots = self._slots(a)
                    self._reindex_agent(a)

    # ------------------------------------------------------------------ command plumbing

    def _begin(self, now: float, *, expire_offers: bool = True) -> None:
        """Advance the clock and run what fell due. ``expire_offers=False`` (a stamped answer):
        offers stay until the next other command or tick, so an engine that fell behind (a
        rebuild, a stall) judges every answer received in time before expiring anything."""
        if now < self._now:
            raise ValueError(f"time went backwards: {now} < {self._now}")
        self._now = now
        self._run_timers(now, expire_offers)

    def _finish(self) -> list[Event]:
        self._match_dirty()
        self._flush()
        events, self._events = self._events, []
        return events

    def _push_timer(self, due: float, kind: str, ref: str, token: int = 0) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (due, self._timer_seq, kind, ref, token))

    def _run_timers(self, now: float, expire_offers: bool = True) -> None:
        timers = self._timers
        kept: list[tuple[float, int, str, str, int]] | None = None  # made only when needed: hot path
        while timers and timers[0][0] <= now:
            timer = heapq.heappop(timers)
            _due, _seq, kind, ref, token = timer
            if kind == "offer":
                offer = self._offers.get(ref)
                if offer is not None:
                    if expire_offers:
                        self._expire(offer)
                    elif kept is None:
                        kept = [timer]
                    else:
                        kept.append(timer)
                continue
            it = self._items.get(ref)
            if it is None or it.timer_token != token or it.status is not WAITING:
                continue  # superseded; an offered item re-checks its step when it is requeued
            if kind == "step":
                self._remove_item(it)
                self._reroute(it)
            else:  # "pref": an explicit preferred-agent window ended
                self._remove_item(it)
                it.preferred, it.preferred_required, it.preferred_until = None, False, None
                self._insert_item(it)
                self._events.append(Requeued(it.id, it.queue, "preference_expired"))
        for timer in kept or ():
            heapq.heappush(timers, timer)

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

    def _offer_closed(self, a: AgentState) -> None:
        """One of the agent's offers ended (answered, expired, withdrawn): under a one-at-a-time
        policy the agent may take the next, and a status it asked for meanwhile takes effect."""
        self._stale[a.id] = a
        self._dirty_agents[a.id] = None
        if a.pending is not None and not a.offers:
            presence, reason = a.pending
            a.pending = None
            self._change_presence(a, presence, reason)

    def _open_to_offers(self, a: AgentState, queue: str) -> bool:
        """The offer policy: one pending offer at a time for the queue's work (its default), or as
        many as capacity allows; none while a status the agent asked for waits (see set_presence)."""
        if a.pending is not None:
            return False
        if not a.offers:
            return True
        cfg = self._queues.get(queue)
        return cfg is not None and not cfg.one_offer_at_a_time

    def _change_presence(self, a: AgentState, presence: Presence, reason: str | None) -> None:
        if presence is a.presence:
            a.reason = reason
            return
        self.stats.presence_changed(a.presence, presence)
        a.presence, a.reason = presence, reason
        if presence is AVAILABLE:
            a.idle_since = self._now
            self._dirty_agents[a.id] = None
        self._stale[a.id] = a
        self._events.append(AgentStatusChanged(a.id, presence.value, reason))

    def _agent(self, agent_id: str) -> AgentState:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise ValueError(f"unknown agent {agent_id!r}") from None

    def _can_take(self, a: AgentState, channel: str) -> bool:
        counts = a.counts
        if a.used + self._cost[channel] > a.capacity or counts[channel] >= a.channel_max.get(channel, 0):
            return False
        # Voice is exclusive both ways when configured.
        return not (self._voice_blocks and (counts["voice"] or (channel == "voice" and a.used)))

    def _flush(self) -> None:
        """Re-file agents whose load or presence changed. Deferred because an agent that frees
        capacity usually takes new work in the same command: one re-filing instead of two. Every
        reader of ``_avail`` flushes first; the agent trigger reads live counters instead."""
        if self._stale:
            stale, self._stale = self._stale, {}
            for a in stale.values():
                self._reindex_agent(a)

    def _slots(self, a: AgentState) -> list[tuple[Any, SelectionStrategy, QueueConfig, list[list[Entry]]]]:
        """Per (queue, strategy) the agent serves: a key-cache id and the bucket per channel.
        Rebuilt only when queues or strategies change, so re-filing does no dict-of-tuple look-ups."""
        slots = []
        for q in a.queues:
            cfg = self._queues[q]
            for strategy in self._strategies[q]:
                kid = (
                    (strategy, cfg.rank_skills)
                    if strategy is SelectionStrategy.BEST_PROFICIENCY
                    else strategy
                )
                lists = []
                for c in CHANNELS:
                    lst = self._avail.get((q, c, strategy))
                    if lst is None:
                        lst = self._avail[(q, c, strategy)] = []
                    lists.append(lst)
                slots.append((kid, strategy, cfg, lists))
        return slots

    def _reindex_agent(self, a: AgentState) -> None:
        """Put the agent in exactly the availability buckets it belongs to right now."""
        entries = a.entries
        if entries:
            _remove_entries(entries)
        if a.presence is not AVAILABLE or a.pending is not None or not a.slots:
            return
        channels = [i for i, c in enumerate(CHANNELS) if self._can_take(a, c)]
        if not channels:
            return
        offering = bool(a.offers)
        keys: dict[Any, Entry] = {}  # longest-idle / least-occupied keys do not depend on the queue
        for kid, strategy, cfg, lists in a.slots:
            if offering and cfg.one_offer_at_a_time:
                continue  # the offer policy: this queue's work waits for the pending offer's answer
            key = keys.get(kid)
            if key is None:
                key = keys[kid] = ranking.agent_key(strategy, a, cfg)
            for i in channels:
                lst = lists[i]
                insort(lst, key)
                entries.append((lst, key))

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
    ) -> list[Event]:
        """Queue an interaction. With ``queue`` the routing is explicit; without it the current
        rule set routes it (and escalates it by age) from ``context`` (customer attributes...)."""
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
        return self._finish()

    def _item_key(self, it: Item) -> Entry:
        return (self._rate * it.vs - it.priority, it.vs, it.seq, it.id)

    def effective_priority(self, it: Item, now: float) -> float:
        return it.priority + self._rate * (now - it.vs)

    def _insert_item(self, it: Item) -> None:
        """Make a WAITING item findable: its queue bucket and/or its preferred agent's bucket."""
        it.status = WAITING
        key = it.key
        if it.preferred is not None:
            lst = self._personal.get(it.preferred)
            if lst is None:
                lst = self._personal[it.preferred] = []
            insort(lst, key)
            it.entries.append((lst, key))
        if not it.preferred_required:
            wl = self._work.get((it.queue, it.channel))
            if wl is None:
                wl = self._work[(it.queue, it.channel)] = []
            insort(wl, key)
            it.entries.append((wl, key))
        self._token_seq += 1
        it.queue_token = self._token_seq
        it.queued_at = self._now
        self.stats.entered(it.queue, it.vs, it.seq, it.id, it.queue_token)
        self._dirty_items[it.id] = None

    def _remove_item(self, it: Item) -> None:
        _remove_entries(it.entries)
        it.queue_token = 0
        self.stats.left(it.queue)

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

    # ------------------------------------------------------------------ matching

    def _fits(self, it: Item, a: AgentState) -> bool:
        """Interaction-specific constraints (queue membership, presence and capacity are the
        caller's, usually guaranteed by the bucket it walks)."""
        if a.id in it.declined or (it.preferred_required and a.id != it.preferred):
            return False
        if it.required_skills:
            skills = a.skills
            for s, lvl in it.required_skills.items():
                if skills.get(s, 0) < lvl:
                    return False
        return it.target_fn is None or bool(it.target_fn(a.ctx))

    def _match_dirty(self) -> None:
        # Agents first: an agent that gained capacity takes the best work of all its queues
        # before any newly queued item grabs it, so the global ordering holds within a command.
        while self._dirty_agents or self._dirty_items:
            agents, self._dirty_agents = self._dirty_agents, {}
            for aid in agents:
                self._match_agent(self._agents[aid])
            ids, self._dirty_items = self._dirty_items, {}
            live = (self._items.get(i) for i in ids)
            items = sorted((it for it in live if it is not None), key=lambda it: it.key)
            for it in items:
                if it.status is WAITING:
                    self._match_item(it)

    def _match_item(self, it: Item) -> None:
        """Arrival trigger: the best available agent for this interaction."""
        self._flush()
        c = it.channel
        if it.preferred is not None:
            p = self._agents.get(it.preferred)
            if (
                p is not None
                and p.presence is AVAILABLE
                and self._can_take(p, c)
                and self._open_to_offers(p, it.queue)
                and self._fits(it, p)
            ):
                self._offer(it, p, "arrival")
                return
            if it.preferred_required:
                return
        bucket = self._avail.get((it.queue, c, it.order_by or self._queues[it.queue].strategy))
        if not bucket:
            return
        agents = self._agents
        for entry in bucket:
            a = agents[entry[-1]]
            if self._fits(it, a):
                self._offer(it, a, "arrival")
                return

    def _best_work(self, a: AgentState) -> Item | None:
        """Agent trigger: the best fitting item across all its queues and channels."""
        if a.pending is not None:
            return None
        items, work = self._items, self._work
        best: Entry | None = None
        queues = a.queues
        if a.offers:  # the offer policy: only queues offering up to capacity may add another
            queues = tuple(q for q in queues if not self._queues[q].one_offer_at_a_time)
        for c in CHANNELS:
            if not self._can_take(a, c):
                continue
            for q in queues:
                bucket = work.get((q, c))
                if not bucket:
                    continue
                for entry in bucket:
                    if best is not None and entry >= best:
                        break  # nothing further down this bucket can win
                    if self._fits(items[entry[-1]], a):
                        best = entry
                        break
        personal = self._personal.get(a.id)
        if personal:
            for entry in personal:
                if best is not None and entry >= best:
                    break
                it = items[entry[-1]]
                if self._can_take(a, it.channel) and self._open_to_offers(a, it.queue) and self._fits(it, a):
                    best = entry
                    break
        return None if best is None else items[best[-1]]

    def _match_agent(self, a: AgentState) -> None:
        while a.presence is AVAILABLE:
            it = self._best_work(a)
            if it is None:
                return
            self._offer(it, a, "agent")

    def _offer(self, it: Item, a: AgentState, trigger: str) -> None:
        self._remove_item(it)
        self._offer_seq += 1
        c = it.channel
        ttl = self._queues[it.queue].offer_ttl_seconds if it.queue in self._queues else None
        offer = Offer(
            f"of-{self._offer_seq}",
            it.id,
            a.id,
            c,
            self._cost[c],
            self._now,
            self._now + (ttl or self._ttl[c]),
        )
        self._offers[offer.id] = offer
        it.offer, it.status = offer, Status.OFFERED
        a.offers[offer.id] = offer
        a.used += offer.cost
        a.counts[c] += 1
        a.idle_since = self._now  # busy agents take turns under longest-idle
        self._stale[a.id] = a
        self._push_timer(offer.expires_at + self._grace, "offer", offer.id)
        self.stats.bump(it.queue, "offered")
        self._events.append(OfferCreated(offer.id, it.id, a.id, it.queue, offer.expires_at, trigger))

    def _end_offer(self, offer: Offer) -> tuple[Item, AgentState]:
        """Close a live offer without assigning: the agent's reservation is released."""
        self._forget_offer(offer)
        it, a = self._items[offer.interaction_id], self._agents[offer.agent_id]
        del a.offers[offer.id]
        it.offer = None
        self._release(a, offer.channel, offer.cost)
        return it, a

    def _forget_offer(self, offer: Offer) -> None:
        offer.live = False
        del self._offers[offer.id]
        ended = self._ended_offers
        ended[offer.id] = None
        if len(ended) > self._retention:
            del ended[next(iter(ended))]

    def _finish_item(self, it: Item, status: Status) -> None:
        """A terminal state: drop the live record, remember the outcome (bounded)."""
        it.status = status
        del self._items[it.id]
        fin = self._finished
        fin[it.id] = status
        if len(fin) > self._retention:
            del fin[next(iter(fin))]

    def _release(self, a: AgentState, channel: str, cost: int) -> None:
        a.used -= cost
        a.counts[channel] -= 1
        if not a.used:
            a.idle_since = self._now
        self._stale[a.id] = a
        self._dirty_agents[a.id] = None

    def _expire(self, offer: Offer) -> None:
        it, a = self._end_offer(offer)
        it.declined.add(a.id)
        self.stats.bump(it.queue, "missed")
        self._events.append(OfferExpired(offer.id, it.id, a.id))
        if self._unresponsive(a, offer):
            self._change_presence(a, self.config.missed_offer_presence, "missed offer")
        self._offer_closed(a)
        self._requeue(it, "missed")

    @staticmethod
    def _unresponsive(a: AgentState, offer: Offer) -> bool:
        """Only silence from an agent waiting for work marks them not-responding: not a late
        answer (their desktop is there), not while on break or the like (they chose a status),
        not while they handle work they accepted (busy, not absent)."""
        return not offer.answered and a.presence is AVAILABLE and a.pending is None and not a.work

    def _rescind(self, offer: Offer, reason: str) -> Item:
        it, a = self._end_offer(offer)
        self.stats.bump(it.queue, "rescinded")
        self._events.append(OfferRescinded(offer.id, it.id, a.id, reason))
        self._offer_closed(a)
        if reason == "agent_offline":
            self._requeue(it, reason)
        return it

    # ------------------------------------------------------------------ offer outcomes

    def _live_offer(
        self, command: str, offer_id: str, agent_id: str, received_at: float | None
    ) -> Offer | None:
        """The offer if this answer may decide it. An answer counts from when the API received it
        (``received_at``; now if unknown): in time even if processed after the expiry (the offer
        is kept live ``answer_grace_seconds`` for it), too late if received after."""
        offer = self._offers.get(offer_id)
        problem = None
        if offer is None:
            problem = "offer is no longer live" if offer_id in self._ended_offers else "unknown offer"
        elif offer.agent_id != agent_id:
            problem = "offer belongs to another agent"
        elif (self._now if received_at is None else received_at) > offer.expires_at:
            offer.answered = True  # late, but their desktop answered: it expires as missed, no more
            problem = "offer expired before the answer"
        if problem is not None:
            self._events.append(CommandRejected(command, offer_id, problem))
            return None
        return offer

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

    def _still_waiting(self, iid: str, token: int) -> bool:
        it = self._items.get(iid)
        return it is not None and it.status is WAITING and it.queue_token == token

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

    def snapshot(self) -> dict[str, Any]:
        """Everything, as plain data, for debugging and for tests' invariant checks."""
        agents = {
            a.id: {
                "presence": a.presence.value,
                "queues": list(a.queues),
                "skills": dict(a.skills),
                "languages": list(a.languages),
                "capacity": a.capacity,
                "channel_max": dict(a.channel_max),
                "used": a.used,
                "counts": dict(a.counts),
                "offers": list(a.offers),
                "work": list(a.work),
                "pending": a.pending[0].value if a.pending else None,
                "idle_since": a.idle_since,
            }
            for a in self._agents.values()
        }
        items = {
            it.id: {
                "status": it.status.value,
                "queue": it.queue,
                "channel": it.channel,
                "priority": it.priority,
                "virtual_start": it.vs,
                "key": it.key,
                "offer": it.offer.id if it.offer else None,
                "offered_to": it.offer.agent_id if it.offer else None,
                "agent": it.agent_id,
                "declined": sorted(it.declined),
                "preferred": it.preferred,
                "preferred_required": it.preferred_required,
                "required_skills": dict(it.required_skills),
                "target": it.target,
                "filter": it.filter_name,
                "step": it.step_index,
            }
            for it in self._items.values()
        }
        blank = dict.fromkeys(("queue", "channel", "offer", "offered_to", "agent", "preferred", "target"))
        for iid, status in self._finished.items():
            items[iid] = {**blank, "status": status.value, "declined": [], "required_skills": {}}
        waiting: dict[str, list[str]] = {q: [] for q in self._queues}
        for it in sorted((i for i in self._items.values() if i.status is WAITING), key=lambda i: i.key):
            waiting[it.queue].append(it.id)
        return {"now": self._now, "agents": agents, "interactions": items, "waiting": waiting}

    @property
    def now(self) -> float:
        return self._now

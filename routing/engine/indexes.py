"""The engine's state and its indexes, and the primitives that keep them consistent.

Nothing here decides anything: the layers above read these indexes to choose, and file or unfile
waiting work and available agents only through these primitives (``_insert_item``,
``_remove_item``, ``_reindex_agent``, mostly deferred to ``_flush``). ``snapshot`` reads it all back as plain
data (debugging, and the tests' invariant checks).

Indexes (W waiting interactions, A agents)
    work[(queue, channel)]          sorted list of waiting items by the key (see core.py)
    personal[agent]                 items reserved for / preferring one agent
    avail[(queue, channel, strat)]  sorted list of AVAILABLE agents that can take one more item of
                                    that channel right now, by the queue's selection strategy
    timers                          heap of (due, seq, kind, ref, token), lazily invalidated

    Insertions and removals are ``bisect`` on Python lists (O(log n) compares + a C memmove), which
    at contact-centre sizes (thousands) beats a balanced tree written in Python. No step scans all
    agents or all waiting work. Agents whose load or presence changed are re-filed once per
    command (``_flush``), not at every change.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from typing import Any

from routing import ranking
from routing.conditions import TARGET_SCHEMA, Condition
from routing.engine.events import Event
from routing.engine.state import CHANNELS, AgentState, EngineConfig, Entry, Item, Offer, QueueConfig, Status
from routing.engine.stats import Stats
from routing.rules import RuleSet
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


class Indexes:
    """The engine's state and the primitives that keep its indexes consistent (no decisions here)."""

    def __init__(self, *, config: EngineConfig | None, now: float) -> None:
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

    # ------------------------------------------------------------------ agents' availability

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

    def _ensure_strategy(self, queue: str, strategy: SelectionStrategy) -> None:
        if strategy not in self._strategies[queue]:
            self._strategies[queue].append(strategy)
            for a in self._agents.values():
                if queue in a.queues:
                    a.slots = self._slots(a)
                    self._reindex_agent(a)

    # ------------------------------------------------------------------ waiting work

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

    def _still_waiting(self, iid: str, token: int) -> bool:
        it = self._items.get(iid)
        return it is not None and it.status is WAITING and it.queue_token == token

    # ------------------------------------------------------------------ bookkeeping

    def _push_timer(self, due: float, kind: str, ref: str, token: int = 0) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (due, self._timer_seq, kind, ref, token))

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

    # ------------------------------------------------------------------ read side

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

"""Matching: who gets offered what, walking the indexes (indexes.py) from the best candidate.

    Arrival (work looks for an agent): walk ``avail[(q, c, s)]`` from the best agent and stop at the
    first that fits (skills, target predicate, not declined): O(1 + k_a) checks, k_a = agents at
    the front that this interaction cannot use, then O(Q_a * C * log A) index updates for the chosen
    agent (Q_a = queues it serves, C = 4 channels).
    Agent frees capacity: for each of its queues and each channel it can still take, take the first
    fitting item of ``work[(q, c)]`` and keep the smallest key: O(Q_a * C * (1 + k_w)) checks,
    k_w = items ahead that this agent may not take (declined by it, needs a skill it lacks); a
    bucket is abandoned as soon as its next key cannot beat the best found.

Agents are matched before items within a command (``_match_dirty``), so an agent that gained
capacity takes the best work of all its queues before any newly queued item grabs it.
"""

from __future__ import annotations

from routing.engine.events import OfferCreated
from routing.engine.indexes import Indexes
from routing.engine.state import CHANNELS, AgentState, Entry, Item, LiveOffer, Offer, Status
from workforce.models import Presence

AVAILABLE = Presence.AVAILABLE
WAITING = Status.WAITING


class Matching(Indexes):
    """Who gets offered what: the arrival trigger, the agent trigger and making the offer."""

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

    def _open_to_offers(self, a: AgentState, queue: str) -> bool:
        """The offer policy: one pending offer at a time for the queue's work (its default), or as
        many as capacity allows; none while a status the agent asked for waits (see set_presence)."""
        if a.pending is not None:
            return False
        if not a.offers:
            return True
        cfg = self._queues.get(queue)
        return cfg is not None and not cfg.one_offer_at_a_time

    def _may_offer(self, it: Item, a: AgentState) -> bool:
        """This work may be offered to this agent now, outside the buckets (a preferred agent, a
        personal item, an offer kept through a rebuild): room for its channel, open to offers for
        its queue, and it fits them. Presence is the caller's."""
        return self._can_take(a, it.channel) and self._open_to_offers(a, it.queue) and self._fits(it, a)

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
            if p is not None and p.presence is AVAILABLE and self._may_offer(it, p):
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
                if self._may_offer(it, a):
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
        ttl = self._queues[it.queue].offer_ttl_seconds if it.queue in self._queues else None
        offer = self._reserve(it, a, self._now, self._now + (ttl or self._ttl[it.channel]))
        a.idle_since = self._now  # busy agents take turns under longest-idle
        self.stats.bump(it.queue, "offered")
        self._events.append(OfferCreated(offer.id, it.id, a.id, it.queue, offer.expires_at, trigger))

    def _reserve(self, it: Item, a: AgentState, created_at: float, expires_at: float) -> Offer:
        """The work is offered to the agent until ``expires_at``: it holds their capacity."""
        self._remove_item(it)
        self._offer_seq += 1
        c = it.channel
        offer = Offer(f"of-{self._offer_seq}", it.id, a.id, c, self._cost[c], created_at, expires_at)
        self._offers[offer.id] = offer
        it.offer, it.status = offer, Status.OFFERED
        a.offers[offer.id] = offer
        a.used += offer.cost
        a.counts[c] += 1
        self._stale[a.id] = a
        self._push_timer(offer.expires_at + self._grace, "offer", offer.id)
        return offer

    def _keep_offer(self, it: Item, offered: LiveOffer) -> None:
        """A previous engine's live offer of this work stays the agent's, with the times it was
        made and expires (no event: SQL and the desktop have it already), if this engine would let
        them have it now: placed in the same queue, the agent available with room and open to
        offers, the work fitting them, the answer grace not over. Otherwise the work is matched
        as usual and the caller withdraws the old offer."""
        a = self._agents.get(offered.agent_id)
        if (
            a is None
            or it.status is not WAITING
            or it.queue != offered.queue
            or offered.expires_at + self._grace <= self._now
            or a.presence is not AVAILABLE
            or not (it.queue in a.queues or it.preferred == a.id)
            or not self._may_offer(it, a)
        ):
            return
        self._reserve(it, a, offered.created_at, offered.expires_at).inherited = True

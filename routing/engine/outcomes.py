"""Command plumbing and offer outcomes: what happens when time passes or an offer ends.

Every command starts with ``_begin`` (advance the clock, run the timers due: offer expiries,
rule-step escalations, preference windows) and ends with ``_finish`` (match what became
matchable, re-file agents, hand back the events). An offer that ends without being accepted
(expired, rejected, rescinded) releases the agent's reservation here; a missed offer may mark the
agent not responding, and a status the agent asked for while the offer was pending takes effect
when it ends.
"""

from __future__ import annotations

import heapq

from routing.engine.events import (
    AgentStatusChanged,
    CommandRejected,
    Event,
    OfferExpired,
    OfferRescinded,
    Requeued,
)
from routing.engine.placement import Placement
from routing.engine.state import AgentState, Item, Offer, Status
from workforce.models import Presence

AVAILABLE = Presence.AVAILABLE
WAITING = Status.WAITING


class Outcomes(Placement):
    """Command plumbing (the clock and its timers) and every way an offer ends but acceptance."""

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

    # ------------------------------------------------------------------ offers ending

    def _end_offer(self, offer: Offer) -> tuple[Item, AgentState]:
        """Close a live offer without assigning: the agent's reservation is released."""
        self._forget_offer(offer)
        it, a = self._items[offer.interaction_id], self._agents[offer.agent_id]
        del a.offers[offer.id]
        it.offer = None
        self._release(a, offer.channel, offer.cost)
        return it, a

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
        return (
            not offer.answered
            and not offer.inherited
            and a.presence is AVAILABLE
            and a.pending is None
            and not a.work
        )

    def _rescind(self, offer: Offer, reason: str) -> Item:
        it, a = self._end_offer(offer)
        self.stats.bump(it.queue, "rescinded")
        self._events.append(OfferRescinded(offer.id, it.id, a.id, reason))
        self._offer_closed(a)
        if reason == "agent_offline":
            self._requeue(it, reason)
        return it

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

    def _offer_closed(self, a: AgentState) -> None:
        """One of the agent's offers ended (answered, expired, withdrawn): under a one-at-a-time
        policy the agent may take the next, and a status it asked for meanwhile takes effect."""
        self._stale[a.id] = a
        self._dirty_agents[a.id] = None
        if a.pending is not None and not a.offers:
            presence, reason = a.pending
            a.pending = None
            self._change_presence(a, presence, reason)

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

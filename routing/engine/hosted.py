"""What the engine host needs beyond the pure engine: restoring state from SQL, warm (consult)
transfers, rule sets pinned to older versions, and lookups.

Kept apart from ``core.py`` so the matching core stays focused on decisions; these methods only
rebuild state that SQL already holds (work in progress, who declined what) or add the consult leg.

Warm transfer (a *consult*, as in Genesys / Amazon Connect): the sending agent keeps the parent
(connected to the customer, capacity held) while a child carrying the note is offered to the
target. Accepting the child ends the parent leg in the same command (``ConsultEnded`` "accepted",
then ``Transferred``); any other outcome of the child's offer (rejected, missed, the target went
offline), the consult's wait running out with nobody offered, the sender cancelling or wrapping up
the parent, cancels the child (``ConsultEnded`` with that outcome) and the customer stays with the
sender. The child is never re-offered to someone else: a consult is one attempt at one hand-over.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from routing.engine.core import Engine
from routing.engine.events import Assigned, CommandRejected, Event, Queued, Transferred
from routing.engine.state import ASSIGNED, Item, Status
from routing.rules import RuleSet

# How long a consult child may wait with nobody offered it before the consult is cancelled.
DEFAULT_CONSULT_WAIT_SECONDS = 60.0


class HeldWork(NamedTuple):
    """Work an agent holds in SQL (connected or in wrap-up), as a rebuild restores it."""

    interaction_id: str
    channel: str
    agent_id: str
    queue: str | None
    wrap_up: bool
    virtual_start: float
    assigned_at: float


@dataclass(frozen=True, slots=True)
class ConsultEnded(Event):
    """A warm transfer's consult ended. ``accepted``: the parent leg ends (``Transferred`` follows);
    anything else: the child is cancelled and the customer stays with ``from_agent``."""

    kind: ClassVar[str] = "consult_ended"
    parent_id: str
    child_id: str
    from_agent: str
    # accepted | rejected | missed | agent_offline | timed_out | cancelled | parent_ended | abandoned
    outcome: str
    to_agent: str | None = None  # who accepted


@dataclass(slots=True)
class _Consult:
    parent_id: str
    child_id: str
    sender: str
    to_queue: str | None
    to_agent: str | None
    deadline: float


class HostedEngine(Engine):
    def __init__(self, *args, consult_wait_seconds: float = DEFAULT_CONSULT_WAIT_SECONDS, **kwargs) -> None:
        self._pending_declined: dict[str, set[str]] = {}
        self._consults: dict[str, _Consult] = {}  # by child id
        self._consult_of: dict[str, str] = {}  # parent id -> child id
        self._consult_timers: list[tuple[float, str]] = []
        self.consult_wait_seconds = consult_wait_seconds
        super().__init__(*args, **kwargs)

    def enqueue(
        self,
        now: float,
        interaction_id: str,
        channel: str,
        *,
        declined: Iterable[str] = (),
        rule_set_version: int | None = None,
        **kw,
    ) -> list[Event]:
        """As ``Engine.enqueue``; ``declined``: agents who already rejected or missed it (from SQL);
        ``rule_set_version``: route by that (pinned, already added) version instead of the live one."""
        live = self._ruleset
        if rule_set_version is not None and kw.get("queue") is None:
            pinned = self._rulesets.get(rule_set_version)
            if pinned is None:
                raise ValueError(f"rule set version {rule_set_version} is not loaded")
            # Single writer, synchronous: the swap is never observed by another command.
            self._ruleset = pinned
        self._pending_declined[interaction_id] = set(declined)
        try:
            return super().enqueue(now, interaction_id, channel, **kw)
        finally:
            self._pending_declined.pop(interaction_id, None)
            self._ruleset = live

    def add_rule_set(self, rule_set: RuleSet) -> None:
        """Know an older version that waiting work is pinned to, without making it live.

        Escalation (``_reroute``) already looks versions up by number, so once added, pinned work
        keeps moving through its own version's steps."""
        if rule_set.version in self._rulesets:
            return
        live = self._ruleset
        try:
            self.set_rule_set(rule_set)  # validates its queues against ours
        finally:
            self._ruleset = live  # never made live behind the host's back

    def knows_rule_set(self, version: int) -> bool:
        return version in self._rulesets

    def routed_version(self, interaction_id: str) -> int | None:
        """The rule-set version that routed this (live) interaction, if rules routed it."""
        it = self._items.get(interaction_id)
        return it.ruleset_version if it is not None and it.filter_name is not None else None

    def _insert_item(self, it: Item) -> None:
        # The hook every placement goes through, before any match: decliners are known in time.
        pending = self._pending_declined.pop(it.id, None)
        if pending:
            it.declined |= pending
        super()._insert_item(it)

    def restore_assignments(self, now: float, held: Iterable[HeldWork]) -> list[Event]:
        """Register work agents already hold (connected or in wrap-up): it keeps their capacity.
        ONE command for all of it (a rebuild restores thousands): each agent is re-filed once, not
        once per piece of work. Checked whole before anything changes."""
        held = list(held)
        ids = [h.interaction_id for h in held]
        known = [i for i in ids if i in self._items]
        if known or len(set(ids)) != len(ids):
            raise ValueError(f"interactions already known or given twice: {(known or ids)[:5]}...")
        for h in held:
            self._agent(h.agent_id)
        self._begin(now)
        for h in held:
            self._hold(*h)
        return self._finish()

    def _hold(
        self,
        interaction_id: str,
        channel: str,
        agent_id: str,
        queue: str | None,
        wrap_up: bool,
        virtual_start: float,
        assigned_at: float,
    ) -> None:
        a = self._agents[agent_id]
        self._item_seq += 1
        it = Item(interaction_id, self._item_seq, channel, virtual_start, {"channel": channel})
        it.queue = queue or ""
        it.status = Status.WRAP_UP if wrap_up else Status.CONNECTED
        it.agent_id, it.assigned_at = agent_id, assigned_at
        self._items[interaction_id] = it
        a.work[interaction_id] = channel
        a.used += self._cost[channel]
        a.counts[channel] += 1
        self._stale[a.id] = a  # re-filed once, when the command finishes

    # ------------------------------------------------------------------ warm transfer (consult)

    def start_consult(
        self,
        now: float,
        parent_id: str,
        child_id: str,
        channel: str,
        *,
        sender: str,
        queue: str | None,  # None: the rules route it
        priority: int = 0,
        virtual_start: float,
        required_skills: dict[str, int] | None = None,
        to_agent: str | None = None,
        context: dict[str, Any] | None = None,
        deadline: float | None = None,
    ) -> list[Event]:
        """Offer ``child_id`` (the consult leg) while ``sender`` keeps ``parent_id`` connected.

        To a named agent: only them. The sender is never offered the child. ``deadline``
        (default: now + consult wait) bounds how long the child may wait with nobody offered it."""
        parent = self._items.get(parent_id)
        if parent is None or parent.status is not Status.CONNECTED or parent.agent_id != sender:
            raise ValueError("only the connected agent can start a consult")
        if parent_id in self._consult_of:
            raise ValueError("a warm transfer of this interaction is already in progress")
        if to_agent is not None:
            self._agent(to_agent)
        events = self.enqueue(
            now,
            child_id,
            channel,
            queue=queue,
            priority=priority,
            virtual_start=virtual_start,
            required_skills=required_skills,
            preferred_agent=to_agent,
            preferred_required=to_agent is not None,
            context=context,
            declined={sender},
        )
        # Registered after the enqueue: its matching may offer the child, never end the consult.
        due = now + self.consult_wait_seconds if deadline is None else deadline
        to_queue = None if to_agent is not None else queue
        self._consults[child_id] = _Consult(parent_id, child_id, sender, to_queue, to_agent, due)
        self._consult_of[parent_id] = child_id
        heapq.heappush(self._consult_timers, (due, child_id))
        return events

    def cancel_consult(self, now: float, parent_id: str, agent_id: str) -> list[Event]:
        """The sender withdraws the consult: the child is cancelled, the customer stays with them."""
        self._begin(now)
        c = self._consults.get(self._consult_of.get(parent_id, ""))
        if c is None:
            self._events.append(CommandRejected("cancel_consult", parent_id, "no warm transfer in progress"))
        elif c.sender != agent_id:
            self._events.append(
                CommandRejected("cancel_consult", parent_id, "only the sending agent can cancel it")
            )
        else:
            self._cancel_consult(c, "cancelled")
        return self._finish()

    def consult_child(self, parent_id: str) -> str | None:
        """The child of the consult in progress for ``parent_id``, if any."""
        return self._consult_of.get(parent_id)

    def accept(
        self, now: float, offer_id: str, agent_id: str, received_at: float | None = None
    ) -> list[Event]:
        events = super().accept(now, offer_id, agent_id, received_at)
        consult = next(
            (
                (self._consults[e.interaction_id], e.agent_id)
                for e in events
                if isinstance(e, Assigned) and e.interaction_id in self._consults
            ),
            None,
        )
        if consult is not None:
            events += self._hand_over(now, *consult)
        return events

    def wrap_up(self, now: float, interaction_id: str) -> list[Event]:
        return self._end_parent(now, interaction_id) + super().wrap_up(now, interaction_id)

    def complete(self, now: float, interaction_id: str) -> list[Event]:
        return self._end_parent(now, interaction_id) + super().complete(now, interaction_id)

    def _end_parent(self, now: float, interaction_id: str) -> list[Event]:
        """The sender ends the conversation: there is nobody left to hand over to."""
        child = self._consult_of.get(interaction_id)
        if child is None:
            return []
        self._begin(now)
        c = self._consults.get(child)
        if c is not None:  # timers run by _begin may have ended it already
            self._cancel_consult(c, "parent_ended")
        return self._finish()

    def abandon(self, now: float, interaction_id: str) -> list[Event]:
        c = self._consults.get(interaction_id)
        if c is None:
            return super().abandon(now, interaction_id)
        # The consult leg was dropped; the customer is still with the sender on the parent.
        self._begin(now)
        if interaction_id in self._consults:  # timers run by _begin may have ended it already
            self._cancel_consult(c, "abandoned")
        return self._finish()

    def _hand_over(self, now: float, c: _Consult, to_agent: str) -> list[Event]:
        """The target accepted: the sender's leg ends and frees their capacity (as a blind transfer)."""
        self._begin(now)
        self._forget_consult(c)
        parent = self._items.get(c.parent_id)
        if parent is not None and parent.status is Status.CONNECTED and parent.agent_id == c.sender:
            a = self._agents[c.sender]
            self._release(a, a.work.pop(parent.id), self._cost[parent.channel])
            self._finish_item(parent, Status.COMPLETED)
        self._events.append(ConsultEnded(c.parent_id, c.child_id, c.sender, "accepted", to_agent))
        self._events.append(Transferred(c.parent_id, c.sender, c.to_queue, c.to_agent))
        return self._finish()

    def _cancel_consult(self, c: _Consult, outcome: str) -> None:
        it = self._items[c.child_id]
        if it.offer is not None:
            self._rescind(it.offer, "consult_cancelled")  # does not requeue (reason is not agent_offline)
        elif it.status is Status.WAITING:
            self._remove_item(it)
        self._end_consult(c, it, outcome)

    def _end_consult(self, c: _Consult, it: Item, outcome: str) -> None:
        """The child (not indexed any more) leaves routing; the parent stays with the sender."""
        self._forget_consult(c)
        self._finish_item(it, Status.ABANDONED)
        self._events.append(ConsultEnded(c.parent_id, c.child_id, c.sender, outcome))

    def _forget_consult(self, c: _Consult) -> None:
        del self._consults[c.child_id]
        del self._consult_of[c.parent_id]

    def _requeue(self, it: Item, reason: str) -> None:
        # Rejected, missed or rescinded (target offline): a consult is not passed on to anyone else.
        c = self._consults.get(it.id)
        if c is None:
            super()._requeue(it, reason)
        else:
            self._end_consult(c, it, reason)

    def _begin(self, now: float, *, expire_offers: bool = True) -> None:
        super()._begin(now, expire_offers=expire_offers)
        timers = self._consult_timers
        while timers and timers[0][0] <= now:
            _due, child_id = heapq.heappop(timers)
            c = self._consults.get(child_id)
            it = self._items.get(child_id)
            # Offered by then: that offer's outcome decides (a miss cancels the consult anyway).
            if c is not None and it is not None and it.status is Status.WAITING:
                self._remove_item(it)
                self._end_consult(c, it, "timed_out")

    def forget(self, interaction_id: str) -> str | None:
        # A consult leg forgotten (either side) ends its bookkeeping; the host re-reads both.
        child = self._consult_of.get(interaction_id, interaction_id)
        c = self._consults.get(child)
        if c is not None:
            self._forget_consult(c)
        return super().forget(interaction_id)

    # ------------------------------------------------------------------ blind transfer

    def end_leg_for_transfer(self, now: float, interaction_id: str) -> list[Event]:
        """The connected agent hands the interaction on: their leg ends and frees their capacity.

        In SQL a transfer ends the interaction as ``transferred`` and a child carries on, so the
        host enqueues the child separately (same virtual start, the transferring agent declined).
        """
        self._begin(now)
        it = self._item("transfer", interaction_id, (Status.CONNECTED,))
        if it is not None and it.agent_id is not None:
            a = self._agents[it.agent_id]
            self._release(a, a.work.pop(it.id), self._cost[it.channel])
            self._finish_item(it, Status.COMPLETED)
            self._events.append(Transferred(it.id, a.id, None, None))
        return self._finish()

    # ------------------------------------------------------------------ rule-set changes

    def preview_rule_set(self, rule_set: RuleSet, now: float) -> list[dict[str, Any]]:
        """Where each waiting, rule-routed interaction would go under ``rule_set``. Changes nothing.

        Work placed explicitly (a queue chosen at creation, a transfer) is not rule-routed and stays.
        """
        saved, self._now = self._now, now
        try:
            moves = []
            for it in self._items.values():
                if it.status is not Status.WAITING or it.filter_name is None:
                    continue
                r = self._route(rule_set, it, None)
                before = (it.queue, it.filter_name, it.step_index, it.priority)
                after = (r.queue, r.filter_name, r.step_index, r.effective_priority)
                if before != after:
                    moves.append(
                        {
                            "interaction_id": it.id,
                            "from": dict(zip(("queue", "filter", "step", "priority"), before, strict=True)),
                            "to": dict(zip(("queue", "filter", "step", "priority"), after, strict=True))
                            | {"final_action": r.final_action},
                        }
                    )
            return sorted(moves, key=lambda m: m["interaction_id"])
        finally:
            self._now = saved

    def reevaluate_waiting(self, now: float) -> list[Event]:
        """Re-route waiting rule-routed work with the live rule set; each keeps its place (virtual start)."""
        self._begin(now)
        rs = self._ruleset
        if rs is not None:
            for it in [i for i in self._items.values() if i.status is Status.WAITING and i.filter_name]:
                if it.ruleset_version == rs.version:
                    continue
                self._remove_item(it)
                routing = self._route(rs, it, None)
                if self._apply_routing(it, routing):
                    self._events.append(
                        Queued(it.id, it.queue, it.priority, routing.filter_name, routing.step_index)
                    )
        return self._finish()

    # ------------------------------------------------------------------ lookups for the host

    def kept_offer(self, interaction_id: str) -> str | None:
        """The engine id of the previous engine's offer kept for this work (``enqueue(offered=)``)."""
        it = self._items.get(interaction_id)
        offer = it.offer if it is not None else None
        return offer.id if offer is not None and offer.inherited else None

    def knows(self, interaction_id: str) -> bool:
        return interaction_id in self._items

    def has_queue(self, name: str) -> bool:
        return name in self._queues

    def has_agent(self, agent_id: str) -> bool:
        return agent_id in self._agents

    def holder_of(self, interaction_id: str) -> str | None:
        it = self._items.get(interaction_id)
        return it.agent_id if it is not None and it.status in ASSIGNED else None

    def in_wrap_up(self, interaction_id: str) -> bool:
        it = self._items.get(interaction_id)
        return it is not None and it.status is Status.WRAP_UP

    def live_ids(self) -> list[str]:
        """Interactions still being routed (waiting or offered)."""
        return [i.id for i in self._items.values() if i.status in (Status.WAITING, Status.OFFERED)]

    @property
    def rule_set_version(self) -> int | None:
        return self._ruleset.version if self._ruleset is not None else None

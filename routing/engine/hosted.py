"""What the engine host needs beyond the pure engine: restoring state from SQL, and lookups.

Kept apart from ``core.py`` so the matching core stays focused on decisions; these methods only
rebuild state that SQL already holds (work in progress, who declined what).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from routing.engine.core import Engine
from routing.engine.events import Event, Queued, Transferred
from routing.engine.state import ASSIGNED, Item, Status
from routing.rules import RuleSet


class HostedEngine(Engine):
    def __init__(self, *args, **kwargs) -> None:
        self._pending_declined: dict[str, set[str]] = {}
        super().__init__(*args, **kwargs)

    def enqueue(
        self, now: float, interaction_id: str, channel: str, *, declined: Iterable[str] = (), **kw
    ) -> list[Event]:
        """As ``Engine.enqueue``; ``declined``: agents who already rejected or missed it (from SQL)."""
        self._pending_declined[interaction_id] = set(declined)
        try:
            return super().enqueue(now, interaction_id, channel, **kw)
        finally:
            self._pending_declined.pop(interaction_id, None)

    def _insert_item(self, it: Item) -> None:
        # The hook every placement goes through, before any match: decliners are known in time.
        pending = self._pending_declined.pop(it.id, None)
        if pending:
            it.declined |= pending
        super()._insert_item(it)

    def restore_assignment(
        self,
        now: float,
        interaction_id: str,
        channel: str,
        *,
        agent_id: str,
        queue: str | None,
        wrap_up: bool,
        virtual_start: float,
        assigned_at: float,
    ) -> list[Event]:
        """Register work an agent already holds (connected or in wrap-up): it keeps their capacity."""
        if interaction_id in self._items:
            raise ValueError(f"interaction {interaction_id!r} already known")
        a = self._agent(agent_id)
        self._begin(now)
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
        return self._finish()

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

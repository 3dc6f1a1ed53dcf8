"""Statistics maintained incrementally from the engine's own transitions (never by scanning)."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from workforce.models import Presence


@dataclass
class QueueStats:
    waiting: int = 0
    offered: int = 0
    accepted: int = 0
    rejected: int = 0
    missed: int = 0
    rescinded: int = 0
    abandoned: int = 0
    abandoned_within_sl: int = 0  # "short abandons": gave up before the SL threshold
    answered_within_sl: int = 0
    completed: int = 0
    handle_seconds: float = 0.0
    diverted: int = 0
    escalated_in: int = 0
    # (virtual start, seq, interaction id, queue entry token): min-heap with lazy deletion.
    _starts: list[tuple[float, int, str, int]] = field(default_factory=list, repr=False)

    def service_level(self) -> float | None:
        """Answered within threshold / (answered + abandoned after threshold). Short abandons are
        excluded from the denominator (one common definition; stated so it can be compared)."""
        denom = self.accepted + self.abandoned - self.abandoned_within_sl
        return None if denom == 0 else self.answered_within_sl / denom

    def average_handle_seconds(self) -> float | None:
        return None if self.completed == 0 else self.handle_seconds / self.completed


class Stats:
    def __init__(self, still_waiting: Callable[[str, int], bool]) -> None:
        # still_waiting(interaction id, queue entry token): prunes stale longest-wait heap entries.
        self._still_waiting = still_waiting
        self.queues: dict[str, QueueStats] = {}
        self.agents_by_presence: dict[str, int] = {p.value: 0 for p in Presence}
        self.totals: dict[str, int] = {
            "enqueued": 0,
            "offered": 0,
            "accepted": 0,
            "rejected": 0,
            "missed": 0,
            "rescinded": 0,
            "abandoned": 0,
            "completed": 0,
            "diverted": 0,
            "escalated": 0,
        }

    def queue(self, name: str) -> QueueStats:
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = QueueStats()
        return q

    def bump(self, queue: str, counter: str, n: int = 1) -> None:
        q = self.queue(queue)
        setattr(q, counter, getattr(q, counter) + n)
        if counter in self.totals:
            self.totals[counter] += n

    def entered(self, queue: str, vs: float, seq: int, iid: str, token: int) -> None:
        q = self.queue(queue)
        q.waiting += 1
        heapq.heappush(q._starts, (vs, seq, iid, token))
        if len(q._starts) > 64 + 4 * q.waiting:
            # Mostly entries of items that already left: rebuild (amortised O(1) per entry).
            q._starts = [e for e in q._starts if self._still_waiting(e[2], e[3])]
            heapq.heapify(q._starts)

    def left(self, queue: str) -> None:
        self.queue(queue).waiting -= 1

    def longest_wait(self, queue: str, now: float) -> float:
        """Wait of the oldest item still in ``queue`` (stale heap entries are popped lazily)."""
        starts = self.queue(queue)._starts
        while starts and not self._still_waiting(starts[0][2], starts[0][3]):
            heapq.heappop(starts)
        return now - starts[0][0] if starts else 0.0

    def presence_changed(self, old: str | None, new: str) -> None:
        if old is not None:
            self.agents_by_presence[old] -= 1
        self.agents_by_presence[new] += 1

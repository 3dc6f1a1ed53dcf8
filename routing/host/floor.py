"""The floor: the in-memory engine and what maps it onto SQL, replaced whole by a rebuild."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from routing.engine.hosted import HostedEngine
from routing.engine.state import QueueConfig
from routing.rules import RuleSet
from workforce.models import Agent, OfferPolicy, Queue

_MISSING = object()


@dataclass
class Floor:
    engine: HostedEngine
    # Engine offer ids are per-engine counters; SQL offer ids are UUIDs that outlive engines.
    sql_offer: dict[str, uuid.UUID] = field(default_factory=dict)
    engine_offer: dict[uuid.UUID, str] = field(default_factory=dict)
    diverted: set[str] = field(default_factory=set)
    # Rule-set versions waiting work is pinned to, parsed once per rebuild (None: unusable).
    pinned: dict[int, RuleSet | None] = field(default_factory=dict)
    queue_info: dict[uuid.UUID, tuple[str, float]] = field(default_factory=dict)  # id -> (name, SL s)
    queue_display: dict[uuid.UUID, str] = field(default_factory=dict)  # id -> display name (offer cards)
    # While a group of decisions is written in one transaction (``Leader.commit_decisions``): what
    # its writers changed in the maps above, so a refused group can be put back and written again.
    journal: list[tuple[Any, Any, Any]] | None = None

    def remember_offer(self, engine_offer: str, sql_offer: uuid.UUID) -> None:
        self._note(self.sql_offer, engine_offer)
        self._note(self.engine_offer, sql_offer)
        self.sql_offer[engine_offer] = sql_offer
        self.engine_offer[sql_offer] = engine_offer

    def forget_offer(self, engine_offer: str) -> uuid.UUID | None:
        self._note(self.sql_offer, engine_offer)
        sql_id = self.sql_offer.pop(engine_offer, None)
        if sql_id is not None:
            self._note(self.engine_offer, sql_id)
            self.engine_offer.pop(sql_id, None)
        return sql_id

    def divert(self, interaction_id: str) -> None:
        self._note(self.diverted, interaction_id)
        self.diverted.add(interaction_id)

    def _note(self, container: dict[Any, Any] | set[Any], key: Any) -> None:
        if self.journal is not None:
            if isinstance(container, set):
                self.journal.append((container, key, key in container))
            else:
                self.journal.append((container, key, container.get(key, _MISSING)))

    def undo(self, journal: list[tuple[Any, Any, Any]]) -> None:
        """Put the maps back as they were before ``journal`` was recorded."""
        for container, key, previous in reversed(journal):
            if isinstance(container, set):
                (container.add if previous else container.discard)(key)
            elif previous is _MISSING:
                container.pop(key, None)
            else:
                container[key] = previous

    def remember_queues(self, queues: Iterable[Queue]) -> None:
        queues = list(queues)
        self.queue_info = {q.id: (q.name, float(q.sl_threshold_seconds)) for q in queues}
        self.queue_display = {q.id: q.display_name for q in queues}

    def queue_id_by_name(self, name: str) -> uuid.UUID | None:
        for queue_id, (queue_name, _) in self.queue_info.items():
            if queue_name == name:
                return queue_id
        return None

    def queue_name(self, queue_id: uuid.UUID | None) -> str | None:
        info = self.queue_info.get(queue_id) if queue_id is not None else None
        return info[0] if info else None

    def within_sl(self, interaction: Any, now: datetime) -> tuple[float, bool]:
        wait = max(0.0, (now - interaction.virtual_start_at).total_seconds())
        threshold = self.queue_info.get(interaction.queue_id, ("", 20.0))[1]
        return wait, wait <= threshold


def queue_config(queue: Queue) -> QueueConfig:
    return QueueConfig(
        name=queue.name,
        strategy=queue.strategy,
        sl_threshold_seconds=float(queue.sl_threshold_seconds),
        rank_skills=tuple(sorted(queue.required_skills or {})),
        one_offer_at_a_time=queue.offer_policy is not OfferPolicy.UP_TO_CAPACITY,
        offer_ttl_seconds=float(queue.offer_timeout_seconds) if queue.offer_timeout_seconds else None,
    )


def agent_fields(
    agent: Agent | Any, queues: Iterable[Queue], explicit: set[str], skills: dict[str, int] | None = None
) -> dict[str, Any]:
    """The engine's view of an agent: skills, limits, presence and the queues it serves.
    ``agent``: the model, or a row of its ``AGENT_COLUMNS`` with its ``skills`` (a rebuild reads
    a thousand agents as rows: a third of the time of loading them as models)."""
    if skills is None:
        skills = agent.skill_levels()
    # Skill-based membership: an agent serves a queue when it holds all the queue's skills.
    by_skill = {
        q.name
        for q in queues
        if q.required_skills and all(skills.get(s, 0) >= lvl for s, lvl in q.required_skills.items())
    }
    return {
        "agent_id": str(agent.id),
        "skills": skills,
        "languages": tuple(agent.languages or ()),
        "teams": tuple(agent.teams or ()),
        "capacity_units": agent.capacity_units,
        "channel_max": dict(agent.channel_max or {}),
        "presence": agent.presence,
        "queues": tuple(sorted(explicit | by_skill)),
    }


AGENT_COLUMNS = (
    Agent.id,
    Agent.languages,
    Agent.teams,
    Agent.capacity_units,
    Agent.channel_max,
    Agent.presence,
)


def dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)

"""Agent-selection strategies as sort keys (smaller sorts first).

Every key ends with ``(agent.seq, agent.id)`` so ties are broken identically on every run, and
every strategy falls back to "longest idle" before that (DESIGN §3: ties go to the longest idle).
"""

from __future__ import annotations

from routing.engine.state import AgentState, Entry, QueueConfig
from workforce.models import SelectionStrategy


def proficiency(agent: AgentState, skills: tuple[str, ...]) -> int:
    s = agent.skills
    return sum(s.get(k, 0) for k in skills)


def agent_key(strategy: SelectionStrategy, agent: AgentState, queue: QueueConfig) -> Entry:
    # An agent with no work at all beats one who is merely below capacity; among equals the one
    # idle longest (idle_since also moves on each new offer, so busy agents take turns).
    busy = 1 if agent.used else 0
    if strategy is SelectionStrategy.LONGEST_IDLE:
        return (busy, agent.idle_since, agent.seq, agent.id)
    if strategy is SelectionStrategy.BEST_PROFICIENCY:
        return (-proficiency(agent, queue.rank_skills), busy, agent.idle_since, agent.seq, agent.id)
    # LEAST_OCCUPIED: fraction of capacity in use.
    occupancy = agent.used / agent.capacity if agent.capacity > 0 else 1.0
    return (occupancy, agent.idle_since, agent.seq, agent.id)


def reason(agent: AgentState, queue: QueueConfig, now: float, skills: tuple[str, ...]) -> str:
    """Why an agent ranks where it does, for dry-runs: "idle 312 s, mortgages=5, capacity 75/100 free"."""
    parts = [
        f"idle {now - agent.idle_since:.0f} s"
        if not agent.used
        else f"last offer {now - agent.idle_since:.0f} s ago"
    ]
    shown = list(dict.fromkeys([*queue.rank_skills, *skills]))
    parts += [f"{k}={agent.skills.get(k, 0)}" for k in shown]
    parts.append(f"capacity {agent.capacity - agent.used}/{agent.capacity} free")
    return ", ".join(parts)

"""How many agents an interval needs: Erlang C, and Erlang A (M/M/n+M) when callers abandon.

Both work in floating point without factorials, so they hold for thousands of agents and 10,000
Erlangs:

* Erlang C comes from the Erlang B recursion ``B(k) = a·B(k-1) / (k + a·B(k-1))``, whose terms
  stay in [0, 1].
* Erlang A is solved as the birth-death chain it is (arrivals λ, services min(k, n)·μ,
  abandonments max(k - n, 0)·θ). Its stationary distribution is built in log space and truncated
  where the tail is below e⁻⁴⁰. Service level needs the waiting time of a caller who may give up,
  so each arrival that finds ``j`` people queued ahead is followed through the chain "people
  ahead" with uniformisation (vectorised with numpy).

Definitions (the same for both models, so Erlang A tends to Erlang C as patience grows):

* ``service_level``: the share of *offered* contacts answered within the target time.
* ``asa_seconds``: the mean wait over all offered contacts (Little's law, E[queue] / λ); for
  Erlang C this is the textbook ASA.
* ``abandon_rate``: the share of offered contacts that hang up before an answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Probability mass below e^-40 of the largest state is dropped from the chain.
_LOG_TAIL = 40.0
# The search for the fewest agents gives up past this many above the offered load (a target that
# would need more is not reachable, e.g. a service level of 1.0 with any wait at all).
_SEARCH_HEADROOM = 50


# Bounds on one computation: past them the answer is refused (422), never computed for minutes.
MAX_OFFERED_LOAD = 20_000.0  # Erlangs
MAX_QUEUE_STATES = 100_000  # Erlang A: people waiting the chain follows
MAX_UNIFORM_STEPS = 50_000  # Erlang A: steps of the waiting-time computation


class ImpossibleTarget(ValueError):
    """No number of agents meets the target (the message says why)."""


class TooLarge(ValueError):
    """The computation would exceed its bounds; ``field`` names the input that makes it so."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field

    @classmethod
    def queue_too_long(cls, agents: int) -> TooLarge:
        return cls(
            f"with {agents} agents the queue would hold over {MAX_QUEUE_STATES:,} people; "
            "callers this patient need more agents than this computes",
            field="patience_seconds",
        )

    @classmethod
    def answer_time_too_long(cls) -> TooLarge:
        return cls(
            "the answer time is too long for this volume and handle time to compute",
            field="target_answer_seconds",
        )


@dataclass(frozen=True)
class Demand:
    """One interval's work and the service promised for it."""

    contacts: float
    interval_minutes: float
    aht_seconds: float
    service_level_target: float
    target_answer_seconds: float
    shrinkage: float = 0.0
    patience_seconds: float | None = None

    @property
    def arrival_rate(self) -> float:
        """Contacts per second."""
        return self.contacts / (self.interval_minutes * 60.0)

    @property
    def offered_load(self) -> float:
        """Erlangs: the agents that would be busy all interval with no waiting at all."""
        return self.arrival_rate * self.aht_seconds


@dataclass(frozen=True)
class Staffing:
    agents: int
    scheduled_agents: int
    probability_of_waiting: float
    service_level: float
    asa_seconds: float | None  # None: the queue grows without limit (Erlang C, agents ≤ load)
    occupancy: float
    abandon_rate: float


def scheduled(agents: int, shrinkage: float) -> int:
    """Agents to schedule so that ``agents`` are on the phones after shrinkage."""
    return math.ceil(agents / (1.0 - shrinkage) - 1e-9) if agents else 0


def erlang_b(agents: int, load: float) -> float:
    blocking = 1.0
    for k in range(1, agents + 1):
        blocking = load * blocking / (k + load * blocking)
    return blocking


def evaluate(demand: Demand, agents: int) -> Staffing:
    """The service ``agents`` on the phones give this demand."""
    if demand.contacts == 0:
        return Staffing(agents, scheduled(agents, demand.shrinkage), 0.0, 1.0, 0.0, 0.0, 0.0)
    if demand.patience_seconds is None:
        return _erlang_c(demand, agents)
    return _erlang_a(demand, agents, demand.patience_seconds)


def fewest_agents(demand: Demand) -> Staffing:
    """The smallest number of agents whose service level meets the target."""
    if demand.contacts == 0:
        return evaluate(demand, 0)
    if demand.service_level_target >= 1.0:
        # Some caller always waits a little with random arrivals; floats would round a huge
        # staffing's service level to 1.0 and "meet" it.
        raise ImpossibleTarget("a service level of 1 (every contact answered in time) cannot be guaranteed")
    load = demand.offered_load
    ceiling = math.ceil(load + _SEARCH_HEADROOM * math.sqrt(load) + _SEARCH_HEADROOM)
    best = evaluate(demand, ceiling)
    if best.service_level < demand.service_level_target:
        raise ImpossibleTarget(
            f"no staffing up to {ceiling} agents reaches a service level of "
            f"{demand.service_level_target:.3f} (it reaches {best.service_level:.4f})"
        )
    # Service level rises with every agent added, so bisect for the first that meets it.
    low, high = 0, ceiling
    while high - low > 1:
        middle = (low + high) // 2
        try:
            answer = evaluate(demand, middle)
        except TooLarge as exc:
            if exc.field != "patience_seconds":
                raise
            low = middle  # a deeply overloaded staffing (a huge queue): far below any target
            continue
        if answer.service_level >= demand.service_level_target:
            high, best = middle, answer
        else:
            low = middle
    return best


# ----------------------------------------------------------------------------------- Erlang C


def _erlang_c(demand: Demand, agents: int) -> Staffing:
    load = demand.offered_load
    staffed = scheduled(agents, demand.shrinkage)
    if agents <= load:  # every caller waits and the queue never empties
        return Staffing(agents, staffed, 1.0, 0.0, None, 1.0, 0.0)
    blocking = erlang_b(agents, load)
    waiting = agents * blocking / (agents - load * (1.0 - blocking))
    spare = agents - load
    service_level = 1.0 - waiting * math.exp(-spare * demand.target_answer_seconds / demand.aht_seconds)
    asa = waiting * demand.aht_seconds / spare
    return Staffing(agents, staffed, waiting, service_level, asa, load / agents, 0.0)


# ----------------------------------------------------------------------------------- Erlang A


def _stationary(arrival: float, service: float, patience: float, agents: int) -> np.ndarray:
    """P(k in the system), k = 0 … where the tail is negligible, from log-space ratios."""
    logs = [0.0]
    peak = 0.0
    k = 0
    log_arrival = math.log(arrival)
    while True:
        k += 1
        departure = min(k, agents) * service + max(k - agents, 0) * patience
        logs.append(logs[-1] + log_arrival - math.log(departure))
        peak = max(peak, logs[-1])
        if k > agents + MAX_QUEUE_STATES:
            raise TooLarge.queue_too_long(agents)
        # Past the servers and once the terms fall, stop when far below the peak.
        if k > agents and departure > arrival and logs[-1] < peak - _LOG_TAIL:
            break
    values = np.array(logs)
    values = np.exp(values - values.max())
    return values / values.sum()


def _answered_within(
    queued: np.ndarray, agents: int, service: float, patience: float, seconds: float
) -> float:
    """Of arrivals finding ``queued[j]`` (j people ahead), the mass answered within ``seconds``.

    The people ahead leave at n·μ + j·θ (a service frees the head; someone ahead gives up); the
    caller at the head is answered at n·μ; the caller gives up at θ. Uniformised at rate Λ, the
    answered mass after ``seconds`` is Σ Poisson(k; Λt) · (answered after k steps).
    """
    if seconds <= 0 or queued.sum() == 0:
        return 0.0
    ahead = np.arange(queued.size, dtype=float)
    move = agents * service + ahead * patience  # rate of one fewer ahead (or answered at j = 0)
    rate = float(move[-1] + patience)
    stay = 1.0 - (move + patience) / rate
    step_down = move / rate
    expected = rate * seconds
    last = int(expected + 12.0 * math.sqrt(expected) + 30.0)
    if last > MAX_UNIFORM_STEPS:
        raise TooLarge.answer_time_too_long()
    mass = queued.astype(float).copy()
    answered_so_far = 0.0
    total = 0.0
    log_expected = math.log(expected)
    for k in range(last + 1):
        weight = math.exp(-expected + k * log_expected - math.lgamma(k + 1))
        total += weight * answered_so_far
        answered_so_far += mass[0] * step_down[0]
        moved = mass * step_down
        mass = mass * stay
        mass[:-1] += moved[1:]
    return total


def _erlang_a(demand: Demand, agents: int, patience_seconds: float) -> Staffing:
    arrival = demand.arrival_rate
    service = 1.0 / demand.aht_seconds
    patience = 1.0 / patience_seconds
    staffed = scheduled(agents, demand.shrinkage)
    if agents == 0:  # nobody answers: everyone waits and gives up
        return Staffing(0, staffed, 1.0, 0.0, patience_seconds, 0.0, 1.0)
    # Refuse before any work what the bounds would refuse after it: an overloaded queue's usual
    # length is (λ - nμ)/θ, and the waiting-time steps are at least (nμ + θ)·t.
    if (arrival - agents * service) / patience > MAX_QUEUE_STATES:
        raise TooLarge.queue_too_long(agents)
    if (agents * service + patience) * demand.target_answer_seconds > MAX_UNIFORM_STEPS:
        raise TooLarge.answer_time_too_long()
    states = _stationary(arrival, service, patience, agents)
    queue_lengths = np.maximum(np.arange(states.size) - agents, 0)
    waiting = float(states[agents:].sum())
    abandon = float((queue_lengths * states).sum()) * patience / arrival
    mean_wait = float((queue_lengths * states).sum()) / arrival
    answered_at_once = float(states[:agents].sum())
    service_level = answered_at_once + _answered_within(
        states[agents:], agents, service, patience, demand.target_answer_seconds
    )
    busy = (1.0 - abandon) * demand.offered_load / agents
    return Staffing(
        agents,
        staffed,
        waiting,
        min(float(service_level), 1.0),
        mean_wait,
        min(busy, 1.0),
        min(abandon, 1.0),
    )

"""The what-if simulator against queueing theory (issue #13 item 6), on one skill and one queue.

Three kinds of check:

* **Exact**: on one FIFO queue the engine-driven simulation must give every contact exactly the
  wait of the Kiefer-Wolfowitz recursion on the same draws (a contact starts at the later of its
  arrival and the earliest moment an agent frees up; which agent takes it does not change the
  waits). No statistics: this proves the simulator drives the real engine as M/M/n.
* **Erlang C** (DESIGN §9's reference case, 14 agents on 10 Erlangs): service level within 2
  points and occupancy within 1 point. Its mean wait converges slowly (busy periods are long and
  correlated: the run-to-run spread of ASA over 100,000 contacts is about ±11 % there), so ASA
  within 5 % is checked where a run of this length is at least 3 standard deviations inside the
  tolerance: one agent at 30 % load (spread ±1.6 % over 100,000 contacts), with its service level.
* **Erlang A** (patience 300 s): abandonment within 2 points, and service level within 2 points,
  on 10 agents (11 % abandon) and 12 agents (4 %), against DESIGN §9's published figures via
  ``workforce.staffing`` (service level = answered within the time / offered, both sides).

Seeded and long enough for each figure; each run takes a few seconds to ~15 s.
"""

from __future__ import annotations

import heapq

import pytest

from routing.simulation.run import draw_traffic, simulate
from routing.simulation.scenario import AgentGroup, Scenario, SimQueue, Traffic, TrafficClass
from workforce.staffing import Demand, evaluate


def single_queue(
    agents: int,
    per_hour: float,
    hours: int,
    *,
    aht: float = 180.0,
    patience: float | None = None,
    seed: int = 1,
    hours_per_interval: int = 1,
) -> Scenario:
    return Scenario(
        queues=[SimQueue(name="q")],
        roster=[AgentGroup(name="a", count=agents, queues=["q"])],
        traffic=Traffic(
            interval_minutes=60 * hours_per_interval,
            volumes=[per_hour * hours_per_interval] * (hours // hours_per_interval),
            classes=[TrafficClass(queue="q")],
            handle_seconds={"voice": aht},
            patience_seconds={"voice": patience} if patience else {},
            sl_seconds={"voice": 20.0},
        ),
        seed=seed,
        warmup_seconds=3600.0,
    )


def erlang(agents: int, per_hour: float, *, aht: float = 180.0, patience: float | None = None):  # type: ignore[no-untyped-def]
    demand = Demand(
        contacts=per_hour,
        interval_minutes=60,
        aht_seconds=aht,
        service_level_target=0.8,
        target_answer_seconds=20,
        patience_seconds=patience,
    )
    return evaluate(demand, agents)


def test_waits_are_exactly_the_fifo_recursion() -> None:
    scenario = single_queue(14, 200, 100)
    contacts = draw_traffic(scenario.traffic, scenario.seed)
    result = simulate(scenario, None, contacts=contacts, record_waits=True)
    free = [0.0] * 14  # when each agent next frees up
    expected = []
    for c in contacts:
        start = max(c.arrival, heapq.heappop(free))
        expected.append(start - c.arrival)
        heapq.heappush(free, start + c.handle)
    assert result.waits is not None
    assert len(result.waits) == len(contacts) > 19_000
    assert all(w is not None for w in result.waits)
    assert max(abs(w - e) for w, e in zip(result.waits, expected, strict=True)) < 1e-6  # type: ignore[operator]
    assert sum(e > 0 for e in expected) > 2_500  # plenty of them waited


def test_erlang_c_reference_case_service_level_and_occupancy() -> None:
    """100 contacts per 30 min, AHT 180 s, 14 agents: SL(20 s) 0.888350, occupancy 0.7143."""
    result = simulate(single_queue(14, 200, 500), None)
    theory = erlang(14, 200)
    assert theory.service_level == pytest.approx(0.888350, abs=1e-6)
    assert result.contacts > 95_000
    assert abs(result.overall["service_level"] - theory.service_level) <= 0.02
    assert result.occupancy is not None and abs(result.occupancy - theory.occupancy) <= 0.01
    assert result.overall["abandon_rate"] == 0.0


def test_erlang_c_asa_and_service_level() -> None:
    """One agent at 30 % load, AHT 60 s: ASA = C·AHT/(N-A) = 25.71 s, SL(20 s) = 0.7647."""
    per_hour = 0.3 * 3600 / 60
    result = simulate(single_queue(1, per_hour, 24 * 240, aht=60.0, hours_per_interval=24), None)
    theory = erlang(1, per_hour, aht=60.0)
    assert result.contacts > 100_000
    assert abs(result.overall["asa_seconds"] / theory.asa_seconds - 1) <= 0.05
    assert abs(result.overall["service_level"] - theory.service_level) <= 0.02


@pytest.mark.parametrize(
    ("agents", "published_abandon", "published_sl"),
    [(10, 0.1094, 0.5168), (12, 0.0427, 0.7723)],
)
def test_erlang_a_abandonment_and_service_level(
    agents: int, published_abandon: float, published_sl: float
) -> None:
    result = simulate(single_queue(agents, 200, 500, patience=300.0), None)
    theory = erlang(agents, 200, patience=300.0)
    assert theory.abandon_rate == pytest.approx(published_abandon, abs=5e-4)
    assert theory.service_level == pytest.approx(published_sl, abs=5e-4)
    assert result.contacts > 95_000
    assert abs(result.overall["abandon_rate"] - theory.abandon_rate) <= 0.02
    assert abs(result.overall["service_level"] - theory.service_level) <= 0.02

"""Erlang C / Erlang A staffing (issue #13 item 2), checked against a published table, an
independent exact implementation (rational arithmetic with factorials, as the textbooks write it)
and an independent discrete-event simulation of the M/M/n+M queue."""

from __future__ import annotations

import dataclasses
import heapq
import math
import random
from fractions import Fraction

import pytest

from workforce.staffing import Demand, ImpossibleTarget, erlang_b, evaluate, fewest_agents

TEXTBOOK = Demand(
    contacts=100, interval_minutes=30, aht_seconds=180, service_level_target=0.8, target_answer_seconds=20
)


def exact_erlang_c(agents: int, load: Fraction) -> Fraction:
    """P(wait) from the textbook formula with factorials, in exact rationals."""
    top = load**agents / math.factorial(agents) * Fraction(agents) / (agents - load)
    bottom = sum(load**k / math.factorial(k) for k in range(agents)) + top
    return top / bottom


# The classic worked example (10 Erlangs: 100 calls in 30 minutes at 180 s): P(wait), service
# level in 20 s and ASA as published in call-centre planning tables.
@pytest.mark.parametrize(
    ("agents", "waiting", "service_level", "asa"),
    [
        (11, 0.6821, 0.3896, 122.8),
        (12, 0.4494, 0.6402, 40.4),
        (13, 0.2853, 0.7956, 17.1),
        (14, 0.1741, 0.8884, 7.8),
    ],
)
def test_erlang_c_matches_the_published_table(agents, waiting, service_level, asa):
    result = evaluate(TEXTBOOK, agents)
    assert result.probability_of_waiting == pytest.approx(waiting, abs=5e-5)
    assert result.service_level == pytest.approx(service_level, abs=5e-5)
    assert result.asa_seconds == pytest.approx(asa, abs=0.05)
    assert result.occupancy == pytest.approx(10 / agents)


@pytest.mark.parametrize(
    ("agents", "load"),
    [(3, Fraction(5, 2)), (14, Fraction(10)), (60, Fraction(101, 2)), (130, Fraction(120))],
)
def test_erlang_c_agrees_with_the_exact_factorial_formula(agents, load):
    demand = Demand(
        contacts=float(load) * 10,
        interval_minutes=10,
        aht_seconds=60,
        service_level_target=0.8,
        target_answer_seconds=20,
    )
    assert evaluate(demand, agents).probability_of_waiting == pytest.approx(
        float(exact_erlang_c(agents, load)), rel=1e-9
    )


def test_fewest_agents_is_the_first_that_meets_the_target_and_shrinkage_scales_the_schedule():
    best = fewest_agents(dataclasses.replace(TEXTBOOK, shrinkage=0.3))
    assert best.agents == 14 and best.scheduled_agents == 20  # 14 / 0.7
    assert evaluate(TEXTBOOK, 13).service_level < 0.8 <= evaluate(TEXTBOOK, 14).service_level


def test_ten_thousand_erlangs_do_not_overflow_and_answer_quickly():
    huge = Demand(
        contacts=100_000,
        interval_minutes=30,
        aht_seconds=180,
        service_level_target=0.8,
        target_answer_seconds=20,
    )
    assert huge.offered_load == pytest.approx(10_000)
    best = fewest_agents(huge)
    assert 10_000 < best.agents < 10_100
    assert 0.8 <= best.service_level < evaluate(huge, best.agents + 1).service_level
    assert evaluate(huge, best.agents - 1).service_level < 0.8
    assert 0 < erlang_b(10_000, 10_000.0) < 1
    patient = fewest_agents(dataclasses.replace(huge, patience_seconds=120))
    assert 0 < patient.abandon_rate < 1 and patient.agents < best.agents


def test_erlang_a_tends_to_erlang_c_as_callers_grow_patient():
    c = evaluate(TEXTBOOK, 14)
    a = evaluate(dataclasses.replace(TEXTBOOK, patience_seconds=1e8), 14)
    assert a.probability_of_waiting == pytest.approx(c.probability_of_waiting, abs=1e-5)
    assert a.service_level == pytest.approx(c.service_level, abs=1e-5)
    assert a.asa_seconds == pytest.approx(c.asa_seconds, rel=1e-4)
    assert a.abandon_rate < 1e-5


def simulate(
    agents: int, arrival: float, aht: float, patience: float, answer_within: float, seed: int, calls: int
):
    """M/M/n+M by discrete events, FIFO: (answered within target, abandoned, waited) shares."""
    rng = random.Random(seed)
    busy_until: list[float] = []  # heap of the times busy agents free up
    queue: list[tuple[float, float]] = []  # (arrival time, give-up time), FIFO
    clock = 0.0
    within = abandoned = waited = 0
    for _ in range(calls):
        clock += rng.expovariate(arrival)
        # Serve the queue with every agent freed before this arrival, in time order.
        while busy_until and busy_until[0] <= clock and True:
            free_at = heapq.heappop(busy_until)
            while queue and queue[0][1] <= free_at:  # gave up before this agent was free
                queue.pop(0)
                abandoned += 1
            if queue:
                arrived, _ = queue.pop(0)
                within += free_at - arrived <= answer_within
                heapq.heappush(busy_until, free_at + rng.expovariate(1 / aht))
        while queue and queue[0][1] <= clock:
            queue.pop(0)
            abandoned += 1
        if len(busy_until) < agents:
            within += 1
            heapq.heappush(busy_until, clock + rng.expovariate(1 / aht))
        else:
            waited += 1
            queue.append((clock, clock + rng.expovariate(1 / patience)))
    return within / calls, abandoned / calls, waited / calls


@pytest.mark.parametrize(("agents", "patience"), [(9, 60.0), (11, 120.0), (13, 300.0)])
def test_erlang_a_agrees_with_a_simulation_of_impatient_callers(agents, patience):
    demand = dataclasses.replace(TEXTBOOK, patience_seconds=patience)
    result = evaluate(demand, agents)
    within, abandoned, waited = simulate(
        agents, demand.arrival_rate, 180, patience, 20, seed=agents, calls=120_000
    )
    assert result.service_level == pytest.approx(within, abs=0.015)
    assert result.abandon_rate == pytest.approx(abandoned, abs=0.015)
    assert result.probability_of_waiting == pytest.approx(waited, abs=0.015)


def test_an_unreachable_target_is_refused():
    with pytest.raises(ImpossibleTarget):
        fewest_agents(dataclasses.replace(TEXTBOOK, service_level_target=1.0))


def test_no_contacts_need_no_agents():
    none = fewest_agents(dataclasses.replace(TEXTBOOK, contacts=0))
    assert none.agents == 0 and none.service_level == 1.0

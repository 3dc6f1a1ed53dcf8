"""The what-if simulator's behaviour on the real engine (issue #13 item 6): rule steps escalate on
time, priorities by tier, misroutes transferred with their place kept, shifts, determinism and
the scenario's bounds. Small runs; the queueing-theory checks are in test_simulation_erlang.py."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from routing.rules import Filter, RuleSet, Step
from routing.simulation.run import draw_traffic, simulate
from routing.simulation.scenario import (
    AgentGroup,
    ResolutionModel,
    Scenario,
    SimQueue,
    Traffic,
    TrafficClass,
)


def rules(*filters: Filter, default: str = "a") -> RuleSet:
    return RuleSet(
        version=1,
        filters=list(filters),
        default_filter=Filter(name="default", steps=[Step(queue=default)]),
        on_final_timeout="callback",
    )


def traffic(volumes: list[float], classes: list[TrafficClass], **kw: object) -> Traffic:
    return Traffic.model_validate(
        {
            "interval_minutes": 60,
            "volumes": volumes,
            "classes": classes,
            "handle_seconds": {"voice": 120},
            **kw,
        }
    )


def test_a_rule_step_escalates_exactly_when_it_times_out() -> None:
    """Nobody serves queue a; after 30 s the rules move the contact to b, whose agent is mostly
    idle: the engine is ticked at the step's deadline, so the wait is exactly 30 s then."""
    scenario = Scenario(
        queues=[SimQueue(name="a"), SimQueue(name="b")],
        roster=[AgentGroup(name="b-agent", queues=["b"])],
        traffic=traffic([6] * 20, [TrafficClass()]),
        seed=4,
    )
    escalating = rules(
        Filter(name="first-a", when="true", steps=[Step(queue="a", timeout_seconds=30), Step(queue="b")])
    )
    result = simulate(scenario, escalating, record_waits=True)
    waits = [w for w in result.waits or [] if w is not None]
    assert result.contacts == len(waits) > 80  # everyone answered in the end
    assert result.escalations == result.contacts
    assert min(waits) == pytest.approx(30.0, abs=1e-6)
    assert sum(abs(w - 30.0) < 1e-6 for w in waits) > len(waits) // 2
    assert result.by_queue == {"b": result.by_queue["b"]}  # answered in b, every one


def test_priority_by_tier_serves_gold_first_under_load() -> None:
    scenario = Scenario(
        queues=[SimQueue(name="a")],
        roster=[AgentGroup(name="x", count=4, queues=["a"])],
        traffic=traffic(
            [100] * 6,
            [TrafficClass(tier="gold", share=1), TrafficClass(tier="standard", share=3)],
            patience_seconds={"voice": 300},
        ),
        seed=2,
    )
    tiered = rules(Filter(name="gold", when='customer.tier == "gold"', steps=[Step(queue="a", priority=5)]))
    contacts = draw_traffic(scenario.traffic, scenario.seed)
    by_tier = simulate(scenario, tiered, contacts=contacts).by_tier
    flat = simulate(scenario, rules(), contacts=contacts).by_tier
    assert by_tier["gold"]["service_level"] > flat["gold"]["service_level"] + 0.1
    assert by_tier["gold"]["asa_seconds"] < flat["gold"]["asa_seconds"] * 0.7
    assert by_tier["gold"]["service_level"] > by_tier["standard"]["service_level"]
    assert by_tier["gold"]["asa_seconds"] < by_tier["standard"]["asa_seconds"] * 0.7
    assert by_tier["gold"]["offered"] == flat["gold"]["offered"]  # the same customers


def test_misrouted_work_is_transferred_to_someone_with_the_skill() -> None:
    """Half the pool lacks the skill the work needs: their contacts are transferred (once) and
    resolved by an agent who has it; without transfers (transfer_below 0) they are resolved at
    the level-0 odds."""
    base = Scenario(
        queues=[SimQueue(name="all")],
        roster=[
            AgentGroup(name="skilled", count=3, skills={"fx": 5}, queues=["all"]),
            AgentGroup(name="unskilled", count=3, skills={}, queues=["all"]),
        ],
        traffic=traffic([40] * 8, [TrafficClass(queue="all", needs_skill="fx")]),
        resolution=ResolutionModel(by_proficiency=[0.0, 1, 1, 1, 1, 1.0], transfer_below=1),
        seed=9,
    )
    result = simulate(base, None)
    overall = result.overall
    assert overall["abandoned"] == 0 and overall["answered"] == result.contacts
    # Unskilled agents finish a misroute sooner, so they are idle longest more often: most first legs.
    assert 0.2 * result.contacts < overall["transfers"] < result.contacts
    assert overall["first_contact_resolution"] == pytest.approx(1.0)  # the skilled agent resolved each one
    kept = simulate(
        base.model_copy(
            update={"resolution": ResolutionModel(by_proficiency=[0.0, 1, 1, 1, 1, 1.0], transfer_below=0)}
        ),
        None,
    )
    assert kept.overall["transfers"] == 0
    # Each half of the pool now takes about half the work, the unskilled half unresolved.
    assert 0.35 < kept.overall["first_contact_resolution"] < 0.65


def test_agents_work_only_their_shift() -> None:
    scenario = Scenario(
        queues=[SimQueue(name="a")],
        roster=[
            AgentGroup(name="early", count=2, queues=["a"], shift_start_minutes=0, shift_end_minutes=120)
        ],
        traffic=traffic([20] * 4, [TrafficClass(queue="a")], patience_seconds={"voice": 60}),
        seed=1,
    )
    result = simulate(scenario, None)
    hours = result.by_interval
    assert hours[0]["answered"] > 10 and hours[1]["answered"] > 10
    assert hours[2]["answered"] == hours[3]["answered"] == 0  # nobody on shift: everyone hangs up
    assert hours[3]["abandon_rate"] == 1.0
    # Over the shift (20 an hour x 120 s on 2 agents: a third), not over the day (a sixth).
    assert result.occupancy is not None and 0.25 < result.occupancy < 0.45


def test_same_seed_same_figures_and_the_traffic_ignores_routing() -> None:
    scenario = Scenario(
        queues=[SimQueue(name="a"), SimQueue(name="b", required_skills={"b": 1})],
        roster=[AgentGroup(name="x", count=3, skills={"b": 2}, queues=["a"])],
        traffic=traffic(
            [50, 80, 60],
            [TrafficClass(queue="a", tier="gold"), TrafficClass(queue="b", channel="chat")],
            handle_seconds={"voice": 200, "chat": 400},
            patience_seconds={"voice": 100, "chat": 200},
        ),
        resolution=ResolutionModel(),
        seed=11,
    )
    first, second = simulate(scenario, None).as_dict(), simulate(scenario, None).as_dict()
    assert first == second
    assert draw_traffic(scenario.traffic, 11) == draw_traffic(scenario.traffic, 11)
    assert draw_traffic(scenario.traffic, 11) != draw_traffic(scenario.traffic, 12)


def test_classes_with_their_own_profiles() -> None:
    """A forecast per queue and channel: each class arrives on its own profile."""
    t = Traffic.model_validate(
        {
            "interval_minutes": 60,
            "classes": [
                {"tier": "gold", "volumes": [50, 0, 10]},
                {"tier": "standard", "volumes": [0, 40, 10]},
            ],
            "handle_seconds": {"voice": 60},
        }
    )
    assert t.volumes == [50, 40, 20]
    contacts = draw_traffic(t, 3)
    hour = [[c.cls for c in contacts if k * 3600 <= c.arrival < (k + 1) * 3600] for k in range(3)]
    assert hour[0] and set(hour[0]) == {0}
    assert hour[1] and set(hour[1]) == {1}
    assert set(hour[2]) == {0, 1}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"queues": [{"name": "a"}, {"name": "a"}]}, "queue names must be unique"),
        ({"roster": [{"name": "x", "queues": ["nowhere"]}]}, "unknown queues"),
        (
            {"roster": [{"name": "x", "shift_start_minutes": 60, "shift_end_minutes": 30}]},
            "shift_end_minutes",
        ),
        ({"roster": [{"name": "x", "count": 5000}, {"name": "y", "count": 1}]}, "roster"),
        ({"traffic": {"volumes": [1], "classes": [{"queue": "zz"}]}}, "class queue"),
        ({"traffic": {"volumes": [1], "classes": [{"channel": "fax"}]}}, "unknown channel"),
        (
            {"traffic": {"volumes": [1], "classes": [{"channel": "chat"}], "handle_seconds": {"voice": 1}}},
            "handle_seconds",
        ),
        (
            {"traffic": {"volumes": [1], "classes": [{}], "patience_seconds": {"voice/": 1}}},
            "patience_seconds",
        ),
        ({"traffic": {"volumes": [200_000, 200_000], "classes": [{}]}}, "volumes"),
        ({"traffic": {"volumes": [1] * 700, "classes": [{}]}}, "intervals"),
        ({"traffic": {"volumes": [1], "classes": [{"share": 0}]}}, "share above 0"),
        ({"traffic": {"classes": [{}]}}, "volumes"),
        ({"traffic": {"classes": [{"volumes": [1, 2]}, {}]}}, "every class or for none"),
        ({"traffic": {"classes": [{"volumes": [1, 2]}, {"volumes": [1]}]}}, "one figure per interval"),
        ({"traffic": {"classes": [{"volumes": [200_000]}, {"volumes": [200_000]}]}}, "over the"),
    ],
)
def test_scenario_bounds(change: dict[str, object], message: str) -> None:
    body: dict[str, object] = {
        "queues": [{"name": "a"}],
        "roster": [{"name": "x"}],
        "traffic": {"volumes": [1], "classes": [{}]},
        **change,
    }
    with pytest.raises(ValidationError, match=message):
        Scenario.model_validate(body)

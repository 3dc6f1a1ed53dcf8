"""CP-SAT auto-scheduling (issue #13 item 3): a small requirement covered exactly, the rest rule
and contracts honoured, breaks inside their windows, a shortfall reported when it cannot be met."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from workforce.scheduler import AgentPlan, BreakRule, Horizon, Template, coverage_of, solve

LONDON = ZoneInfo("Europe/London")
MONDAY = date(2027, 1, 4)


def need_between(horizon: Horizon, spans: list[tuple[int, int, int, int]]) -> list[int]:
    """(day, from hour, to hour, agents) spans of requirement, local time; zero elsewhere."""
    need = [0] * horizon.slots
    for day, first, last, agents in spans:
        for slot in range(horizon.slots):
            local = horizon.at(slot).astimezone(LONDON)
            if local.date() == MONDAY + timedelta(days=day) and first <= local.hour < last:
                need[slot] = agents
    return need


def test_covers_a_small_requirement_exactly() -> None:
    horizon = Horizon(MONDAY, 2, LONDON)
    need = need_between(horizon, [(0, 9, 17, 2), (1, 9, 17, 1)])
    nine_to_five = Template("day", 9 * 60, 9 * 60, 8 * 60)
    agents = [AgentPlan(f"a{i}", max_minutes_week=40 * 60) for i in range(3)]
    result = solve(
        horizon=horizon, requirement=need, templates=[nine_to_five], agents=agents, time_limit_s=10
    )
    assert result.status == "OPTIMAL"
    assert result.coverage == need  # no shortfall and no one more than needed
    assert sum(result.shortfall) == 0 and len(result.shifts) == 3


def test_rest_rule_between_a_late_and_an_early_shift() -> None:
    horizon = Horizon(MONDAY, 2, LONDON)
    need = need_between(horizon, [(0, 14, 22, 1), (1, 6, 14, 1)])
    templates = [Template("early", 6 * 60, 6 * 60, 8 * 60), Template("late", 14 * 60, 14 * 60, 8 * 60)]
    # One agent with an 11-hour rest rule cannot work 14-22 then 06-14 (8 h apart): one is short.
    alone = solve(
        horizon=horizon, requirement=need, templates=templates, agents=[AgentPlan("solo")], time_limit_s=10
    )
    assert len(alone.shifts) == 1 and sum(alone.shortfall) == 8 * 4
    # Without the rule the same agent covers both.
    relaxed = solve(
        horizon=horizon,
        requirement=need,
        templates=templates,
        agents=[AgentPlan("solo", min_rest_minutes=0)],
        time_limit_s=10,
    )
    assert sum(relaxed.shortfall) == 0 and len(relaxed.shifts) == 2
    # Two agents: covered, and nobody works both shifts.
    pair = solve(
        horizon=horizon,
        requirement=need,
        templates=templates,
        agents=[AgentPlan("a"), AgentPlan("b")],
        time_limit_s=10,
    )
    assert sum(pair.shortfall) == 0
    assert len({s.agent_id for s in pair.shifts}) == 2


def test_contracts_and_availability_are_honoured() -> None:
    horizon = Horizon(MONDAY, 7, LONDON)
    need = need_between(horizon, [(d, 9, 17, 1) for d in range(7)])
    day = Template("day", 9 * 60, 9 * 60, 8 * 60)
    agents = [
        AgentPlan("full", max_minutes_week=40 * 60, max_days_week=5),
        AgentPlan("weekend", max_minutes_week=16 * 60, availability={5: ((0, 1440),), 6: ((0, 1440),)}),
    ]
    result = solve(horizon=horizon, requirement=need, templates=[day], agents=agents, time_limit_s=10)
    assert sum(result.shortfall) == 0
    by_agent: dict[str, list] = {}
    for shift in result.shifts:
        by_agent.setdefault(shift.agent_id, []).append(shift)
    assert len(by_agent["full"]) == 5
    assert {s.start.astimezone(LONDON).weekday() for s in by_agent["weekend"]} == {5, 6}


def test_breaks_land_inside_their_windows_and_off_the_phones() -> None:
    horizon = Horizon(MONDAY, 1, LONDON)
    need = need_between(horizon, [(0, 9, 17, 1)])
    with_lunch = Template("day", 9 * 60, 9 * 60, 8 * 60, (BreakRule(30, 180, 300),))
    result = solve(
        horizon=horizon, requirement=need, templates=[with_lunch], agents=[AgentPlan("a")], time_limit_s=10
    )
    (shift,) = result.shifts
    ((begin, end),) = shift.breaks
    assert timedelta(hours=3) <= begin - shift.start <= timedelta(hours=5)
    assert end - begin == timedelta(minutes=30)
    assert sum(result.shortfall) == 2  # one agent, off the phones for two 15-minute intervals
    assert coverage_of(result.shifts, horizon) == result.coverage

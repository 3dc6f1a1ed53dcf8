"""Auto-scheduling: which agent works which shift on which day, so that the agents on the phones
cover the requirement per 15-minute interval, within each agent's contract, availability and rest
rule. OR-Tools CP-SAT solves it; pure (no database): plans in, shifts out.

Model (one boolean per agent, day and candidate shift, a candidate being a template and a start
in its window):

* at most one shift per agent and day; none outside the agent's availability or allowed templates;
* rest: a shift may not start less than ``min_rest_minutes`` after the agent's previous one ended;
* per calendar week of the horizon: at most ``max_days_week`` shifts, at most
  ``max_minutes_week`` of shift time, and at least ``min_minutes_week`` when the week is whole;
* coverage: the agents working each interval (each shift counted off during its breaks, placed
  at the middle of their windows) plus the shortfall reach the requirement.

Coverage sums the per-(day, candidate) head counts, not the per-agent booleans, which keeps the
model small: 200 agents × 14 days solve in seconds. The objective is the shortfall first (weight
``SHORTFALL_WEIGHT`` per agent-interval), then the agent-intervals scheduled (no needless
overstaffing). After the solve, breaks are moved within their windows to where the surplus is
largest, one shift at a time, and the shortfall is recomputed from the final shifts.
"""

from __future__ import annotations

import time as clock
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

SLOT_MINUTES = 15
SHORTFALL_WEIGHT = 1000


@dataclass(frozen=True)
class BreakRule:
    """A break of ``minutes`` starting between ``earliest_after`` and ``latest_after`` minutes into
    the shift (a lunch is a longer break)."""

    minutes: int
    earliest_after: int
    latest_after: int


@dataclass(frozen=True)
class Template:
    name: str
    earliest_start: int  # minutes after local midnight
    latest_start: int
    length: int  # minutes, breaks included
    breaks: tuple[BreakRule, ...] = ()
    start_step: int = 30


@dataclass(frozen=True)
class AgentPlan:
    agent_id: str
    min_minutes_week: int = 0
    max_minutes_week: int = 40 * 60
    max_days_week: int = 5
    min_rest_minutes: int = 11 * 60
    templates: tuple[str, ...] = ()  # allowed; empty: all
    # weekday (0 = Monday) -> windows (from, to) in local minutes the agent can work; a weekday
    # missing from a non-empty map is a day off; an empty map: any time.
    availability: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Horizon:
    first_day: date
    days: int
    zone: ZoneInfo

    def midnight(self, day: int) -> datetime:
        return datetime.combine(self.first_day + timedelta(days=day), time(0), tzinfo=self.zone).astimezone(
            UTC
        )

    @property
    def start(self) -> datetime:
        return self.midnight(0)

    @property
    def slots(self) -> int:
        return int((self.midnight(self.days) - self.start) / timedelta(minutes=SLOT_MINUTES))

    def slot_of(self, at: datetime) -> int:
        return int((at - self.start) / timedelta(minutes=SLOT_MINUTES))

    def at(self, slot: int) -> datetime:
        return self.start + timedelta(minutes=SLOT_MINUTES * slot)


@dataclass(frozen=True)
class PlannedShift:
    agent_id: str
    template: str
    start: datetime
    end: datetime
    breaks: tuple[tuple[datetime, datetime], ...]


@dataclass(frozen=True)
class Result:
    status: str  # OPTIMAL, FEASIBLE, INFEASIBLE, UNKNOWN
    shifts: list[PlannedShift]
    coverage: list[int]
    shortfall: list[int]
    seconds: float
    objective_gap: float | None  # relative gap to CP-SAT's bound when not proven optimal


@dataclass(frozen=True)
class _Candidate:
    template: Template
    start: int  # slot
    end: int  # slot (exclusive)
    start_local: int  # minutes after local midnight


def available(plan: AgentPlan, weekday: int, start_local: int, end_local: int) -> bool:
    """The agent's availability allows a shift from ``start_local`` to ``end_local`` (minutes after
    the local midnight of ``weekday``): the auto-scheduler's rule and the hand edits' check."""
    if not plan.availability:
        return True
    return any(lo <= start_local and end_local <= hi for lo, hi in plan.availability.get(weekday, ()))


def _nominal_breaks(candidate: _Candidate) -> list[int]:
    """Slots of the shift off the phones with each break at the middle of its window."""
    off: list[int] = []
    for rule in candidate.template.breaks:
        middle = (rule.earliest_after + rule.latest_after) // 2
        offset = middle - middle % SLOT_MINUTES
        first = candidate.start + offset // SLOT_MINUTES
        off.extend(range(first, first + rule.minutes // SLOT_MINUTES))
    return off


def coverage_of(shifts: Sequence[PlannedShift], horizon: Horizon) -> list[int]:
    """Agents on the phones per slot: each shift's slots minus its breaks."""
    cover = [0] * horizon.slots
    for shift in shifts:
        for slot in range(
            max(horizon.slot_of(shift.start), 0), min(horizon.slot_of(shift.end), horizon.slots)
        ):
            cover[slot] += 1
        for begin, end in shift.breaks:
            for slot in range(max(horizon.slot_of(begin), 0), min(horizon.slot_of(end), horizon.slots)):
                cover[slot] -= 1
    return cover


def shortfall_of(coverage: Sequence[int], requirement: Sequence[int]) -> list[int]:
    return [max(need - have, 0) for have, need in zip(coverage, requirement, strict=True)]


def solve(
    *,
    horizon: Horizon,
    requirement: Sequence[int],
    templates: Sequence[Template],
    agents: Sequence[AgentPlan],
    time_limit_s: float = 30.0,
    workers: int = 2,
) -> Result:
    from ortools.sat.python import cp_model  # loaded on the first solve, not at every start-up

    started = clock.perf_counter()
    slots = horizon.slots
    if len(requirement) != slots:
        raise ValueError(f"the requirement has {len(requirement)} intervals; the horizon has {slots}")
    # Candidates per day (shared by every agent who may work them).
    candidates: list[list[_Candidate]] = []
    for day in range(horizon.days):
        midnight = horizon.slot_of(horizon.midnight(day))
        today: list[_Candidate] = []
        for template in templates:
            for local in range(template.earliest_start, template.latest_start + 1, template.start_step):
                start = midnight + local // SLOT_MINUTES
                end = start + template.length // SLOT_MINUTES
                if start < slots:
                    today.append(_Candidate(template, start, min(end, slots), local))
        candidates.append(today)

    model = cp_model.CpModel()
    chosen: dict[tuple[int, int, int], cp_model.IntVar] = {}  # (agent, day, candidate)
    heads: dict[tuple[int, int], list[cp_model.IntVar]] = defaultdict(list)
    for a, plan in enumerate(agents):
        for day, today in enumerate(candidates):
            weekday = (horizon.first_day + timedelta(days=day)).weekday()
            for k, c in enumerate(today):
                if plan.templates and c.template.name not in plan.templates:
                    continue
                if not available(plan, weekday, c.start_local, c.start_local + c.template.length):
                    continue
                var = model.new_bool_var(f"x{a}_{day}_{k}")
                chosen[a, day, k] = var
                heads[day, k].append(var)
    by_agent_day: dict[tuple[int, int], list[tuple[int, cp_model.IntVar]]] = defaultdict(list)
    for (a, day, k), var in chosen.items():
        by_agent_day[a, day].append((k, var))

    for a, plan in enumerate(agents):
        rest_slots = plan.min_rest_minutes // SLOT_MINUTES
        for day in range(horizon.days):
            options = by_agent_day.get((a, day), [])
            if len(options) > 1:
                model.add_at_most_one(v for _, v in options)
            # Rest: a shift today rules out tomorrow's starting too soon after it ends.
            tomorrow = by_agent_day.get((a, day + 1), [])
            for k, var in options:
                end = candidates[day][k].end
                clash = [v for k2, v in tomorrow if candidates[day + 1][k2].start < end + rest_slots]
                if clash:
                    model.add(var + sum(clash) <= 1)
        for week_start in range(0, horizon.days, 7):
            days = range(week_start, min(week_start + 7, horizon.days))
            week = [(candidates[d][k], v) for d in days for k, v in by_agent_day.get((a, d), [])]
            if not week:
                continue
            model.add(sum(v for _, v in week) <= plan.max_days_week)
            minutes = sum(c.template.length * v for c, v in week)
            model.add(minutes <= plan.max_minutes_week)
            if len(days) == 7 and plan.min_minutes_week:
                model.add(minutes >= plan.min_minutes_week)

    # Head counts per (day, candidate), and the coverage they give each slot.
    counts: dict[tuple[int, int], cp_model.IntVar] = {}
    covering: list[list[cp_model.IntVar]] = [[] for _ in range(slots)]
    on_break: list[list[cp_model.IntVar]] = [[] for _ in range(slots)]
    for (day, k), vars_ in heads.items():
        count = model.new_int_var(0, len(vars_), f"n{day}_{k}")
        model.add(count == sum(vars_))
        counts[day, k] = count
        c = candidates[day][k]
        for slot in range(c.start, c.end):
            covering[slot].append(count)
        for slot in _nominal_breaks(c):
            if slot < slots:
                on_break[slot].append(count)
    short = []
    for slot in range(slots):
        need = int(requirement[slot])
        if need <= 0:
            continue
        missing = model.new_int_var(0, need, f"s{slot}")
        model.add(sum(covering[slot]) - sum(on_break[slot]) + missing >= need)
        short.append(missing)
    worked = sum(
        count * (candidates[day][k].end - candidates[day][k].start) for (day, k), count in counts.items()
    )
    model.minimize(SHORTFALL_WEIGHT * sum(short) + worked)

    # Start from a good schedule: the best shift mix for the floor as a whole (a small model of
    # head counts only), handed out to agents greedily within their rules. CP-SAT improves on it;
    # without it, 200 interchangeable agents leave the search wandering among equivalent states.
    mix = _shift_mix(cp_model, agents, candidates, heads, requirement, slots, time_limit_s / 4, workers)
    for key, value in _greedy(mix, candidates, by_agent_day, agents, horizon).items():
        model.add_hint(chosen[key], value)

    solver = cp_model.CpSolver()
    # The whole call keeps to the limit: the shift mix's time comes off the main solve's.
    solver.parameters.max_time_in_seconds = max(time_limit_s - (clock.perf_counter() - started), 1.0)
    solver.parameters.num_workers = workers
    status = solver.solve(model)
    name = solver.status_name(status)
    shifts: list[PlannedShift] = []
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        for (a, day, k), var in sorted(chosen.items()):
            if solver.value(var):
                c = candidates[day][k]
                shifts.append(
                    PlannedShift(
                        agents[a].agent_id, c.template.name, horizon.at(c.start), horizon.at(c.end), ()
                    )
                )
        shifts = place_breaks(shifts, {t.name: t for t in templates}, horizon, requirement)
    coverage = coverage_of(shifts, horizon)
    gap = None
    if status == cp_model.FEASIBLE and solver.objective_value:
        gap = abs(solver.objective_value - solver.best_objective_bound) / abs(solver.objective_value)
    return Result(
        status=name,
        shifts=shifts,
        coverage=coverage,
        shortfall=shortfall_of(coverage, requirement),
        seconds=clock.perf_counter() - started,
        objective_gap=gap,
    )


def place_breaks(
    shifts: Sequence[PlannedShift],
    templates: dict[str, Template],
    horizon: Horizon,
    requirement: Sequence[int],
) -> list[PlannedShift]:
    """Each break where the surplus (coverage − requirement) over its slots is largest within its
    window, shift by shift, the coverage updated after each."""
    cover = coverage_of([PlannedShift(s.agent_id, s.template, s.start, s.end, ()) for s in shifts], horizon)
    placed: list[PlannedShift] = []
    for shift in shifts:
        template = templates.get(shift.template)
        start = horizon.slot_of(shift.start)
        breaks: list[tuple[datetime, datetime]] = []
        for rule in template.breaks if template else ():
            length = rule.minutes // SLOT_MINUTES
            best: tuple[int, int] | None = None
            for offset in range(rule.earliest_after, rule.latest_after + 1, SLOT_MINUTES):
                first = start + offset // SLOT_MINUTES
                window = range(first, min(first + length, horizon.slots))
                if not window:
                    continue
                surplus = min(cover[s] - int(requirement[s]) for s in window)
                if best is None or surplus > best[0]:
                    best = (surplus, first)
            if best is None:
                continue
            first = best[1]
            for s in range(first, min(first + length, horizon.slots)):
                cover[s] -= 1
            breaks.append((horizon.at(first), horizon.at(first + length)))
        placed.append(PlannedShift(shift.agent_id, shift.template, shift.start, shift.end, tuple(breaks)))
    return placed


def _shift_mix(
    cp_model: Any,
    agents: Sequence[AgentPlan],
    candidates: list[list[_Candidate]],
    heads: dict[tuple[int, int], list[Any]],
    requirement: Sequence[int],
    slots: int,
    time_limit_s: float,
    workers: int,
) -> dict[tuple[int, int], int]:
    """How many agents should work each (day, candidate): coverage and cost only, no individuals."""
    model = cp_model.CpModel()
    counts = {key: model.new_int_var(0, len(vars_), f"m{key[0]}_{key[1]}") for key, vars_ in heads.items()}
    covering: list[list[Any]] = [[] for _ in range(slots)]
    on_break: list[list[Any]] = [[] for _ in range(slots)]
    for (day, k), count in counts.items():
        c = candidates[day][k]
        for slot in range(c.start, c.end):
            covering[slot].append(count)
        for slot in _nominal_breaks(c):
            if slot < slots:
                on_break[slot].append(count)
    by_day: dict[int, list[Any]] = defaultdict(list)
    for (day, _k), count in counts.items():
        by_day[day].append(count)
    for day, day_counts in by_day.items():
        limit = len({id(v) for k2 in range(len(candidates[day])) for v in heads.get((day, k2), [])})
        model.add(sum(day_counts) <= limit)
    # The floor's weekly capacity: all contracts' days and minutes together.
    for week_start in range(0, len(candidates), 7):
        week = [(key, count) for key, count in counts.items() if week_start <= key[0] < week_start + 7]
        model.add(sum(count for _, count in week) <= sum(a.max_days_week for a in agents))
        model.add(
            sum(count * candidates[d][k].template.length for (d, k), count in week)
            <= sum(a.max_minutes_week for a in agents)
        )
    short = []
    for slot in range(slots):
        need = int(requirement[slot])
        if need > 0:
            gap = model.new_int_var(0, need, f"g{slot}")
            model.add(sum(covering[slot]) - sum(on_break[slot]) + gap >= need)
            short.append(gap)
    model.minimize(
        SHORTFALL_WEIGHT * sum(short)
        + sum(count * (candidates[d][k].end - candidates[d][k].start) for (d, k), count in counts.items())
    )
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(time_limit_s, 1.0)
    solver.parameters.num_workers = workers
    if solver.solve(model) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return {}
    return {key: int(solver.value(count)) for key, count in counts.items() if solver.value(count)}


def _greedy(
    mix: dict[tuple[int, int], int],
    candidates: list[list[_Candidate]],
    by_agent_day: dict[tuple[int, int], list[tuple[int, Any]]],
    agents: Sequence[AgentPlan],
    horizon: Horizon,
) -> dict[tuple[int, int, int], int]:
    """Hand the mix's shifts to agents day by day: each to the agent who may work it and is
    furthest below their weekly minimum (then has the most weekly room left)."""
    hint: dict[tuple[int, int, int], int] = {}
    minutes: dict[tuple[int, int], int] = defaultdict(int)  # (agent, week) -> minutes
    days_worked: dict[tuple[int, int], int] = defaultdict(int)
    last_end: dict[int, int] = {}
    for day in range(horizon.days):
        week = day // 7
        allowed = {a: {k for k, _ in by_agent_day.get((a, day), [])} for a in range(len(agents))}
        busy: set[int] = set()
        # Longest shifts and earliest starts first: they are the hardest to place within rest rules.
        wanted = sorted(
            ((k, n) for (d, k), n in mix.items() if d == day), key=lambda kn: candidates[day][kn[0]].start
        )
        for k, n in wanted:
            c = candidates[day][k]
            for _ in range(n):
                best: tuple[tuple[int, int], int] | None = None
                for a, plan in enumerate(agents):
                    if a in busy or k not in allowed[a]:
                        continue
                    if days_worked[a, week] >= plan.max_days_week:
                        continue
                    if minutes[a, week] + c.template.length > plan.max_minutes_week:
                        continue
                    if a in last_end and c.start < last_end[a] + plan.min_rest_minutes // SLOT_MINUTES:
                        continue
                    room = plan.max_minutes_week - minutes[a, week]
                    rank = (minutes[a, week] - plan.min_minutes_week, -room)
                    if best is None or rank < best[0]:
                        best = (rank, a)
                if best is None:
                    break
                a = best[1]
                busy.add(a)
                hint[a, day, k] = 1
                minutes[a, week] += c.template.length
                days_worked[a, week] += 1
                last_end[a] = c.end
    return hint

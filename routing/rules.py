"""Routing rule sets: ordered filters -> ordered steps (DESIGN §3, TaskRouter's shape).

The first filter whose ``when`` matches wins; its steps run in order, each active until the
interaction's age reaches the step's ``timeout_seconds``. When the last step expires,
``on_final_timeout`` fires (an overflow queue, or "callback" / "voicemail").

Pure: no database. :func:`validate_rule_set` returns every problem with a JSON-ish path so the
rules editor can point at it; :func:`evaluate` is what the engine and the dry-run call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from routing.conditions import (
    INTERACTION_SCHEMA,
    TARGET_SCHEMA,
    Condition,
    ConditionError,
)
from workforce.models import SelectionStrategy

FINAL_ACTIONS = ("callback", "voicemail")
PreferredKind = Literal["relationship_manager", "last_agent"]
# Which customer attribute names the preferred agent for each kind.
PREFERRED_ATTRIBUTE: dict[str, str] = {
    "relationship_manager": "customer.relationship_manager",
    "last_agent": "customer.last_agent",
}


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: str
    target: str | None = None  # agent predicate, e.g. 'skills.mortgages >= 4 and "zh" in languages'
    priority: int | None = None  # absolute override of the interaction's priority
    priority_boost: int = 0  # added after the override
    timeout_seconds: float | None = None  # from the interaction's age; None = forever (last step only)
    skip_if_unavailable: bool = False
    preferred: PreferredKind | None = None
    required: bool = False  # preferred step: only the preferred agent may take it during this step
    required_skills: dict[str, int] = Field(default_factory=dict)
    order_by: SelectionStrategy | None = None


class Filter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    when: str | None = None  # None only for the default filter
    steps: list[Step]


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 0
    filters: list[Filter]
    default_filter: Filter
    on_final_timeout: str  # a queue name, "callback" or "voicemail"


@dataclass(frozen=True)
class ValidationError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Routing:
    """Where one interaction goes right now. ``final_action`` is set once every step has expired."""

    filter_name: str
    step_index: int
    queue: str | None
    effective_priority: int
    target: str | None = None
    required_skills: Mapping[str, int] = field(default_factory=dict)
    preferred_agent: str | None = None
    preferred_required: bool = False
    order_by: SelectionStrategy | None = None
    step_deadline: float | None = None  # absolute age (s) at which the next step takes over
    final_action: str | None = None  # "overflow" | "callback" | "voicemail" when past the last step
    ruleset_version: int = 0


@dataclass(frozen=True)
class TraceLine:
    """One decision of :func:`evaluate`, for dry-runs: a filter tested, or a step passed over or
    chosen (``outcome``: matched, no match, pinned, default, expired, skipped, active)."""

    kind: Literal["filter", "step"]
    index: int
    name: str
    outcome: str
    detail: str = ""


# --------------------------------------------------------------------------- validation


def condition_problem(path: str, text: str, exc: ConditionError) -> ValidationError:
    """One condition's error as the rules editor shows it (also the alert rules', experience/)."""
    return ValidationError(path, f"{exc.message} at column {exc.pos + 1} in {text!r}")


def _validate_filter(
    f: Filter,
    path: str,
    *,
    is_default: bool,
    known_queues: set[str],
    known_skills: set[str],
) -> list[ValidationError]:
    errors: list[ValidationError] = []
    if is_default and f.when is not None:
        errors.append(ValidationError(f"{path}.when", "the default filter must not have a condition"))
    elif not is_default and f.when is None:
        errors.append(ValidationError(f"{path}.when", "only the default filter may omit 'when'"))
    elif f.when is not None:
        try:
            Condition(f.when, INTERACTION_SCHEMA)
        except ConditionError as exc:
            errors.append(condition_problem(f"{path}.when", f.when, exc))
    if not f.steps:
        errors.append(ValidationError(f"{path}.steps", "a filter needs at least one step"))
    previous: float | None = None
    for j, step in enumerate(f.steps):
        sp = f"{path}.steps[{j}]"
        if step.queue not in known_queues:
            errors.append(ValidationError(f"{sp}.queue", f"unknown queue {step.queue!r}"))
        if step.target is not None:
            try:
                Condition(step.target, TARGET_SCHEMA)
            except ConditionError as exc:
                errors.append(condition_problem(f"{sp}.target", step.target, exc))
        for skill, level in step.required_skills.items():
            if skill not in known_skills:
                errors.append(ValidationError(f"{sp}.required_skills.{skill}", f"unknown skill {skill!r}"))
            if not 1 <= level <= 5:
                errors.append(
                    ValidationError(f"{sp}.required_skills.{skill}", f"level {level} is outside 1..5")
                )
        if step.required and step.preferred is None:
            errors.append(ValidationError(f"{sp}.required", "'required' only applies to a preferred step"))
        t = step.timeout_seconds
        if t is None:
            if j != len(f.steps) - 1:
                errors.append(
                    ValidationError(f"{sp}.timeout_seconds", "only the last step may wait forever (null)")
                )
            continue
        if t < 0:
            errors.append(ValidationError(f"{sp}.timeout_seconds", f"timeout must not be negative ({t})"))
        elif previous is not None and t <= previous:
            errors.append(
                ValidationError(
                    f"{sp}.timeout_seconds",
                    f"step timeouts must increase: {t} is not greater than the previous step's {previous}",
                )
            )
        previous = t if t >= 0 else previous
    return errors


def _find_cycle(edges: Mapping[str, list[str]]) -> list[str] | None:
    """A cycle in a small directed graph (iterative DFS, nodes visited in sorted order)."""
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
    for root in sorted(edges):
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        state[root] = 1
        while stack:
            node, i = stack[-1]
            targets = edges.get(node, [])
            if i < len(targets):
                stack[-1] = (node, i + 1)
                nxt = targets[i]
                if state.get(nxt) == 1:
                    return path[path.index(nxt) :] + [nxt]
                if nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                state[node] = 2
                stack.pop()
                path.pop()
    return None


def validate_rule_set(
    ruleset: RuleSet,
    *,
    known_queues: set[str] | frozenset[str],
    known_skills: set[str] | frozenset[str],
    queue_overflow_map: Mapping[str, str | None] | None = None,
) -> list[ValidationError]:
    """Every problem in ``ruleset``; an empty list means it can be published."""
    queues, skills = set(known_queues), set(known_skills)
    errors: list[ValidationError] = []
    if not ruleset.filters:
        errors.append(
            ValidationError("filters", "a rule set needs at least one filter besides the default filter")
        )
    seen: dict[str, int] = {}
    for i, f in enumerate(ruleset.filters):
        if f.name in seen or f.name == ruleset.default_filter.name:
            errors.append(ValidationError(f"filters[{i}].name", f"duplicate filter name {f.name!r}"))
        seen.setdefault(f.name, i)
        errors += _validate_filter(
            f, f"filters[{i}]", is_default=False, known_queues=queues, known_skills=skills
        )
    errors += _validate_filter(
        ruleset.default_filter, "default_filter", is_default=True, known_queues=queues, known_skills=skills
    )
    final = ruleset.on_final_timeout
    if final not in FINAL_ACTIONS and final not in queues:
        errors.append(
            ValidationError(
                "on_final_timeout", f"{final!r} is neither a known queue nor one of {FINAL_ACTIONS}"
            )
        )
    errors += _overflow_cycle_errors(ruleset, queue_overflow_map or {})
    return errors


def _overflow_cycle_errors(ruleset: RuleSet, overflow: Mapping[str, str | None]) -> list[ValidationError]:
    edges: dict[str, list[str]] = {}
    for q, target in sorted(overflow.items()):
        if target is not None:
            edges.setdefault(q, []).append(target)
    final = ruleset.on_final_timeout
    final_edges: set[tuple[str, str]] = set()
    if final not in FINAL_ACTIONS:
        # When the last step of a filter with a finite timeout expires, work moves to `final`.
        for f in [*ruleset.filters, ruleset.default_filter]:
            if f.steps and f.steps[-1].timeout_seconds is not None:
                last = f.steps[-1].queue
                if final not in edges.get(last, []):
                    edges.setdefault(last, []).append(final)
                final_edges.add((last, final))
    cycle = _find_cycle(edges)
    if cycle is None:
        return []
    hops = list(zip(cycle, cycle[1:], strict=False))
    path = "on_final_timeout" if any(h in final_edges for h in hops) else f"queue_overflow_map.{cycle[0]}"
    return [ValidationError(path, "overflow cycle: " + " -> ".join(cycle))]


# --------------------------------------------------------------------------- evaluation

# Compiled conditions are cached by text: a rule set is evaluated for every arrival.
_WHEN_CACHE: dict[str, Condition] = {}


def compiled_when(text: str) -> Condition:
    cond = _WHEN_CACHE.get(text)
    if cond is None:
        cond = _WHEN_CACHE[text] = Condition(text, INTERACTION_SCHEMA)
    return cond


def interaction_context(ctx: Mapping[str, Any], now: float) -> dict[str, Any]:
    """``ctx`` completed with derived attributes: age from ``interaction.started_at`` (epoch s)
    when given, and the clock fields (UTC) from ``now`` unless the caller supplied local ones."""
    out = dict(ctx)
    started = out.get("interaction.started_at")
    if started is not None:
        out["interaction.age"] = max(0.0, now - float(started))
    if "time.hour" not in out:
        dt = datetime.fromtimestamp(now, UTC)
        out["time.hour"], out["time.minute"], out["time.weekday"] = dt.hour, dt.minute, dt.weekday()
    return out


def select_filter(ruleset: RuleSet, ctx: Mapping[str, Any], trace: list[TraceLine] | None = None) -> Filter:
    for i, f in enumerate(ruleset.filters):
        matched = f.when is not None and compiled_when(f.when).evaluate(ctx)
        if trace is not None:
            trace.append(TraceLine("filter", i, f.name, "matched" if matched else "no match", f.when or ""))
        if matched:
            return f
    if trace is not None:
        trace.append(TraceLine("filter", len(ruleset.filters), ruleset.default_filter.name, "default"))
    return ruleset.default_filter


def evaluate(
    ruleset: RuleSet,
    interaction_ctx: Mapping[str, Any],
    now: float,
    *,
    filter_name: str | None = None,
    available: Callable[[Step, str | None], bool] | None = None,
    trace: list[TraceLine] | None = None,
) -> Routing:
    """Route one interaction at ``now``.

    The first matching filter wins (or ``filter_name``, so an interaction stays pinned to the
    filter that first routed it while its age advances). The active step is the first whose
    timeout exceeds the interaction's age; a preferred step is skipped when the customer has no
    such agent; a ``skip_if_unavailable`` step is skipped when ``available(step, preferred)``
    says nobody could take it now. ``trace``, when given, receives every decision in order.
    """
    ctx = interaction_context(interaction_ctx, now)
    if filter_name is None:
        chosen = select_filter(ruleset, ctx, trace)
    else:
        by_name = {f.name: f for f in [*ruleset.filters, ruleset.default_filter]}
        chosen = by_name[filter_name]
        if trace is not None:
            trace.append(TraceLine("filter", -1, chosen.name, "pinned"))

    age = float(ctx.get("interaction.age", 0.0))
    base = int(ctx.get("interaction.priority", 0))
    for j, step in enumerate(chosen.steps):
        if step.timeout_seconds is not None and age >= step.timeout_seconds:
            if trace is not None:  # (guarded: the engine evaluates on every arrival without one)
                why = f"waited {age:.0f} s, step ends at {step.timeout_seconds:g} s"
                trace.append(TraceLine("step", j, step.queue, "expired", why))
            continue
        preferred: str | None = None
        if step.preferred is not None:
            preferred = ctx.get(PREFERRED_ATTRIBUTE[step.preferred]) or None
            if preferred is None:
                # no relationship manager / last agent: nothing to prefer
                if trace is not None:
                    why = f"the customer has no {step.preferred.replace('_', ' ')}"
                    trace.append(TraceLine("step", j, step.queue, "skipped", why))
                continue
        if step.skip_if_unavailable and available is not None and not available(step, preferred):
            if trace is not None:
                why = "nobody who fits could take it now (skip if unavailable)"
                trace.append(TraceLine("step", j, step.queue, "skipped", why))
            continue
        priority = (step.priority if step.priority is not None else base) + step.priority_boost
        if trace is not None:
            trace.append(TraceLine("step", j, step.queue, "active"))
        return Routing(
            filter_name=chosen.name,
            step_index=j,
            queue=step.queue,
            effective_priority=priority,
            target=step.target,
            required_skills=dict(step.required_skills),
            preferred_agent=preferred,
            preferred_required=step.required and preferred is not None,
            order_by=step.order_by,
            step_deadline=step.timeout_seconds,
            ruleset_version=ruleset.version,
        )
    # Every step expired (or was skipped): the final action.
    final = ruleset.on_final_timeout
    if trace is not None:
        trace.append(
            TraceLine("step", len(chosen.steps), final, "final", "every step expired or was skipped")
        )
    last_priority = base
    if chosen.steps:
        last = chosen.steps[-1]
        last_priority = (last.priority if last.priority is not None else base) + last.priority_boost
    is_queue = final not in FINAL_ACTIONS
    return Routing(
        filter_name=chosen.name,
        step_index=len(chosen.steps),
        queue=final if is_queue else None,
        effective_priority=last_priority,
        final_action="overflow" if is_queue else final,
        ruleset_version=ruleset.version,
    )

"""What a rule-set version changes against another (the live one), in the editor's terms: filters
added, removed or moved, and each changed field of a filter or step, before -> after."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

STEP_FIELDS = (
    "queue",
    "target",
    "priority",
    "priority_boost",
    "timeout_seconds",
    "skip_if_unavailable",
    "preferred",
    "required",
    "required_skills",
    "order_by",
)
_DEFAULTS: dict[str, Any] = {"priority_boost": 0, "skip_if_unavailable": False, "required": False}


@dataclass(frozen=True)
class Change:
    kind: Literal["added", "removed", "changed", "moved"]
    where: str  # "filter 'cards'", "filter 'cards' step 2", "final timeout"
    before: str = ""
    after: str = ""
    field: str = ""


def show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _step_value(step: dict[str, Any], name: str) -> Any:
    value = step.get(name, _DEFAULTS.get(name))
    return {} if name == "required_skills" and not value else value


def _filter_changes(where: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out: list[Change] = []
    if old.get("when") != new.get("when"):
        out.append(Change("changed", where, show(old.get("when")), show(new.get("when")), "when"))
    old_steps, new_steps = old.get("steps", []), new.get("steps", [])
    for j in range(max(len(old_steps), len(new_steps))):
        at = f"{where} step {j + 1}"
        if j >= len(old_steps):
            out.append(Change("added", at, after=_step_summary(new_steps[j])))
        elif j >= len(new_steps):
            out.append(Change("removed", at, before=_step_summary(old_steps[j])))
        else:
            for name in STEP_FIELDS:
                a, b = _step_value(old_steps[j], name), _step_value(new_steps[j], name)
                if a != b:
                    out.append(Change("changed", at, show(a), show(b), name))
    return out


def _step_summary(step: dict[str, Any]) -> str:
    parts = [f"queue {step.get('queue')}"]
    for name in STEP_FIELDS[1:]:
        value = _step_value(step, name)
        if value not in (None, {}, False, 0):
            parts.append(f"{name.replace('_', ' ')} {show(value)}")
    return ", ".join(parts)


def diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[Change]:
    """Changes from ``old`` (None: nothing live yet) to ``new``, both rule-set bodies (JSON)."""
    old = old or {"filters": [], "default_filter": {"steps": []}, "on_final_timeout": None}
    out: list[Change] = []
    old_filters = {f["name"]: f for f in old.get("filters", [])}
    new_filters = {f["name"]: f for f in new.get("filters", [])}
    for name, f in new_filters.items():
        where = f"filter '{name}'"
        if name not in old_filters:
            out.append(Change("added", where, after=f"when {show(f.get('when'))}"))
            out += _filter_changes(where, {"when": f.get("when"), "steps": []}, f)
        else:
            out += _filter_changes(where, old_filters[name], f)
    for name, f in old_filters.items():
        if name not in new_filters:
            out.append(Change("removed", f"filter '{name}'", before=f"when {show(f.get('when'))}"))
    kept_old = [n for n in old_filters if n in new_filters]
    kept_new = [n for n in new_filters if n in old_filters]
    if kept_old != kept_new:
        out.append(Change("moved", "filter order", " → ".join(kept_old), " → ".join(kept_new), "order"))
    out += _filter_changes("default filter", old.get("default_filter", {}), new.get("default_filter", {}))
    if old.get("on_final_timeout") != new.get("on_final_timeout"):
        out.append(
            Change(
                "changed",
                "when the last step expires",
                show(old.get("on_final_timeout")),
                show(new.get("on_final_timeout")),
                "on_final_timeout",
            )
        )
    return out

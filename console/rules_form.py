"""The rules editor's form: a rule-set body shown as fields, and the posted fields turned back into
a body. No JavaScript keeps the state: every button (add, remove, move up or down) posts the whole
form and the page comes back rebuilt, so the form is the draft until it is saved.

Field names: ``f<i>.name``, ``f<i>.when``, ``f<i>.s<j>.<step field>`` for filter ``i``; the default
filter's steps are ``fd.s<j>.<field>``; ``on_final_timeout`` and ``comment``. Validation problems
(``body.filters[0].steps[1].queue``) come back keyed by these names, so each shows at its field.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

STEP_KEYS = (
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
_FLAGS = ("skip_if_unavailable", "required")
_INTS = ("priority", "priority_boost")
_SKILL_ITEM = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*[=:]\s*(-?\d+)\s*$")


def blank_step(queue: str = "") -> dict[str, Any]:
    step: dict[str, Any] = dict.fromkeys(STEP_KEYS, "")
    step["queue"] = queue
    step.update(dict.fromkeys(_FLAGS, False))
    return step


def _step_fields(step: Mapping[str, Any]) -> dict[str, Any]:
    out = blank_step(str(step.get("queue", "")))
    for key in ("target", "preferred", "order_by"):
        out[key] = step.get(key) or ""
    for key in (*_INTS, "timeout_seconds"):
        value = step.get(key)
        out[key] = "" if value is None or (key == "priority_boost" and value == 0) else f"{value:g}"
    for key in _FLAGS:
        out[key] = bool(step.get(key))
    skills = step.get("required_skills") or {}
    out["required_skills"] = ", ".join(f"{k}={v}" for k, v in skills.items())
    return out


def body_to_state(body: Mapping[str, Any], comment: str = "") -> dict[str, Any]:
    """The editor's state (strings as typed, booleans for checkboxes) from a rule-set body."""
    return {
        "filters": [
            {
                "name": f.get("name", ""),
                "when": f.get("when") or "",
                "steps": [_step_fields(s) for s in f.get("steps", [])],
            }
            for f in body.get("filters", [])
        ],
        "default": {"steps": [_step_fields(s) for s in body.get("default_filter", {}).get("steps", [])]},
        "default_name": body.get("default_filter", {}).get("name", "default"),
        "on_final_timeout": body.get("on_final_timeout", "callback"),
        "comment": comment,
    }


def _count(form: Mapping[str, Any], key: str) -> int:
    try:
        return max(0, min(int(str(form.get(key, "0"))), 200))
    except ValueError:
        return 0


def _form_steps(form: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    steps = []
    for j in range(_count(form, f"{prefix}.steps")):
        p = f"{prefix}.s{j}."
        step = blank_step()
        for key in STEP_KEYS:
            if key in _FLAGS:
                step[key] = form.get(p + key) in ("on", "true", "1")
            else:
                step[key] = str(form.get(p + key, "")).strip()
        steps.append(step)
    return steps


def form_to_state(form: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "filters": [
            {
                "name": str(form.get(f"f{i}.name", "")).strip(),
                "when": str(form.get(f"f{i}.when", "")).strip(),
                "steps": _form_steps(form, f"f{i}"),
            }
            for i in range(_count(form, "filters"))
        ],
        "default": {"steps": _form_steps(form, "fd")},
        "default_name": str(form.get("default_name", "default")).strip() or "default",
        "on_final_timeout": str(form.get("on_final_timeout", "")).strip(),
        "comment": str(form.get("comment", "")).strip(),
    }


def _number(text: str) -> Any:
    """An int or float when the text is one; otherwise the text, for validation to name the field."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _skills(text: str, field: str, errors: dict[str, str]) -> dict[str, int]:
    skills: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        m = _SKILL_ITEM.match(item)
        if m is None:
            errors[field] = f"write skills as name=level, separated by commas (not {item!r})"
            continue
        skills[m.group(1)] = int(m.group(2))
    return skills


def _step_body(step: Mapping[str, Any], prefix: str, errors: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"queue": step["queue"]}
    for key in ("target", "preferred", "order_by"):
        if step[key]:
            out[key] = step[key]
    for key in (*_INTS, "timeout_seconds"):
        if step[key] != "":
            out[key] = _number(step[key])
    for key in _FLAGS:
        if step[key]:
            out[key] = True
    skills = _skills(step["required_skills"], f"{prefix}.required_skills", errors)
    if skills:
        out["required_skills"] = skills
    return out


def state_to_body(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The rule-set body to validate and save, and problems found before validation (by field)."""
    errors: dict[str, str] = {}
    body = {
        "filters": [
            {
                "name": f["name"],
                "when": f["when"] or None,
                "steps": [_step_body(s, f"f{i}.s{j}", errors) for j, s in enumerate(f["steps"])],
            }
            for i, f in enumerate(state["filters"])
        ],
        "default_filter": {
            "name": state["default_name"],
            "steps": [_step_body(s, f"fd.s{j}", errors) for j, s in enumerate(state["default"]["steps"])],
        },
        "on_final_timeout": state["on_final_timeout"],
    }
    return body, errors


_PATH = re.compile(r"^body\.(?P<rest>.*)$")


def field_of(path: str) -> str:
    """``body.filters[0].steps[1].queue`` -> ``f0.s1.queue`` (the form field showing the problem)."""
    m = _PATH.match(path)
    rest = m.group("rest") if m else path
    rest = re.sub(r"^filters\[(\d+)\]", r"f\1", rest)
    rest = re.sub(r"^default_filter", "fd", rest)
    rest = re.sub(r"\.?steps\[(\d+)\]", r".s\1", rest)
    rest = re.sub(r"\.required_skills\..*$", ".required_skills", rest)
    if rest == "fd.when":
        return "default_name"
    return rest


def errors_by_field(problems: list[dict[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in problems:
        key = field_of(p["field"])
        out[key] = f"{out[key]}; {p['message']}" if key in out else p["message"]
    return out


def _steps_of(state: dict[str, Any], where: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = (
        state["default"]["steps"] if where == "d" else state["filters"][int(where)]["steps"]
    )
    return steps


def _swap(items: list[Any], i: int, j: int) -> None:
    if 0 <= i < len(items) and 0 <= j < len(items):
        items[i], items[j] = items[j], items[i]


def apply_op(state: dict[str, Any], op: str, *, first_queue: str = "") -> tuple[dict[str, Any], str]:
    """The state after one editing button (``add-step:0``, ``up-filter:2``, ``remove-step:d:1``...)
    and the id of the field to focus next. Unknown or out-of-range operations change nothing."""
    state = copy.deepcopy(state)
    parts = op.split(":")
    name, args = parts[0], parts[1:]
    try:
        if name == "add-filter":
            state["filters"].append({"name": "", "when": "", "steps": [blank_step(first_queue)]})
            return state, f"f{len(state['filters']) - 1}.name"
        if name == "remove-filter":
            del state["filters"][int(args[0])]
            return state, "add-filter"
        if name in ("up-filter", "down-filter"):
            i = int(args[0])
            j = i - 1 if name == "up-filter" else i + 1
            _swap(state["filters"], i, j)
            return state, f"f{max(0, min(j, len(state['filters']) - 1))}.name"
        steps = _steps_of(state, args[0])
        prefix = "fd" if args[0] == "d" else f"f{args[0]}"
        if name == "add-step":
            steps.append(blank_step(steps[-1]["queue"] if steps else first_queue))
            return state, f"{prefix}.s{len(steps) - 1}.queue"
        j = int(args[1])
        if name == "remove-step":
            del steps[j]
            return state, f"{prefix}.add-step"
        if name in ("up-step", "down-step"):
            k = j - 1 if name == "up-step" else j + 1
            _swap(steps, j, k)
            return state, f"{prefix}.s{max(0, min(k, len(steps) - 1))}.queue"
    except (IndexError, ValueError):
        pass
    return state, ""


def describe(field: str) -> str:
    """``f0.s1.queue`` -> "Filter 1, step 2: queue" (how the problem list names a field)."""
    m = re.match(r"^f(?P<f>\d+|d)(?:\.s(?P<s>\d+))?(?:\.(?P<rest>.+))?$", field)
    if m is None:
        return field.replace("_", " ")
    where = "Default filter" if m["f"] == "d" else f"Filter {int(m['f']) + 1}"
    if m["s"] is not None:
        where += f", step {int(m['s']) + 1}"
    return f"{where}: {(m['rest'] or '').replace('_', ' ')}".rstrip(": ")


def conditions(state: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Every condition in the form: field name -> (kind, text)."""
    out: dict[str, tuple[str, str]] = {}
    for i, f in enumerate(state["filters"]):
        out[f"f{i}.when"] = ("when", f["when"])
    for prefix, steps in [(f"f{i}", f["steps"]) for i, f in enumerate(state["filters"])] + [
        ("fd", state["default"]["steps"])
    ]:
        for j, step in enumerate(steps):
            if step["target"]:
                out[f"{prefix}.s{j}.target"] = ("target", step["target"])
    return out

"""The rules editor's form: a body shown as fields and read back unchanged; editing buttons;
validation paths mapped to the field that shows them."""

from __future__ import annotations

from console import rules_form
from demo.rules import DEFAULT_RULE_SET
from routing.rules import RuleSet
from tests.helpers import rules_form_data


def test_a_body_survives_the_form_round_trip() -> None:
    body = DEFAULT_RULE_SET.model_dump(mode="json", exclude={"version"})
    state = rules_form.form_to_state(rules_form_data(rules_form.body_to_state(body)))
    again, errors = rules_form.state_to_body(state)
    assert errors == {}
    assert RuleSet.model_validate(again) == RuleSet.model_validate(body)


def test_editing_buttons() -> None:
    state = rules_form.body_to_state(DEFAULT_RULE_SET.model_dump(mode="json"))
    names = [f["name"] for f in state["filters"]]
    moved, focus = rules_form.apply_op(state, "up-filter:1")
    assert [f["name"] for f in moved["filters"]][:2] == [names[1], names[0]] and focus == "f0.name"
    added, focus = rules_form.apply_op(state, "add-step:d")
    assert len(added["default"]["steps"]) == len(state["default"]["steps"]) + 1 and focus.startswith("fd.s")
    gone, _ = rules_form.apply_op(state, "remove-step:0:1")
    assert len(gone["filters"][0]["steps"]) == len(state["filters"][0]["steps"]) - 1
    same, focus = rules_form.apply_op(state, "remove-filter:99")
    assert same == state and focus == ""


def test_problems_come_back_at_their_field() -> None:
    assert rules_form.field_of("body.filters[2].steps[1].queue") == "f2.s1.queue"
    assert rules_form.field_of("body.default_filter.steps[0].timeout_seconds") == "fd.s0.timeout_seconds"
    assert rules_form.field_of("body.filters[0].steps[0].required_skills.cards") == "f0.s0.required_skills"
    assert rules_form.field_of("body.filters[0].when") == "f0.when"
    assert rules_form.field_of("body.on_final_timeout") == "on_final_timeout"
    assert rules_form.describe("f0.s1.timeout_seconds") == "Filter 1, step 2: timeout seconds"
    assert rules_form.describe("fd.s0.queue") == "Default filter, step 1: queue"
    assert rules_form.describe("f2.when") == "Filter 3: when"
    assert rules_form.describe("on_final_timeout") == "on final timeout"
    state = rules_form.body_to_state(DEFAULT_RULE_SET.model_dump(mode="json"))
    state["filters"][0]["steps"][0]["required_skills"] = "cards three"
    state["filters"][0]["steps"][0]["priority"] = "high"
    body, errors = rules_form.state_to_body(state)
    assert "name=level" in errors["f0.s0.required_skills"]
    assert body["filters"][0]["steps"][0]["priority"] == "high"  # left for validation to name

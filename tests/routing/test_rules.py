"""Rule sets: validation (every bad input names its path) and evaluation (first match, steps by age)."""

from __future__ import annotations

from typing import Any

import pytest

from demo.rules import DEFAULT_RULE_SET, DEMO_OVERFLOW, DEMO_QUEUES, DEMO_SKILLS
from routing.rules import (
    Filter,
    RuleSet,
    Step,
    evaluate,
    validate_rule_set,
)

QUEUES = set(DEMO_QUEUES)
SKILLS = set(DEMO_SKILLS)


def errors_of(rs: RuleSet, overflow: dict[str, str | None] | None = None) -> dict[str, str]:
    errs = validate_rule_set(rs, known_queues=QUEUES, known_skills=SKILLS, queue_overflow_map=overflow or {})
    return {e.path: e.message for e in errs}


def ruleset(*filters: Filter, final: str = "callback", default: Filter | None = None) -> RuleSet:
    return RuleSet(
        filters=list(filters),
        default_filter=default or Filter(name="default", steps=[Step(queue="retail")]),
        on_final_timeout=final,
    )


def test_the_demo_rule_set_is_valid() -> None:
    assert errors_of(DEFAULT_RULE_SET, DEMO_OVERFLOW) == {}


def test_a_valid_minimal_rule_set_has_no_errors() -> None:
    rs = ruleset(Filter(name="voice", when='channel == "voice"', steps=[Step(queue="cards")]))
    assert errors_of(rs) == {}


@pytest.mark.parametrize(
    ("step", "path", "fragment"),
    [
        (Step(queue="nowhere"), "filters[1].steps[0].queue", "unknown queue 'nowhere'"),
        (
            Step(queue="retail", target="skills.cards >= 'x'"),
            "filters[1].steps[0].target",
            "'>=' needs numbers",
        ),
        (
            Step(queue="retail", target="seniority > 3"),
            "filters[1].steps[0].target",
            "unknown attribute 'seniority'",
        ),
        (Step(queue="retail", timeout_seconds=-5), "filters[1].steps[0].timeout_seconds", "negative"),
        (
            Step(queue="retail", required_skills={"juggling": 2}),
            "filters[1].steps[0].required_skills.juggling",
            "unknown skill",
        ),
        (
            Step(queue="retail", required_skills={"cards": 7}),
            "filters[1].steps[0].required_skills.cards",
            "outside 1..5",
        ),
        (Step(queue="retail", required=True), "filters[1].steps[0].required", "preferred step"),
    ],
)
def test_bad_step_is_reported_with_its_path(step: Step, path: str, fragment: str) -> None:
    ok = Filter(name="ok", when="true", steps=[Step(queue="retail")])
    rs = ruleset(ok, Filter(name="bad", when="true", steps=[step]))
    errs = errors_of(rs)
    assert path in errs, errs
    assert fragment in errs[path]


def test_unknown_attribute_and_type_mismatch_in_when() -> None:
    rs = ruleset(
        Filter(name="a", when='customer.tierr == "gold"', steps=[Step(queue="retail")]),
        Filter(name="b", when="queue.depth > 'ten'", steps=[Step(queue="retail")]),
    )
    errs = errors_of(rs)
    assert "unknown attribute 'customer.tierr' at column 1" in errs["filters[0].when"]
    assert "'>' needs numbers" in errs["filters[1].when"]


def test_non_increasing_timeouts_and_forever_before_the_last_step() -> None:
    rs = ruleset(
        Filter(
            name="steps",
            when="true",
            steps=[
                Step(queue="retail", timeout_seconds=30),
                Step(queue="retail", timeout_seconds=30),
                Step(queue="retail", timeout_seconds=None),
                Step(queue="retail", timeout_seconds=90),
            ],
        )
    )
    errs = errors_of(rs)
    assert "must increase" in errs["filters[0].steps[1].timeout_seconds"]
    assert "only the last step may wait forever" in errs["filters[0].steps[2].timeout_seconds"]
    assert "filters[0].steps[0].timeout_seconds" not in errs
    assert "filters[0].steps[3].timeout_seconds" not in errs


def test_empty_filters_and_empty_steps() -> None:
    errs = errors_of(ruleset())
    assert "at least one filter" in errs["filters"]
    errs = errors_of(ruleset(Filter(name="x", when="true", steps=[])))
    assert "at least one step" in errs["filters[0].steps"]


def test_when_rules_for_default_and_ordinary_filters() -> None:
    rs = ruleset(
        Filter(name="x", when=None, steps=[Step(queue="retail")]),
        default=Filter(name="default", when="true", steps=[Step(queue="retail")]),
    )
    errs = errors_of(rs)
    assert "only the default filter may omit" in errs["filters[0].when"]
    assert "must not have a condition" in errs["default_filter.when"]


def test_duplicate_filter_names() -> None:
    f = Filter(name="same", when="true", steps=[Step(queue="retail")])
    assert "duplicate filter name" in errors_of(ruleset(f, f))["filters[1].name"]


def test_unknown_final_action() -> None:
    errs = errors_of(ruleset(Filter(name="x", when="true", steps=[Step(queue="retail")]), final="pigeon"))
    assert "neither a known queue" in errs["on_final_timeout"]


def test_overflow_cycle_in_queue_map() -> None:
    rs = ruleset(Filter(name="x", when="true", steps=[Step(queue="retail")]))
    errs = errors_of(rs, {"cards": "mortgages", "mortgages": "collections", "collections": "cards"})
    assert errs["queue_overflow_map.cards"] == "overflow cycle: cards -> mortgages -> collections -> cards"


def test_overflow_cycle_through_on_final_timeout() -> None:
    # Last step of "x" times out in cards -> on_final_timeout retail -> queue overflow back to cards.
    rs = ruleset(
        Filter(name="x", when="true", steps=[Step(queue="cards", timeout_seconds=60)]),
        final="retail",
    )
    errs = errors_of(rs, {"retail": "cards"})
    assert "overflow cycle" in errs["on_final_timeout"]
    assert "retail -> cards" in errs["on_final_timeout"] or "cards -> retail" in errs["on_final_timeout"]
    # Without the queue edge there is no cycle.
    assert errors_of(rs, {"retail": None}) == {}


# --------------------------------------------------------------------------- evaluation

STEPPED = RuleSet(
    version=3,
    filters=[
        Filter(
            name="voice-gold",
            when='channel == "voice" and customer.tier == "gold"',
            steps=[Step(queue="cards")],
        ),
        Filter(
            name="voice",
            when='channel == "voice"',
            steps=[
                Step(queue="mortgages", timeout_seconds=30, required_skills={"mortgages": 4}, priority=5),
                Step(
                    queue="mortgages", timeout_seconds=90, required_skills={"mortgages": 1}, priority_boost=2
                ),
                Step(queue="retail", timeout_seconds=300, target="skills.retail_banking >= 1"),
            ],
        ),
    ],
    default_filter=Filter(name="default", steps=[Step(queue="retail")]),
    on_final_timeout="callback",
)


def route(ctx: dict[str, Any], now: float = 1_000_000.0, **kw: Any) -> Any:
    return evaluate(STEPPED, ctx, now, **kw)


def test_first_matching_filter_wins() -> None:
    r = route({"channel": "voice", "customer.tier": "gold"})
    assert (r.filter_name, r.queue, r.step_index) == ("voice-gold", "cards", 0)
    r = route({"channel": "voice", "customer.tier": "silver"})
    assert (r.filter_name, r.queue) == ("voice", "mortgages")


def test_default_filter_catches_the_rest() -> None:
    r = route({"channel": "chat"})
    assert (r.filter_name, r.queue, r.step_index, r.final_action) == ("default", "retail", 0, None)


@pytest.mark.parametrize(
    ("age", "step", "queue", "priority", "skills"),
    [
        (0, 0, "mortgages", 5, {"mortgages": 4}),
        (29.9, 0, "mortgages", 5, {"mortgages": 4}),
        (30, 1, "mortgages", 9, {"mortgages": 1}),  # base priority 7 + boost 2
        (89, 1, "mortgages", 9, {"mortgages": 1}),
        (90, 2, "retail", 7, {}),
    ],
)
def test_step_is_chosen_by_age(
    age: float, step: int, queue: str, priority: int, skills: dict[str, int]
) -> None:
    now = 1_000_000.0
    r = route({"channel": "voice", "interaction.started_at": now - age, "interaction.priority": 7}, now)
    assert (r.step_index, r.queue, r.effective_priority, dict(r.required_skills)) == (
        step,
        queue,
        priority,
        skills,
    )
    assert r.ruleset_version == 3


def test_after_the_last_step_the_final_action_fires() -> None:
    r = route({"channel": "voice", "interaction.age": 301})
    assert (r.step_index, r.queue, r.final_action) == (3, None, "callback")
    overflow = STEPPED.model_copy(update={"on_final_timeout": "collections"})
    r = evaluate(overflow, {"channel": "voice", "interaction.age": 301}, 0)
    assert (r.queue, r.final_action) == ("collections", "overflow")


def test_pinned_filter_keeps_routing_after_attributes_change() -> None:
    r = route({"channel": "chat", "interaction.age": 40}, filter_name="voice")
    assert (r.filter_name, r.step_index) == ("voice", 1)


def test_skip_if_unavailable_consults_the_availability_check() -> None:
    rs = RuleSet(
        filters=[
            Filter(
                name="x",
                when="true",
                steps=[
                    Step(queue="cards", timeout_seconds=20, skip_if_unavailable=True),
                    Step(queue="retail"),
                ],
            )
        ],
        default_filter=Filter(name="default", steps=[Step(queue="retail")]),
        on_final_timeout="voicemail",
    )
    assert evaluate(rs, {}, 0, available=lambda step, pref: True).queue == "cards"
    r = evaluate(rs, {}, 0, available=lambda step, pref: step.queue != "cards")
    assert (r.queue, r.step_index) == ("retail", 1)


def test_clock_attributes_come_from_now_unless_given() -> None:
    rs = RuleSet(
        filters=[Filter(name="evening", when="time.hour >= 18", steps=[Step(queue="collections")])],
        default_filter=Filter(name="default", steps=[Step(queue="retail")]),
        on_final_timeout="callback",
    )
    evening_utc = 1_700_000_000 - (1_700_000_000 % 86400) + 19 * 3600
    assert evaluate(rs, {}, evening_utc).queue == "collections"
    assert evaluate(rs, {"time.hour": 9}, evening_utc).queue == "retail"


def test_demo_platinum_goes_to_relationship_manager_first_then_relaxes() -> None:
    ctx = {"customer.tier": "platinum", "customer.relationship_manager": "rm-7", "channel": "voice"}
    r = evaluate(DEFAULT_RULE_SET, {**ctx, "interaction.age": 0}, 0)
    assert (r.queue, r.preferred_agent, r.preferred_required) == ("private-banking", "rm-7", True)
    r = evaluate(DEFAULT_RULE_SET, {**ctx, "interaction.age": 31}, 0)
    assert (r.queue, r.preferred_agent, dict(r.required_skills)) == (
        "private-banking",
        None,
        {"private_banking": 4},
    )
    r = evaluate(DEFAULT_RULE_SET, {**ctx, "interaction.age": 100}, 0)
    assert dict(r.required_skills) == {"private_banking": 1}
    r = evaluate(DEFAULT_RULE_SET, {**ctx, "interaction.age": 1000}, 0)
    assert (r.queue, r.final_action) == ("retail", None)
    # No relationship manager: the preferred step is skipped; an unreachable one is skipped too.
    r = evaluate(DEFAULT_RULE_SET, {"customer.tier": "platinum", "interaction.age": 0}, 0)
    assert r.step_index == 1
    r = evaluate(DEFAULT_RULE_SET, {**ctx, "interaction.age": 0}, 0, available=lambda s, p: p != "rm-7")
    assert r.step_index == 1


def test_demo_seniors_topics_and_default() -> None:
    seniors = evaluate(DEFAULT_RULE_SET, {"customer.segments": ["senior"], "customer.language": "en"}, 0)
    assert (seniors.filter_name, seniors.queue, dict(seniors.required_skills)) == (
        "seniors",
        "seniors",
        {"seniors_care": 1},
    )
    assert seniors.effective_priority > evaluate(DEFAULT_RULE_SET, {}, 0).effective_priority
    zh = evaluate(DEFAULT_RULE_SET, {"customer.segments": ["senior"], "customer.language": "zh"}, 0)
    assert (zh.filter_name, zh.target) == ("seniors-own-language", "customer.language in languages")
    for topic, queue in [("cards", "cards"), ("mortgages", "mortgages"), ("collections", "collections")]:
        assert evaluate(DEFAULT_RULE_SET, {"interaction.topic": topic}, 0).queue == queue
    fraud = evaluate(DEFAULT_RULE_SET, {"interaction.topic": "card_fraud"}, 0)
    assert dict(fraud.required_skills) == {"card_fraud": 3}
    r = evaluate(DEFAULT_RULE_SET, {"customer.language": "en"}, 0)
    assert (r.filter_name, r.queue) == ("default", "retail")

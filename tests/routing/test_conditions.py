"""The routing condition language: parsing, precedence, type checking and error positions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.conditions import (
    AGENT_SCHEMA,
    INTERACTION_SCHEMA,
    TARGET_SCHEMA,
    ConditionError,
    compile_condition,
    tokenize,
)

CUSTOMER = {
    "channel": "voice",
    "customer.tier": "gold",
    "customer.segments": ("senior", "new"),
    "customer.language": "zh",
    "customer.do_not_contact": False,
    "interaction.age": 75.5,
    "queue.depth": 12,
    "time.hour": 19,
}


def ev(text: str, ctx: dict[str, Any] | None = None) -> bool:
    return compile_condition(text, INTERACTION_SCHEMA).evaluate(CUSTOMER if ctx is None else ctx)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('channel == "voice" and customer.tier in ["platinum","gold"]', True),
        ('channel == "chat" and customer.tier in ["platinum","gold"]', False),
        ('"senior" in customer.segments', True),
        ('"vip" in customer.segments', False),
        ('"vip" not in customer.segments', True),
        ("interaction.age > 60", True),
        ("interaction.age > 75.5", False),
        ("interaction.age >= 75.5", True),
        ("queue.depth > 10", True),
        ("queue.depth <= 11", False),
        ("time.hour >= 18", True),
        ("not customer.do_not_contact", True),
        ("customer.do_not_contact", False),
        ("customer.do_not_contact == false", True),
        ('customer.tier != "gold"', False),
        ("queue.depth in [1, 12, 30]", True),
        ("interaction.age in [75.5]", True),
        ("queue.depth > -1", True),
        ("'single' in ['single', \"double\"]", True),
        ('"a\\"b" == "a\\"b"', True),
        ("True and not False", True),
        ("customer.tier in []", False),
    ],
)
def test_evaluates(text: str, expected: bool) -> None:
    assert ev(text) is expected


def test_precedence_not_binds_tighter_than_and_tighter_than_or() -> None:
    # or < and < not: "true or false and false" is "true or (false and false)".
    assert ev("true or false and false") is True
    assert ev("(true or false) and false") is False
    # "not a == b" is "not (a == b)".
    assert ev('not channel == "chat"') is True
    assert ev("not true or true") is True  # (not true) or true
    assert ev("not (true or true)") is False
    assert ev("not not true") is True


def test_missing_declared_attributes_use_type_defaults() -> None:
    assert ev('customer.tier == ""', {}) is True
    assert ev("queue.depth == 0", {}) is True
    assert ev('"senior" in customer.segments', {}) is False
    assert ev("not customer.do_not_contact", {}) is True


def test_unknown_skill_is_int_zero_and_type_checked() -> None:
    cond = compile_condition('skills.mortgages >= 4 and "zh" in languages', AGENT_SCHEMA)
    assert cond.evaluate({"skills": {"mortgages": 5}, "languages": ("zh", "en")}) is True
    assert cond.evaluate({"skills": {"mortgages": 3}, "languages": ("zh",)}) is False
    assert compile_condition("skills.underwater_basket_weaving == 0", AGENT_SCHEMA).evaluate({"skills": {}})
    with pytest.raises(ConditionError, match="cannot compare int with str"):
        compile_condition('skills.cards == "high"', AGENT_SCHEMA)


def test_bind_freezes_the_interaction_scope() -> None:
    cond = compile_condition("customer.language in languages and skills.cards >= 2", TARGET_SCHEMA)
    for_zh = cond.bind(interaction={"customer.language": "zh"})
    for_de = cond.bind(interaction={"customer.language": "de"})
    agent = {"languages": ("zh", "en"), "skills": {"cards": 2}}
    assert for_zh(agent) is True
    assert for_de(agent) is False
    # A predicate that only reads the interaction folds to a constant.
    const = compile_condition('customer.language == "zh"', TARGET_SCHEMA).bind(
        interaction={"customer.language": "zh"}
    )
    assert const({}) is True
    assert cond.reads_scope("agent") and cond.reads_scope("interaction")


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("customer.teir == 'gold'", "unknown attribute 'customer.teir'", 1),
        ('channel == "voice" and foo > 1', "unknown attribute 'foo'", 24),
        ("channel == 3", "cannot compare str with int", 9),
        ('queue.depth > "10"', "'>' needs numbers", 13),
        ('"x" in channel', "right side of 'in' must be a list", 8),
        ('customer.segments in ["a"]', "left side of 'in' must be a single value", 1),
        ("1 in ['a', 'b']", "cannot test int membership", 3),
        ("['a', 1]", "list mixes str and int", 7),
        ("queue.depth", "condition must be a boolean, not int", 1),
        ("queue.depth and true", "'and' needs boolean operands, got int", 1),
        ("not queue.depth", "'not' needs boolean operands", 5),
        ("1 < 2 < 3", "chained comparisons are not supported", 7),
        ('(channel == "x"', "expected ')'", 16),
        ("channel ==", "expected a value, found end of condition", 11),
        ('channel = "x"', "unexpected character '='", 9),
        ("channel == 'x", "unterminated string", 12),
        ("", "empty condition", 1),
        ('channel == "a" "b"', "unexpected '\"b\"'", 16),
        ("[1, 2", "expected ',' or ']'", 6),
        ("skills.cards > 1", "unknown attribute 'skills.cards'", 1),  # agent-only in a `when`
    ],
)
def test_errors_name_the_problem_and_its_column(text: str, message: str, column: int) -> None:
    with pytest.raises(ConditionError) as info:
        compile_condition(text, INTERACTION_SCHEMA)
    assert message in info.value.message
    assert info.value.pos + 1 == column, info.value
    assert f"column {column}" in str(info.value)


def test_tokenizer_keeps_positions_and_keywords() -> None:
    toks = tokenize('not x.y in ["a"]')
    assert [(t.kind, t.text, t.pos) for t in toks] == [
        ("kw", "not", 0),
        ("name", "x.y", 4),
        ("kw", "in", 8),
        ("op", "[", 11),
        ("string", '"a"', 12),
        ("op", "]", 15),
        ("end", "", 16),
    ]


def test_never_uses_eval() -> None:
    # Python syntax that is not in the language is refused, not executed.
    for text in ["__import__('os').system('true')", "channel.__class__ == 'x'", "1 + 1 == 2"]:
        with pytest.raises(ConditionError):
            compile_condition(text, INTERACTION_SCHEMA)


@given(
    depth=st.integers(-100, 100),
    threshold=st.integers(-100, 100),
    a=st.booleans(),
    b=st.booleans(),
    c=st.booleans(),
)
def test_agrees_with_python_semantics(depth: int, threshold: int, a: bool, b: bool, c: bool) -> None:
    ctx = {"queue.depth": depth, "customer.do_not_contact": a, "customer.vulnerable": b}
    lit = str(c).lower()
    text = f"queue.depth > {threshold} or customer.do_not_contact and not customer.vulnerable == {lit}"
    expected = depth > threshold or (a and b != c)
    assert compile_condition(text, INTERACTION_SCHEMA).evaluate(ctx) is expected

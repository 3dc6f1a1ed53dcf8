"""What the editor says about a condition as it is typed: the parser's verdict with its position,
and whole-text completions for the word at the end (names, keywords, known values); and the diff
of two rule-set bodies."""

from __future__ import annotations

from demo.rules import DEFAULT_RULE_SET
from routing import condition_help, rules_diff

VALUES = {
    "tiers": ["gold", "platinum", "silver", "standard"],
    "languages": ["en", "yue", "zh"],
    "topics": ["card_fraud", "cards"],
    "skills": ["cards", "card_fraud"],
}


def test_verdict_points_at_the_problem() -> None:
    bad = condition_help.check('interaction.topic = "card_fraud"', "when")
    assert (bad.valid, bad.position, bad.column) == (False, 18, 19)
    assert bad.message == "unexpected character '='"
    unknown = condition_help.check('customer.tire == "gold"', "when")
    assert (unknown.message, unknown.position) == ("unknown attribute 'customer.tire'", 0)
    # An agent's attributes are for targets only.
    assert not condition_help.check('"yue" in languages', "when").valid
    assert condition_help.check('"yue" in languages', "target").valid
    assert condition_help.check('interaction.topic == "card_fraud"', "when").valid


def test_completions_for_names_keywords_and_values() -> None:
    assert condition_help.completions("customer.ti", "when", VALUES) == ["customer.tier"]
    assert condition_help.completions('customer.tier == "pl', "when", VALUES) == [
        'customer.tier == "platinum"'
    ]
    assert condition_help.completions("customer.language ==", "when", VALUES) == [
        'customer.language == "en"',
        'customer.language == "yue"',
        'customer.language == "zh"',
    ]
    assert condition_help.completions('channel == "voice" an', "when", VALUES) == ['channel == "voice" and']
    # A map family offers each known skill; targets also read the interaction.
    assert "skills.card_fraud" in condition_help.completions("skills.c", "target", VALUES)
    assert "skills.cards" not in condition_help.completions("skills.c", "when", VALUES)
    assert condition_help.completions('"y', "target", VALUES) == []  # no attribute before the string
    # Only a value of an agent attribute needs the agents' rows read.
    assert condition_help.value_source('"yue" in languages and customer.language == "') == "languages"
    assert condition_help.value_source("customer.tier == ") == "tiers"
    assert condition_help.value_source("customer.ti") is None


def test_diff_against_the_live_version() -> None:
    live = DEFAULT_RULE_SET.model_dump(mode="json", exclude={"version"})
    draft = DEFAULT_RULE_SET.model_dump(mode="json", exclude={"version"})
    draft["filters"][3]["steps"][0]["priority"] = 9  # card-fraud, first step
    draft["filters"].insert(
        0,
        {
            "name": "lost-cards",
            "when": 'interaction.topic == "lost"',
            "steps": [{"queue": "cards", "required_skills": {"cards": 2}, "timeout_seconds": None}],
        },
    )
    del draft["filters"][-1]
    draft["on_final_timeout"] = "voicemail"
    changes = rules_diff.diff(live, draft)
    shown = [(c.kind, c.where, c.field, c.before, c.after) for c in changes]
    assert ("added", "filter 'lost-cards'", "", "", 'when interaction.topic == "lost"') in shown
    assert ("added", "filter 'lost-cards' step 1", "", "", "queue cards, required skills cards=2") in shown
    assert ("changed", "filter 'card-fraud' step 1", "priority", "7", "9") in shown
    removed = live["filters"][-1]["name"]
    assert any(c.kind == "removed" and c.where == f"filter '{removed}'" for c in changes)
    assert (
        "changed",
        "when the last step expires",
        "on_final_timeout",
        live["on_final_timeout"],
        "voicemail",
    ) in shown
    assert not any(c.kind == "moved" for c in changes)  # the kept filters keep their order
    assert rules_diff.diff(live, live) == []

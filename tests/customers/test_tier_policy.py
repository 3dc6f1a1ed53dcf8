"""The value-tier policy: every threshold edge, caps, the negative floor and validation."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError

from customers.models import ValueTier
from customers.tier_policy import (
    DEFAULT_TIER_POLICY,
    PointsRule,
    TierInputs,
    TierPolicy,
    compute_tier,
    full_years,
    tier_for_points,
)

TODAY = date(2025, 3, 15)


def score(**kwargs) -> tuple[ValueTier, int, dict]:
    result = compute_tier(TierInputs(**kwargs), DEFAULT_TIER_POLICY, today=TODAY)
    return result.tier, result.points_total, {k: v.points for k, v in result.breakdown.items()}


# Balance alone reaches every tier below platinum (its cap is 100 < 120): exact thresholds in money.
@pytest.mark.parametrize(
    ("balance", "tier", "points"),
    [
        ("250000.00", ValueTier.SILVER, 25),  # exactly silver
        ("249999.99", ValueTier.STANDARD, 24),  # one cent below: the 25th unit is not complete
        ("240000.00", ValueTier.STANDARD, 24),  # one whole unit below
        ("600000.00", ValueTier.GOLD, 60),  # exactly gold
        ("599999.99", ValueTier.SILVER, 59),
        ("590000.00", ValueTier.SILVER, 59),
    ],
)
def test_balance_threshold_edges(balance: str, tier: ValueTier, points: int) -> None:
    got_tier, total, lines = score(relationship_balance=Decimal(balance))
    assert (got_tier, total, lines["balance"]) == (tier, points, points)


def test_platinum_edge_exact_and_one_unit_below() -> None:
    # 100 (balance cap) + 20 (tenure cap) = 120 = platinum exactly.
    at = score(relationship_balance=Decimal("1000000"), customer_since=date(2015, 3, 15))
    assert at[:2] == (ValueTier.PLATINUM, 120)
    # Tenure one day short of the 10th full year: 9 years -> 18 points -> 118 -> gold.
    below = score(relationship_balance=Decimal("1000000"), customer_since=date(2015, 3, 16))
    assert below[:2] == (ValueTier.GOLD, 118)
    assert below[2]["tenure"] == 18
    # One balance unit below the cap instead: 99 + 20 = 119 -> gold.
    unit_below = score(relationship_balance=Decimal("990000"), customer_since=date(2015, 3, 15))
    assert unit_below[:2] == (ValueTier.GOLD, 119)


@pytest.mark.parametrize(
    ("points", "tier"),
    [
        (120, ValueTier.PLATINUM),
        (119, ValueTier.GOLD),
        (60, ValueTier.GOLD),
        (59, ValueTier.SILVER),
        (25, ValueTier.SILVER),
        (24, ValueTier.STANDARD),
        (0, ValueTier.STANDARD),
        (-20, ValueTier.STANDARD),
    ],
)
def test_tier_for_points_at_every_edge(points: int, tier: ValueTier) -> None:
    assert tier_for_points(points, DEFAULT_TIER_POLICY.thresholds) is tier


def test_products_and_net_value_edges() -> None:
    # 5 products = 25 points = silver exactly; 4 = 20 = standard.
    assert score(products_held=5)[:2] == (ValueTier.SILVER, 25)
    assert score(products_held=4)[:2] == (ValueTier.STANDARD, 20)
    # Net value 25,000 = 25 points = silver; 24,999.99 -> 24 -> standard.
    assert score(annual_profit=Decimal("26000"), cost_to_serve=Decimal("1000"))[:2] == (ValueTier.SILVER, 25)
    assert score(annual_profit=Decimal("25999.99"), cost_to_serve=Decimal("1000"))[:2] == (
        ValueTier.STANDARD,
        24,
    )


def test_caps_apply_per_input() -> None:
    _, total, lines = score(
        relationship_balance=Decimal("50000000"),
        products_held=12,
        annual_profit=Decimal("900000"),
        customer_since=date(1980, 1, 1),
    )
    assert lines == {"balance": 100, "products": 30, "net_value": 50, "tenure": 20}
    assert total == 200
    result = compute_tier(TierInputs(products_held=12), today=TODAY)
    assert result.breakdown["products"].clamped
    assert result.breakdown["products"].unclamped == 60
    assert not result.breakdown["balance"].clamped


def test_negative_net_value_truncates_toward_zero_and_stops_at_the_floor() -> None:
    assert score(annual_profit=Decimal("0"), cost_to_serve=Decimal("999.99"))[2]["net_value"] == 0
    assert score(annual_profit=Decimal("0"), cost_to_serve=Decimal("1000"))[2]["net_value"] == -1
    assert score(annual_profit=Decimal("100"), cost_to_serve=Decimal("20100"))[2]["net_value"] == -20
    tier, total, lines = score(
        relationship_balance=Decimal("300000"), annual_profit=Decimal("0"), cost_to_serve=Decimal("1000000")
    )
    assert lines["net_value"] == -20  # floor, not -1000
    assert (tier, total) == (ValueTier.STANDARD, 10)


def test_tenure_counts_full_years_only() -> None:
    assert full_years(date(2020, 3, 15), TODAY) == 5
    assert full_years(date(2020, 3, 16), TODAY) == 4
    assert full_years(date(2020, 2, 29), date(2021, 2, 28)) == 0
    assert full_years(date(2020, 2, 29), date(2021, 3, 1)) == 1
    assert full_years(None, TODAY) == 0
    assert full_years(date(2030, 1, 1), TODAY) == 0  # future start date earns nothing


def test_breakdown_json_is_the_why_shown_to_agents() -> None:
    result = compute_tier(
        TierInputs(relationship_balance=Decimal("250000"), products_held=2, customer_since=date(2020, 1, 1)),
        today=TODAY,
        policy_version=7,
    )
    data = result.as_json()
    assert data["policy_version"] == 7
    assert data["tier"] == "silver"
    assert data["points_total"] == 25 + 10 + 0 + 10
    assert data["thresholds"] == {"platinum": 120, "gold": 60, "silver": 25}
    assert data["inputs"]["balance"] == {
        "raw": "250000.00",
        "units": 25,
        "points": 25,
        "cap": 100,
        "floor": 0,
        "clamped": False,
    }
    assert list(data["inputs"]) == ["balance", "products", "net_value", "tenure"]


def test_money_precision_does_not_change_the_breakdown() -> None:
    a = compute_tier(TierInputs(relationship_balance=Decimal("250000")), today=TODAY).as_json()
    b = compute_tier(TierInputs(relationship_balance=Decimal("250000.00")), today=TODAY).as_json()
    assert a == b


def _policy_dict(**overrides) -> dict:
    data = DEFAULT_TIER_POLICY.model_dump(mode="json")
    for path, value in overrides.items():
        node = data
        *parents, leaf = path.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return data


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"thresholds__gold": 120}, ("thresholds", "gold")),  # equal to platinum: not strictly descending
        ({"thresholds__silver": 61}, ("thresholds", "silver")),  # above gold
        ({"thresholds__silver": 0}, ("thresholds", "silver")),
        ({"balance__unit": "0"}, ("balance", "unit")),
        ({"tenure__unit": "-1"}, ("tenure", "unit")),
        ({"products__cap": -1}, ("products", "cap")),
        ({"net_value__floor": 5}, ("net_value", "floor")),
        ({"balance__floor": -5}, ("balance",)),  # only net value may be negative
        ({"products__points_per_unit": -5}, ("products", "points_per_unit")),
        ({"balance__points_per_unit": 1.5}, ("balance", "points_per_unit")),
        ({"thresholds__bronze": 5}, ("thresholds", "bronze")),  # unknown field
    ],
)
def test_policy_validation_names_the_field(overrides: dict, loc: tuple) -> None:
    with pytest.raises(ValidationError) as info:
        TierPolicy.model_validate(_policy_dict(**overrides))
    assert [e["loc"] for e in info.value.errors()] == [loc]


def test_policy_roundtrips_through_json() -> None:
    data = DEFAULT_TIER_POLICY.model_dump(mode="json")
    assert TierPolicy.model_validate(data) == DEFAULT_TIER_POLICY
    assert PointsRule.model_validate({"unit": "0.5", "points_per_unit": 1, "cap": 3}).unit == Decimal("0.5")


# The worked examples published in docs/tier-policy.md must stay true.
@pytest.mark.parametrize(
    ("balance", "products", "net", "years", "points", "total", "tier"),
    [
        ("3000", 1, "-200", 1, (0, 5, 0, 2), 7, ValueTier.STANDARD),
        ("85000", 4, "1800", 6, (8, 20, 1, 12), 41, ValueTier.SILVER),
        ("600000", 2, "2500", 30, (60, 10, 2, 20), 92, ValueTier.GOLD),
        ("2400000", 7, "38000", 12, (100, 30, 38, 20), 188, ValueTier.PLATINUM),
        ("300000", 1, "-45000", 2, (30, 5, -20, 4), 19, ValueTier.STANDARD),
    ],
)
def test_documented_examples(balance, products, net, years, points, total, tier) -> None:
    got_tier, got_total, lines = score(
        relationship_balance=Decimal(balance),
        products_held=products,
        annual_profit=Decimal(net),
        customer_since=date(TODAY.year - years, TODAY.month, TODAY.day),
    )
    assert tuple(lines.values()) == points
    assert (got_total, got_tier) == (total, tier)

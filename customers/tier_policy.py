"""Value-tier policy: a documented, supervisor-tunable points score (pure; no database).

Each policy input earns ``points_per_unit`` for every *whole* ``unit`` of its raw value, then the
points are clamped to ``[floor, cap]``. The total decides the tier against descending thresholds.
All arithmetic is ``Decimal`` on the money side and whole points on the score side, so a value
exactly at a threshold always lands on the same side (no float edges). See docs/tier-policy.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from customers.models import ValueTier

# Order matters: it is the order the breakdown is shown to agents in.
POLICY_INPUTS = ("balance", "products", "net_value", "tenure")
_CENT = Decimal("0.01")


class PointsRule(BaseModel):
    """How one input turns into points: whole units x points_per_unit, clamped to [floor, cap]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: Decimal = Field(gt=0, max_digits=16, decimal_places=2, description="Size of one step of the input")
    points_per_unit: int = Field(ge=0, le=1000, description="Points earned per whole unit")
    cap: int = Field(ge=0, le=10_000, description="Most points this input can contribute")
    floor: int = Field(
        default=0, le=0, ge=-10_000, description="Fewest (most negative) points; 0 means no penalty"
    )


class TierThresholds(BaseModel):
    """Minimum total points per tier; anything below ``silver`` is standard."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    platinum: int = Field(gt=0, le=100_000)
    gold: int = Field(gt=0, le=100_000)
    silver: int = Field(gt=0, le=100_000)

    # Field validators (not a model validator) so a violation names the exact field, e.g.
    # body.thresholds.gold; pydantic validates fields in declaration order, so info.data holds
    # the higher tiers already.
    @field_validator("gold")
    @classmethod
    def _gold_below_platinum(cls, value: int, info: ValidationInfo) -> int:
        platinum = info.data.get("platinum")
        if platinum is not None and value >= platinum:
            raise ValueError(f"gold threshold must be below platinum ({platinum})")
        return value

    @field_validator("silver")
    @classmethod
    def _silver_below_gold(cls, value: int, info: ValidationInfo) -> int:
        gold = info.data.get("gold")
        if gold is not None and value >= gold:
            raise ValueError(f"silver threshold must be below gold ({gold})")
        return value


class TierPolicy(BaseModel):
    """The whole policy; stored as JSON in ``tier_policy_versions.policy``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    balance: PointsRule = Field(description="Relationship balance: deposits + assets under management")
    products: PointsRule = Field(description="Number of products held")
    net_value: PointsRule = Field(description="Net annual value: annual profit minus cost to serve")
    tenure: PointsRule = Field(description="Full years since the relationship started")
    thresholds: TierThresholds

    @field_validator("balance", "products", "tenure")
    @classmethod
    def _no_penalty(cls, rule: PointsRule) -> PointsRule:
        # Only net value can be negative; a floor elsewhere would be a penalty nobody can earn.
        if rule.floor != 0:
            raise ValueError("floor must be 0 for this input (only net_value can go negative)")
        return rule

    def rule(self, name: str) -> PointsRule:
        return getattr(self, name)


DEFAULT_TIER_POLICY = TierPolicy(
    balance=PointsRule(unit=Decimal("10000"), points_per_unit=1, cap=100),
    products=PointsRule(unit=Decimal("1"), points_per_unit=5, cap=30),
    net_value=PointsRule(unit=Decimal("1000"), points_per_unit=1, cap=50, floor=-20),
    tenure=PointsRule(unit=Decimal("1"), points_per_unit=2, cap=20),
    thresholds=TierThresholds(platinum=120, gold=60, silver=25),
)


class SupportsTierInputs(Protocol):
    """Anything carrying the policy inputs, e.g. a ``Customer`` row."""

    relationship_balance: Decimal
    products_held: int
    annual_profit: Decimal
    cost_to_serve: Decimal
    customer_since: date | None


@dataclass(frozen=True)
class TierInputs:
    relationship_balance: Decimal = Decimal("0")
    products_held: int = 0
    annual_profit: Decimal = Decimal("0")
    cost_to_serve: Decimal = Decimal("0")
    customer_since: date | None = None

    @classmethod
    def of(cls, source: SupportsTierInputs) -> TierInputs:
        return cls(
            relationship_balance=Decimal(source.relationship_balance or 0),
            products_held=int(source.products_held or 0),
            annual_profit=Decimal(source.annual_profit or 0),
            cost_to_serve=Decimal(source.cost_to_serve or 0),
            customer_since=source.customer_since,
        )


@dataclass(frozen=True)
class InputPoints:
    """One line of the "tier and why": raw value, whole units counted, points after clamping."""

    raw: Decimal
    units: int
    unclamped: int
    points: int
    cap: int
    floor: int

    @property
    def clamped(self) -> bool:
        return self.points != self.unclamped

    def as_json(self) -> dict[str, Any]:
        return {
            "raw": str(self.raw),
            "units": self.units,
            "points": self.points,
            "cap": self.cap,
            "floor": self.floor,
            "clamped": self.clamped,
        }


@dataclass(frozen=True)
class TierResult:
    tier: ValueTier
    points_total: int
    breakdown: dict[str, InputPoints]
    thresholds: TierThresholds
    policy_version: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The shape stored in ``Customer.tier_breakdown`` (no timestamps: recomputing is idempotent)."""
        return {
            "policy_version": self.policy_version,
            "tier": self.tier.value,
            "points_total": self.points_total,
            "thresholds": self.thresholds.model_dump(mode="json"),
            "inputs": {name: line.as_json() for name, line in self.breakdown.items()},
        }


def _cents(value: Decimal) -> Decimal:
    return Decimal(value).quantize(_CENT, rounding=ROUND_DOWN)


def full_years(since: date | None, today: date) -> int:
    """Completed years between ``since`` and ``today``; 0 for unknown or future dates."""
    if since is None or since > today:
        return 0
    years = today.year - since.year
    if (today.month, today.day) < (since.month, since.day):
        years -= 1
    return years


def points_for(raw: Decimal, rule: PointsRule) -> InputPoints:
    with localcontext() as ctx:
        ctx.prec = 40  # far beyond Numeric(16, 2); division never rounds a whole unit away
        # ROUND_DOWN truncates toward zero: 19,999 is one unit of 10,000, and -1,500 is -1 unit.
        units = (raw / rule.unit).to_integral_value(rounding=ROUND_DOWN)
    unclamped = int(units) * rule.points_per_unit  # int() also turns Decimal("-0") into 0
    points = max(rule.floor, min(rule.cap, unclamped))
    return InputPoints(
        raw=raw, units=int(units), unclamped=unclamped, points=points, cap=rule.cap, floor=rule.floor
    )


def tier_for_points(total: int, thresholds: TierThresholds) -> ValueTier:
    if total >= thresholds.platinum:
        return ValueTier.PLATINUM
    if total >= thresholds.gold:
        return ValueTier.GOLD
    if total >= thresholds.silver:
        return ValueTier.SILVER
    return ValueTier.STANDARD


def compute_tier(
    inputs: TierInputs | SupportsTierInputs,
    policy: TierPolicy = DEFAULT_TIER_POLICY,
    *,
    today: date,
    policy_version: int | None = None,
) -> TierResult:
    """Score ``inputs`` under ``policy``; ``today`` is injected so tenure is deterministic."""
    values = inputs if isinstance(inputs, TierInputs) else TierInputs.of(inputs)
    raw = {
        # Money at cent precision, as stored, so a freshly set 250000 and a reloaded 250000.00
        # give the same breakdown (recomputing must be a no-op when nothing changed).
        "balance": _cents(values.relationship_balance),
        "products": Decimal(values.products_held),
        "net_value": _cents(values.annual_profit - values.cost_to_serve),
        "tenure": Decimal(full_years(values.customer_since, today)),
    }
    breakdown = {name: points_for(raw[name], policy.rule(name)) for name in POLICY_INPUTS}
    total = sum(line.points for line in breakdown.values())
    return TierResult(
        tier=tier_for_points(total, policy.thresholds),
        points_total=total,
        breakdown=breakdown,
        thresholds=policy.thresholds,
        policy_version=policy_version,
    )

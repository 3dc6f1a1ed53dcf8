"""Pydantic shapes for the customers API (inputs forbid unknown fields)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from customers.models import ContactChannel, IdentityKind, ValueTier
from customers.tier_policy import TierPolicy

# Bank-defined tags are allowed besides KNOWN_SEGMENTS, but only as simple lower-case slugs so
# they stay safe to match on in rules and in JSON queries.
Segment = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$"),
    # Runs first (outermost): "Senior " is accepted as "senior" before the pattern check.
    BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v),
]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=16)]
Money = Annotated[Decimal, Field(max_digits=14, decimal_places=2)]
Balance = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)]


class IdentityBase(BaseModel):
    kind: IdentityKind
    value: str = Field(min_length=1, max_length=254)


class IdentityCreate(IdentityBase):
    model_config = ConfigDict(extra="forbid")

    verified: bool = False


class IdentityRead(IdentityBase):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    customer_id: uuid.UUID
    verified: bool
    created_at: datetime


class CustomerBase(BaseModel):
    display_name: str = Field(min_length=1, max_length=160)
    language: Language = "en"
    timezone: str = Field(default="Europe/London", min_length=1, max_length=64)
    date_of_birth: date | None = None
    segments: list[Segment] = Field(default_factory=list, max_length=50)

    relationship_balance: Balance = Decimal("0")
    products_held: int = Field(default=0, ge=0, le=1000)
    annual_profit: Money = Decimal("0")
    cost_to_serve: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)] = Decimal("0")
    customer_since: date | None = None

    relationship_manager_id: uuid.UUID | None = None
    preferred_channel: ContactChannel | None = None
    do_not_contact: bool = False
    marketing_consent: bool = False
    quiet_hours_start: time | None = None
    quiet_hours_end: time | None = None


class CustomerCreate(CustomerBase):
    model_config = ConfigDict(extra="forbid")

    identities: list[IdentityCreate] = Field(min_length=1, max_length=20)


# Columns that are NOT NULL: a PATCH may omit them but not null them.
_NOT_NULLABLE = (
    "display_name",
    "language",
    "timezone",
    "segments",
    "relationship_balance",
    "products_held",
    "annual_profit",
    "cost_to_serve",
    "do_not_contact",
    "marketing_consent",
)


class CustomerUpdate(BaseModel):
    """Partial update: only the fields present in the body change (``null`` clears optional ones)."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, min_length=1, max_length=160)
    language: Language | None = None
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    date_of_birth: date | None = None
    segments: list[Segment] | None = Field(default=None, max_length=50)

    relationship_balance: Balance | None = None
    products_held: int | None = Field(default=None, ge=0, le=1000)
    annual_profit: Money | None = None
    cost_to_serve: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)] | None = None
    customer_since: date | None = None

    relationship_manager_id: uuid.UUID | None = None
    preferred_channel: ContactChannel | None = None
    do_not_contact: bool | None = None
    marketing_consent: bool | None = None
    quiet_hours_start: time | None = None
    quiet_hours_end: time | None = None

    @model_validator(mode="after")
    def _required_columns_not_nulled(self) -> CustomerUpdate:
        for name in _NOT_NULLABLE:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class CustomerRead(BaseModel):
    # Plain types (not the input constraints): rows written by imports or older rules must still read.
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    display_name: str
    language: str
    timezone: str
    date_of_birth: date | None
    segments: list[str]
    relationship_balance: Decimal
    products_held: int
    annual_profit: Decimal
    cost_to_serve: Decimal
    customer_since: date | None
    relationship_manager_id: uuid.UUID | None
    preferred_channel: ContactChannel | None
    do_not_contact: bool
    marketing_consent: bool
    quiet_hours_start: time | None
    quiet_hours_end: time | None
    value_tier: ValueTier
    tier_breakdown: dict[str, Any]
    tier_computed_at: datetime | None
    merged_into_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    identities: list[IdentityRead]


class CustomerSummary(BaseModel):
    """A row in a search result (no breakdown or consent detail)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    display_name: str
    language: str
    value_tier: ValueTier
    segments: list[str]
    relationship_manager_id: uuid.UUID | None
    merged_into_id: uuid.UUID | None
    identities: list[IdentityRead]


class CustomerPage(BaseModel):
    items: list[CustomerSummary]
    total: int
    limit: int
    offset: int


class CustomerMerge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_customer_id: uuid.UUID


class TierPolicyRead(BaseModel):
    version: int = Field(description="0 is the built-in default (no stored version yet)")
    policy: TierPolicy
    created_at: datetime | None = None
    created_by_id: uuid.UUID | None = None


class TierPolicyUpdated(TierPolicyRead):
    recompute_job_id: str | None = Field(
        description="RQ job that re-tiers every customer under the new policy (null if not queued)"
    )

"""Column helpers shared by every domain's models."""

from __future__ import annotations

import enum

from sqlalchemy import BigInteger, Enum, Integer

# Autoincrementing 64-bit keys on PostgreSQL; SQLite only autoincrements INTEGER.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def str_enum(enum_cls: type[enum.Enum], length: int = 24, *, name: str | None = None) -> Enum:
    """Store a StrEnum as VARCHAR + CHECK, so adding a member needs no native type migration.

    ``name`` names the CHECK constraint: two columns of one enum in one table need two names."""
    return Enum(
        enum_cls,
        name=name or enum_cls.__name__.lower(),
        native_enum=False,
        create_constraint=True,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )

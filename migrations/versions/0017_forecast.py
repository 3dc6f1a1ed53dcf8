"""forecast overrides and holidays (issue #13 item 1)

Revision ID: 0017_forecast
Revises: 0016_experience_rollups
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import switchboard.db

revision: str = "0017_forecast"
down_revision: str | None = "0016_experience_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "forecast_holidays",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_forecast_holidays_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_forecast_holidays")),
    )
    op.create_table(
        "forecast_overrides",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("queue_name", sa.String(length=60), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("interval_minutes", sa.Integer(), nullable=False),
        sa.Column("interval_start", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("contacts", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("set_by", sa.Uuid(), nullable=True),
        sa.Column("set_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["set_by"], ["users.id"], name=op.f("fk_forecast_overrides_set_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forecast_overrides")),
        sa.UniqueConstraint(
            "queue_name",
            "channel",
            "interval_minutes",
            "interval_start",
            name="uq_forecast_overrides_interval",
        ),
    )


def downgrade() -> None:
    op.drop_table("forecast_overrides")
    op.drop_table("forecast_holidays")

"""experience_respondents_monthly: who answered per group and whole month, with the days they
answered below / at the group's service-level target, so the dashboard reads a year of respondents
as 12 rows per agent and group instead of ~365 (issue #12 item 2 at 10 million contacts a year).
Filled from the daily rows already rolled up.

Revision ID: 0023_respondents_monthly
Revises: 0022_interaction_link_indexes
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_respondents_monthly"
down_revision: str | None = "0022_interaction_link_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experience_respondents_monthly",
        sa.Column("dimension", sa.String(16), nullable=False),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("below_days", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("met_days", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint(
            "dimension", "key", "month", "agent_id", name=op.f("pk_experience_respondents_monthly")
        ),
    )
    op.create_index(
        "ix_experience_respondents_monthly_dimension_month",
        "experience_respondents_monthly",
        ["dimension", "month"],
    )
    # The months already rolled up (what experience.rollup writes for a month, frozen here).
    postgres = op.get_bind().dialect.name == "postgresql"
    month = "CAST(date_trunc('month', r.day) AS DATE)" if postgres else "date(r.day, 'start of month')"
    below = "d.sl_answered * 100 < d.sl_target_weight"
    op.execute(
        f"""INSERT INTO experience_respondents_monthly
                (dimension, key, month, agent_id, below_days, met_days)
            SELECT r.dimension, r.key, {month}, r.agent_id,
                   SUM(CASE WHEN d.sl_denominator > 0 AND {below} THEN 1 ELSE 0 END),
                   SUM(CASE WHEN d.sl_denominator > 0 AND NOT ({below}) THEN 1 ELSE 0 END)
            FROM experience_respondents r
            LEFT JOIN experience_daily d ON d.dimension = r.dimension AND d.key = r.key AND d.day = r.day
            GROUP BY r.dimension, r.key, {month}, r.agent_id"""
    )


def downgrade() -> None:
    op.drop_index(
        "ix_experience_respondents_monthly_dimension_month", table_name="experience_respondents_monthly"
    )
    op.drop_table("experience_respondents_monthly")

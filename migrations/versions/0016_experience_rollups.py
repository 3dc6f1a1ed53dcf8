"""experience dashboard rollups: per-day figures per dimension, respondents, tags, watermark
(issue #12 item 2)

Revision ID: 0016_experience_rollups
Revises: 0015_wallboard_thresholds
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import switchboard.db

revision: str = "0016_experience_rollups"
down_revision: str | None = "0015_wallboard_thresholds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CX = ("csat_n", "csat_sum", "nps_n", "nps_promoters", "nps_detractors", "ces_n", "ces_sum")
EX = ("pulse_n", "pulse_sum", "shift_n", "energy_sum", "workload_n", "workload_sum", "respondents")


def _counts(names: Sequence[str]) -> list[sa.Column]:
    return [sa.Column(name, sa.Integer(), nullable=False, server_default="0") for name in names]


def upgrade() -> None:
    op.create_table(
        "experience_daily",
        sa.Column("dimension", sa.String(16), nullable=False),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *_counts(CX),
        *_counts(EX),
        *_counts(("sl_answered", "sl_denominator")),
        sa.Column("sl_target_weight", sa.Float(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("dimension", "key", "day", name=op.f("pk_experience_daily")),
    )
    op.create_index("ix_experience_daily_dimension_day", "experience_daily", ["dimension", "day"])
    op.create_table(
        "experience_respondents",
        sa.Column("dimension", sa.String(16), nullable=False),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint(
            "dimension", "key", "day", "agent_id", name=op.f("pk_experience_respondents")
        ),
    )
    op.create_index("ix_experience_respondents_dimension_day", "experience_respondents", ["dimension", "day"])
    op.create_table(
        "experience_tag_daily",
        sa.Column("tag", sa.String(60), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *_counts(CX),
        sa.PrimaryKeyConstraint("tag", "day", name=op.f("pk_experience_tag_daily")),
    )
    op.create_table(
        "experience_rollup_state",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("watermark", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_experience_rollup_state")),
    )
    # The rollup finds what changed by creation time; pulses had no index on it.
    op.create_index("ix_agent_pulses_created_at", "agent_pulses", ["created_at"])
    op.create_index("ix_agent_pulses_interaction_id", "agent_pulses", ["interaction_id"])


def downgrade() -> None:
    op.drop_index("ix_agent_pulses_interaction_id", table_name="agent_pulses")
    op.drop_index("ix_agent_pulses_created_at", table_name="agent_pulses")
    op.drop_table("experience_rollup_state")
    op.drop_table("experience_tag_daily")
    op.drop_index("ix_experience_respondents_dimension_day", table_name="experience_respondents")
    op.drop_table("experience_respondents")
    op.drop_index("ix_experience_daily_dimension_day", table_name="experience_daily")
    op.drop_table("experience_daily")

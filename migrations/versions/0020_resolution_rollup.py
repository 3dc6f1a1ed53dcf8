"""experience_resolution_daily: first-contact resolution and repeats per day, queue and agent
(issue #12: the experience dashboard reads them precomputed)

Revision ID: 0020_resolution_rollup
Revises: 0019_presence_log
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_resolution_rollup"
down_revision: str | None = "0019_presence_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experience_resolution_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=36), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("handled", sa.Integer(), nullable=False),
        sa.Column("judged", sa.Integer(), nullable=False),
        sa.Column("resolved_first_time", sa.Integer(), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "scope", "key", name=op.f("pk_experience_resolution_daily")),
    )


def downgrade() -> None:
    op.drop_table("experience_resolution_daily")

"""durable per-interval queue statistics

Revision ID: 0004_stats
Revises: 0003
Create Date: 2026-11-23
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import switchboard.db

revision: str = "0004_stats"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = (
    "offered",
    "accepted",
    "rejected",
    "missed",
    "abandoned",
    "abandoned_within_sl",
    "answered_within_sl",
    "completed",
    "transferred",
)


def upgrade() -> None:
    op.create_table(
        "queue_intervals",
        sa.Column("queue_name", sa.String(length=60), nullable=False),
        sa.Column("interval_start", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in COUNTERS],
        sa.Column("answer_wait_seconds", sa.Float(), nullable=False),
        sa.Column("handle_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("queue_name", "interval_start", name=op.f("pk_queue_intervals")),
    )


def downgrade() -> None:
    op.drop_table("queue_intervals")

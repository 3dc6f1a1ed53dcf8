"""per-queue wallboard colours (queue_thresholds) and interactions by queued_at, read a few
seconds at a time by the wallboard's arrivals recorder (issue #11 item 1)

Revision ID: 0015_wallboard_thresholds
Revises: 0014_admin_teams_offer_timeout
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import switchboard.db

revision: str = "0015_wallboard_thresholds"
down_revision: str | None = "0014_admin_teams_offer_timeout"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "queue_thresholds",
        sa.Column("queue_id", sa.Uuid(), nullable=False),
        sa.Column("wait_warning_seconds", sa.Integer(), nullable=False),
        sa.Column("wait_critical_seconds", sa.Integer(), nullable=False),
        sa.Column("sl_warning_percent", sa.Integer(), nullable=False),
        sa.Column("sl_critical_percent", sa.Integer(), nullable=False),
        sa.Column("updated_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["queue_id"], ["queues.id"], name=op.f("fk_queue_thresholds_queue_id_queues"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["users.id"],
            name=op.f("fk_queue_thresholds_updated_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("queue_id", name=op.f("pk_queue_thresholds")),
    )
    op.create_index("ix_interactions_queued_at", "interactions", ["queued_at"])


def downgrade() -> None:
    op.drop_index("ix_interactions_queued_at", table_name="interactions")
    op.drop_table("queue_thresholds")

"""chat sessions and customer feedback (CSAT/NPS/CES)

Revision ID: 0004_chat
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import switchboard.db

revision: str = "0004_chat"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_feedback",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("interaction_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("csat", sa.Integer(), nullable=False),
        sa.Column("nps", sa.Integer(), nullable=True),
        sa.Column("ces", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("csat BETWEEN 1 AND 5", name=op.f("ck_customer_feedback_csat_range")),
        sa.CheckConstraint(
            "nps IS NULL OR nps BETWEEN 0 AND 10", name=op.f("ck_customer_feedback_nps_range")
        ),
        sa.CheckConstraint("ces IS NULL OR ces BETWEEN 1 AND 7", name=op.f("ck_customer_feedback_ces_range")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_customer_feedback_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_customer_feedback_interaction_id_interactions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_feedback")),
        sa.UniqueConstraint("interaction_id", name=op.f("uq_customer_feedback_interaction_id")),
    )
    op.create_index(op.f("ix_customer_feedback_customer_id"), "customer_feedback", ["customer_id"])
    op.create_index(op.f("ix_customer_feedback_created_at"), "customer_feedback", ["created_at"])
    op.create_table(
        "chat_sessions",
        sa.Column("interaction_id", sa.Uuid(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("senior_mode", sa.Boolean(), nullable=False),
        sa.Column("ended_by_customer_at", switchboard.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("transcript_email", sa.String(length=254), nullable=True),
        sa.Column("transcript_requested_at", switchboard.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_chat_sessions_interaction_id_interactions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("interaction_id", name=op.f("pk_chat_sessions")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_chat_sessions_token_sha256")),
    )


def downgrade() -> None:
    op.drop_table("chat_sessions")
    op.drop_index(op.f("ix_customer_feedback_created_at"), table_name="customer_feedback")
    op.drop_index(op.f("ix_customer_feedback_customer_id"), table_name="customer_feedback")
    op.drop_table("customer_feedback")

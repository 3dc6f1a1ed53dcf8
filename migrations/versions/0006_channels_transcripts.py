"""chat transcripts by email: when the transcript was sent, and the mailer's pending index

Revision ID: 0006_channels
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import switchboard.db

revision: str = "0006_channels"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = "transcript_email IS NOT NULL AND transcript_sent_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("chat_sessions") as batch:
        batch.add_column(
            sa.Column("transcript_sent_at", switchboard.db.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_index(
        "ix_chat_sessions_transcript_pending",
        "chat_sessions",
        ["interaction_id"],
        sqlite_where=sa.text(PENDING),
        postgresql_where=sa.text(PENDING),
    )


def downgrade() -> None:
    op.drop_index("ix_chat_sessions_transcript_pending", table_name="chat_sessions")
    with op.batch_alter_table("chat_sessions") as batch:
        batch.drop_column("transcript_sent_at")

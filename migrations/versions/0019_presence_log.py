"""agent_presence_log: every change of an agent's presence, for adherence (issue #13 item 4)

Revision ID: 0019_presence_log
Revises: 0018_schedules
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import switchboard.db
import switchboard.types

revision: str = "0019_presence_log"
down_revision: str | None = "0018_schedules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_presence_log",
        sa.Column("id", switchboard.types.BigIntPK, autoincrement=True, nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column(
            "presence",
            sa.Enum(
                "offline",
                "available",
                "busy",
                "wrap_up",
                "break",
                "training",
                "not_responding",
                name="presence",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=60), nullable=True),
        sa.Column("at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_presence_log_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_presence_log")),
    )
    op.create_index("ix_agent_presence_log_agent_at", "agent_presence_log", ["agent_id", "at"])
    # Each agent's current presence opens their log (from when it began, as far as anyone knows).
    op.execute(
        "INSERT INTO agent_presence_log (agent_id, presence, reason, at, by) "
        "SELECT id, presence, presence_reason, presence_since, 'migration' FROM agents "
        "WHERE presence_since IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_agent_presence_log_agent_at", table_name="agent_presence_log")
    op.drop_table("agent_presence_log")

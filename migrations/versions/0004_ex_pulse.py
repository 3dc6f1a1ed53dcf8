"""agent EX pulse (per interaction and per shift)

Revision ID: 0004_ex
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import switchboard.db

revision: str = "0004_ex"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_pulses",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("interaction_id", sa.Uuid(), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                "interaction", "shift", name="pulsekind", native_enum=False, create_constraint=True, length=24
            ),
            nullable=False,
        ),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("workload", sa.Integer(), nullable=True),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("comment", sa.String(length=1000), nullable=True),
        sa.Column("queue", sa.String(length=60), nullable=True),
        sa.Column("team", sa.String(length=60), nullable=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("created_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("score BETWEEN 1 AND 5", name=op.f("ck_agent_pulses_score_range")),
        sa.CheckConstraint(
            "workload IS NULL OR workload BETWEEN 1 AND 5", name=op.f("ck_agent_pulses_workload_range")
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_pulses_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_agent_pulses_interaction_id_interactions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_pulses")),
        sa.UniqueConstraint(
            "agent_id", "interaction_id", name=op.f("uq_agent_pulses_agent_id_interaction_id")
        ),
    )
    with op.batch_alter_table("agent_pulses", schema=None) as batch_op:
        batch_op.create_index("ix_agent_pulses_day_kind", ["day", "kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_agent_pulses_agent_id"), ["agent_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("agent_pulses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_pulses_agent_id"))
        batch_op.drop_index("ix_agent_pulses_day_kind")
    op.drop_table("agent_pulses")

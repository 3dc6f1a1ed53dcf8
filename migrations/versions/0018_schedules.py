"""shift templates, agent contracts, schedules and their shifts (issue #13 item 3)

Revision ID: 0018_schedules
Revises: 0017_forecast
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import switchboard.db

revision: str = "0018_schedules"
down_revision: str | None = "0017_forecast"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shift_templates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("earliest_start_minute", sa.Integer(), nullable=False),
        sa.Column("latest_start_minute", sa.Integer(), nullable=False),
        sa.Column("start_step_minutes", sa.Integer(), nullable=False),
        sa.Column("length_minutes", sa.Integer(), nullable=False),
        sa.Column(
            "breaks",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shift_templates")),
        sa.UniqueConstraint("name", name=op.f("uq_shift_templates_name")),
    )
    op.create_table(
        "schedules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("queue_name", sa.String(length=60), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("time_zone", sa.String(length=60), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "published",
                name="schedulestatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column(
            "requirement",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "solver",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_at", switchboard.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_schedules_created_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    op.create_table(
        "agent_contracts",
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("min_minutes_week", sa.Integer(), nullable=False),
        sa.Column("max_minutes_week", sa.Integer(), nullable=False),
        sa.Column("max_days_week", sa.Integer(), nullable=False),
        sa.Column("min_rest_minutes", sa.Integer(), nullable=False),
        sa.Column(
            "templates",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "availability",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_contracts_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agent_contracts")),
    )
    op.create_table(
        "scheduled_shifts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("schedule_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("template", sa.String(length=60), nullable=False),
        sa.Column("start", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "breaks",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_scheduled_shifts_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["schedules.id"],
            name=op.f("fk_scheduled_shifts_schedule_id_schedules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_shifts")),
    )
    with op.batch_alter_table("scheduled_shifts", schema=None) as batch_op:
        batch_op.create_index("ix_scheduled_shifts_agent_start", ["agent_id", "start"], unique=False)
        batch_op.create_index(batch_op.f("ix_scheduled_shifts_schedule_id"), ["schedule_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("scheduled_shifts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scheduled_shifts_schedule_id"))
        batch_op.drop_index("ix_scheduled_shifts_agent_start")

    op.drop_table("scheduled_shifts")
    op.drop_table("agent_contracts")
    op.drop_table("schedules")
    op.drop_table("shift_templates")

"""shift_requests: shift swaps and time off (issue #13 item 5)

Revision ID: 0021_shift_requests
Revises: 0020_resolution_rollup
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import switchboard.db

revision: str = "0021_shift_requests"
down_revision: str | None = "0020_resolution_rollup"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, nullable: bool) -> sa.Column:
    return sa.Column(name, switchboard.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "shift_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "swap",
                "time_off",
                name="shift_request_kind",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column(
            "state",
            sa.Enum(
                "requested",
                "accepted",
                "approved",
                "refused",
                "cancelled",
                name="shift_request_state",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("schedule_id", sa.Uuid(), nullable=False),
        sa.Column("shift_id", sa.Uuid(), nullable=False),
        _at("shift_start", False),
        _at("shift_end", False),
        sa.Column("peer_id", sa.Uuid(), nullable=True),
        sa.Column("peer_shift_id", sa.Uuid(), nullable=True),
        _at("peer_shift_start", True),
        _at("peer_shift_end", True),
        _at("off_start", True),
        _at("off_end", True),
        sa.Column("note", sa.String(length=280), nullable=False),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decision_note", sa.String(length=280), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _at("created_at", False),
        _at("updated_at", False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_shift_requests_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["peer_id"], ["agents.id"], name=op.f("fk_shift_requests_peer_id_agents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["schedules.id"],
            name=op.f("fk_shift_requests_schedule_id_schedules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["users.id"], name=op.f("fk_shift_requests_decided_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shift_requests")),
    )
    op.create_index("ix_shift_requests_agent", "shift_requests", ["agent_id", "created_at"])
    op.create_index("ix_shift_requests_peer", "shift_requests", ["peer_id", "created_at"])
    op.create_index("ix_shift_requests_state", "shift_requests", ["state", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_shift_requests_state", table_name="shift_requests")
    op.drop_index("ix_shift_requests_peer", table_name="shift_requests")
    op.drop_index("ix_shift_requests_agent", table_name="shift_requests")
    op.drop_table("shift_requests")

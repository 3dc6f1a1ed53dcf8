"""alert rules, follow-ups, improvement items; teams and queue owners

Revision ID: 0013_follow_ups
Revises: 0012_survey_invitations
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import switchboard.db
import switchboard.pii

revision: str = "0013_follow_ups"
down_revision: str | None = "0012_survey_invitations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("seed_key", sa.String(length=60), nullable=True),
        sa.Column(
            "signal",
            sa.Enum(
                "feedback",
                "repeat_contact",
                "service_level",
                "ex_pulse",
                "abandon",
                name="signalkind",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("condition", sa.String(length=2000), nullable=False),
        sa.Column(
            "owner_role",
            sa.Enum(
                "team_lead",
                "relationship_manager",
                "queue_owner",
                "supervisors",
                name="ownerrole",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column(
            "escalation_role",
            sa.Enum(
                "team_lead",
                "relationship_manager",
                "queue_owner",
                "supervisors",
                name="escalationrole",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("due_minutes", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["users.id"],
            name=op.f("fk_alert_rules_updated_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_alert_rules_name")),
        sa.UniqueConstraint("seed_key", name=op.f("uq_alert_rules_seed_key")),
    )
    op.create_table(
        "improvements",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("title", switchboard.pii.MaskedString(length=200), nullable=False),
        sa.Column("topic", sa.String(length=80), nullable=False),
        sa.Column("cause", sa.String(length=80), nullable=False),
        sa.Column("owner_user_id", sa.Uuid(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "in_progress",
                "done",
                name="improvementstatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("done_at", switchboard.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_improvements_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_user_id"],
            ["users.id"],
            name=op.f("fk_improvements_owner_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_improvements")),
    )
    op.create_table(
        "teams",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("lead_user_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_user_id"], ["users.id"], name=op.f("fk_teams_lead_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("name", name=op.f("uq_teams_name")),
    )
    op.create_table(
        "follow_ups",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(length=200), nullable=False),
        sa.Column(
            "signal",
            sa.Enum(
                "feedback",
                "repeat_contact",
                "service_level",
                "ex_pulse",
                "abandon",
                name="signalkind",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("title", switchboard.pii.MaskedString(length=200), nullable=False),
        sa.Column("topic", sa.String(length=80), nullable=False),
        sa.Column("cause", sa.String(length=80), nullable=True),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("queue_id", sa.Uuid(), nullable=True),
        sa.Column(
            "owner_role",
            sa.Enum(
                "team_lead",
                "relationship_manager",
                "queue_owner",
                "supervisors",
                name="ownerrole",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("owner_user_id", sa.Uuid(), nullable=True),
        sa.Column(
            "escalation_role",
            sa.Enum(
                "team_lead",
                "relationship_manager",
                "queue_owner",
                "supervisors",
                name="escalationrole",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column(
            "state",
            sa.Enum(
                "open",
                "in_progress",
                "resolved",
                "escalated",
                name="followupstate",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("due_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("escalated_at", switchboard.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("escalated_from_user_id", sa.Uuid(), nullable=True),
        sa.Column("resolved_at", switchboard.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("improvement_id", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_follow_ups_agent_id_agents"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_follow_ups_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["escalated_from_user_id"],
            ["users.id"],
            name=op.f("fk_follow_ups_escalated_from_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["improvement_id"],
            ["improvements.id"],
            name=op.f("fk_follow_ups_improvement_id_improvements"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_user_id"],
            ["users.id"],
            name=op.f("fk_follow_ups_owner_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["queue_id"], ["queues.id"], name=op.f("fk_follow_ups_queue_id_queues"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["alert_rules.id"],
            name=op.f("fk_follow_ups_rule_id_alert_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_ups")),
        sa.UniqueConstraint("rule_id", "event_key", name="uq_follow_ups_rule_event"),
    )
    with op.batch_alter_table("follow_ups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_follow_ups_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_follow_ups_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_follow_ups_improvement_id"), ["improvement_id"], unique=False)
        batch_op.create_index("ix_follow_ups_owner_state", ["owner_user_id", "state"], unique=False)
        batch_op.create_index("ix_follow_ups_state_due", ["state", "due_at"], unique=False)

    op.create_table(
        "follow_up_links",
        sa.Column("follow_up_id", sa.Uuid(), nullable=False),
        sa.Column("interaction_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["follow_up_id"],
            ["follow_ups.id"],
            name=op.f("fk_follow_up_links_follow_up_id_follow_ups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_follow_up_links_interaction_id_interactions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("follow_up_id", "interaction_id", name=op.f("pk_follow_up_links")),
    )
    op.create_table(
        "follow_up_notes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("follow_up_id", sa.Uuid(), nullable=False),
        sa.Column("author_user_id", sa.Uuid(), nullable=True),
        sa.Column("body", switchboard.pii.MaskedText(), nullable=False),
        sa.Column("at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_user_id"],
            ["users.id"],
            name=op.f("fk_follow_up_notes_author_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["follow_up_id"],
            ["follow_ups.id"],
            name=op.f("fk_follow_up_notes_follow_up_id_follow_ups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_up_notes")),
    )
    with op.batch_alter_table("follow_up_notes", schema=None) as batch_op:
        batch_op.create_index("ix_follow_up_notes_follow_up", ["follow_up_id", "at"], unique=False)

    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_user_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_queues_owner_user_id_users"),
            "users",
            ["owner_user_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_queues_owner_user_id_users"), type_="foreignkey")
        batch_op.drop_column("owner_user_id")

    with op.batch_alter_table("follow_up_notes", schema=None) as batch_op:
        batch_op.drop_index("ix_follow_up_notes_follow_up")

    op.drop_table("follow_up_notes")
    op.drop_table("follow_up_links")
    with op.batch_alter_table("follow_ups", schema=None) as batch_op:
        batch_op.drop_index("ix_follow_ups_state_due")
        batch_op.drop_index("ix_follow_ups_owner_state")
        batch_op.drop_index(batch_op.f("ix_follow_ups_improvement_id"))
        batch_op.drop_index(batch_op.f("ix_follow_ups_customer_id"))
        batch_op.drop_index(batch_op.f("ix_follow_ups_created_at"))

    op.drop_table("follow_ups")
    op.drop_table("teams")
    op.drop_table("improvements")
    op.drop_table("alert_rules")

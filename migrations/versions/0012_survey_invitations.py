"""survey invitations; customer_feedback.csat optional

Revision ID: 0012_survey_invitations
Revises: 0011_queue_offer_policy
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import switchboard.db

revision: str = "0012_survey_invitations"
down_revision: str | None = "0011_queue_offer_policy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "survey_invitations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("interaction_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column(
            "delivery",
            sa.Enum(
                "inline",
                "email",
                "sms",
                "none",
                name="surveydelivery",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column(
            "questions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sent",
                "inline",
                "answered",
                "skipped",
                name="surveystatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column(
            "reason",
            sa.Enum(
                "frequency_cap",
                "queue_asks_none",
                "no_address",
                name="skipreason",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=True,
        ),
        sa.Column("created_at", switchboard.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", switchboard.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", switchboard.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answered_at", switchboard.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_survey_invitations_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_survey_invitations_interaction_id_interactions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_invitations")),
        sa.UniqueConstraint("interaction_id", name=op.f("uq_survey_invitations_interaction_id")),
    )
    with op.batch_alter_table("survey_invitations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_survey_invitations_customer_created", ["customer_id", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_survey_invitations_status"), ["status"], unique=False)

    with op.batch_alter_table("customer_feedback", schema=None) as batch_op:
        batch_op.alter_column("csat", existing_type=sa.INTEGER(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("customer_feedback", schema=None) as batch_op:
        batch_op.alter_column("csat", existing_type=sa.INTEGER(), nullable=False)

    with op.batch_alter_table("survey_invitations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_invitations_status"))
        batch_op.drop_index("ix_survey_invitations_customer_created")

    op.drop_table("survey_invitations")

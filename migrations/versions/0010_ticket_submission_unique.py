"""email_details.submission_id: one ticket per web-form submission, decided by a unique index

Revision ID: 0010_ticket_submission_unique
Revises: 0009_users_token_version
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_ticket_submission_unique"
down_revision: str | None = "0009_users_token_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing tickets keep NULL: their submission ids live only in their Message-IDs, and a
    # back-fill could meet the duplicates the missing index let in. Retries of those are still
    # recognised by the Message-ID lookup.
    with op.batch_alter_table("email_details") as batch:
        batch.add_column(sa.Column("submission_id", sa.Uuid(), nullable=True))
        batch.create_unique_constraint("uq_email_details_submission_id", ["submission_id"])


def downgrade() -> None:
    with op.batch_alter_table("email_details") as batch:
        batch.drop_constraint("uq_email_details_submission_id", type_="unique")
        batch.drop_column("submission_id")

"""queues.offer_policy: how many pending offers of a queue's work an agent may hold at once

Revision ID: 0011_queue_offer_policy
Revises: 0010_ticket_submission_unique
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_queue_offer_policy"
down_revision: str | None = "0010_ticket_submission_unique"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = sa.Enum(
    "one_at_a_time",
    "up_to_capacity",
    name="offerpolicy",
    native_enum=False,
    create_constraint=True,
    length=24,
)


def upgrade() -> None:
    # Existing queues get the default agents expect: one pending offer at a time.
    with op.batch_alter_table("queues") as batch:
        batch.add_column(sa.Column("offer_policy", POLICY, nullable=False, server_default="one_at_a_time"))


def downgrade() -> None:
    with op.batch_alter_table("queues") as batch:
        batch.drop_constraint("offerpolicy", type_="check")  # named ck_queues_offerpolicy
        batch.drop_column("offer_policy")

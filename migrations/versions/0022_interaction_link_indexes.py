"""interactions: partial indexes on the links between interactions (parent_id, callback_of_id,
follow_up_of_id). The desktop's consult status (every tab render), the chat's status tick (every
second per waiting customer) and the callback and follow-up look-ups read by these columns; without
an index each read scanned the whole interactions table.

Revision ID: 0022_interaction_link_indexes
Revises: 0021_shift_requests
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_interaction_link_indexes"
down_revision: str | None = "0021_shift_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LINKS = {
    "ix_interactions_parent": ["parent_id", "created_at"],
    "ix_interactions_callback_of": ["callback_of_id"],
    "ix_interactions_follow_up_of": ["follow_up_of_id"],
}


def upgrade() -> None:
    for name, columns in _LINKS.items():
        where = sa.text(f"{columns[0]} IS NOT NULL")
        op.create_index(name, "interactions", columns, postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for name in _LINKS:
        op.drop_index(name, table_name="interactions")

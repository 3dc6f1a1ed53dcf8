"""interactions by (agent_id, state): what an agent holds, read by every offer's capacity check

Revision ID: 0007_agent_state
Revises: 0006_channels
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_agent_state"
down_revision: str | None = "0006_channels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_interactions_agent_state", "interactions", ["agent_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_interactions_agent_state", table_name="interactions")

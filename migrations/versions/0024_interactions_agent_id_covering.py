"""interactions: ix_interactions_agent_id holds the id too (agent_id, id), so an agent's contacts'
ids are read from the index alone: the experience drill-down for one agent starts from them
(issue #12 item 2; 0.9 s at 10 million contacts a year when it walked every answer instead).

Revision ID: 0024_agent_id_covering
Revises: 0023_respondents_monthly
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0024_agent_id_covering"
down_revision: str | None = "0023_respondents_monthly"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_interactions_agent_id", table_name="interactions")
    op.create_index("ix_interactions_agent_id", "interactions", ["agent_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_interactions_agent_id", table_name="interactions")
    op.create_index("ix_interactions_agent_id", "interactions", ["agent_id"])

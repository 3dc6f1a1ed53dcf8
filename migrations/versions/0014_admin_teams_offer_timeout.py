"""teams get a display name and description, every team agents name gets a row, and
queues.offer_timeout_seconds (issue #11: administration)

Revision ID: 0014_admin_teams_offer_timeout
Revises: 0013_follow_ups
Create Date: 2026-12-06
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import switchboard.db

revision: str = "0014_admin_teams_offer_timeout"
down_revision: str | None = "0013_follow_ups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL: the channel's default offer timeout (the engine's), as before.
    with op.batch_alter_table("queues") as batch:
        batch.add_column(sa.Column("offer_timeout_seconds", sa.Integer(), nullable=True))
    with op.batch_alter_table("teams") as batch:
        batch.add_column(sa.Column("display_name", sa.String(120), nullable=False, server_default=""))
        batch.add_column(sa.Column("description", sa.String(255), nullable=False, server_default=""))
    teams = sa.table(
        "teams",
        sa.column("id", sa.Uuid()),
        sa.column("name", sa.String()),
        sa.column("display_name", sa.String()),
        sa.column("created_at", switchboard.db.UTCDateTime(timezone=True)),
    )
    conn = op.get_bind()
    conn.execute(teams.update().where(teams.c.display_name == "").values(display_name=teams.c.name))
    # Agents already name their teams (agents.teams, a JSON list): each name becomes a team row.
    agents = sa.table("agents", sa.column("teams", sa.JSON))
    named: set[str] = set()
    for (value,) in conn.execute(sa.select(agents.c.teams)):
        named.update(n.strip()[:60] for n in (value or []) if isinstance(n, str) and n.strip())
    known = set(conn.scalars(sa.select(teams.c.name)))
    missing = sorted(named - known)
    if missing:
        now = datetime.now(UTC)
        op.bulk_insert(
            teams,
            [{"id": uuid.uuid4(), "name": n, "display_name": n, "created_at": now} for n in missing],
        )


def downgrade() -> None:
    with op.batch_alter_table("teams") as batch:
        batch.drop_column("description")
        batch.drop_column("display_name")
    with op.batch_alter_table("queues") as batch:
        batch.drop_column("offer_timeout_seconds")

"""merge the parallel 0004 branches (chat, email, EX pulse, statistics, voice) into one line

Revision ID: 0005
Revises: 0004_chat, 0004_email, 0004_ex, 0004_stats, 0004_voice
Create Date: 2026-11-23
"""
from collections.abc import Sequence

revision: str = "0005"
down_revision: tuple[str, ...] = ("0004_chat", "0004_email", "0004_ex", "0004_stats", "0004_voice")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # the branches touch disjoint tables; merging them needs no schema change


def downgrade() -> None:
    pass

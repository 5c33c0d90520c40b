"""A session's own retention for its recordings, and the access log.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Seconds = sa.Double().with_variant(sa.REAL(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("keep_recordings_days", sa.Integer()))
    op.create_table(
        "access_log",
        sa.Column("session_id", sa.Text(), sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("at", Seconds, nullable=False),
        sa.Column("who", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
    )
    op.create_index("access_log_by_session", "access_log", ["session_id", "at"])


def downgrade() -> None:
    op.drop_index("access_log_by_session", table_name="access_log")
    op.drop_table("access_log")
    op.drop_column("sessions", "keep_recordings_days")

"""A session's client (the name its coach files it under) and where it came from (a live call or
an imported recording).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("client", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("origin", sa.Text(), nullable=False, server_default="live"))
    # Until now the label was the only name a coach gave a session: it becomes the client.
    op.execute("UPDATE sessions SET client = label")
    op.create_index("sessions_by_coach_client", "sessions", ["coach_id", "client", "created_at"])


def downgrade() -> None:
    op.drop_index("sessions_by_coach_client", table_name="sessions")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("origin")
        batch.drop_column("client")

"""Coach accounts and their logins; when a session's call was last active (its invite expires
some time after that).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Seconds = sa.Double().with_variant(sa.REAL(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "coaches",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("created_at", Seconds, nullable=False),
        sa.Column("password_changed_at", Seconds, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_table(
        "coach_logins",
        sa.Column("token_sha256", sa.Text(), nullable=False),
        sa.Column("coach_id", sa.Text(), sa.ForeignKey("coaches.id"), nullable=False),
        sa.Column("created_at", Seconds, nullable=False),
        sa.Column("last_seen_at", Seconds, nullable=False),
        sa.PrimaryKeyConstraint("token_sha256"),
    )
    op.create_index("coach_logins_by_coach", "coach_logins", ["coach_id"])
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("last_activity_at", Seconds))


def downgrade() -> None:
    op.drop_column("sessions", "last_activity_at")
    op.drop_index("coach_logins_by_coach", table_name="coach_logins")
    op.drop_table("coach_logins")
    op.drop_table("coaches")

"""Recordings, the session's video setting, tags moved in review, and consent scopes.

Every added column has a constant default, so batch mode runs a plain ALTER TABLE ADD COLUMN
on SQLite too; copying ``sessions`` instead would fail, since other tables refer to it and
foreign keys are enforced.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Seconds = sa.Double().with_variant(sa.REAL(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("session_id", sa.Text(), sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("participant", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("media_type", sa.Text(), nullable=False),
        sa.Column("start_s", Seconds, nullable=False),
        sa.Column("duration_s", Seconds),
        sa.Column("bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("state", sa.Text(), nullable=False, server_default="recording"),
        sa.Column("gaps", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("chunks", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_chunk_sha256", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", Seconds, nullable=False),
        sa.Column("updated_at", Seconds, nullable=False),
        sa.Column("finished_at", Seconds),
        sa.PrimaryKeyConstraint("session_id", "id"),
    )
    op.create_index("recordings_by_state", "recordings", ["state", "updated_at"])
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("video_recording", sa.Boolean(), nullable=False, server_default="1"))
    with op.batch_alter_table("tags") as batch:
        batch.add_column(sa.Column("origin", sa.Text(), nullable=False, server_default="live"))
        batch.add_column(sa.Column("original_session_time", Seconds))
        batch.add_column(sa.Column("updated_at", Seconds))
    tags = sa.table("tags", sa.column("session_time"), sa.column("original_session_time"))
    op.execute(tags.update().values(original_session_time=tags.c.session_time))
    with op.batch_alter_table("consents") as batch:
        batch.add_column(sa.Column("scopes", sa.Text(), nullable=False, server_default='["analysis", "audio"]'))


def downgrade() -> None:
    op.drop_column("consents", "scopes")
    for column in ("updated_at", "original_session_time", "origin"):
        op.drop_column("tags", column)
    op.drop_column("sessions", "video_recording")
    op.drop_index("recordings_by_state", table_name="recordings")
    op.drop_table("recordings")

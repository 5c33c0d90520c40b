"""The coach's library: each session's figures kept for the library and trends, and the coach's
report text (summary and next steps).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Seconds = sa.Double().with_variant(sa.REAL(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "session_figures",
        sa.Column("session_id", sa.Text(), sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("built_at", Seconds, nullable=False),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.Column("duration_s", Seconds, nullable=False),
        sa.Column("talk_coach_s", Seconds, nullable=False),
        sa.Column("talk_client_s", Seconds, nullable=False),
        sa.Column("talk_share_coach", Seconds),
        sa.Column("median_wait_s", Seconds),
        sa.Column("waits", sa.Integer(), nullable=False),
        sa.Column("filled_silences", sa.Integer(), nullable=False),
        sa.Column("longest_silence_s", Seconds, nullable=False),
        sa.Column("long_silences", sa.Integer(), nullable=False),
        sa.Column("longest_turn_coach_s", Seconds, nullable=False),
        sa.Column("longest_turn_client_s", Seconds, nullable=False),
        sa.Column("interruptions_coach", sa.Integer(), nullable=False),
        sa.Column("interruptions_client", sa.Integer(), nullable=False),
        sa.Column("switches", sa.Integer(), nullable=False),
        sa.Column("nudges", sa.Integer(), nullable=False),
        sa.Column("tag_counts", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("recorded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.create_table(
        "session_reports",
        sa.Column("session_id", sa.Text(), sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False, server_default=""),
        sa.Column("next_steps", sa.Text(), nullable=False, server_default=""),
        sa.Column("updated_at", Seconds, nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )


def downgrade() -> None:
    op.drop_table("session_reports")
    op.drop_table("session_figures")

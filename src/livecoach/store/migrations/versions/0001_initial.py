"""The schema of the raw-sqlite3 store, the last version before migrations.

Databases made by that store have these tables but no ``alembic_version``; an older one may
lack the tables added later and ``sessions.coach_id``. So this revision creates only the tables
and indexes that are missing and adds ``coach_id`` where it is missing: it takes such a
database over, rows and all, and on a new database it creates everything.

Revision ID: 0001
Revises:
Create Date: 2025-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Seconds = sa.Double().with_variant(sa.REAL(), "sqlite")


def _session_id() -> sa.Column:
    return sa.Column("session_id", sa.Text(), sa.ForeignKey("sessions.id"), nullable=False)


def _coach_id() -> sa.Column:
    return sa.Column("coach_id", sa.Text(), nullable=False, server_default="local")


def _tables() -> dict[str, tuple[sa.SchemaItem, ...]]:
    """Fresh columns for each table (a column belongs to one table)."""
    return {
        "sessions": (
            sa.Column("id", sa.Text(), primary_key=True),
            sa.Column("label", sa.Text(), nullable=False, server_default=""),
            sa.Column("created_at", Seconds, nullable=False),
            sa.Column("coach_token_sha256", sa.Text(), nullable=False),
            sa.Column("client_token_sha256", sa.Text(), nullable=False),
            _coach_id(),
        ),
        "consents": (
            _session_id(),
            sa.Column("role", sa.Text(), nullable=False),
            sa.Column("accepted_at", Seconds, nullable=False),
            sa.Column("notice", sa.Text(), nullable=False),
        ),
        "session_events": (
            _session_id(),
            sa.Column("wall_time", Seconds, nullable=False),
            sa.Column("session_time", Seconds),
            sa.Column("kind", sa.Text(), nullable=False),
            sa.Column("participant", sa.Text()),
            sa.Column("data", sa.Text(), nullable=False, server_default="{}"),
        ),
        "tags": (
            _session_id(),
            sa.Column("id", sa.Text(), nullable=False),
            sa.Column("kind", sa.Text(), nullable=False),
            sa.Column("label", sa.Text(), nullable=False),
            sa.Column("session_time", Seconds, nullable=False),
            sa.Column("clicked_at", Seconds),
            sa.Column("note", sa.Text(), nullable=False, server_default=""),
            sa.Column("created_at", Seconds, nullable=False),
            sa.Column("deleted_at", Seconds),
            sa.PrimaryKeyConstraint("session_id", "id"),
        ),
        "nudges": (
            _session_id(),
            sa.Column("id", sa.Text(), nullable=False),
            sa.Column("kind", sa.Text(), nullable=False),
            sa.Column("text", sa.Text(), nullable=False),
            sa.Column("session_time", Seconds, nullable=False),
            sa.Column("created_at", Seconds, nullable=False),
            sa.Column("dismissed_at", Seconds),
            sa.PrimaryKeyConstraint("session_id", "id"),
        ),
        "coach_settings": (
            sa.Column("coach_id", sa.Text(), primary_key=True),
            sa.Column("settings", sa.Text(), nullable=False),
            sa.Column("updated_at", Seconds, nullable=False),
        ),
        "indicator_samples": (
            _session_id(),
            sa.Column("session_time", Seconds, nullable=False),
            sa.Column("speaking", sa.Text(), nullable=False),
            sa.Column("share_session", Seconds),
            sa.Column("share_window", Seconds),
            sa.Column("current_silence", Seconds, nullable=False),
        ),
    }


INDEXES = {
    "session_events_by_session": ("session_events", ["session_id", "wall_time"]),
    "indicator_samples_by_session": ("indicator_samples", ["session_id", "session_time"]),
}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())
    for name, elements in _tables().items():
        if name not in existing:
            op.create_table(name, *elements)
    if "coach_id" not in {column["name"] for column in inspector.get_columns("sessions")}:
        with op.batch_alter_table("sessions") as batch:
            batch.add_column(_coach_id())
    for index, (table, columns) in INDEXES.items():
        if table not in existing or index not in {i["name"] for i in inspector.get_indexes(table)}:
            op.create_index(index, table, columns)


def downgrade() -> None:
    for table in reversed(_tables()):
        op.drop_table(table)

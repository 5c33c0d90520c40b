"""The event log's own order: ``session_events.id``, numbering the events as they are logged.

The store read a session's events in SQLite's rowid order, which PostgreSQL has no equivalent
of. SQLite adds a primary key only by copying the table: the copy gives each event its rowid as
its id, so the order stays the one they were logged in, and new events go on from the largest
(an INTEGER PRIMARY KEY is the rowid). On PostgreSQL the column is a BIGINT identity.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Seconds = sa.Double().with_variant(sa.REAL(), "sqlite")
COLUMNS = "session_id, wall_time, session_time, kind, participant, data"
INDEX = ("session_events_by_session", ["session_id", "wall_time"])


def _columns() -> list[sa.Column]:
    """The table's columns before this revision (fresh ones: a column belongs to one table)."""
    return [
        sa.Column("session_id", sa.Text(), sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("wall_time", Seconds, nullable=False),
        sa.Column("session_time", Seconds),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("participant", sa.Text()),
        sa.Column("data", sa.Text(), nullable=False, server_default="{}"),
    ]


def _copy_table(id_column: list[sa.Column], insert: str) -> None:
    """SQLite: replace session_events by a copy made with ``insert`` (from the old table,
    ``old_session_events``), with ``id_column`` first or none."""
    op.drop_index(INDEX[0], table_name="session_events")
    op.rename_table("session_events", "old_session_events")
    op.create_table("session_events", *id_column, *_columns())
    op.execute(insert)
    op.drop_table("old_session_events")
    op.create_index(INDEX[0], "session_events", INDEX[1])


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _copy_table([sa.Column("id", sa.Integer(), primary_key=True)],
                    f"INSERT INTO session_events (id, {COLUMNS}) SELECT rowid, {COLUMNS} FROM old_session_events")
    else:
        op.add_column("session_events", sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False))
        op.create_primary_key("session_events_pkey", "session_events", ["id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _copy_table([], f"INSERT INTO session_events (rowid, {COLUMNS}) SELECT id, {COLUMNS} FROM old_session_events")
    else:
        op.drop_column("session_events", "id")

"""Several nodes: the registry of the server processes sharing the database, and which of them
owns each session (nodes.py, docs/deploy.md).

A node is one ``livecoach serve --node-url URL``. It writes its row when it starts and every 2 s
after (``heartbeat_at``, its load: the calls it holds and its machine's CPU load); ``state`` is
"live" or "draining" (stopped with SIGTERM: no new sessions). ``assigned_at`` is when a session
was last given to it, which spreads sessions that arrive together over equally loaded nodes.
``sessions.node_id`` is the node that runs the session's calls, null until one is chosen (and on
a single server, which has no nodes). It is no foreign key: a node that stopped takes its row
away, and a session naming a node without a row (or with an old heartbeat) gets a new one.
Times are the database's clock; ``instance`` is a random token of the process holding the id
(a second process started with a live node's id is refused).

``installation`` holds what the nodes must share (a single server keeps it in its data folder):
the secret that signs the review's media links, and the hashes of the nodes' setup codes.
``recordings.claimed_at`` is when a process's sweep took a recording whose writer died, to
finish it: of several nodes sweeping one database, one finishes it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Seconds = sa.Double().with_variant(sa.REAL(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False, server_default="live"),
        sa.Column("calls", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cpu", Seconds),
        sa.Column("started_at", Seconds, nullable=False),
        sa.Column("heartbeat_at", Seconds, nullable=False),
        sa.Column("assigned_at", Seconds, nullable=False, server_default="0"),
        sa.Column("instance", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("node_id", sa.Text()))
    op.create_table(
        "installation",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(sa.Column("claimed_at", Seconds))


def downgrade() -> None:
    with op.batch_alter_table("recordings") as batch:
        batch.drop_column("claimed_at")
    op.drop_table("installation")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("node_id")
    op.drop_table("nodes")

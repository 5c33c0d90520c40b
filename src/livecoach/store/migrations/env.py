"""Alembic's environment, run by ``livecoach.store.migrate`` on a connection it is given.

There is no alembic.ini and no offline (SQL script) mode: the store migrates the database it
opens, inside the transaction it opened, so the upgrade is all or nothing.
"""

from alembic import context

from livecoach.store.schema import metadata

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=metadata,
    render_as_batch=True,  # SQLite alters most things only by copying the table
)
with context.begin_transaction():
    context.run_migrations()

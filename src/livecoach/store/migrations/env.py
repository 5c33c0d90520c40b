"""Alembic's environment, run by ``livecoach.store.migrate`` on a connection it is given.

There is no alembic.ini and no offline (SQL script) mode: the store migrates the database it
opens, inside the transaction it opened, so the upgrade is all or nothing.
"""

from alembic import context

from livecoach.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters most things only by copying the table (autogenerate then writes batch
    # operations); PostgreSQL alters them in place, and batch operations run there as plain ALTERs.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

"""Bringing a database to the newest schema when the store opens it.

The server starts its front process and its workers together, and each opens the store: the
first to take the migration lock (a file beside an SQLite database, an advisory lock on
PostgreSQL) migrates it, and the others find it up to date.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, exc

from . import database as db

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = int.from_bytes(b"lc-migra", "big")
"""The key of the PostgreSQL advisory lock held while a process opens and migrates the database."""


def head() -> str:
    """The newest revision, by the migrations' file names (``NNNN_what.py``, revision ``NNNN``:
    tests/test_store.py checks that Alembic agrees)."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def current(connection: Connection) -> list[str]:
    """The database's revisions (none for a new database, or one made before migrations)."""
    try:
        with connection.begin_nested():
            return list(connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())
    except exc.DBAPIError:
        return []


def config(connection: Connection) -> Config:
    """Alembic's configuration, made here rather than read from an alembic.ini: the migrations
    ship inside the package and run on the connection given."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


def to_head(connection: Connection) -> None:
    """Upgrade to the newest revision inside the connection's open transaction: all or nothing.
    A database made before migrations (no ``alembic_version``) is taken over by revision 0001.
    Alembic is loaded only when there is something to do: it is most of the time a command-line
    run (``livecoach import``, ``livecoach report``) takes to start."""
    if current(connection) == [head()]:
        return
    from alembic import command

    command.upgrade(config(connection), "head")


@contextmanager
def exclusive(engine: Engine, database: Path | None) -> Iterator[Connection]:
    """A new connection to the database, which one process at a time holds while it migrates.
    SQLite: an exclusive lock on ``<database>.lock``, taken before connecting (the file may not
    exist yet) and released by closing it. PostgreSQL: a session advisory lock, waited for as
    long as another process's migration takes (not ``lock_timeout``) and released afterwards.
    The connection is closed if what runs under the lock fails."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine) as connection:
            yield connection
        return
    with _file_lock(database):
        connection = db.connect(engine)
        try:
            yield connection
        except BaseException:
            connection.close()
            raise


@contextmanager
def _file_lock(database: Path | None) -> Iterator[None]:
    if database is None:  # in memory: nobody else sees it
        yield
        return
    fd = os.open(database.with_name(f"{database.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def _advisory_lock(engine: Engine) -> Iterator[Connection]:
    connection = db.connect(engine)
    try:
        with connection.begin():
            connection.exec_driver_sql("SET LOCAL lock_timeout = 0")
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
        yield connection
    except BaseException:
        # Closing the session releases its locks; returned to the pool, it would keep them.
        connection.invalidate()
        connection.close()
        raise
    with connection.begin():
        connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")

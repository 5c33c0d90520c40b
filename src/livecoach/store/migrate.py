"""Bringing a database to the newest schema when the store opens it.

The server starts its front process and its workers together, and each opens the store: the
first to take the lock beside the database migrates it, and the others find it up to date.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typing import TYPE_CHECKING

from sqlalchemy import Connection, exc

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


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
def exclusive(database: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``<database>.lock`` (an SQLite file), so that one process at a
    time connects to and migrates a database that may not exist yet. Closing the file releases it."""
    if database is None:
        yield
        return
    fd = os.open(database.with_name(f"{database.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)

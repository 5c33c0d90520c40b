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

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

MIGRATIONS = Path(__file__).with_name("migrations")


def config(connection: Connection) -> Config:
    """Alembic's configuration, made here rather than read from an alembic.ini: the migrations
    ship inside the package and run on the connection given."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


def to_head(connection: Connection) -> None:
    """Upgrade to the newest revision inside the connection's open transaction: all or nothing.
    A database made before migrations (no ``alembic_version``) is taken over by revision 0001."""
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

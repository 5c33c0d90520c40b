"""Connecting to the store's database, and the parts of SQL that differ between databases.

A file path means an SQLite file (the default: one file in the data folder); any SQLAlchemy URL
is accepted too. What SQLite needs is here: its per-connection settings, BEGIN IMMEDIATE for
writes, private files, and its INSERT … ON CONFLICT. Another database adds its branches here
(and a lock for its migrations in ``migrate``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, URL, create_engine, event, make_url
from sqlalchemy.dialects import sqlite

BUSY_TIMEOUT_MS = 5000
"""How long an SQLite write waits for another process's write before it fails."""

WRITE = "livecoach_write"
"""Execution option: the connection's next transaction writes. SQLite then begins it IMMEDIATE,
taking the write lock at once, so that it waits its turn (busy timeout) instead of failing with
"database is locked" when a read turns into a write while another process writes."""

log = logging.getLogger(__name__)
_INSERTS = {"sqlite": sqlite.insert}


def locate(path_or_url: str | Path) -> tuple[URL, Path | None]:
    """The database's URL and, for an SQLite file, its path: a path (not a URL) is an SQLite file."""
    if isinstance(path_or_url, str) and "://" in path_or_url:
        url = make_url(path_or_url)
        is_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        return url, Path(url.database) if is_file else None
    path = Path(path_or_url)
    return URL.create("sqlite", database=str(path)), path


def make_private(path: Path) -> None:
    """Keep the database readable by this user only: its folder 0700, the file and its -wal and
    -shm files 0600. The file is made before SQLite opens it, since SQLite gives the -wal and -shm
    files the database file's mode. A shared folder (sticky, like /tmp) is left as it is."""
    folder = path.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not folder.stat().st_mode & stat.S_ISVTX:
        folder.chmod(0o700)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
    for file in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
        if file.exists():
            file.chmod(0o600)


def create(url: URL) -> Engine:
    """An engine whose connections have the database's settings."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    """Every SQLite connection: wait for other writers, WAL (readers never block the writer, and a
    killed process loses nothing committed), enforced foreign keys, and transactions begun by
    ``_sqlite_begin``: sqlite3's own handling (SQLAlchemy's pysqlite recipe) is switched off."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # secure_delete: a deleted or changed row's bytes are overwritten in the file, so that a
    # deleted session leaves no trace of its label or notes (retention.py).
    for pragma in (f"busy_timeout={BUSY_TIMEOUT_MS}", "journal_mode=WAL", "foreign_keys=ON", "secure_delete=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def forget(connection: Connection) -> None:
    """After a deletion: copy the write-ahead log into the database and empty it, so that the
    old pages it holds (with what was deleted) are gone too. Best effort: another process's
    open read keeps the log until its next checkpoint."""
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.driver_connection  # outside SQLAlchemy's transaction: a checkpoint needs none open
    try:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.OperationalError as err:
        log.warning("the write-ahead log could not be emptied now (%s): it will be at the next checkpoint", err)


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE" if connection.get_execution_options().get(WRITE) else "BEGIN")


def insert(connection: Connection, table: Table) -> sqlite.Insert:
    """An INSERT that can take ON CONFLICT DO NOTHING / DO UPDATE, in the connection's dialect."""
    try:
        return _INSERTS[connection.dialect.name](table)
    except KeyError:
        raise NotImplementedError(f"no INSERT … ON CONFLICT for {connection.dialect.name} yet") from None

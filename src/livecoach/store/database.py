"""Connecting to the store's database, and the parts of SQL that differ between databases.

Two databases: SQLite (the default: one file in the data folder; a file path means an SQLite
file) and PostgreSQL (a ``postgresql://`` URL, through psycopg 3). What each needs is here: the
connection's settings, how a write transaction takes its turn, private files, the database's
clock, and INSERT … ON CONFLICT (a lock for migrations is in ``migrate``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Double, Engine, Table, URL, create_engine, event, exc, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

BUSY_TIMEOUT_MS = 5000
"""How long a write waits for another process's write before it fails (SQLite's busy timeout,
PostgreSQL's lock_timeout)."""

CONNECT_TIMEOUT_S = 10
"""How long connecting to a PostgreSQL server may take (libpq's default is forever: an address
that drops packets would hang a command), unless the URL says otherwise."""

WRITE = "livecoach_write"
"""Execution option: the connection's next transaction writes. SQLite then begins it IMMEDIATE,
taking the write lock at once, so that it waits its turn (busy timeout) instead of failing with
"database is locked" when a read turns into a write while another process writes. PostgreSQL
takes ``WRITE_LOCK`` instead, so that writers take turns there too."""

WRITE_LOCK = int.from_bytes(b"lc-write", "big")
"""The key of the PostgreSQL advisory lock a write transaction holds: the store's writes read,
then write (the first coach, a consent not given twice), and were written for SQLite's one
writer at a time. Advisory locks are per database: installations sharing a server do not wait
for each other."""

ROW_WRITE = "livecoach_row_write"
"""Execution option: the connection's next transaction writes rows that no other of the store's
writes reads first (a node's heartbeat, nodes.py; a live call's samples and events). SQLite begins it IMMEDIATE, as any
write; PostgreSQL takes no ``WRITE_LOCK``: its row locks are all such a write needs, and it must
not wait behind a long write elsewhere in the cluster."""

SUPPORTED = ("sqlite", "postgresql")
"""The databases the store's SQL and migrations are written and tested for."""

log = logging.getLogger(__name__)
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


class DatabaseUnavailable(Exception):
    """The database cannot be opened: an unsupported or malformed URL, a missing driver, or a
    server that cannot be reached or refuses the login. The message says which, in one line."""


def locate(path_or_url: str | Path) -> tuple[URL, Path | None]:
    """The database's URL and, for an SQLite file, its path: a path (not a URL) is an SQLite file.
    ``postgresql://`` means psycopg 3 (SQLAlchemy's default for it is psycopg2)."""
    if not (isinstance(path_or_url, str) and "://" in path_or_url):
        path = Path(path_or_url)
        return URL.create("sqlite", database=str(path)), path
    try:
        url = make_url(path_or_url)
        backend = url.get_backend_name()
    except (exc.ArgumentError, ValueError) as err:
        raise DatabaseUnavailable(f"not a database URL: {_one_line(err)}") from None
    if backend == "postgres":  # the name some hosts hand out; SQLAlchemy knows only "postgresql"
        url, backend = url.set(drivername=url.drivername.replace("postgres", "postgresql", 1)), "postgresql"
    if backend not in SUPPORTED:
        raise DatabaseUnavailable(f"livecoach keeps its data in SQLite or PostgreSQL, not {backend}")
    if backend == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        if url.get_driver_name() != "psycopg":
            raise DatabaseUnavailable(f"PostgreSQL is reached through psycopg 3 (postgresql://…), not {url.get_driver_name()}")
        if "connect_timeout" not in url.query:
            url = url.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_S)})
        return url, None
    is_file = url.database not in (None, "", ":memory:")
    return url, Path(url.database) if is_file else None


def make_private(path: Path) -> None:
    """Keep the database readable by this user only: its folder 0700, the file and its -wal and
    -shm files 0600. The file is made before SQLite opens it, since SQLite gives the -wal and -shm
    files the database file's mode. A shared folder (sticky, like /tmp) is left as it is.
    (PostgreSQL's files are its server's, kept private by it.)"""
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
    try:
        engine = create_engine(url)
    except ImportError as err:
        raise DatabaseUnavailable(f"PostgreSQL needs psycopg 3: pip install 'livecoach[postgresql]' ({err})") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _postgresql_connect)
        event.listen(engine, "begin", _postgresql_begin)
    return engine


def connect(engine: Engine) -> Connection:
    """A connection, or DatabaseUnavailable saying in one line why there is none (the password,
    if the URL has one, left out)."""
    try:
        return engine.connect()
    except exc.OperationalError as err:
        url = engine.url
        where = url.set(drivername=url.get_backend_name(), query={}).render_as_string(hide_password=True)
        raise DatabaseUnavailable(f"cannot open the database {where}: {_one_line(err.orig)}") from None


def _one_line(err: BaseException) -> str:
    """An error's message on one line: libpq's run over several, with hints indented."""
    return " ".join(str(err).split())


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    """Every SQLite connection: wait for other writers, WAL (readers never block the writer, and a
    killed process loses nothing committed), enforced foreign keys, and transactions begun by
    ``_sqlite_begin``: sqlite3's own handling (SQLAlchemy's pysqlite recipe) is switched off."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # secure_delete: a deleted or changed row's bytes are overwritten in the file, so that a
    # deleted session leaves no trace of its label or notes (retention.py). PostgreSQL has no
    # equivalent: docs/deploy.md says what its operator does instead.
    for pragma in (f"busy_timeout={BUSY_TIMEOUT_MS}", "journal_mode=WAL", "foreign_keys=ON", "secure_delete=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _postgresql_connect(dbapi_connection: Any, _record: Any) -> None:
    """Every PostgreSQL connection waits at most ``BUSY_TIMEOUT_MS`` for a lock, as SQLite waits
    for another writer, rather than forever. (What SQLite's other settings give, PostgreSQL always
    does: its write-ahead log, readers that never block writers, enforced foreign keys.)"""
    dbapi_connection.execute(f"SET lock_timeout = {BUSY_TIMEOUT_MS}")
    dbapi_connection.commit()


def forget(connection: Connection) -> None:
    """After a deletion: copy SQLite's write-ahead log into the database and empty it, so that the
    old pages it holds (with what was deleted) are gone too. Best effort: another process's
    open read keeps the log until its next checkpoint. Nothing on PostgreSQL: a deleted row stays
    in its table's file until VACUUM reuses the space, and in the server's WAL until it is
    recycled, which nothing a client runs inside a transaction can hurry (docs/deploy.md)."""
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.driver_connection  # outside SQLAlchemy's transaction: a checkpoint needs none open
    try:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.OperationalError as err:
        log.warning("the write-ahead log could not be emptied now (%s): it will be at the next checkpoint", err)


def _sqlite_begin(connection: Connection) -> None:
    options = connection.get_execution_options()
    connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE) or options.get(ROW_WRITE) else "BEGIN")


def _postgresql_begin(connection: Connection) -> None:
    """A write transaction waits for the others to end (``WRITE_LOCK``, released at its end);
    reads take no lock."""
    if connection.get_execution_options().get(WRITE):
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")


class clock(FunctionElement):
    """The database's clock, in seconds since the epoch (a DOUBLE): what the nodes' heartbeats are
    written with and judged against (nodes.py), so that the nodes' own clocks do not matter.
    PostgreSQL: the server's ``clock_timestamp()`` (the time now, not the transaction's start);
    SQLite: the machine's clock (its nodes share one machine)."""

    type = Double()
    name = "livecoach_clock"
    inherit_cache = True


@compiles(clock, "postgresql")
def _postgresql_clock(_element: clock, _compiler: Any, **_kw: Any) -> str:
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


@compiles(clock, "sqlite")
def _sqlite_clock(_element: clock, _compiler: Any, **_kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


def insert(connection: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that can take ON CONFLICT DO NOTHING / DO UPDATE, in the connection's dialect,
    whose result's rowcount says whether it inserted (SQLAlchemy reads an INSERT's rowcount on
    PostgreSQL only when asked to)."""
    try:
        return _INSERTS[connection.dialect.name](table).execution_options(preserve_rowcount=True)
    except KeyError:
        raise NotImplementedError(f"no INSERT … ON CONFLICT for {connection.dialect.name} yet") from None

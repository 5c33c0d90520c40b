"""PostgreSQL as the store's database: every migration on an empty database, ``--database`` and
``LIVECOACH_DATABASE`` reaching the store of a real ``livecoach`` command, an imported call
reading back the same from both databases, and a database that cannot be opened said in one
line. (The store's own tests run on both databases: test_store.py.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from conftest import track_path
from livecoach.cli import main
from livecoach.store import DatabaseUnavailable, Store, database as db, migrate
from test_store import connected, revision_of, schema_differences


def livecoach(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``livecoach`` as a user runs it, with LIVECOACH_DATABASE only as ``env`` says."""
    environment = {k: v for k, v in os.environ.items() if k != "LIVECOACH_DATABASE"} | (env or {})
    return subprocess.run([sys.executable, "-m", "livecoach", *args], capture_output=True, text=True, input=stdin,
                          env=environment, timeout=60)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connecting is refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_migration_runs_up_on_an_empty_postgresql_database(postgresql):
    url = postgresql.new_database()
    revisions = [r.revision for r in reversed(list(ScriptDirectory(str(migrate.MIGRATIONS)).walk_revisions()))]
    assert revisions[0] == "0001" and revisions[-1] == migrate.head()
    for revision in revisions:
        with connected(url) as conn, conn.begin():
            command.upgrade(migrate.config(conn), revision)
        assert revision_of(url) == revision
    assert schema_differences(url) == []
    postgresql.drop_database(url)


def test_the_database_option_and_variable_reach_the_store(postgresql, tmp_path):
    url = postgresql.new_database()
    data = tmp_path / "data"
    added = livecoach("coach", "add", "ann@example.org", "--name", "Ann", "--password-stdin", "--data", str(data),
                      "--database", url, stdin="a long enough password\n")
    assert added.returncode == 0, added.stderr
    listed = livecoach("coach", "list", "--data", str(data), env={"LIVECOACH_DATABASE": url})
    assert (listed.returncode, listed.stdout) == (0, "ann@example.org\tAnn\n"), listed.stderr
    elsewhere = f"postgresql://postgres@127.0.0.1:{closed_port()}/nothing"
    flag_wins = livecoach("session", "new", "--label", "Alex", "--data", str(data), "--database", url,
                          env={"LIVECOACH_DATABASE": elsewhere})
    assert flag_wins.returncode == 0, flag_wins.stderr
    assert not (data / "livecoach.sqlite3").exists()
    store = Store(url)
    try:
        [coach] = store.coaches()
        assert [s.label for s in store.sessions_of(coach.id)] == ["Alex"]
    finally:
        store.close()
    postgresql.drop_database(url)


def test_an_imported_call_reads_back_the_same_from_both_databases(postgresql, tmp_path, capsys):
    """The most rows a session has (a call's events and samples, written in one transaction) and
    the library's query over them: the export and the listing are the same from either database."""
    url = postgresql.new_database()
    read_back = {}
    for name, database in (("sqlite", []), ("postgresql", ["--database", url])):
        data = ["--data", str(tmp_path / name), *database]
        assert main(["import", "--coach", str(track_path("clean", "coach")), "--client",
                     str(track_path("clean", "client")), "--label", "Alex", "--date", "2026-11-30T14:00",
                     "--format", "json", *data]) == 0
        session = json.loads(capsys.readouterr().out)["session"]
        assert main(["export", session, "--format", "json", *data]) == 0
        exported = json.loads(capsys.readouterr().out.replace(session, "SESSION"))
        del exported["exported_at"]
        for recording in exported["recordings"]:
            del recording["path"]  # its name has a random part
        assert main(["sessions", "--format", "json", *data]) == 0
        read_back[name] = (exported, json.loads(capsys.readouterr().out.replace(session, "SESSION")))
    assert read_back["sqlite"] == read_back["postgresql"]
    assert len(read_back["sqlite"][0]["indicator_samples"]) > 80
    postgresql.drop_database(url)


def test_a_database_that_cannot_be_opened_is_one_clear_line(tmp_path):
    pytest.importorskip("psycopg")
    port = closed_port()
    url = f"postgresql://ann:secret@127.0.0.1:{port}/livecoach"
    for args in (["coach", "list"], ["serve", "--workers", "0", "--port", str(closed_port())]):
        done = livecoach(*args, "--data", str(tmp_path / "data"), "--database", url)
        assert done.returncode == 1 and done.stdout == "", done.stderr
        [line] = done.stderr.splitlines()
        assert line.startswith(f"livecoach: cannot open the database postgresql://ann:***@127.0.0.1:{port}/livecoach: ")
        assert "refused" in line and "secret" not in line
    with pytest.raises(DatabaseUnavailable, match="SQLite or PostgreSQL, not mysql"):
        Store("mysql://ann@127.0.0.1/livecoach")
    with pytest.raises(DatabaseUnavailable, match="through psycopg 3"):
        Store("postgresql+psycopg2://ann@127.0.0.1/livecoach")


def test_a_postgresql_url_means_psycopg_3_with_a_connect_timeout():
    for given in ("postgresql://ann@db.example.org/livecoach", "postgres://ann@db.example.org/livecoach",
                  "postgresql+psycopg://ann@db.example.org/livecoach"):
        url, path = db.locate(given)
        assert (url.drivername, url.host, url.database, path) == ("postgresql+psycopg", "db.example.org", "livecoach", None)
        assert url.query == {"connect_timeout": str(db.CONNECT_TIMEOUT_S)}
    url, _ = db.locate("postgresql://ann@db.example.org/livecoach?connect_timeout=3&sslmode=require")
    assert url.query == {"connect_timeout": "3", "sslmode": "require"}

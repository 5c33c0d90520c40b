"""Deleting a session, erasing a participant, retention and the access log (docs/security.md),
on real SQLite files and real recording files. The deletion test searches the bytes of the
database and its write-ahead log: a deleted session's label, notes and tags leave no trace."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from livecoach import retention
from livecoach.recordings.storage import FolderStorage
from livecoach.store import IndicatorSample, Store
from liveserver import Server
from test_access import call, code

LABEL, NOTE, KIND_LABEL = "Quentin-Xylophone-Label", "Zebra-Marmalade-Note", "Pumpernickel-Kind"


def session_with_everything(store: Store, storage: FolderStorage) -> str:
    """A session with a row in every table and a file of each kind: markers in its text."""
    session = store.create_session(LABEL).id
    store.record_consent(session, "client", "the notice", ["analysis", "audio"])
    store.log_events(session, [(1.0, 5.0, "speech", "client", {"start": 1.0, "end": 4.7})])
    store.add_indicator_samples(session, [IndicatorSample(t, [], 0.5, 0.5, 0.0) for t in range(1, 6)])
    store.put_tag(session, "tag-00000001", "kind", KIND_LABEL, 3.0, note=NOTE)
    store.update_tag(session, "tag-00000001", note=NOTE + "-edited")
    store.add_nudge(session, "n1", "wait", "Wait", 2.0)
    for who in ("coach", "client"):
        rid = f"{who}-audio-1"
        store.create_recording(session, rid, who, "audio", f"{rid}.webm", "audio/webm", 0.0)
        store.update_recording(session, rid, state="finished", duration_s=5.0)
        with storage.create(session, f"{rid}.webm") as f:
            f.write(b"webm bytes of " + who.encode())
        with storage.create(session, f"{rid}.peaks") as f:
            f.write(b"\x01\x02")
    with storage.create(session, "clip-audio-0123456789ab.webm") as f:
        f.write(b"a clip")
    store.log_access(session, "the coach link", "opened the review")
    store.keep_review(session, "f", b'{"duration_s":5,"state":"ended"}\n"segments":{}')
    return session


def rows_of(db: Path, session: str) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        out = {}
        for table in tables:
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            column = "session_id" if "session_id" in columns else "id" if table == "sessions" else None
            if column:
                out[table] = conn.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?", (session,)).fetchone()[0]
        return out


def test_a_deleted_session_leaves_no_row_no_file_and_no_bytes(tmp_path):
    db = tmp_path / "db.sqlite3"
    store, storage = Store(db), FolderStorage(tmp_path / "recordings")
    try:
        kept = store.create_session("Another client").id
        session = session_with_everything(store, storage)
        assert sum(rows_of(db, session).values()) > 10
        raw = db.read_bytes() + Path(f"{db}-wal").read_bytes()
        assert LABEL.encode() in raw and NOTE.encode() in raw  # the search finds them when they are there
        assert retention.delete_session(store, storage, session)
        assert not any(rows_of(db, session).values()), rows_of(db, session)
        assert not (tmp_path / "recordings" / session).exists()
        assert store.get_session(kept) is not None
        for path in tmp_path.glob("db.sqlite3*"):
            data = path.read_bytes()
            for marker in (LABEL, NOTE, KIND_LABEL, session):
                assert marker.encode() not in data, f"{marker} is still in {path.name}"
    finally:
        store.close()


def test_erasing_the_client_keeps_only_anonymous_figures(tmp_path):
    store, storage = Store(tmp_path / "db.sqlite3"), FolderStorage(tmp_path / "recordings")
    try:
        session = session_with_everything(store, storage)
        assert retention.erase_participant(store, storage, session, "client") == 1
        assert [r["participant"] for r in store.recordings(session)] == ["coach"]
        assert storage.names(session) == ["coach-audio-1.peaks", "coach-audio-1.webm"]
        assert store.get_session(session).label == ""
        assert [t["note"] for t in store.tags(session)] == [""]
        assert [t["session_time"] for t in store.tags(session)] == [3.0]  # the moment stays, not what was said
        assert [e["kind"] for e in store.events(session)] == ["speech"]  # the figures stay
    finally:
        store.close()


def test_purge_deletes_recordings_and_sessions_past_their_retention(tmp_path):
    store, storage = Store(tmp_path / "db.sqlite3"), FolderStorage(tmp_path / "recordings")
    day = 86400.0
    try:
        old, short, fresh = (session_with_everything(store, storage) for _ in range(3))
        store.set_keep_recordings_days(short, 1)
        now = time.time()
        # Two days on: only the session the coach shortened loses its recordings.
        assert retention.purge(store, storage, 30, None, now=now + 2 * day).recordings == 2
        assert store.recordings(short) == [] and storage.names(short) == []
        assert len(store.recordings(old)) == 2 and len(store.recordings(fresh)) == 2
        # Forty days on: every recording is past the installation's 30 days; then whole sessions.
        assert retention.purge(store, storage, 30, None, now=now + 40 * day).recordings == 4
        assert store.get_session(old) is not None
        assert retention.purge(store, storage, 30, 60, now=now + 61 * day).sessions == 3
        assert store.get_session(old) is None and not (tmp_path / "recordings" / old).exists()
    finally:
        store.close()


def test_the_command_line_deletes_erases_and_purges(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    store, storage = Store(data / "livecoach.sqlite3"), FolderStorage(data / "recordings")
    first, second = session_with_everything(store, storage), session_with_everything(store, storage)
    store.close()

    def livecoach(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "livecoach", *args, "--data", str(data)],
                              capture_output=True, text=True, timeout=60)

    assert livecoach("erase", first, "--participant", "client").returncode == 0
    assert livecoach("delete", second).returncode == 0
    missing = livecoach("delete", "no-such-one")
    assert missing.returncode == 1 and "no session" in missing.stderr
    assert "0 sessions" in livecoach("purge").stdout
    store = Store(data / "livecoach.sqlite3")
    try:
        assert store.get_session(second) is None
        assert [r["participant"] for r in store.recordings(first)] == ["coach"]
    finally:
        store.close()


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path / "data")
    yield srv
    srv.stop()


def test_the_coach_deletes_a_session_and_no_one_else_can(server):
    session, coach_token, client_token = server.new_session()
    path = f"/api/sessions/{session}"
    assert code(call(server, "DELETE", path, headers={"Authorization": f"Bearer {client_token}"})) == (
        403, "forbidden")
    assert code(call(server, "DELETE", path)) == (401, "bad-token")
    store = Store(Path(server.log).parent / "livecoach.sqlite3")
    try:
        store.create_recording(session, "coach-audio-1", "coach", "audio", "coach-audio-1.ogg", "audio/ogg", 0.0)
        assert code(call(server, "DELETE", path, headers={"Cookie": server.login()})) == (409, "call-running")
        store.update_recording(session, "coach-audio-1", state="finished")
    finally:
        store.close()
    assert call(server, "DELETE", path, headers={"Cookie": server.login()})[2] == {"deleted": session}
    assert code(call(server, "GET", f"{path}/tags", headers={"Authorization": f"Bearer {coach_token}"})) == (
        404, "unknown-session")


def test_the_coach_shortens_the_retention_of_a_session(server):
    session, coach_token, _ = server.new_session()
    auth = {"Authorization": f"Bearer {coach_token}"}
    path = f"/api/sessions/{session}/retention"
    assert call(server, "GET", path, headers=auth)[2]["keep_recordings_days"] is None
    assert call(server, "PUT", path, {"keep_recordings_days": 7}, auth)[2]["keep_recordings_days"] == 7
    for bad in (-1, 1.5, "7", True):
        assert code(call(server, "PUT", path, {"keep_recordings_days": bad}, auth)) == (400, "bad-message")
    assert call(server, "GET", path, headers=auth)[2]["keep_recordings_days"] == 7


def test_the_access_log_says_who_opened_the_review_and_fetched_files(server):
    session, coach_token, _ = server.new_session()
    assert call(server, "GET", f"/api/sessions/{session}/review",
                headers={"Authorization": f"Bearer {coach_token}"})[0] == 200
    assert call(server, "GET", f"/api/sessions/{session}/review", headers={"Cookie": server.login()})[0] == 200
    entries = call(server, "GET", f"/api/sessions/{session}/access-log", headers={"Cookie": server.login()})[2]
    assert [(e["who"], e["action"]) for e in entries["entries"]] == [
        ("the coach link", "opened the review"), ("coach coach@example.com", "opened the review")]
    assert all(e["at"] > time.time() - 60 for e in entries["entries"])


async def test_a_call_going_on_is_not_deleted_even_unrecorded(tmp_path):
    from livecoach.live.ice import restrict_host_addresses
    from livecoach.live.simpeer import SimPeer
    from liveserver import excerpt

    restrict_host_addresses(["127.0.0.1"])
    server = Server(tmp_path / "data", workers=0, extra=["--no-recording"])
    try:
        session, coach_token, _ = server.new_session()
        coach = SimPeer(server.url, session, coach_token, str(excerpt("clean", "coach", 5.0, tmp_path)))
        await coach.join()
        assert code(call(server, "DELETE", f"/api/sessions/{session}", headers={"Cookie": server.login()})) == (
            409, "call-running")
        await coach.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = call(server, "DELETE", f"/api/sessions/{session}", headers={"Cookie": server.login()})[0]
            if status == 200:
                break
            await asyncio.sleep(0.5)
        assert status == 200
    finally:
        server.stop()
        restrict_host_addresses([])

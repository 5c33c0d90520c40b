"""What outlives a call: sessions, their link secrets (hashed), consent, the event log, tags,
nudges, indicator samples and the coaches' settings, in SQLite.

One SQLite file in the data folder by default. Writes are small (a session, a tag, a few seconds
of indicator samples in one batch), so one connection behind a lock serves a process; several
processes share the file: WAL mode keeps readers from blocking the writer and survives a killed
process, and a busy timeout lets a writer wait for another process's write instead of failing.
The connection is in autocommit mode: every write is committed when its method returns.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from . import coach_settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    label TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    coach_token_sha256 TEXT NOT NULL,
    client_token_sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS consents (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    role TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    notice TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS session_events (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    wall_time REAL NOT NULL,
    session_time REAL,
    kind TEXT NOT NULL,
    participant TEXT,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS session_events_by_session ON session_events(session_id, wall_time);
CREATE TABLE IF NOT EXISTS tags (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    session_time REAL NOT NULL,
    clicked_at REAL,
    note TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    deleted_at REAL,
    PRIMARY KEY (session_id, id)
);
CREATE TABLE IF NOT EXISTS nudges (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    session_time REAL NOT NULL,
    created_at REAL NOT NULL,
    dismissed_at REAL,
    PRIMARY KEY (session_id, id)
);
CREATE TABLE IF NOT EXISTS coach_settings (
    coach_id TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS indicator_samples (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    session_time REAL NOT NULL,
    speaking TEXT NOT NULL,
    share_session REAL,
    share_window REAL,
    current_silence REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS indicator_samples_by_session ON indicator_samples(session_id, session_time);
"""
LOCAL_COACH = "local"
"""The one coach of an installation, until accounts exist."""
BUSY_TIMEOUT_MS = 5000
TAG_COLUMNS = "id, kind, label, session_time, clicked_at, note, created_at, deleted_at"
NUDGE_COLUMNS = "id, kind, text, session_time, dismissed_at"

CONSENT_NOTICE = (
    "This session's audio is analysed for talk balance (who speaks and for how long) and "
    "recorded for your coach's review. Only your coach sees the analysis."
)


@dataclass(frozen=True)
class StoredSession:
    id: str
    label: str
    created_at: float


@dataclass(frozen=True)
class NewSession:
    """A session just created, with the only copies of its secrets that will ever exist."""

    id: str
    coach_token: str
    client_token: str

    def coach_path(self) -> str:
        return f"/s/{self.id}/coach#{self.coach_token}"

    def client_path(self) -> str:
        return f"/s/{self.id}/join#{self.client_token}"


class IndicatorSample(NamedTuple):
    """The coach's indicators at one second of a session, for the review's timeline."""

    session_time: float
    speaking: list[str]
    share_session: float | None
    share_window: float | None
    current_silence: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
            self._add_column("sessions", "coach_id", f"TEXT NOT NULL DEFAULT '{LOCAL_COACH}'")

    def _add_column(self, table: str, column: str, definition: str) -> None:
        """Bring a database made by an older version up to date (another process may do it first)."""
        if any(row[1] == column for row in self._db.execute(f"PRAGMA table_info({table})")):
            return
        try:
            self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        except sqlite3.OperationalError as err:
            if "duplicate column" not in str(err):
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create_session(self, label: str = "") -> NewSession:
        new = NewSession(secrets.token_urlsafe(9), secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        with self._lock:
            self._db.execute(
                "INSERT INTO sessions (id, label, created_at, coach_token_sha256, client_token_sha256) VALUES (?,?,?,?,?)",
                (new.id, label[:200], time.time(), _digest(new.coach_token), _digest(new.client_token)),
            )
        return new

    def get_session(self, session_id: str) -> StoredSession | None:
        with self._lock:
            row = self._db.execute("SELECT id, label, created_at FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return StoredSession(*row) if row else None

    def role_for(self, session_id: str, token: str) -> str | None:
        """Which participant a token admits to a session: "coach", "client", or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT coach_token_sha256, client_token_sha256 FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
        if not row:
            return None
        digest = _digest(token)
        if hmac.compare_digest(digest, row[0]):
            return "coach"
        if hmac.compare_digest(digest, row[1]):
            return "client"
        return None

    def record_consent(self, session_id: str, role: str, notice: str = CONSENT_NOTICE) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO consents (session_id, role, accepted_at, notice) VALUES (?,?,?,?)",
                (session_id, role, time.time(), notice),
            )

    def consents(self, session_id: str) -> list[tuple[str, float, str]]:
        with self._lock:
            return self._db.execute(
                "SELECT role, accepted_at, notice FROM consents WHERE session_id = ? ORDER BY accepted_at", (session_id,)
            ).fetchall()

    def log_event(
        self, session_id: str, kind: str, participant: str | None = None, session_time: float | None = None, **data
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO session_events (session_id, wall_time, session_time, kind, participant, data) VALUES (?,?,?,?,?,?)",
                (session_id, time.time(), session_time, kind, participant, json.dumps(data)),
            )

    def log_events(self, session_id: str, events: list[tuple[float, float | None, str, str | None, dict]]) -> None:
        """Several events, (wall time, session time, kind, participant, data), in one transaction."""
        if not events:
            return
        self._insert_many(
            "INSERT INTO session_events (session_id, wall_time, session_time, kind, participant, data) VALUES (?,?,?,?,?,?)",
            [(session_id, wall, t, kind, who, json.dumps(data)) for wall, t, kind, who, data in events],
        )

    def _insert_many(self, sql: str, rows: list[tuple]) -> None:
        """Rows in one transaction: one commit, not one per row."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(sql, rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def events(self, session_id: str) -> list[dict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT wall_time, session_time, kind, participant, data FROM session_events WHERE session_id = ? ORDER BY rowid",
                (session_id,),
            ).fetchall()
        return [
            {"wall_time": w, "session_time": t, "kind": k, "participant": p, **json.loads(d)} for w, t, k, p, d in rows
        ]

    # -- tags ----------------------------------------------------------------------------

    def put_tag(
        self, session_id: str, tag_id: str, kind: str, label: str, session_time: float,
        clicked_at: float | None = None, note: str = "",
    ) -> tuple[dict[str, Any], bool]:
        """Store a tag once: ``(the tag as stored, whether this call stored it)``. A repeat of the
        id, from this process or another, changes nothing and gets the first tag back."""
        with self._lock:
            created = self._db.execute(
                "INSERT OR IGNORE INTO tags (session_id, id, kind, label, session_time, clicked_at, note, created_at)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (session_id, tag_id, kind, label, session_time, clicked_at, note, time.time()),
            ).rowcount == 1
            return self._tag(session_id, tag_id), created

    def patch_tag_note(self, session_id: str, tag_id: str, note: str) -> dict[str, Any] | None:
        with self._lock:
            self._db.execute("UPDATE tags SET note = ? WHERE session_id = ? AND id = ?", (note, session_id, tag_id))
            return self._tag(session_id, tag_id)

    def delete_tag(self, session_id: str, tag_id: str) -> dict[str, Any] | None:
        """Undo a tag: it stays, marked with when it was undone (the first time)."""
        with self._lock:
            self._db.execute(
                "UPDATE tags SET deleted_at = ? WHERE session_id = ? AND id = ? AND deleted_at IS NULL",
                (time.time(), session_id, tag_id),
            )
            return self._tag(session_id, tag_id)

    def tags(self, session_id: str) -> list[dict[str, Any]]:
        """The session's tags that are not undone, by session time."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {TAG_COLUMNS} FROM tags WHERE session_id = ? AND deleted_at IS NULL"
                " ORDER BY session_time, created_at",
                (session_id,),
            ).fetchall()
        return [_as_dict(TAG_COLUMNS, row) for row in rows]

    def _tag(self, session_id: str, tag_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            f"SELECT {TAG_COLUMNS} FROM tags WHERE session_id = ? AND id = ?", (session_id, tag_id)
        ).fetchone()
        return _as_dict(TAG_COLUMNS, row) if row else None

    # -- nudges --------------------------------------------------------------------------

    def add_nudge(self, session_id: str, nudge_id: str, kind: str, text: str, session_time: float) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO nudges (session_id, id, kind, text, session_time, created_at) VALUES (?,?,?,?,?,?)",
                (session_id, nudge_id, kind, text, session_time, time.time()),
            )

    def dismiss_nudge(self, session_id: str, nudge_id: str, session_time: float) -> dict[str, Any] | None:
        """Log the coach's dismissal (session time); a repeat keeps the first."""
        with self._lock:
            self._db.execute(
                "UPDATE nudges SET dismissed_at = ? WHERE session_id = ? AND id = ? AND dismissed_at IS NULL",
                (session_time, session_id, nudge_id),
            )
            return self._nudge(session_id, nudge_id)

    def nudge(self, session_id: str, nudge_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._nudge(session_id, nudge_id)

    def nudges(self, session_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {NUDGE_COLUMNS} FROM nudges WHERE session_id = ? ORDER BY session_time", (session_id,)
            ).fetchall()
        return [_as_dict(NUDGE_COLUMNS, row) for row in rows]

    def _nudge(self, session_id: str, nudge_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            f"SELECT {NUDGE_COLUMNS} FROM nudges WHERE session_id = ? AND id = ?", (session_id, nudge_id)
        ).fetchone()
        return _as_dict(NUDGE_COLUMNS, row) if row else None

    # -- the coach's settings ------------------------------------------------------------

    def coach_of(self, session_id: str) -> str:
        with self._lock:
            row = self._db.execute("SELECT coach_id FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return row[0] if row else LOCAL_COACH

    def coach_settings(self, coach_id: str) -> dict[str, Any]:
        """The coach's settings, with the defaults for whatever they never set."""
        with self._lock:
            row = self._db.execute("SELECT settings FROM coach_settings WHERE coach_id = ?", (coach_id,)).fetchone()
        return coach_settings.merged(json.loads(row[0]) if row else None)

    def set_coach_settings(self, coach_id: str, settings: Any) -> dict[str, Any]:
        """Replace the coach's settings; raises ``coach_settings.SettingsError`` if they are not valid."""
        complete = coach_settings.validate(settings)
        with self._lock:
            self._db.execute(
                "INSERT INTO coach_settings (coach_id, settings, updated_at) VALUES (?,?,?)"
                " ON CONFLICT (coach_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
                (coach_id, json.dumps(complete), time.time()),
            )
        return complete

    # -- indicator samples ---------------------------------------------------------------

    def add_indicator_samples(self, session_id: str, samples: Iterable[IndicatorSample]) -> None:
        """Write a batch of samples in one transaction (one commit, not one per row)."""
        rows = [(session_id, s.session_time, json.dumps(s.speaking), s.share_session, s.share_window,
                 s.current_silence) for s in samples]
        if rows:
            self._insert_many(
                "INSERT INTO indicator_samples (session_id, session_time, speaking, share_session, share_window,"
                " current_silence) VALUES (?,?,?,?,?,?)",
                rows,
            )

    def indicator_samples(self, session_id: str) -> list[IndicatorSample]:
        with self._lock:
            rows = self._db.execute(
                "SELECT session_time, speaking, share_session, share_window, current_silence FROM indicator_samples"
                " WHERE session_id = ? ORDER BY session_time",
                (session_id,),
            ).fetchall()
        return [IndicatorSample(t, json.loads(sp), s, w, c) for t, sp, s, w, c in rows]


def _as_dict(columns: str, row: tuple) -> dict[str, Any]:
    return dict(zip(columns.split(", "), row))

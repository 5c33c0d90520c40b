"""What outlives a call: sessions, their link secrets (hashed), consent and the event log, in SQLite.

One SQLite file in the data folder by default. Writes are small and rare (a session, a consent,
a join), so one connection behind a lock serves the whole server; WAL mode keeps readers from
blocking the writer and survives a killed process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

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
"""

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


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)

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

    def events(self, session_id: str) -> list[dict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT wall_time, session_time, kind, participant, data FROM session_events WHERE session_id = ? ORDER BY rowid",
                (session_id,),
            ).fetchall()
        return [
            {"wall_time": w, "session_time": t, "kind": k, "participant": p, **json.loads(d)} for w, t, k, p, d in rows
        ]

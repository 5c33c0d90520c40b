"""What outlives a call: sessions, their link secrets (hashed), consent, the event log, tags,
nudges, indicator samples, recordings and the coaches' settings.

SQLAlchemy Core over one SQLite file in the data folder by default, or a PostgreSQL database
(``database``); the tables are in ``schema`` and opening a store migrates the database to them
(``migrate``). Writes are small (a session, a tag, a second of recording progress, a few
seconds of indicator samples in one batch), so one connection behind a lock serves a process.
Several processes share the database: readers never block the writer, and a write takes its
turn from the start (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock), waiting for
another process's write instead of failing. Every method runs in one transaction, committed
when it returns. The node registry's own writes (a node's row, its heartbeat: nodes.py) have a
connection of their own, and on PostgreSQL take no turn: they must not wait behind a long write.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row

from .. import coach_settings
from . import database, migrate, queries as q
from .schema import (
    access_log,
    coach_logins,
    coach_settings as coach_settings_table,
    coaches,
    consents,
    indicator_samples,
    installation,
    nodes,
    nudges,
    recordings,
    review_cache,
    session_events,
    session_figures,
    session_reports,
    sessions,
    tags,
)

LOCAL_COACH = "local"
"""The coach of sessions made before accounts existed: the first account takes them over."""
MAX_SESSION_LABEL = 200
INVITE_TTL_S = 24 * 3600.0
"""How long a client's invite admits them after the session's call was last active."""
LOGIN_IDLE_S = 30 * 24 * 3600.0
"""A login not used for this long has ended (the cookie lives as long)."""
BUSY_TIMEOUT_MS = database.BUSY_TIMEOUT_MS
DatabaseUnavailable = database.DatabaseUnavailable
"""Opening the store failed for want of its database (the message says why, in one line)."""

CONSENT_NOTICE = (
    "This session's audio is analysed for talk balance (who speaks and for how long) and "
    "recorded for your coach's review. Only your coach sees the analysis."
)
CONSENT_SCOPES = ("analysis", "audio")
"""What a consent to ``CONSENT_NOTICE`` covers."""

WITHDRAWN = "consent-withdrawn"
"""The event of a participant withdrawing some of their consent."""
RECORDING_KINDS = ("audio", "video")
RECORDING_STATES = ("recording", "finished", "interrupted", "failed")
RECORDING_FIELDS = frozenset({
    "name", "media_type", "duration_s", "bytes", "state", "gaps", "chunks", "last_chunk_sha256", "error",
    "finished_at",
})
"""What ``update_recording`` may change. The file's name and media type change once, when the
finished recording is remuxed (Ogg to WebM); who, what kind and where it starts never do."""


class CoachExists(Exception):
    """There is already a coach with this email."""


@dataclass(frozen=True)
class Coach:
    id: str
    email: str
    name: str
    created_at: float
    password_changed_at: float


@dataclass(frozen=True)
class StoredSession:
    id: str
    label: str
    created_at: float
    video_recording: bool
    client: str = ""
    origin: str = "live"


class LibraryRow(NamedTuple):
    """A session as the library lists it: its kept figures (None: never built) and what its figures
    would be built from now (``inputs``: they are stale when it differs from what they were built from)."""

    session: StoredSession
    figures: dict[str, Any] | None
    inputs: str


@dataclass(frozen=True)
class NewSession:
    """A session just created, with the only copies of its secrets that will ever exist."""

    id: str
    coach_token: str
    client_token: str

    def coach_path(self) -> str:
        return f"/s/{self.id}/coach#{self.coach_token}"

    def review_path(self) -> str:
        """The coach's review of the session (an imported call's only page)."""
        return f"/s/{self.id}/review#{self.coach_token}"

    def client_path(self) -> str:
        return client_path(self.id, self.client_token)


def client_path(session_id: str, client_token: str) -> str:
    """The client's invite link (its path, with the token in the fragment)."""
    return f"/s/{session_id}/join#{client_token}"


class BalanceSample(NamedTuple):
    """The talk balance the coach saw at one second of a session."""

    session_time: float
    share_session: float | None
    share_window: float | None


class IndicatorSample(NamedTuple):
    """The coach's indicators at one second of a session, for the review's timeline."""

    session_time: float
    speaking: list[str]
    share_session: float | None
    share_window: float | None
    current_silence: float


class NewRecording(NamedTuple):
    """A recording whose file has begun (``Store.create_recording``'s fields)."""

    id: str
    participant: str
    kind: str
    name: str
    media_type: str
    start_s: float


class LiveRows(NamedTuple):
    """What one live call hands the store at an exchange (``Store.exchange_live``)."""

    session_id: str
    samples: Sequence[IndicatorSample] = ()
    events: Sequence[tuple[float, float | None, str, str | None, dict]] = ()
    """(wall time, session time, kind, participant, data), as ``log_events`` takes them."""
    recordings: Sequence[NewRecording] = ()
    """Recordings begun since the call's last exchange."""
    growth: Sequence[tuple[str, dict[str, Any]]] = ()
    """(recording id, fields) updates, as ``update_recording`` takes them: how far each grew."""
    settings: bool = False
    """Whether the call's coach's settings are read back."""


class NodeRow(NamedTuple):
    """A node of the registry (nodes.py) as its last heartbeat left it."""

    id: str
    url: str
    state: str
    """"live", or "draining" (stopped: it takes no new sessions)."""
    calls: int
    cpu: float | None
    heartbeat_at: float
    """The database's clock at the node's last heartbeat."""
    clock: float
    """The database's clock when the row was read."""

    def alive(self, within_s: float) -> bool:
        """Whether its last heartbeat was within ``within_s`` of when the row was read, both by
        the database's clock (the nodes' own clocks play no part)."""
        return self.heartbeat_at >= self.clock - within_s


class StoredClock(NamedTuple):
    """Where a session's stored timeline got to, for a call that goes on with it."""

    end: float
    """The latest session time of its events, its indicator samples and its recordings' audio
    (a killed process's recordings, handed in with its last samples, may reach past them by
    the second a sample waits for)."""
    offset: float
    """Its clock's session time minus the wall time: a live event is logged at the session time
    it happens, so the largest difference over the events is the clock's own (back-dated events,
    such as an interruption found later, give smaller ones)."""


def new_session_id() -> str:
    """12 URL-safe characters (72 random bits), never starting with "-": the id is typed as an
    argument of the command line (``livecoach delete ID``), where a leading "-" reads as an option."""
    while (session_id := secrets.token_urlsafe(9)).startswith("-"):
        pass
    return session_id


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Store:
    def __init__(self, path_or_url: str | Path, invite_ttl_s: float = INVITE_TTL_S) -> None:
        """Open (and create, or migrate to the newest schema) the database at a file path (SQLite)
        or a URL (``postgresql://…``, ``sqlite:///…``); DatabaseUnavailable when it cannot be.
        ``path`` is the SQLite file, or None for a database that is not one. ``invite_ttl_s``:
        how long a client's invite admits them after the call's last activity."""
        self.invite_ttl_s = invite_ttl_s
        url, self.path = database.locate(path_or_url)
        if self.path is not None:
            database.make_private(self.path)
        self._engine = database.create(url)
        self._lock = threading.Lock()
        self._registry_lock = threading.Lock()
        self._registry_conn: Connection | None = None
        """The node registry's own connection (``_registry_transaction``), opened when first used."""
        try:
            with migrate.exclusive(self._engine, self.path) as connection:
                self._conn = connection
                with self._transaction(write=True) as conn:
                    migrate.to_head(conn)
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def _db(self) -> Any:
        """The driver's connection underneath, where its settings (SQLite's PRAGMAs, PostgreSQL's
        SHOW) can be read."""
        return self._conn.connection.driver_connection

    def close(self) -> None:
        with self._lock, self._registry_lock:
            if self._registry_conn is not None:
                self._registry_conn.close()
            self._conn.close()
            self._engine.dispose()

    @contextmanager
    def _transaction(self, *, write: bool = False, rows_only: bool = False) -> Iterator[Connection]:
        """The process's connection, for one transaction at a time: threads take turns. A write
        says so before it begins (``database.WRITE``); one that only adds rows nothing reads
        first says ``rows_only`` (``database.ROW_WRITE``: no turn among the cluster's writers)."""
        with self._lock:
            self._conn.execution_options(**{database.WRITE: write and not rows_only, database.ROW_WRITE: rows_only})
            with self._conn.begin():
                yield self._conn

    @contextmanager
    def _registry_transaction(self) -> Iterator[Connection]:
        """A transaction of the node registry's (nodes.py) that writes a row or two, on a
        connection of its own: a heartbeat must not wait behind a long operation of this process
        on the store's connection, nor, on PostgreSQL, behind another process's write (no
        ``WRITE_LOCK``: database.ROW_WRITE). An SQLite database in memory has one connection."""
        if self.path is None and self._engine.dialect.name == "sqlite":
            with self._lock:
                self._conn.execution_options(**{database.WRITE: True})
                with self._conn.begin():
                    yield self._conn
            return
        with self._registry_lock:
            if self._registry_conn is None:
                self._registry_conn = database.connect(self._engine)
                self._registry_conn.execution_options(**{database.ROW_WRITE: True})
            try:
                with self._registry_conn.begin():
                    yield self._registry_conn
            except BaseException:
                if self._registry_conn.invalidated:  # a lost connection: a new one next time
                    self._registry_conn.close()
                    self._registry_conn = None
                raise

    # -- sessions ------------------------------------------------------------------------

    def create_session(
        self, label: str = "", video_recording: bool = True, coach_id: str = LOCAL_COACH,
        client: str | None = None, origin: str = "live", created_at: float | None = None,
    ) -> NewSession:
        """A new session. ``client`` defaults to the label (the name a coach gave it until clients
        had a field of their own); an import passes ``origin="import"`` and the recording's date."""
        new = NewSession(new_session_id(), secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        with self._transaction(write=True) as conn:
            conn.execute(sessions.insert(), {
                "id": new.id, "label": label[:MAX_SESSION_LABEL], "coach_id": coach_id,
                "created_at": time.time() if created_at is None else created_at,
                "client": (label if client is None else client).strip()[:MAX_SESSION_LABEL], "origin": origin,
                "coach_token_sha256": _digest(new.coach_token), "client_token_sha256": _digest(new.client_token),
                "video_recording": video_recording,
            })
        return new

    def get_session(self, session_id: str) -> StoredSession | None:
        with self._transaction() as conn:
            row = conn.execute(q.SESSION, {"session": session_id}).first()
        return StoredSession(*row) if row else None

    def set_client(self, session_id: str, client: str) -> None:
        """File the session under another client's name."""
        with self._transaction(write=True) as conn:
            conn.execute(q.UPDATE_SESSION, {"session": session_id, "client": client.strip()[:MAX_SESSION_LABEL]})

    def set_video_recording(self, session_id: str, on: bool) -> None:
        """Whether the session records video: the coach may change it before the call."""
        with self._transaction(write=True) as conn:
            conn.execute(q.UPDATE_SESSION, {"session": session_id, "video_recording": on})

    def role_for(self, session_id: str, token: str) -> str | None:
        """Which participant a token admits to a session: "coach", "client", or None. A client's
        invite admits them until ``invite_ttl_s`` after the call was last active (or the session
        made), and never once the coach revoked it."""
        with self._transaction() as conn:
            row = conn.execute(q.TOKEN_DIGESTS, {"session": session_id}).first()
        if not row:
            return None
        coach_digest, client_digest, created_at, active_at = row
        digest = _digest(token)
        if hmac.compare_digest(digest, coach_digest):
            return "coach"
        if hmac.compare_digest(digest, client_digest or "-"):
            if time.time() <= (active_at or created_at) + self.invite_ttl_s:
                return "client"
        return None

    def invite_expires_at(self, session_id: str) -> float | None:
        """When the client's invite stops admitting them (None: revoked, or no such session)."""
        with self._transaction() as conn:
            row = conn.execute(q.TOKEN_DIGESTS, {"session": session_id}).first()
        if not row or not row[1]:
            return None
        return (row[3] or row[2]) + self.invite_ttl_s

    def new_invite(self, session_id: str) -> str:
        """A new client token for the session: the old invite link stops working."""
        token = secrets.token_urlsafe(32)
        with self._transaction(write=True) as conn:
            conn.execute(q.UPDATE_SESSION, {"session": session_id, "client_token_sha256": _digest(token),
                                            "last_activity_at": time.time()})
        return token

    def revoke_invite(self, session_id: str) -> None:
        """The client's invite link stops working (a new one can be made)."""
        with self._transaction(write=True) as conn:
            conn.execute(q.UPDATE_SESSION, {"session": session_id, "client_token_sha256": ""})

    def touch_session(self, session_id: str) -> None:
        """Someone joined or left the session's call: its invite's time runs from now."""
        with self._transaction(write=True) as conn:
            conn.execute(q.UPDATE_SESSION, {"session": session_id, "last_activity_at": time.time()})

    def sessions_of(self, coach_id: str) -> list[StoredSession]:
        """The coach's sessions, newest first."""
        with self._transaction() as conn:
            rows = conn.execute(q.SESSIONS_OF, {"coach": coach_id}).all()
        return [StoredSession(*row) for row in rows]

    # -- deletion and retention ----------------------------------------------------------

    def delete_session(self, session_id: str) -> bool:
        """Every row of the session, in one transaction, overwritten in the file (secure_delete)
        and out of the write-ahead log on SQLite (PostgreSQL: docs/deploy.md); whether there was
        such a session."""
        with self._transaction(write=True) as conn:
            for statement in q.DELETE_SESSION_ROWS:
                conn.execute(statement, {"session": session_id})
            found = conn.execute(q.DELETE_SESSION, {"session": session_id}).rowcount > 0
        with self._lock:
            database.forget(self._conn)
        return found

    def erase_participant(self, session_id: str, role: str) -> list[dict[str, Any]]:
        """A participant's recordings' rows go (returned, for their files); for the client, also
        the session's label and client name, the tags' notes and the report's text, which name or
        describe them. The speech
        segments, figures and tags' times stay: they say nothing of who the person is."""
        with self._transaction(write=True) as conn:
            rows = [_recording_dict(r) for r in conn.execute(q.RECORDINGS, {"session": session_id}).all()]
            gone = [r for r in rows if r["participant"] == role]
            for r in gone:
                conn.execute(q.DELETE_RECORDING, {"session": session_id, "id": r["id"]})
            if role == "client":
                conn.execute(q.UPDATE_SESSION, {"session": session_id, "label": "", "client": ""})
                conn.execute(q.CLEAR_NOTES, {"session": session_id})
                conn.execute(q.CLEAR_REPORT_TEXT, {"session": session_id})
            conn.execute(q.DELETE_REVIEW_CACHE, {"session": session_id})
        with self._lock:
            database.forget(self._conn)
        return gone

    def delete_recording_rows(self, session_id: str, recording_ids: Iterable[str]) -> None:
        with self._transaction(write=True) as conn:
            for rid in recording_ids:
                conn.execute(q.DELETE_RECORDING, {"session": session_id, "id": rid})
            conn.execute(q.DELETE_REVIEW_CACHE, {"session": session_id})

    def retention_rows(self) -> list[tuple[str, float, float | None, int | None]]:
        """(session, created_at, last_activity_at, keep_recordings_days) of every session."""
        with self._transaction() as conn:
            return [tuple(row) for row in conn.execute(q.RETENTION).all()]

    def set_keep_recordings_days(self, session_id: str, days: int | None) -> None:
        with self._transaction(write=True) as conn:
            conn.execute(q.UPDATE_SESSION, {"session": session_id, "keep_recordings_days": days})

    def keep_recordings_days(self, session_id: str) -> int | None:
        with self._transaction() as conn:
            row = conn.execute(q.RETENTION.where(sessions.c.id == session_id)).first()
        return row[3] if row else None

    def log_access(self, session_id: str, who: str, action: str, detail: str = "") -> None:
        with self._transaction(write=True) as conn:
            conn.execute(access_log.insert(), {"session_id": session_id, "at": time.time(), "who": who,
                                               "action": action, "detail": detail[:200]})

    def access_log(self, session_id: str) -> list[dict[str, Any]]:
        with self._transaction() as conn:
            return [_as_dict(row) for row in conn.execute(q.ACCESS_LOG, {"session": session_id}).all()]

    # -- coaches and their logins --------------------------------------------------------

    def add_coach(self, email: str, name: str, password_hash: str, only_first: bool = False) -> Coach:
        """A new coach account (``email`` as given: accounts.py normalises it). The first coach
        takes over the sessions and settings made before there were accounts. ``only_first``:
        raise CoachExists if there is any coach already (the first run's page, atomically)."""
        now = time.time()
        coach = Coach(secrets.token_urlsafe(9), email, name, now, now)
        with self._transaction(write=True) as conn:
            if conn.execute(q.COACH_BY_EMAIL, {"email": email}).first() is not None:
                raise CoachExists(email)
            first = conn.execute(q.COACH_COUNT).scalar() == 0
            if only_first and not first:
                raise CoachExists(email)
            conn.execute(coaches.insert(), {"id": coach.id, "email": email, "name": name, "password_hash": password_hash,
                                            "created_at": now, "password_changed_at": now})
            if first:
                conn.execute(q.ADOPT_SESSIONS, {"coach": coach.id, "old": LOCAL_COACH})
                conn.execute(q.ADOPT_SETTINGS, {"coach": coach.id, "old": LOCAL_COACH})
        return coach

    def coach_count(self) -> int:
        with self._transaction() as conn:
            return conn.execute(q.COACH_COUNT).scalar()

    def coaches(self) -> list[Coach]:
        with self._transaction() as conn:
            return [Coach(*row) for row in conn.execute(q.COACHES).all()]

    def coach_login_details(self, email: str) -> tuple[Coach, str] | None:
        """The coach with this email and their password hash, to check a password against."""
        with self._transaction() as conn:
            row = conn.execute(q.COACH_BY_EMAIL, {"email": email}).first()
        return (Coach(*row[:5]), row[5]) if row else None

    def password_hash(self, coach_id: str) -> str | None:
        with self._transaction() as conn:
            return conn.execute(q.PASSWORD_HASH, {"coach": coach_id}).scalar()

    def set_password(self, coach_id: str, password_hash: str, keep_login: str | None = None) -> None:
        """A new password hash; every login of the coach ends but ``keep_login`` (a token)."""
        with self._transaction(write=True) as conn:
            conn.execute(q.UPDATE_COACH, {"coach": coach_id, "password_hash": password_hash,
                                          "password_changed_at": time.time()})
            conn.execute(q.END_LOGINS_BUT, {"coach": coach_id, "keep": _digest(keep_login) if keep_login else ""})

    def add_login(self, coach_id: str) -> str:
        """A new login of the coach: its token, for the browser's cookie (stored as a digest)."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self._transaction(write=True) as conn:
            conn.execute(coach_logins.insert(), {"token_sha256": _digest(token), "coach_id": coach_id,
                                                 "created_at": now, "last_seen_at": now})
        return token

    def coach_for_login(self, token: str) -> Coach | None:
        """The coach a login token belongs to, if that login has not ended (logged out, idle for
        ``LOGIN_IDLE_S``, ended by a password change). Its last use is noted once a minute."""
        now = time.time()
        with self._transaction() as conn:
            row = conn.execute(q.LOGIN, {"digest": _digest(token)}).first()
        if row is None or row[5] < now - LOGIN_IDLE_S:
            return None
        if row[5] < now - 60:
            with self._transaction(write=True) as conn:
                conn.execute(q.TOUCH_LOGIN, {"digest": _digest(token), "now": now})
        return Coach(*row[:5])

    def end_login(self, token: str) -> None:
        with self._transaction(write=True) as conn:
            conn.execute(q.END_LOGIN, {"digest": _digest(token)})

    # -- consent -------------------------------------------------------------------------

    def record_consent(
        self, session_id: str, role: str, notice: str = CONSENT_NOTICE, scopes: Iterable[str] = CONSENT_SCOPES
    ) -> None:
        """Log that a participant accepted a notice, and what it covers (what may be recorded).
        The same notice and scopes as the participant's latest consent add no row: a rejoin
        (a reload, a dropped network) is not a new agreement."""
        scopes_json = json.dumps(list(scopes))
        with self._transaction(write=True) as conn:
            latest = conn.execute(q.LATEST_CONSENT, {"session": session_id, "role": role}).first()
            if latest is not None and tuple(latest) == (notice, scopes_json):
                return
            conn.execute(consents.insert(), {
                "session_id": session_id, "role": role, "accepted_at": time.time(), "notice": notice,
                "scopes": scopes_json,
            })

    def consents(self, session_id: str) -> list[tuple[str, float, str]]:
        """``(role, accepted_at, notice)`` of each consent, oldest first."""
        with self._transaction() as conn:
            rows = conn.execute(q.CONSENTS, {"session": session_id}).all()
        return [tuple(row) for row in rows]

    def consent_scopes(self, session_id: str, role: str) -> set[str]:
        """What a participant agreed to in this session, over all their consents, less what they
        withdrew."""
        with self._transaction() as conn:
            rows = conn.execute(q.CONSENT_SCOPES, {"session": session_id, "role": role}).scalars().all()
        agreed = {scope for scopes in rows for scope in json.loads(scopes)}
        return agreed - self.withdrawn_scopes(session_id, role)

    def withdraw_consent(self, session_id: str, role: str, scopes: Iterable[str], session_time: float | None) -> None:
        """A participant withdrew these scopes: logged as a ``consent-withdrawn`` event; it holds
        for the rest of the session (``consent_scopes`` leaves them out from now on)."""
        self.log_event(session_id, WITHDRAWN, role, session_time, scopes=sorted(set(scopes)))

    def withdrawn_scopes(self, session_id: str, role: str) -> set[str]:
        return {scope for e in self.events(session_id, (WITHDRAWN,)) if e["participant"] == role
                for scope in e.get("scopes", [])}

    # -- the event log -------------------------------------------------------------------

    def log_event(
        self, session_id: str, kind: str, participant: str | None = None, session_time: float | None = None, **data
    ) -> None:
        self.log_events(session_id, [(time.time(), session_time, kind, participant, data)])

    def log_events(self, session_id: str, events: list[tuple[float, float | None, str, str | None, dict]]) -> None:
        """Several events, (wall time, session time, kind, participant, data), in one transaction."""
        rows = _event_rows(session_id, events)
        if rows:
            with self._transaction(write=True) as conn:
                conn.execute(session_events.insert(), rows)

    def exchange_live(self, calls: Sequence[LiveRows]) -> dict[str, dict[str, Any]]:
        """The live calls' exchange (live/storing.py): every two seconds a process's calls
        hand in what they buffered, all in one transaction: indicator samples and events written
        (as ``add_indicator_samples`` and ``log_events``), recordings begun and grown (as
        ``create_recording`` and ``update_recording``), and the settings of the coach of each
        call that asks read back (as ``coach_settings(coach_of(...))``; a session deleted
        mid-call gets the local coach's). Two transactions a call, its timeline's and its
        recording's, cost three times the CPU on PostgreSQL (scripts/bench_exchange.py). Rows are
        only added or their own recording's row updated, never read first, so the exchange does
        not wait its turn behind other nodes' writes (``database.ROW_WRITE``), except once when a
        recording begins. All or nothing: live/storing.py gives each call its own transaction
        when one fails.

        Returns each asking call's settings by session id."""
        sample_rows = [row for call in calls for row in _sample_rows(call.session_id, call.samples)]
        event_rows = [row for call in calls for row in _event_rows(call.session_id, call.events)]
        now = time.time()
        new_rows = [_new_recording_row(call.session_id, new, now) for call in calls for new in call.recordings]
        growth: dict[tuple[str, ...], list[dict[str, Any]]] = {}  # by the fields they change: one statement each
        for call in calls:
            for recording_id, fields in call.growth:
                values = {"session": call.session_id, "recording": recording_id, **_recording_values(fields, now)}
                growth.setdefault(tuple(sorted(values)), []).append(values)
        asking = list(dict.fromkeys(call.session_id for call in calls if call.settings))
        writes = bool(sample_rows or event_rows or growth)
        with self._transaction(write=bool(new_rows), rows_only=writes and not new_rows) as conn:
            if sample_rows:
                conn.execute(indicator_samples.insert(), sample_rows)
            if event_rows:
                conn.execute(session_events.insert(), event_rows)
            if new_rows:
                conn.execute(recordings.insert(), new_rows)
            for rows in growth.values():
                conn.execute(q.UPDATE_RECORDING, rows)
            stored = dict(conn.execute(q.SESSIONS_COACH_SETTINGS, {"sessions": asking}).all()) if asking else {}
            gone = [session_id for session_id in asking if session_id not in stored]
            if gone:
                fallback = conn.execute(q.COACH_SETTINGS, {"coach": LOCAL_COACH}).scalar()
                stored |= dict.fromkeys(gone, fallback)
        return {session_id: _merged_settings(stored[session_id]) for session_id in asking}

    def events(self, session_id: str, kinds: Iterable[str] | None = None) -> list[dict]:
        """The session's events in the order they were logged; only those of ``kinds`` if given
        (the review reads a few kinds of a long call's thousands of events)."""
        with self._transaction() as conn:
            if kinds is None:
                rows = conn.execute(q.EVENTS, {"session": session_id}).all()
            else:
                rows = conn.execute(q.EVENTS_OF_KINDS, {"session": session_id, "kinds": list(kinds)}).all()
        return [
            {"wall_time": w, "session_time": t, "kind": k, "participant": p, **json.loads(d)} for w, t, k, p, d in rows
        ]

    def stored_clock(self, session_id: str) -> StoredClock | None:
        """Where the session's stored timeline got to; None when it has no event with a session
        time (its call never ran)."""
        with self._transaction() as conn:
            offset, *ends = conn.execute(q.SESSION_CLOCK, {"session": session_id}).one()
        if offset is None:
            return None
        return StoredClock(max(end for end in ends if end is not None), offset)

    # -- tags ----------------------------------------------------------------------------

    def put_tag(
        self, session_id: str, tag_id: str, kind: str, label: str, session_time: float,
        clicked_at: float | None = None, note: str = "", origin: str = "live",
    ) -> tuple[dict[str, Any], bool]:
        """Store a tag once: ``(the tag as stored, whether this call stored it)``. A repeat of the
        id, from this process or another, changes nothing and gets the first tag back. ``origin``
        says where it was made ("live" or "review"); where it was put is kept as
        ``original_session_time`` however it is moved later."""
        with self._transaction(write=True) as conn:
            created = conn.execute(database.insert(conn, tags).on_conflict_do_nothing(), {
                "session_id": session_id, "id": tag_id, "kind": kind, "label": label, "session_time": session_time,
                "original_session_time": session_time, "clicked_at": clicked_at, "note": note, "origin": origin,
                "created_at": time.time(),
            }).rowcount == 1
            return self._tag(conn, session_id, tag_id), created

    def update_tag(
        self, session_id: str, tag_id: str, *, kind: str | None = None, label: str | None = None,
        session_time: float | None = None, note: str | None = None,
    ) -> dict[str, Any] | None:
        """Change what is given (a review moves, renames or annotates a tag) and mark when; the
        tag's ``original_session_time`` stays. None when there is no such tag."""
        changes = {
            name: value
            for name, value in (("kind", kind), ("label", label), ("session_time", session_time), ("note", note))
            if value is not None
        }
        with self._transaction(write=bool(changes)) as conn:
            if changes:
                conn.execute(q.UPDATE_TAG, {"session": session_id, "tag": tag_id, **changes, "updated_at": time.time()})
            return self._tag(conn, session_id, tag_id)

    def delete_tag(self, session_id: str, tag_id: str) -> dict[str, Any] | None:
        """Undo a tag: it stays, marked with when it was undone (the first time)."""
        with self._transaction(write=True) as conn:
            conn.execute(q.UNDO_TAG, {"session": session_id, "tag": tag_id, "deleted_at": time.time()})
            return self._tag(conn, session_id, tag_id)

    def tags(self, session_id: str) -> list[dict[str, Any]]:
        """The session's tags that are not undone, by session time."""
        with self._transaction() as conn:
            rows = conn.execute(q.TAGS_NOT_UNDONE, {"session": session_id}).all()
        return [_as_dict(row) for row in rows]

    @staticmethod
    def _tag(conn: Connection, session_id: str, tag_id: str) -> dict[str, Any] | None:
        row = conn.execute(q.TAG, {"session": session_id, "tag": tag_id}).first()
        return _as_dict(row) if row else None

    # -- nudges --------------------------------------------------------------------------

    def add_nudge(self, session_id: str, nudge_id: str, kind: str, text: str, session_time: float) -> None:
        with self._transaction(write=True) as conn:
            conn.execute(nudges.insert(), {
                "session_id": session_id, "id": nudge_id, "kind": kind, "text": text, "session_time": session_time,
                "created_at": time.time(),
            })

    def dismiss_nudge(self, session_id: str, nudge_id: str, session_time: float) -> dict[str, Any] | None:
        """Log the coach's dismissal (session time); a repeat keeps the first."""
        with self._transaction(write=True) as conn:
            conn.execute(q.DISMISS_NUDGE, {"session": session_id, "nudge": nudge_id, "dismissed_at": session_time})
            return self._nudge(conn, session_id, nudge_id)

    def nudge(self, session_id: str, nudge_id: str) -> dict[str, Any] | None:
        with self._transaction() as conn:
            return self._nudge(conn, session_id, nudge_id)

    def nudges(self, session_id: str) -> list[dict[str, Any]]:
        with self._transaction() as conn:
            rows = conn.execute(q.NUDGES, {"session": session_id}).all()
        return [_as_dict(row) for row in rows]

    @staticmethod
    def _nudge(conn: Connection, session_id: str, nudge_id: str) -> dict[str, Any] | None:
        row = conn.execute(q.NUDGE, {"session": session_id, "nudge": nudge_id}).first()
        return _as_dict(row) if row else None

    # -- the coach's settings ------------------------------------------------------------

    def coach_of(self, session_id: str) -> str:
        with self._transaction() as conn:
            coach = conn.execute(q.COACH_OF, {"session": session_id}).scalar()
        return coach if coach is not None else LOCAL_COACH

    def coach_settings(self, coach_id: str) -> dict[str, Any]:
        """The coach's settings, with the defaults for whatever they never set."""
        with self._transaction() as conn:
            stored = conn.execute(q.COACH_SETTINGS, {"coach": coach_id}).scalar()
        return _merged_settings(stored)

    def set_coach_settings(self, coach_id: str, settings: Any) -> dict[str, Any]:
        """Replace the coach's settings; raises ``coach_settings.SettingsError`` if they are not valid."""
        complete = coach_settings.validate(settings)
        with self._transaction(write=True) as conn:
            upsert = database.insert(conn, coach_settings_table)
            upsert = upsert.on_conflict_do_update(
                index_elements=[coach_settings_table.c.coach_id],
                set_={"settings": upsert.excluded.settings, "updated_at": upsert.excluded.updated_at},
            )
            conn.execute(upsert, {"coach_id": coach_id, "settings": json.dumps(complete), "updated_at": time.time()})
        return complete

    # -- indicator samples ---------------------------------------------------------------

    def add_indicator_samples(self, session_id: str, samples: Iterable[IndicatorSample]) -> None:
        """Write a batch of samples in one transaction (one commit, not one per row)."""
        rows = _sample_rows(session_id, samples)
        if rows:
            with self._transaction(write=True) as conn:
                conn.execute(indicator_samples.insert(), rows)

    def indicator_samples(self, session_id: str) -> list[IndicatorSample]:
        with self._transaction() as conn:
            rows = conn.execute(q.SAMPLES, {"session": session_id}).all()
        return [IndicatorSample(t, json.loads(sp), share, window, c) for t, sp, share, window, c in rows]

    def talk_balance(self, session_id: str) -> list[BalanceSample]:
        """The talk shares of the indicator samples only: what the review's line needs."""
        with self._transaction() as conn:
            rows = conn.execute(q.SAMPLE_SHARES, {"session": session_id}).all()
        return [BalanceSample(*row) for row in rows]

    # -- the review cache ------------------------------------------------------------------

    def review_inputs(self, session_id: str) -> str:
        """How many events and indicator samples the session has: both only grow, so a review
        built when these counts were the same is built from the same rows."""
        with self._transaction() as conn:
            events, samples = conn.execute(q.REVIEW_INPUTS, {"session": session_id}).one()
        return f"events={events};samples={samples}"

    def cached_review(self, session_id: str) -> tuple[str, bytes] | None:
        """(fingerprint, body) of the review part kept for the session, if any."""
        with self._transaction() as conn:
            row = conn.execute(q.CACHED_REVIEW, {"session": session_id}).first()
        return None if row is None else (row[0], bytes(row[1]))

    def keep_review(self, session_id: str, fingerprint: str, body: bytes) -> None:
        """Keep (or replace) the session's review part built from what ``fingerprint`` names."""
        with self._transaction(write=True) as conn:
            _keep_row(conn, review_cache, {"session_id": session_id, "fingerprint": fingerprint, "body": body,
                                           "built_at": time.time()})

    # -- library -------------------------------------------------------------------------

    def library_rows(self, coach_id: str | None = None, session_id: str | None = None) -> list[LibraryRow]:
        """The coach's sessions (every coach's with None; one session with ``session_id``), newest
        first, each with its kept figures and what its figures would be built from now."""
        if session_id is not None:
            statement, params = q.LIBRARY_ONE, {"session": session_id}
        elif coach_id is not None:
            statement, params = q.LIBRARY_OF, {"coach": coach_id}
        else:
            statement, params = q.LIBRARY_ALL, {}
        with self._transaction() as conn:
            rows = conn.execute(statement, params).all()
        return [_library_row(row) for row in rows]

    def keep_figures(self, session_id: str, fingerprint: str, figures: dict[str, Any]) -> None:
        """Keep (or replace) the session's library figures, built from what ``fingerprint`` names;
        ``figures`` has every column of ``session_figures`` but the session and fingerprint."""
        values = dict(figures, tag_counts=json.dumps(figures["tag_counts"], sort_keys=True))
        with self._transaction(write=True) as conn:
            _keep_row(conn, session_figures, {"session_id": session_id, "fingerprint": fingerprint,
                                              "built_at": time.time(), **values})

    def report_text(self, session_id: str) -> dict[str, Any]:
        """The coach's summary and next steps for the session's report (empty if never written)."""
        with self._transaction() as conn:
            row = conn.execute(q.REPORT_TEXT, {"session": session_id}).first()
        return _as_dict(row) if row else {"summary": "", "next_steps": "", "updated_at": None}

    def set_report_text(self, session_id: str, summary: str, next_steps: str) -> dict[str, Any]:
        with self._transaction(write=True) as conn:
            _keep_row(conn, session_reports, {"session_id": session_id, "summary": summary, "next_steps": next_steps,
                                              "updated_at": time.time()})
            return _as_dict(conn.execute(q.REPORT_TEXT, {"session": session_id}).one())

    # -- recordings ----------------------------------------------------------------------

    def create_recording(
        self, session_id: str, recording_id: str, participant: str, kind: str, name: str, media_type: str,
        start_s: float,
    ) -> dict[str, Any]:
        """A recording's file has begun: ``name`` in the session's recordings folder, whose time 0 is
        session time ``start_s``. It is "recording" until ``update_recording`` says otherwise."""
        row = _new_recording_row(session_id, NewRecording(recording_id, participant, kind, name, media_type, start_s),
                                 time.time())
        with self._transaction(write=True) as conn:
            conn.execute(recordings.insert(), row)
            return self._recording(conn, session_id, recording_id)

    def update_recording(self, session_id: str, recording_id: str, **fields: Any) -> dict[str, Any] | None:
        """Change any of ``RECORDING_FIELDS`` (``gaps`` as a list) and mark when: a recording that
        is "recording" and not updated for a while was left behind by a process that died."""
        with self._transaction(write=True) as conn:
            self._update_recording(conn, session_id, recording_id, fields)
            return self._recording(conn, session_id, recording_id)

    def recording(self, session_id: str, recording_id: str) -> dict[str, Any] | None:
        with self._transaction() as conn:
            return self._recording(conn, session_id, recording_id)

    def recordings(self, session_id: str, gaps: bool = True) -> list[dict[str, Any]]:
        """The session's recordings, in the order they began; without their ``gaps`` (not read
        at all) when ``gaps`` is False, for the readers that need only their place and state."""
        with self._transaction() as conn:
            if not gaps:
                return [_as_dict(row) for row in conn.execute(q.RECORDINGS_WITHOUT_GAPS, {"session": session_id})]
            rows = conn.execute(q.RECORDINGS, {"session": session_id}).all()
        return [_recording_dict(row) for row in rows]

    def stale_recordings(self, updated_before: float, claimed_before: float | None = None) -> list[dict[str, Any]]:
        """Every session's recordings still "recording" but not updated since ``updated_before``:
        their process died, and they are to be finished as interrupted. With ``claimed_before``,
        not those a process claimed since then (``claim_recordings``: it is finishing them)."""
        with self._transaction() as conn:
            if claimed_before is None:
                rows = conn.execute(q.STALE_RECORDINGS, {"before": updated_before}).all()
            else:
                rows = conn.execute(q.UNCLAIMED_STALE_RECORDINGS,
                                    {"before": updated_before, "claimed_before": claimed_before}).all()
        return [_recording_dict(row) for row in rows]

    def claim_recordings(self, session_id: str, recording_ids: Iterable[str], updated_before: float,
                         claimed_before: float, now: float) -> list[str]:
        """Take a session's stale recordings to finish them, in one transaction: those of
        ``recording_ids`` still "recording", not updated since ``updated_before`` and not claimed
        since ``claimed_before`` (by a process that is finishing them; an older claim's process
        died) are marked claimed at ``now``, and returned. Of several processes claiming the same
        recordings at once, one gets each, and it gets all of a session's that are stale: one
        process finishes a call's recordings and logs its interruption."""
        claimed = []
        with self._transaction(write=True) as conn:
            for recording_id in recording_ids:
                taken = conn.execute(q.CLAIM_RECORDING, {
                    "session": session_id, "recording": recording_id, "before": updated_before,
                    "claimed_before": claimed_before, "claimed_at": now,
                }).rowcount
                if taken == 1:
                    claimed.append(recording_id)
        return claimed

    @staticmethod
    def _update_recording(conn: Connection, session_id: str, recording_id: str, fields: dict[str, Any]) -> None:
        values = _recording_values(fields, time.time())
        conn.execute(q.UPDATE_RECORDING, {"session": session_id, "recording": recording_id, **values})

    @staticmethod
    def _recording(conn: Connection, session_id: str, recording_id: str) -> dict[str, Any] | None:
        row = conn.execute(q.RECORDING, {"session": session_id, "recording": recording_id}).first()
        return _recording_dict(row) if row else None

    # -- exports and imports ---------------------------------------------------------------

    def consent_records(self, session_id: str) -> list[dict[str, Any]]:
        """Each consent as given, oldest first: ``role``, ``accepted_at``, ``notice`` and the
        ``scopes`` it covered (a list)."""
        with self._transaction() as conn:
            rows = conn.execute(q.CONSENT_RECORDS, {"session": session_id}).all()
        return [_as_dict(row) | {"scopes": json.loads(row.scopes)} for row in rows]

    def session_coach(self, session_id: str) -> Coach | None:
        """The coach account the session belongs to (None: made before there were accounts)."""
        with self._transaction() as conn:
            row = conn.execute(q.SESSION_COACH, {"session": session_id}).first()
        return Coach(*row) if row else None

    def add_imported_call(
        self, session_id: str, events: list[tuple[float, float | None, str, str | None, dict]],
        samples: list[IndicatorSample], recording_rows: list[dict[str, Any]],
    ) -> None:
        """An imported call's event log, indicator samples and finished recordings, in one
        transaction, so a session has all of them or none. Its invite is revoked (nobody joins a
        call that is over) and its retention runs from now, not from the recording's date."""
        now = time.time()
        events_rows = [
            {"session_id": session_id, "wall_time": wall, "session_time": t, "kind": kind, "participant": who,
             "data": json.dumps(data)}
            for wall, t, kind, who, data in events
        ]
        samples_rows = [
            {"session_id": session_id, "session_time": x.session_time, "speaking": json.dumps(x.speaking),
             "share_session": x.share_session, "share_window": x.share_window, "current_silence": x.current_silence}
            for x in samples
        ]
        for row in recording_rows:
            if row["kind"] not in RECORDING_KINDS or row["state"] not in RECORDING_STATES:
                raise ValueError(f"not a finished recording: {row['kind']!r}, {row['state']!r}")
        files = [
            dict(row, session_id=session_id, gaps=json.dumps(row.get("gaps", [])), created_at=now, updated_at=now,
                 finished_at=now)
            for row in recording_rows
        ]
        with self._transaction(write=True) as conn:
            conn.execute(q.IMPORTED_SESSION, {"session": session_id, "now": now})
            for table, rows in ((session_events, events_rows), (indicator_samples, samples_rows), (recordings, files)):
                if rows:
                    conn.execute(table.insert(), rows)

    # -- nodes (nodes.py) ----------------------------------------------------------------

    def register_node(self, node_id: str, url: str, cpu: float | None = None, instance: str = "",
                      alive_within_s: float | None = None) -> NodeRow | None:
        """A node starts: its row, live, with a heartbeat now, held by ``instance`` (a token of the
        process). A row of the same id is taken over (an earlier run of the node, which crashed),
        unless ``alive_within_s`` is given and the row is another instance's with a heartbeat
        within it: that row is returned then, and nothing is written. None: registered. On the
        registry's connection (``_registry_transaction``)."""
        values = {"url": url, "state": "live", "calls": 0, "cpu": cpu, "instance": instance}
        with self._registry_transaction() as conn:
            if conn.execute(_new_node(conn), {"id": node_id, **values}).rowcount == 1:
                return None
            row = conn.execute(q.NODE_INSTANCE, {"node": node_id}).first()
            if row is not None and alive_within_s is not None and row[0] != instance:
                held = NodeRow(*row[1:])
                if held.alive(alive_within_s):
                    return held
            conn.execute(q.TAKE_NODE, {"node": node_id, **values})
        return None

    def node_heartbeat(self, node_id: str, url: str, state: str, calls: int, cpu: float | None,
                       instance: str = "") -> bool:
        """A node is alive now (by the database's clock), with this state and load. On the
        registry's connection, taking no turn behind other writes (``_registry_transaction``). A
        row gone meanwhile (removed by hand, say) is written again. False, and nothing written,
        when another process (``instance``) holds the node's id: it took the row over while this
        one's heartbeats had stopped."""
        values = {"url": url, "state": state, "calls": calls, "cpu": cpu}
        with self._registry_transaction() as conn:
            if conn.execute(q.NODE_HEARTBEAT, {"node": node_id, "this_instance": instance, **values}).rowcount == 1:
                return True
            return conn.execute(_new_node(conn), {"id": node_id, "instance": instance, **values}).rowcount == 1

    def remove_node(self, node_id: str, instance: str = "") -> None:
        """A node stopped: its row goes, if ``instance`` still holds it; its sessions go to other
        nodes when they are next asked for."""
        with self._registry_transaction() as conn:
            conn.execute(q.DELETE_NODE, {"node": node_id, "this_instance": instance})

    def nodes(self) -> list[NodeRow]:
        with self._transaction() as conn:
            return [NodeRow(*row) for row in conn.execute(q.NODES).all()]

    def node(self, node_id: str) -> NodeRow | None:
        with self._transaction() as conn:
            row = conn.execute(q.NODE, {"node": node_id}).first()
        return NodeRow(*row) if row else None

    def database_clock(self) -> float:
        """The database's clock (database.clock), which the registry's times are."""
        with self._transaction() as conn:
            return conn.execute(q.CLOCK).scalar_one()

    def session_node(self, session_id: str) -> tuple[str | None, NodeRow | None] | None:
        """``(owner id, its row)`` of a session: the id None when it has no owner, the row None
        when its owner has no row (stopped); None when there is no such session."""
        with self._transaction() as conn:
            row = conn.execute(q.SESSION_NODE, {"session": session_id}).first()
        if row is None:
            return None
        return row[0], NodeRow(*row[1:]) if row[1] is not None else None

    def assign_session(self, session_id: str, alive_within_s: float, exclude: str | None = None) -> NodeRow | None:
        """Give the session to the least-loaded live node (not ``exclude``), unless, once its row
        is locked, its owner is a node alive within ``alive_within_s`` other than ``exclude``
        (another node reassigned it meanwhile): the owner then stays. Returns the owner after
        this (None: no such session, or no live node to give it to and no owner with a row; the
        owner's row, alive or not, when there is no live node to give it to)."""
        with self._transaction(write=True) as conn:
            owner = conn.execute(q.LOCK_SESSION_NODE, {"session": session_id}).first()
            if owner is None:
                return None
            row = conn.execute(q.NODE, {"node": owner[0]}).first() if owner[0] is not None else None
            current = NodeRow(*row) if row else None
            if current is not None and current.id != exclude and current.alive(alive_within_s):
                return current
            for candidate in conn.execute(q.LIVE_NODES, {"within": alive_within_s}).all():
                chosen = NodeRow(*candidate)
                if chosen.id == exclude:
                    continue
                conn.execute(q.UPDATE_SESSION, {"session": session_id, "node_id": chosen.id})
                last = conn.execute(q.LAST_ASSIGNED).scalar() or 0.0
                conn.execute(q.UPDATE_NODE, {"node": chosen.id, "assigned_at": max(chosen.clock, last + 1e-6)})
                return chosen
            return current

    # -- what the nodes share (several nodes: signing.py, auth_api.py) --------------------

    def shared_value(self, key: str, first: str) -> str:
        """The installation's ``key`` (table ``installation``): ``first`` if it had none (kept
        then), else the value kept before. Processes racing to keep theirs agree on one."""
        with self._transaction(write=True) as conn:
            _keep_if_missing(conn, key, first)
            return conn.execute(q.SHARED, {"key": key}).scalar_one()

    def take_turn(self, job: str, every_s: float) -> bool:
        """Whether this node runs the installation's ``job`` now: of the nodes that ask, one
        gets a turn, and the next turn comes ``every_s`` after it (the database's clock), so a job
        every node would run (the retention purge) runs once."""
        key = q.TURN_KEY + job
        with self._transaction(write=True) as conn:
            now = conn.execute(q.CLOCK).scalar_one()
            _keep_if_missing(conn, key, "0")
            return conn.execute(q.TAKE_TURN, {"turn": key, "due": now - every_s, "value": repr(now)}).rowcount == 1

    def keep_setup_code(self, node_id: str, digest: str) -> None:
        """The SHA-256 of a node's first-run setup code, so that any node accepts it."""
        with self._transaction(write=True) as conn:
            _upsert(conn, installation, ["key"], {"key": q.SETUP_CODE_KEY + node_id, "value": digest})

    def setup_code_digests(self) -> list[str]:
        """The SHA-256 of every node's setup code (``keep_setup_code``)."""
        with self._transaction() as conn:
            return list(conn.execute(q.SETUP_CODES).scalars())

    def forget_setup_codes(self) -> None:
        """There is a coach: no setup code opens the first run any more."""
        with self._transaction(write=True) as conn:
            conn.execute(q.FORGET_SETUP_CODES)


def _new_recording_row(session_id: str, new: NewRecording, now: float) -> dict[str, Any]:
    if new.kind not in RECORDING_KINDS:
        raise ValueError(f"a recording's kind is one of {RECORDING_KINDS}, not {new.kind!r}")
    return {"session_id": session_id, **new._asdict(), "created_at": now, "updated_at": now}


def _recording_values(fields: dict[str, Any], now: float) -> dict[str, Any]:
    """A recording's changed ``fields`` as its row takes them (checked), marked as changed ``now``."""
    unknown = fields.keys() - RECORDING_FIELDS
    if unknown:
        raise TypeError(f"not a recording's changeable field: {', '.join(sorted(unknown))}")
    if "state" in fields and fields["state"] not in RECORDING_STATES:
        raise ValueError(f"a recording's state is one of {RECORDING_STATES}, not {fields['state']!r}")
    values = dict(fields, updated_at=now)
    if "gaps" in values:
        values["gaps"] = json.dumps(values["gaps"])
    return values


def _merged_settings(stored: str | None) -> dict[str, Any]:
    """A coach's stored settings (JSON text, or None) over the defaults."""
    return coach_settings.merged(json.loads(stored) if stored is not None else None)


def _sample_rows(session_id: str, samples: Iterable[IndicatorSample]) -> list[dict[str, Any]]:
    return [
        {"session_id": session_id, "session_time": s.session_time, "speaking": json.dumps(s.speaking),
         "share_session": s.share_session, "share_window": s.share_window, "current_silence": s.current_silence}
        for s in samples
    ]


def _event_rows(session_id: str, events: list[tuple[float, float | None, str, str | None, dict]]) -> list[dict]:
    return [
        {"session_id": session_id, "wall_time": wall, "session_time": t, "kind": kind, "participant": who,
         "data": json.dumps(data)}
        for wall, t, kind, who, data in events
    ]


def _new_node(conn: Connection) -> Any:
    """A node's row, its start and heartbeat now by the database's clock, unless its id has one."""
    return (database.insert(conn, nodes).values(started_at=database.clock(), heartbeat_at=database.clock())
            .on_conflict_do_nothing())


def _keep_if_missing(conn: Connection, key: str, value: str) -> None:
    """The installation's ``key`` set to ``value`` unless it has one (racing processes agree)."""
    conn.execute(database.insert(conn, installation).on_conflict_do_nothing(), {"key": key, "value": value})


def _upsert(conn: Connection, table: Any, keys: list[str], values: dict[str, Any]) -> None:
    """Insert a row, or replace the columns ``values`` names in the row with the same ``keys``."""
    upsert = database.insert(conn, table)
    upsert = upsert.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys],
        set_={name: upsert.excluded[name] for name in values if name not in keys},
    )
    conn.execute(upsert, values)


def _keep_row(conn: Connection, table: Any, values: dict[str, Any]) -> None:
    """Insert a session's row of ``table`` (keyed by ``session_id``), or replace the columns
    ``values`` names if it has one (SQLite and PostgreSQL alike)."""
    upsert = database.insert(conn, table)
    upsert = upsert.on_conflict_do_update(
        index_elements=[table.c.session_id],
        set_={name: upsert.excluded[name] for name in values if name != "session_id"},
    )
    conn.execute(upsert, values)


def _as_dict(row: Row) -> dict[str, Any]:
    return dict(row._mapping)


_FIGURE_NAMES = [c.name for c in q.FIGURES_COLUMNS]


def _library_row(row: Row) -> LibraryRow:
    """A row of ``q.LIBRARY_*``: the session's columns, its figures' (all null when none are
    kept), then ``q.FIGURES_INPUTS``."""
    row = tuple(row)  # plain tuple slices: a thousand rows are read per library answer
    head = q.LIBRARY_HEAD
    session = StoredSession(*row[:head])
    values = dict(zip(_FIGURE_NAMES, row[head:head + len(_FIGURE_NAMES)]))
    figures = None
    if values["fingerprint"] is not None:
        figures = values | {"tag_counts": json.loads(values["tag_counts"]), "live": bool(values["live"]),
                            "recorded": bool(values["recorded"])}
    events, samples, recordings_n, recordings_at, tags_n, created, updated, undone, nudges_n = row[
        head + len(_FIGURE_NAMES):]
    inputs = (f"events@{events};samples@{samples};recordings={recordings_n}@{recordings_at};"
              f"tags={tags_n}@{created},{updated},{undone};nudges={nudges_n}")
    return LibraryRow(session, figures, inputs)


def _recording_dict(row: Row) -> dict[str, Any]:
    recording = _as_dict(row)
    recording["gaps"] = json.loads(recording["gaps"])
    return recording

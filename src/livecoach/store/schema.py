"""The store's tables, as they are after the newest migration.

The migrations (``migrations/versions``) build the database and are frozen once released; these
tables are what the queries are written against. A test compares the two (alembic's
autogenerate), so a change made here without a migration, or the other way round, fails.
"""

from __future__ import annotations

from sqlalchemy import (
    REAL,
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

Seconds = Double().with_variant(REAL(), "sqlite")
"""Times in seconds (epoch or session time): REAL on SQLite, where it is a double already;
DOUBLE PRECISION elsewhere, where REAL would be single precision and blur an epoch to minutes."""

LogOrder = BigInteger().with_variant(Integer(), "sqlite")
"""A number given to each row as it is inserted: INTEGER on SQLite, where an INTEGER PRIMARY KEY
is the rowid; a BIGINT identity elsewhere (an event log can pass 2^31 rows)."""

metadata = MetaData()

sessions = Table(
    "sessions", metadata,
    Column("id", Text, primary_key=True),
    Column("label", Text, nullable=False, server_default=""),
    Column("created_at", Seconds, nullable=False),
    Column("coach_token_sha256", Text, nullable=False),
    Column("client_token_sha256", Text, nullable=False),
    Column("coach_id", Text, nullable=False, server_default="local"),
    Column("video_recording", Boolean, nullable=False, server_default="1"),
    Column("last_activity_at", Seconds),
    Column("keep_recordings_days", Integer),
    Column("client", Text, nullable=False, server_default=""),
    Column("origin", Text, nullable=False, server_default="live"),
    Column("node_id", Text),
    Index("sessions_by_coach_client", "coach_id", "client", "created_at"),
)
"""A session: its coach, the digests of its two links' tokens (an empty client digest: the
coach revoked the invite) and when someone last joined or left its call (the invite expires a
while after that; null: never, so its creation counts). ``keep_recordings_days``: the coach's
shorter retention for this session's recordings (null: the installation's). ``client``: the
name the coach files the session under (sessions of one client group together in the library);
``origin``: "live" (a call held here) or "import" (a recorded call brought in afterwards).
``node_id``: the node that runs its calls when several share the database (nodes.py; null: none
chosen yet, or a single server)."""

nodes = Table(
    "nodes", metadata,
    Column("id", Text, primary_key=True),
    Column("url", Text, nullable=False),
    Column("state", Text, nullable=False, server_default="live"),
    Column("calls", Integer, nullable=False, server_default="0"),
    Column("cpu", Seconds),
    Column("started_at", Seconds, nullable=False),
    Column("heartbeat_at", Seconds, nullable=False),
    Column("assigned_at", Seconds, nullable=False, server_default="0"),
    Column("instance", Text, nullable=False, server_default=""),
)
"""The server processes (nodes) sharing the database: where each is reached, "live" or
"draining" (no new sessions), its load (``calls`` it holds, its machine's ``cpu`` load per core)
as its last heartbeat reported it, and when it was last given a session (migration 0009). Times
are the database's clock (database.clock). ``instance``: a random token of the process that
holds the id, so that a second process started with the same id does not take a live one's row."""

installation = Table(
    "installation", metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)
"""What every node of an installation must share, when several share the database (migration
0009): ``secret`` (the key of the signed media links, hex), ``setup-code:<node>`` (the SHA-256 of
each node's first-run setup code while there is no coach), ``turn:<job>`` (when a node last took
the turn at a job that one node runs for all, epoch seconds by the database's clock:
``Store.take_turn``). A single server keeps these in its data folder instead, or has no need of
them, and writes no row here."""

coaches = Table(
    "coaches", metadata,
    Column("id", Text, primary_key=True),
    Column("email", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", Seconds, nullable=False),
    Column("password_changed_at", Seconds, nullable=False),
)
"""The coaches who log in: email lower-cased, the password as an argon2id hash (accounts.py)."""

coach_logins = Table(
    "coach_logins", metadata,
    Column("token_sha256", Text, primary_key=True),
    Column("coach_id", Text, ForeignKey("coaches.id"), nullable=False),
    Column("created_at", Seconds, nullable=False),
    Column("last_seen_at", Seconds, nullable=False),
    Index("coach_logins_by_coach", "coach_id"),
)
"""A logged-in browser: the digest of its cookie's token. Logging out deletes the row; a
password change deletes every other row of the coach."""

consents = Table(
    "consents", metadata,
    Column("session_id", Text, ForeignKey("sessions.id"), nullable=False),
    Column("role", Text, nullable=False),
    Column("accepted_at", Seconds, nullable=False),
    Column("notice", Text, nullable=False),
    Column("scopes", Text, nullable=False, server_default='["analysis", "audio"]'),
)

session_events = Table(
    "session_events", metadata,
    Column("id", LogOrder, Identity(), primary_key=True),
    Column("session_id", Text, ForeignKey("sessions.id"), nullable=False),
    Column("wall_time", Seconds, nullable=False),
    Column("session_time", Seconds),
    Column("kind", Text, nullable=False),
    Column("participant", Text),
    Column("data", Text, nullable=False, server_default="{}"),
    Index("session_events_by_session", "session_id", "wall_time"),
)
"""A session's event log. ``id`` numbers the events in the order they were logged (a session's
events are read in that order): until migration 0008 it was SQLite's rowid."""

tags = Table(
    "tags", metadata,
    Column("session_id", Text, ForeignKey("sessions.id"), nullable=False),
    Column("id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("session_time", Seconds, nullable=False),
    Column("clicked_at", Seconds),
    Column("note", Text, nullable=False, server_default=""),
    Column("created_at", Seconds, nullable=False),
    Column("deleted_at", Seconds),
    Column("origin", Text, nullable=False, server_default="live"),
    Column("original_session_time", Seconds),
    Column("updated_at", Seconds),
    PrimaryKeyConstraint("session_id", "id"),
)

nudges = Table(
    "nudges", metadata,
    Column("session_id", Text, ForeignKey("sessions.id"), nullable=False),
    Column("id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("session_time", Seconds, nullable=False),
    Column("created_at", Seconds, nullable=False),
    Column("dismissed_at", Seconds),
    PrimaryKeyConstraint("session_id", "id"),
)

coach_settings = Table(
    "coach_settings", metadata,
    Column("coach_id", Text, primary_key=True),
    Column("settings", Text, nullable=False),
    Column("updated_at", Seconds, nullable=False),
)

indicator_samples = Table(
    "indicator_samples", metadata,
    Column("session_id", Text, ForeignKey("sessions.id"), nullable=False),
    Column("session_time", Seconds, nullable=False),
    Column("speaking", Text, nullable=False),
    Column("share_session", Seconds),
    Column("share_window", Seconds),
    Column("current_silence", Seconds, nullable=False),
    Index("indicator_samples_by_session", "session_id", "session_time"),
)

recordings = Table(
    "recordings", metadata,
    Column("session_id", Text, ForeignKey("sessions.id"), nullable=False),
    Column("id", Text, nullable=False),
    Column("participant", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("media_type", Text, nullable=False),
    Column("start_s", Seconds, nullable=False),
    Column("duration_s", Seconds),
    Column("bytes", BigInteger, nullable=False, server_default="0"),  # BIGINT: a video passes 2 GiB
    Column("state", Text, nullable=False, server_default="recording"),
    Column("gaps", Text, nullable=False, server_default="[]"),
    Column("chunks", Integer, nullable=False, server_default="0"),
    Column("last_chunk_sha256", Text),
    Column("error", Text),
    Column("created_at", Seconds, nullable=False),
    Column("updated_at", Seconds, nullable=False),
    Column("finished_at", Seconds),
    Column("claimed_at", Seconds),
    PrimaryKeyConstraint("session_id", "id"),
    Index("recordings_by_state", "state", "updated_at"),
)
"""A recording's file, per participant and kind: its place on the session clock, how far it
got (bytes, uploaded chunks) and how it ended. ``gaps`` is a JSON list of [start_s, end_s].
``claimed_at``: when a process's sweep took the recording to finish it after its writer died
(recordings/finalise.py; null: never), so that of several processes sweeping one database one
finishes it (migration 0009)."""

review_cache = Table(
    "review_cache", metadata,
    Column("session_id", Text, ForeignKey("sessions.id"), primary_key=True),
    Column("fingerprint", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("built_at", Seconds, nullable=False),
)
"""An ended session's review timeline (review.build_timeline_part as JSON), kept so that opening
the review does not rebuild a 2-hour call's timeline each time. ``fingerprint`` says what it was
built from (store.review_fingerprint); a different one means it is stale."""

access_log = Table(
    "access_log", metadata,
    Column("session_id", Text, ForeignKey("sessions.id"), nullable=False),
    Column("at", Seconds, nullable=False),
    Column("who", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Index("access_log_by_session", "session_id", "at"),
)
"""Who opened a session's review, or downloaded a recording or clip of it, and when: shown to
the coach. ``who`` is "coach" (the coach link) or "coach:<id>" (a login)."""

session_figures = Table(
    "session_figures", metadata,
    Column("session_id", Text, ForeignKey("sessions.id"), primary_key=True),
    Column("fingerprint", Text, nullable=False),
    Column("built_at", Seconds, nullable=False),
    Column("live", Boolean, nullable=False),
    Column("duration_s", Seconds, nullable=False),
    Column("talk_coach_s", Seconds, nullable=False),
    Column("talk_client_s", Seconds, nullable=False),
    Column("talk_share_coach", Seconds),  # a fraction, stored as the same double
    Column("median_wait_s", Seconds),
    Column("waits", Integer, nullable=False),
    Column("filled_silences", Integer, nullable=False),
    Column("longest_silence_s", Seconds, nullable=False),
    Column("long_silences", Integer, nullable=False),
    Column("longest_turn_coach_s", Seconds, nullable=False),
    Column("longest_turn_client_s", Seconds, nullable=False),
    Column("interruptions_coach", Integer, nullable=False),
    Column("interruptions_client", Integer, nullable=False),
    Column("switches", Integer, nullable=False),
    Column("nudges", Integer, nullable=False),
    Column("tag_counts", Text, nullable=False, server_default="{}"),
    Column("recorded", Boolean, nullable=False),
)
"""A session's figures for the coach's library and trends (library.py), kept so that a library of
a thousand sessions is one query, not a thousand timelines. Computed by the review's own timeline
and metrics code; ``fingerprint`` names what they were built from (library.fingerprint), and a
different one means they are stale. ``tag_counts`` is a JSON object: tag kind id to count;
``live``: built while the session's recording was still being written."""

session_reports = Table(
    "session_reports", metadata,
    Column("session_id", Text, ForeignKey("sessions.id"), primary_key=True),
    Column("summary", Text, nullable=False, server_default=""),
    Column("next_steps", Text, nullable=False, server_default=""),
    Column("updated_at", Seconds, nullable=False),
)
"""What the coach writes on a session's report: their summary and the next steps."""

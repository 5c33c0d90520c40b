"""The store's statements, built once and run with parameters (``{"session": …}``), as SQL
strings with placeholders would be: building a Core statement takes longer than SQLite takes to
run it. An UPDATE here has no SET clause: it sets the columns named in the parameters."""

from __future__ import annotations

from sqlalchemy import Float, bindparam, cast, func, or_, select

from .database import clock

from .schema import (
    access_log,
    coach_logins,
    coach_settings,
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

_SESSION = bindparam("session")

# -- sessions ----------------------------------------------------------------------------------

_SESSION_COLUMNS = (
    sessions.c.id, sessions.c.label, sessions.c.created_at, sessions.c.video_recording, sessions.c.client,
    sessions.c.origin,
)
SESSION = select(*_SESSION_COLUMNS).where(sessions.c.id == _SESSION)
TOKEN_DIGESTS = select(
    sessions.c.coach_token_sha256, sessions.c.client_token_sha256, sessions.c.created_at, sessions.c.last_activity_at
).where(sessions.c.id == _SESSION)
SESSIONS_OF = (
    select(*_SESSION_COLUMNS)
    .where(sessions.c.coach_id == bindparam("coach"))
    .order_by(sessions.c.created_at.desc())
)
COACH_OF = select(sessions.c.coach_id).where(sessions.c.id == _SESSION)
UPDATE_SESSION = sessions.update().where(sessions.c.id == _SESSION)

# -- coaches -------------------------------------------------------------------------------------

_COACH = (coaches.c.id, coaches.c.email, coaches.c.name, coaches.c.created_at, coaches.c.password_changed_at)
COACH_COUNT = select(func.count()).select_from(coaches)
COACHES = select(*_COACH).order_by(coaches.c.created_at)
COACH_BY_EMAIL = select(*_COACH, coaches.c.password_hash).where(coaches.c.email == bindparam("email"))
PASSWORD_HASH = select(coaches.c.password_hash).where(coaches.c.id == bindparam("coach"))
UPDATE_COACH = coaches.update().where(coaches.c.id == bindparam("coach"))
ADOPT_SESSIONS = sessions.update().where(sessions.c.coach_id == bindparam("old")).values(coach_id=bindparam("coach"))
ADOPT_SETTINGS = (
    coach_settings.update().where(coach_settings.c.coach_id == bindparam("old")).values(coach_id=bindparam("coach"))
)
LOGIN = (
    select(*_COACH, coach_logins.c.last_seen_at)
    .join_from(coach_logins, coaches, coach_logins.c.coach_id == coaches.c.id)
    .where(coach_logins.c.token_sha256 == bindparam("digest"))
)
TOUCH_LOGIN = (
    coach_logins.update().where(coach_logins.c.token_sha256 == bindparam("digest")).values(last_seen_at=bindparam("now"))
)
END_LOGIN = coach_logins.delete().where(coach_logins.c.token_sha256 == bindparam("digest"))
END_LOGINS_BUT = coach_logins.delete().where(
    coach_logins.c.coach_id == bindparam("coach"), coach_logins.c.token_sha256 != bindparam("keep")
)

# -- consent and the event log -----------------------------------------------------------------

CONSENTS = (
    select(consents.c.role, consents.c.accepted_at, consents.c.notice)
    .where(consents.c.session_id == _SESSION)
    .order_by(consents.c.accepted_at)
)
LATEST_CONSENT = (
    select(consents.c.notice, consents.c.scopes)
    .where(consents.c.session_id == _SESSION, consents.c.role == bindparam("role"))
    .order_by(consents.c.accepted_at.desc())
    .limit(1)
)
CONSENT_SCOPES = select(consents.c.scopes).where(consents.c.session_id == _SESSION, consents.c.role == bindparam("role"))
EVENTS = (
    select(session_events.c.wall_time, session_events.c.session_time, session_events.c.kind,
           session_events.c.participant, session_events.c.data)
    .where(session_events.c.session_id == _SESSION)
    .order_by(session_events.c.id)  # the order they were logged in
)

EVENTS_OF_KINDS = (
    select(session_events.c.wall_time, session_events.c.session_time, session_events.c.kind,
           session_events.c.participant, session_events.c.data)
    .where(session_events.c.session_id == _SESSION, session_events.c.kind.in_(bindparam("kinds", expanding=True)))
    .order_by(session_events.c.id)
)

_TIMED_EVENTS = (session_events.c.session_id == _SESSION, session_events.c.session_time.is_not(None))
RESUMED = "resumed"
"""The event of a session's clock going on after a gap (``since``: where the gap began): the
stored clock is read from the events since the last one (live/storing.py writes it)."""
_LAST_RESUMED = (
    select(func.coalesce(func.max(session_events.c.wall_time), 0.0))
    .where(session_events.c.session_id == _SESSION, session_events.c.kind == RESUMED)
    .scalar_subquery()
)
SESSION_CLOCK = select(
    select(func.max(session_events.c.session_time - session_events.c.wall_time))
    .where(*_TIMED_EVENTS, session_events.c.wall_time >= _LAST_RESUMED).scalar_subquery(),
    select(func.max(session_events.c.session_time)).where(*_TIMED_EVENTS).scalar_subquery(),
    select(func.max(indicator_samples.c.session_time)).where(indicator_samples.c.session_id == _SESSION)
    .scalar_subquery(),
    select(func.max(recordings.c.start_s + recordings.c.duration_s))
    .where(recordings.c.session_id == _SESSION, recordings.c.kind == "audio").scalar_subquery(),
)
"""A session's clock against the wall clock (the largest session time minus wall time of the
events of its call's latest run: since its last ``resumed``, whose gap may have been shortened),
and the latest session time of its events, of its indicator samples and of the audio its
recordings hold (the server's own, on the session's clock; a browser's video is timed by the
browser)."""

# -- tags and nudges -----------------------------------------------------------------------------

TAG_COLUMNS = [tags.c[name] for name in (
    "id", "kind", "label", "session_time", "original_session_time", "clicked_at", "note", "origin",
    "created_at", "updated_at", "deleted_at",
)]
_THE_TAG = (tags.c.session_id == _SESSION, tags.c.id == bindparam("tag"))
TAG = select(*TAG_COLUMNS).where(*_THE_TAG)
TAGS_NOT_UNDONE = (
    select(*TAG_COLUMNS)
    .where(tags.c.session_id == _SESSION, tags.c.deleted_at.is_(None))
    .order_by(tags.c.session_time, tags.c.created_at)
)
UPDATE_TAG = tags.update().where(*_THE_TAG)
UNDO_TAG = tags.update().where(*_THE_TAG, tags.c.deleted_at.is_(None))

NUDGE_COLUMNS = [nudges.c[name] for name in ("id", "kind", "text", "session_time", "dismissed_at")]
_THE_NUDGE = (nudges.c.session_id == _SESSION, nudges.c.id == bindparam("nudge"))
NUDGE = select(*NUDGE_COLUMNS).where(*_THE_NUDGE)
NUDGES = select(*NUDGE_COLUMNS).where(nudges.c.session_id == _SESSION).order_by(nudges.c.session_time)
DISMISS_NUDGE = nudges.update().where(*_THE_NUDGE, nudges.c.dismissed_at.is_(None))

# -- settings and samples ------------------------------------------------------------------------

COACH_SETTINGS = select(coach_settings.c.settings).where(coach_settings.c.coach_id == bindparam("coach"))
SESSIONS_COACH_SETTINGS = (
    select(sessions.c.id, coach_settings.c.settings)
    .select_from(sessions.outerjoin(coach_settings, coach_settings.c.coach_id == sessions.c.coach_id))
    .where(sessions.c.id.in_(bindparam("sessions", expanding=True)))
)
"""Each of several sessions' coach's settings (None where the coach has none stored; a session
that is gone has no row): one round trip for the live calls' exchange."""
SAMPLES = (
    select(indicator_samples.c.session_time, indicator_samples.c.speaking, indicator_samples.c.share_session,
           indicator_samples.c.share_window, indicator_samples.c.current_silence)
    .where(indicator_samples.c.session_id == _SESSION)
    .order_by(indicator_samples.c.session_time)
)

SAMPLE_SHARES = (
    select(indicator_samples.c.session_time, indicator_samples.c.share_session, indicator_samples.c.share_window)
    .where(indicator_samples.c.session_id == _SESSION)
    .order_by(indicator_samples.c.session_time)
)

# -- recordings ----------------------------------------------------------------------------------

_THE_RECORDING = (recordings.c.session_id == _SESSION, recordings.c.id == bindparam("recording"))
_RECORDING_COLUMNS = [c for c in recordings.c if c.name != "claimed_at"]
"""A recording as its readers see it: ``claimed_at`` is the sweep's own (CLAIM_RECORDING)."""
RECORDING = select(*_RECORDING_COLUMNS).where(*_THE_RECORDING)
RECORDINGS = (
    select(*_RECORDING_COLUMNS).where(recordings.c.session_id == _SESSION)
    .order_by(recordings.c.created_at, recordings.c.id)
)
RECORDINGS_WITHOUT_GAPS = RECORDINGS.with_only_columns(*(c for c in _RECORDING_COLUMNS if c.name != "gaps"))
"""A recording's gaps can be thousands of spans (a lossy network); most readers need none of them."""
_STALE = (recordings.c.state == "recording", recordings.c.updated_at < bindparam("before"))
_UNCLAIMED = or_(recordings.c.claimed_at.is_(None), recordings.c.claimed_at < bindparam("claimed_before"))
STALE_RECORDINGS = select(*_RECORDING_COLUMNS).where(*_STALE).order_by(recordings.c.updated_at)
UNCLAIMED_STALE_RECORDINGS = STALE_RECORDINGS.where(_UNCLAIMED)
"""The stale recordings that no sweep took since ``claimed_before`` (one that did is being finished)."""
CLAIM_RECORDING = recordings.update().where(*_THE_RECORDING, *_STALE, _UNCLAIMED)
"""Take a stale recording to finish it (sets ``claimed_at``): it matches one row for one process
only, as the row changes (a write waits for another's on the same row, then sees its change)."""
UPDATE_RECORDING = recordings.update().where(*_THE_RECORDING)

# -- the review cache ------------------------------------------------------------------------------

REVIEW_INPUTS = select(
    select(func.count()).select_from(session_events).where(session_events.c.session_id == _SESSION).scalar_subquery(),
    select(func.count()).select_from(indicator_samples).where(indicator_samples.c.session_id == _SESSION)
    .scalar_subquery(),
)
CACHED_REVIEW = select(review_cache.c.fingerprint, review_cache.c.body).where(review_cache.c.session_id == _SESSION)

# -- deletion, retention and the access log ----------------------------------------------------

SESSION_TABLES = (access_log, review_cache, session_figures, session_reports, recordings, indicator_samples, nudges,
                  tags, session_events, consents)
"""Every table with a session's rows, in an order that deletes them before their session."""
DELETE_SESSION_ROWS = [t.delete().where(t.c.session_id == _SESSION) for t in SESSION_TABLES]
DELETE_SESSION = sessions.delete().where(sessions.c.id == _SESSION)
DELETE_RECORDING = recordings.delete().where(recordings.c.session_id == _SESSION, recordings.c.id == bindparam("id"))
DELETE_REVIEW_CACHE = review_cache.delete().where(review_cache.c.session_id == _SESSION)
CLEAR_NOTES = tags.update().where(tags.c.session_id == _SESSION).values(note="")
RETENTION = select(sessions.c.id, sessions.c.created_at, sessions.c.last_activity_at, sessions.c.keep_recordings_days)
ACCESS_LOG = (
    select(access_log.c.at, access_log.c.who, access_log.c.action, access_log.c.detail)
    .where(access_log.c.session_id == _SESSION)
    .order_by(access_log.c.at)
)

# -- library -------------------------------------------------------------------------------------


def _of_the_session(table, aggregate):
    """An aggregate over one session's rows of ``table``, as a column of a query on ``sessions``
    (a correlated subquery: with the table's index on its session, a seek, not a scan)."""
    return select(aggregate).where(table.c.session_id == sessions.c.id).scalar_subquery()


FIGURES_INPUTS = (
    _of_the_session(session_events, func.max(session_events.c.wall_time)),
    _of_the_session(indicator_samples, func.max(indicator_samples.c.session_time)),
    _of_the_session(recordings, func.count()),
    _of_the_session(recordings, func.max(recordings.c.updated_at)),
    _of_the_session(tags, func.count()),
    _of_the_session(tags, func.max(tags.c.created_at)),
    _of_the_session(tags, func.max(tags.c.updated_at)),
    _of_the_session(tags, func.max(tags.c.deleted_at)),
    _of_the_session(nudges, func.count()),
)
"""What a session's figures are built from, in a few numbers that change whenever it does: the
latest event and sample (a call adds them), the recordings' count and last change, the tags'
count and their last creation, change and undoing, and the nudges' count."""
FIGURES_COLUMNS = [c for c in session_figures.c if c.name != "session_id"]
LIBRARY_HEAD = len(_SESSION_COLUMNS)
"""A library row's first columns are a ``StoredSession``'s; then ``FIGURES_COLUMNS``, then ``FIGURES_INPUTS``."""
_LIBRARY = (
    select(*_SESSION_COLUMNS, *FIGURES_COLUMNS, *FIGURES_INPUTS)
    .select_from(sessions.outerjoin(session_figures, session_figures.c.session_id == sessions.c.id))
    .order_by(sessions.c.created_at.desc(), sessions.c.id)
)
LIBRARY_OF = _LIBRARY.where(sessions.c.coach_id == bindparam("coach"))
LIBRARY_ALL = _LIBRARY
LIBRARY_ONE = _LIBRARY.where(sessions.c.id == _SESSION)
REPORT_TEXT = select(session_reports.c.summary, session_reports.c.next_steps, session_reports.c.updated_at).where(
    session_reports.c.session_id == _SESSION)
CLEAR_REPORT_TEXT = session_reports.update().where(session_reports.c.session_id == _SESSION).values(
    summary="", next_steps="")

# -- exports and imports ---------------------------------------------------------------------------

CONSENT_RECORDS = (
    select(consents.c.role, consents.c.accepted_at, consents.c.notice, consents.c.scopes)
    .where(consents.c.session_id == _SESSION)
    .order_by(consents.c.accepted_at)
)
SESSION_COACH = (
    select(*_COACH)
    .join_from(sessions, coaches, sessions.c.coach_id == coaches.c.id)
    .where(sessions.c.id == _SESSION)
)
IMPORTED_SESSION = (
    sessions.update().where(sessions.c.id == _SESSION)
    .values(client_token_sha256="", last_activity_at=bindparam("now"))
)

# -- nodes (nodes.py) ------------------------------------------------------------------------------

NODE_COLUMNS = (nodes.c.id, nodes.c.url, nodes.c.state, nodes.c.calls, nodes.c.cpu, nodes.c.heartbeat_at,
                clock().label("clock"))
"""A ``NodeRow``: the node's columns, and the database's clock as the row is read (heartbeats are
the database's clock too: a node is alive or dead by it alone, whatever the nodes' clocks say)."""
_NODE = bindparam("node")
NODE = select(*NODE_COLUMNS).where(nodes.c.id == _NODE)
NODE_INSTANCE = select(nodes.c.instance, *NODE_COLUMNS).where(nodes.c.id == _NODE).with_for_update()
"""The process that holds the node's id, and its row, locked until the transaction ends."""
NODES = select(*NODE_COLUMNS).order_by(nodes.c.id)
UPDATE_NODE = nodes.update().where(nodes.c.id == _NODE)
NODE_HEARTBEAT = (
    nodes.update().where(nodes.c.id == _NODE, nodes.c.instance == bindparam("this_instance"))
    .values(heartbeat_at=clock())
)
"""A node is alive now (and the other columns named in the parameters): its row, if the process
holding its id is still this one (``this_instance``)."""
TAKE_NODE = nodes.update().where(nodes.c.id == _NODE).values(started_at=clock(), heartbeat_at=clock())
DELETE_NODE = nodes.delete().where(nodes.c.id == _NODE, nodes.c.instance == bindparam("this_instance"))
CLOCK = select(clock())
SESSION_NODE = (
    select(sessions.c.node_id, *NODE_COLUMNS)
    .select_from(sessions.outerjoin(nodes, nodes.c.id == sessions.c.node_id))
    .where(sessions.c.id == _SESSION)
)
"""A session's owner and that node's row (all null: no owner, or an owner without a row)."""
LOCK_SESSION_NODE = select(sessions.c.node_id).where(sessions.c.id == _SESSION).with_for_update()
"""The session's owner, its row locked until the transaction ends (PostgreSQL's FOR UPDATE;
SQLite has no row locks: a write transaction there holds the database's one write lock)."""
LIVE_NODES = (
    select(*NODE_COLUMNS)
    .where(nodes.c.state == "live", nodes.c.heartbeat_at >= clock() - bindparam("within"))
    .order_by(nodes.c.calls, nodes.c.assigned_at, nodes.c.id)
)
LAST_ASSIGNED = select(func.max(nodes.c.assigned_at))
"""When a node was last given a session: the next one given a session is given a later time,
even within the database clock's resolution (SQLite's: a millisecond), so that the order of
LIVE_NODES among equals stays "given a session longest ago"."""
"""The nodes that take new sessions (a heartbeat ``within`` seconds of the database's clock),
least loaded first; among equals the one given a session longest ago, so that sessions created
together (within one heartbeat) spread out."""

# -- what the nodes share (installation) -----------------------------------------------------------

SHARED = select(installation.c.value).where(installation.c.key == bindparam("key"))
SETUP_CODE_KEY = "setup-code:"
"""The key of a node's setup code's digest is this and the node's id."""
SETUP_CODES = select(installation.c.value).where(installation.c.key.startswith(SETUP_CODE_KEY))
FORGET_SETUP_CODES = installation.delete().where(installation.c.key.startswith(SETUP_CODE_KEY))
TURN_KEY = "turn:"
"""The key of a job's last turn (the database's clock, epoch seconds) is this and the job's name."""
TAKE_TURN = installation.update().where(
    installation.c.key == bindparam("turn"), cast(installation.c.value, Float) <= bindparam("due"))

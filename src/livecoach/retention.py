"""Deleting what a coach or the installation says is no longer kept (docs/security.md).

- ``delete_session``: a session's every row and file (the coach's "Delete", ``livecoach delete``).
- ``erase_participant``: one participant's recordings and what identifies them; the anonymous
  figures stay (``livecoach erase``).
- ``purge``: recordings older than their retention (the session's own, if the coach shortened
  it, else the installation's ``--keep-recordings-days``) and, if ``--keep-sessions-days`` is
  set, whole sessions older than that; run by the server every hour and by ``livecoach purge``.
  A session's age counts from its call's last activity (or its creation).

Rows go through the store (which overwrites them in the file: secure_delete), files through the
recordings' storage, so another backend of either deletes the same way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from .recordings.storage import FolderStorage
from .store import Store

DAY_S = 86400.0
log = logging.getLogger(__name__)


def delete_session(store: Store, storage: FolderStorage, session: str) -> bool:
    """Whether there was such a session; its files go first (a crash between leaves rows that
    point at nothing, never files that nothing points at)."""
    storage.delete_session(session)
    return store.delete_session(session)


def erase_participant(store: Store, storage: FolderStorage, session: str, role: str) -> int:
    """How many of their recordings were removed. Clips hold both voices: they all go."""
    gone = store.erase_participant(session, role)
    _delete_files(storage, session, gone)
    return len(gone)


def _delete_files(storage: FolderStorage, session: str, rows: list[dict]) -> None:
    """The files of these recordings (and their level strips), and every clip of the session."""
    for row in rows:
        storage.delete(session, row["name"])
        storage.delete(session, f"{row['id']}.peaks")
    for name in storage.names(session):
        if name.startswith("clip-"):
            storage.delete(session, name)


@dataclass
class Purged:
    sessions: int = 0
    recordings: int = 0


def purge(store: Store, storage: FolderStorage, keep_recordings_days: float | None,
          keep_sessions_days: float | None, now: float | None = None) -> Purged:
    """Delete what is past its retention (None: kept for ever)."""
    now = time.time() if now is None else now
    done = Purged()
    for session, created, active, own_days in store.retention_rows():
        age_s = now - (active or created)
        if keep_sessions_days is not None and age_s > keep_sessions_days * DAY_S:
            delete_session(store, storage, session)
            done.sessions += 1
            continue
        days = own_days if own_days is not None else keep_recordings_days
        if days is None or age_s <= days * DAY_S:
            continue
        rows = [r for r in store.recordings(session, gaps=False) if r["state"] != "recording"]
        if not rows and not storage.names(session):
            continue
        _delete_files(storage, session, rows)
        store.delete_recording_rows(session, [r["id"] for r in rows])
        done.recordings += len(rows)
    if done.sessions or done.recordings:
        log.info("retention: deleted %d sessions and %d recordings", done.sessions, done.recordings)
    return done

"""A browser's video recording, arriving as numbered chunks while the call runs.

Each participant's browser records its own camera and microphone with MediaRecorder and uploads
a chunk every few seconds. A chunk is stored only if it is the next one, arrived whole (its
SHA-256 matches the one the browser sent) and continues the WebM stream (webm.py); then it is
appended, and the row counts it. Appending never leaves half a chunk behind: the file is first
cut back to the length the row has counted, so a chunk whose row update never happened (a
killed server, a full disk) is simply written again by the browser's retry.

A repeat of a chunk already stored is answered as stored (the browser retries when an answer is
lost); the last chunk's repeat must be the same bytes. The last chunk (``last``) finishes the
recording: it is remuxed with its duration and cues.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass

from ..store import Store
from .finalise import finish_video
from .storage import FolderStorage, StorageError
from .webm import NotWebM, ScanState, scan

MAX_CHUNK = 8 * 1024 * 1024
"""A chunk is a few seconds of camera and microphone: well under a megabyte; 8 MiB is plenty."""
MAX_CHUNKS = 100_000


@dataclass
class UploadError(Exception):
    status: int
    code: str
    message: str
    expected: int | None = None

    def __str__(self) -> str:
        return self.message


def part_name(recording: str) -> str:
    return f"video-{recording}.part.webm"


def _scan_name(recording: str) -> str:
    return f"video-{recording}.scan"


class Uploads:
    """Chunks into video recordings; one chunk of a recording at a time."""

    def __init__(self, store: Store, storage: FolderStorage) -> None:
        self.store = store
        self.storage = storage
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, session: str, recording: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((session, recording), threading.Lock())

    def put(self, session: str, role: str, recording: str, number: int, data: bytes, sha256: str,
            start_s: float | None, last: bool) -> dict:
        """Store chunk ``number``; returns ``{"stored": bool, "chunks": n}``, or UploadError."""
        if hashlib.sha256(data).hexdigest() != sha256.lower():
            raise UploadError(400, "damaged", "the chunk's bytes do not match its X-Content-SHA256: it was cut off "
                                              "or changed on the way; send it again")
        with self._lock(session, recording):
            row = self.store.recording(session, recording)
            if row is None:
                self._check_first(number, start_s, data)
                row = self._create(session, role, recording, start_s)
            if row["participant"] != role or row["kind"] != "video":
                raise UploadError(403, "forbidden", "this recording belongs to someone else")
            chunks = row["chunks"]
            if number < chunks:
                if number == chunks - 1 and row["last_chunk_sha256"] != sha256.lower():
                    raise UploadError(409, "conflict", f"chunk {number} was stored with other bytes", chunks)
                return {"stored": False, "chunks": chunks}
            if row["state"] != "recording":
                raise UploadError(409, "finished", "this recording is finished; start a new one")
            if number > chunks:
                raise UploadError(409, "out-of-order", f"chunk {chunks} comes next", chunks)
            state = self._scan_state(session, recording, row)
            try:
                after = scan(state, data)
            except NotWebM as err:
                raise UploadError(400, "not-media", f"chunk {number} does not continue a WebM recording: {err}",
                                  chunks) from None
            self._append(session, recording, row, data, after)
            row = self.store.update_recording(session, recording, chunks=chunks + 1, bytes=row["bytes"] + len(data),
                                              last_chunk_sha256=sha256.lower())
            if last:
                self.storage.delete(session, _scan_name(recording))
                finish_video(self.store, self.storage, session, row, "finished")
            return {"stored": True, "chunks": chunks + 1}

    @staticmethod
    def _check_first(number: int, start_s: float | None, data: bytes) -> None:
        """A new recording's first chunk, checked before anything is stored for it."""
        if number != 0:
            raise UploadError(409, "out-of-order", "a recording starts with chunk 0", 0)
        if start_s is None:
            raise UploadError(400, "bad-message", "chunk 0 needs 'start': the session time the recording starts at")
        try:
            scan(ScanState(), data)
        except NotWebM as err:
            raise UploadError(400, "not-media", f"chunk 0 does not start a WebM recording: {err}", 0) from None

    def _create(self, session: str, role: str, recording: str, start_s: float) -> dict:
        name = part_name(recording)
        self.storage.create(session, name).close()
        return self.store.create_recording(session, recording, role, "video", name, "video/webm", start_s)

    def _scan_state(self, session: str, recording: str, row: dict) -> ScanState:
        """Where the stream stood after the chunks the row counts (rescanned if the saved state
        is of another count: a server killed between writing the state and the row)."""
        try:
            saved = json.loads(self.storage.read(session, _scan_name(recording)))
            if saved.get("chunks") == row["chunks"]:
                return ScanState(**saved["state"])
        except (StorageError, OSError, ValueError, TypeError, KeyError):
            pass  # none yet (the first chunk), or not of this count: scan what is stored
        state = ScanState()
        if row["bytes"]:
            state = scan(state, self.storage.read(session, row["name"])[: row["bytes"]])
        return state

    def _append(self, session: str, recording: str, row: dict, data: bytes, state: ScanState) -> None:
        """Append after the counted bytes; on failure cut back, so nothing half is kept."""
        name = row["name"]
        try:
            self.storage.truncate(session, name, row["bytes"])
            with self.storage.append(session, name) as f:
                f.write(data)
            with self.storage.create(session, _scan_name(recording)) as f:
                f.write(json.dumps({"chunks": row["chunks"] + 1, "state": state.to_dict()}).encode())
        except OSError as err:
            try:
                self.storage.truncate(session, name, row["bytes"])
            except OSError:
                pass
            full = getattr(err, "errno", None) == 28
            raise UploadError(507 if full else 500, "disk-full" if full else "write-failed",
                              "the server's disk is full: the chunk was not stored" if full
                              else f"the chunk could not be stored: {err}") from None


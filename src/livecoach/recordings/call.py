"""The recording of one call: which participants may be recorded, pauses, one audio recorder per
participant, its rows in the store, and the files finished when the call empties.

The tap hands every received packet here with its place on the session clock. Files are
written on the event loop (a page of a few kilobytes a second per participant); the store's
rows go every two seconds in the live session's exchange, with the rest of its timeline
(live/storing.py). A write that fails (a full disk) stops the
recording, never the call: the status says why, and the coach's sidebar shows it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Awaitable, Callable

from ..store import LiveRows, NewRecording, Store
from .finalise import finish_audio
from .ogg import OPUS_RATE, last_granule
from .recorder import AudioRecorder, RecordingFile
from .storage import RecordingStorage, StorageError

log = logging.getLogger(__name__)

ON, PAUSED, OFF, FAILED = "on", "paused", "off", "failed"
PROBLEMS = {
    "disk-full": "Recording stopped: the server's disk is full. The call and its analysis go on.",
    "write-failed": "Recording stopped: the server could not write the recording. The call and its analysis go on.",
}

TAIL_BYTES = 256 * 1024
"""How much of a file's end ``recorded_until`` reads: whole pages at any bitrate (a page is
written each second, and a second of Opus at its most, 510 kb/s, is 64 kB)."""


def recorded_until(store: Store, storage: RecordingStorage, session_id: str) -> float | None:
    """The session time up to which the session's audio recordings still growing (a killed
    process's, not finished yet) hold audio, read from their files' last intact pages; None if
    there are none. Their rows, written every two seconds, may stop short of what the files hold
    (live/storing.py's ``STORE_INTERVAL``): a call that goes on starts after this, so that its
    new recordings do not overlap the old ones. (The end is counted from the row's ``start_s``,
    which follows the encoder's pre-skip: a few ms late at most, never early.) A file missing or
    empty is left out, and one that cannot be read with a warning: the rows still say where it got
    to (``Store.stored_clock``)."""
    ends = []
    for row in store.recordings(session_id, gaps=False):
        if row["kind"] != "audio" or row["state"] != "recording":
            continue
        try:
            if not storage.exists(session_id, row["name"]):
                continue  # nothing of it went up (an object store's first segment)
            size = storage.size(session_id, row["name"])
            if size == 0:
                continue
            tail = b"".join(storage.read_range(session_id, row["name"], max(0, size - TAIL_BYTES), size - 1))
        except (StorageError, OSError) as err:
            log.warning("session %s: where recording %s ends not read: %s", session_id, row["id"], err)
            continue
        granule = last_granule(tail)
        if granule is not None:
            ends.append(row["start_s"] + granule / OPUS_RATE)
    return max(ends, default=None)


class CallRecording:
    """Not thread-safe: use it from the event loop."""

    def __init__(self, session_id: str, store: Store, storage: RecordingStorage,
                 on_status: Callable[[dict], None] | None = None,
                 submit: Callable[[LiveRows], Awaitable[object]] | None = None) -> None:
        """``submit``: hands the rows to the live session's exchange with the store
        (live/storing.py's ``StoreExchange.submit``); without it they are written at once."""
        self.id = session_id
        self._store = store
        self._storage = storage
        self._on_status = on_status
        self._submit = submit or self._write_rows
        self.consented: set[str] = set()
        """Participants who agreed to their audio being recorded."""
        self.video: set[str] = set()
        """Participants who agreed to their browser recording their camera (uploads.py)."""
        self.withdrawn: dict[str, set[str]] = {}
        """What each participant withdrew of their consent during the session."""
        self.paused = False
        self.problem: str | None = None
        self._recorders: dict[str, AudioRecorder] = {}
        self._unsaved: list[RecordingFile] = []  # recordings with no row yet
        self._finishing: list[asyncio.Task] = []
        self._io = asyncio.Lock()  # the store's writes for this call, in the order they were made

    # -- control ---------------------------------------------------------------------------

    def consent(self, role: str, scopes: set[str], withdrawn: set[str] = frozenset()) -> None:
        """What ``role`` agreed to; without "audio" nothing more of theirs is recorded here, and
        without "video" their browser records no video (and the server refuses its uploads).
        ``withdrawn``: what they took back, which the status names."""
        if withdrawn:
            self.withdrawn[role] = set(withdrawn)
        else:
            self.withdrawn.pop(role, None)
        if "audio" in scopes:
            self.consented.add(role)
        else:
            self.consented.discard(role)
            self._close(role)
        if "video" in scopes:
            self.video.add(role)
        else:
            self.video.discard(role)
        self._changed()

    def set_paused(self, paused: bool) -> bool:
        """Pause or resume; returns whether anything changed. Whatever is not received while
        paused becomes a gap of silence when recording resumes."""
        if paused == self.paused:
            return False
        self.paused = paused
        if paused:
            self._each(AudioRecorder.flush)
        self._changed()
        return True

    def status(self) -> dict:
        """For both participants' pages and the coach's sidebar."""
        if self.problem:
            state = FAILED
        elif not self.consented:
            state = OFF
        else:
            state = PAUSED if self.paused else ON
        return {"state": state, "audio": sorted(self.consented), "video": sorted(self.video),
                "withdrawn": {role: sorted(scopes) for role, scopes in sorted(self.withdrawn.items())},
                "problem": PROBLEMS.get(self.problem or "")}

    def _changed(self) -> None:
        if self._on_status is not None:
            self._on_status(self.status())

    # -- audio -----------------------------------------------------------------------------

    def packet(self, role: str, position48: int, samples: int, packet: bytes, peak: int, priming: int = 0) -> None:
        """A received Opus packet of ``role`` whose first sample is at session sample
        ``position48`` (48 kHz), with its sample peak; ``priming``: the packet is a stream's
        first, and starts with that many samples of encoder priming."""
        if self.paused or self.problem or role not in self.consented:
            return
        try:
            recorder = self._recorders.get(role)
            if recorder is None:
                recorder = self._recorders[role] = AudioRecorder(self._storage, self.id, role, position48, priming)
                self._unsaved.append(recorder.info)
            recorder.add(position48, samples, packet, peak)
        except OSError as err:
            self._fail(err)

    def _each(self, action: Callable[[AudioRecorder], None]) -> None:
        try:
            for recorder in self._recorders.values():
                action(recorder)
        except OSError as err:
            self._fail(err)

    def _fail(self, err: OSError) -> None:
        """Stop recording after a failed write; what was written stays playable."""
        self.problem = "disk-full" if err.errno == errno.ENOSPC else "write-failed"
        log.error("session %s: recording stopped: %s", self.id, err)
        for role in list(self._recorders):
            self._close(role, failed=True)
        self._changed()

    # -- the store and the end -------------------------------------------------------------

    async def tick(self, rows: bool = True) -> None:
        """Once a second: pages to disk; with ``rows``, also the rows (new recordings, their
        growth) to the store (every two seconds, in the live session's exchange)."""
        self._each(AudioRecorder.flush)
        if not rows:
            return
        new, self._unsaved = self._unsaved, []
        updates = [(r.info.id, _growth(r)) for r in self._recorders.values()]
        if not new and not updates:
            return
        try:
            async with self._io:
                await self._submit(LiveRows(self.id, recordings=[_new_row(info) for info in new], growth=updates))
        except Exception:
            log.exception("session %s: recording rows not stored", self.id)
            self._unsaved = new + self._unsaved

    async def _write_rows(self, rows: LiveRows) -> None:
        await asyncio.to_thread(self._store.exchange_live, [rows])

    def _close(self, role: str, failed: bool = False) -> None:
        """End a participant's recording and finish it in the background: no packet reaches it
        from now on; its files are closed in a worker thread (in an object store, closing puts
        the last segment: recordings/objects.py), then finished."""
        recorder = self._recorders.pop(role, None)
        if recorder is None:
            return
        new = [i for i in self._unsaved if i is recorder.info]
        self._unsaved = [i for i in self._unsaved if i is not recorder.info]
        task = asyncio.get_running_loop().create_task(self._finish_later(recorder, bool(new), failed))
        self._finishing.append(task)
        task.add_done_callback(self._finishing.remove)

    async def _finish_later(self, recorder: AudioRecorder, unsaved: bool, failed: bool) -> None:
        async with self._io:
            if any(info is recorder.info for info in self._unsaved):  # a tick took its new row, failed, gave it back
                self._unsaved = [info for info in self._unsaved if info is not recorder.info]
                unsaved = True
            try:
                await asyncio.to_thread(self._finish, recorder, unsaved, failed)
            except Exception:
                log.exception("session %s: recording %s not finished", self.id, recorder.info.id)

    def _finish(self, recorder: AudioRecorder, unsaved: bool, failed: bool) -> None:
        try:
            if failed:
                recorder.abandon()
            else:
                recorder.close()
        except OSError as err:
            recorder.abandon()
            log.error("session %s: %s's recording not closed cleanly: %s", self.id, recorder.info.participant, err)
        info = recorder.info
        if unsaved:
            self._store.create_recording(self.id, *_new_row(info))
        self._store.update_recording(self.id, info.id, **_growth(recorder))
        finish_audio(self._store, self._storage, self.id, info.id, info.name, "finished")

    async def finish(self) -> None:
        """The call has emptied (or closes): every file is finished; a participant who comes
        back starts a new one."""
        for role in list(self._recorders):
            self._close(role)
        if self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)


def _new_row(info: RecordingFile) -> NewRecording:
    return NewRecording(info.id, info.participant, "audio", info.name, "audio/ogg", info.start_s)


def _growth(recorder: AudioRecorder) -> dict:
    return {"duration_s": round(recorder.duration_s, 3), "bytes": recorder.info.bytes, "gaps": recorder.info.gaps}

"""Importing a recorded call: two files (one per participant) or one stereo file (left the coach,
right the client) become a session like a live one (docs/exports.md).

One pass over the audio does it all. The engine is ``livecoach analyze``'s own run (analyze.py),
so the session's figures are the analysis's to the last digit. Beside it, in a thread per
participant, each participant's recording is made: their own file's audio packets copied as they
are when Chromium plays the codec (recordings/formats.py; an hour's copy takes about a second),
else, and for the channels of a stereo file, the samples the engine heard as WAV; the same
samples give the level strip. Then the session is stored the way a
live call stores it: a ``speech`` event per segment, one indicator sample per second, ``joined``
and ``left``, the recordings' rows; and an ``imported`` event that names the files.

Nothing is left half-imported. The files are written into a staging folder (recordings/storage.py)
that becomes the session's folder in one rename, the rows go in one transaction, and any failure
(a bad file, a full disk, Ctrl-C) removes both. Only a killed process can leave a staging folder
behind: the next import removes those older than ``STALE_STAGING_S``.

``python -m livecoach.importing`` runs one import for the server (import_api.py): the job as
JSON on standard input, progress and the result as JSON lines on standard output.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import signal
import sys
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import av
import av.error
import numpy as np

from .analyze import Analysis, analyze_stereo, analyze_tracks, file_id
from .config import EngineConfig
from .frames import SAMPLE_RATE
from .ingest import AudioError, probe
from .metrics import share, talk_time
from .recordings.ogg import OPUS_RATE
from .recordings.recorder import PEAK_SAMPLES, new_audio_id, peak_byte, sample_peak
from .recordings.finalise import MediaError, keep_audio
from .recordings.formats import WAV, Container, Keeping, keeping
from .recordings.storage import RecordingStorage, StorageError, open_storage
from .report import clock
from .retention import delete_session
from .settings import database_location
from .store import LOCAL_COACH, IndicatorSample, NewSession, Store
from .timeline import CLIENT, COACH, ROLES, Timeline, union

MAX_LENGTH_DIFFERENCE_S = 10.0
MAX_LENGTH_DIFFERENCE = 0.10
"""Two tracks of one call last about as long: they may differ by 10 s, or by 10% of the longer
one if that is more. Beyond that they are taken for recordings of different calls."""
PEAK_BIN = PEAK_SAMPLES * SAMPLE_RATE // OPUS_RATE
"""The level strip's 100 ms, in 16 kHz samples."""
STALE_STAGING_S = 24 * 3600.0
"""A staging folder untouched for this long belongs to an import whose process was killed."""
ORIGIN = "import"
IMPORTED = "imported"
"""The event that says where an imported session came from: ``sources`` (the files' names)."""

T = TypeVar("T")
Progress = Callable[[float | None], None]
"""Told the share of the audio analysed so far (0 to 1), or None when the files' lengths are
unknown."""


class ImportFailed(Exception):
    """The import could not be stored (a full disk, a database error): a one-line message."""


@dataclass(frozen=True)
class CallFiles:
    """A recorded call: ``coach`` and ``client`` files, or one ``stereo`` file. ``names`` gives a
    file's name as its user knows it where that is not its path (an upload), by key
    ("coach", "client", "stereo")."""

    coach: Path | None = None
    client: Path | None = None
    stereo: Path | None = None
    names: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.stereo is None) == (self.coach is None or self.client is None):
            raise ValueError("a call is a coach's and a client's file, or one stereo file")

    @property
    def keys(self) -> tuple[str, ...]:
        return ("stereo",) if self.stereo is not None else (COACH, CLIENT)

    def path(self, key: str) -> Path:
        return Path(getattr(self, key))

    def name(self, key: str) -> str:
        return self.names.get(key) or self.path(key).name

    def sources(self) -> dict[str, str]:
        """Each file's name, for the ``imported`` event."""
        return {key: self.name(key) for key in self.keys}

    def file_id(self) -> str:
        """How RTTM names this call: as ``livecoach analyze`` of the same files does."""
        return source_file_id(self.sources())

    def friendly(self, message: str) -> str:
        """A message about these files with each path as its user knows the file."""
        for key in self.keys:
            if key in self.names:
                message = message.replace(str(self.path(key)), self.names[key])
        return message


def source_file_id(sources: dict[str, str]) -> str:
    """The RTTM file id of a call imported from these files (an ``imported`` event's ``sources``):
    the stereo file's name, else the coach's, as ``livecoach analyze`` names it."""
    return file_id(sources.get("stereo") or sources[COACH])


@dataclass(frozen=True)
class Imported:
    session: NewSession
    analysis: Analysis

    def review_path(self) -> str:
        return self.session.review_path()


def import_call(
    store: Store, storage: RecordingStorage, files: CallFiles, *, label: str, client: str | None = None,
    coach_id: str = LOCAL_COACH, created_at: float | None = None, progress: Progress | None = None,
    on_staging: Callable[[str], None] | None = None, config: EngineConfig | None = None,
) -> Imported:
    """Analyse, record and store a recorded call as a new session of ``coach_id``.

    ``label`` and ``client`` as for a live session (the client defaults to the label);
    ``created_at``: when the call was (default: when its files were last changed). Raises
    AudioError for a file that cannot be used (unreadable, empty, mono given as stereo, tracks of
    very different lengths) and ImportFailed when the result cannot be stored; either way nothing
    of it is left. ``on_staging`` learns the staging folder's name as soon as it exists (the
    server removes it if it has to kill the import).
    """
    expected = check(files)
    when = created_at if created_at is not None else min(os.stat(files.path(k)).st_mtime for k in files.keys)
    _remove_stale_staging(storage)
    try:
        staging = storage.new_staging("import")
    except OSError as err:
        raise ImportFailed(f"cannot write the recordings: {err.strerror or err}") from None
    if on_staging is not None:
        on_staging(staging)
    try:
        analysis, rows = _analyse_and_record(storage, staging, files, expected, progress, config)
        events = _events(analysis, files)
        samples = indicator_samples(analysis.timeline, analysis.config.timeline.window_s)
    except BaseException:
        storage.delete_session(staging)
        raise
    try:
        new = store.create_session(label, video_recording=False, coach_id=coach_id, client=client, origin=ORIGIN,
                                   created_at=when)
    except BaseException as err:
        storage.delete_session(staging)
        if isinstance(err, Exception):
            raise ImportFailed(f"the session could not be stored: {_first_line(err)}") from None
        raise
    try:
        storage.move_session(staging, new.id)
        store.add_imported_call(new.id, events, samples, rows)
    except BaseException as err:
        storage.delete_session(staging)
        delete_session(store, storage, new.id)
        if isinstance(err, StorageError):
            raise ImportFailed(_first_line(err)) from None
        if isinstance(err, Exception):
            raise ImportFailed(f"the session could not be stored: {_first_line(err)}") from None
        raise
    if progress is not None:
        progress(1.0)
    return Imported(new, analysis)


def check(files: CallFiles) -> float | None:
    """Refuse what cannot be one call before any work is done; the call's length from the files'
    headers (None when they do not say). Raises AudioError."""
    if files.stereo is not None:
        info = probe(files.stereo)
        if info.channels < 2:
            raise AudioError(
                f"{files.stereo}: has only {info.channels} channel; a stereo import needs two (left the coach, "
                "right the client): give the two participants' files instead")
        return info.duration_seconds
    lengths = {key: probe(files.path(key)).duration_seconds for key in (COACH, CLIENT)}
    if None in lengths.values():
        return None
    check_lengths(files, lengths)
    return max(lengths.values())


def check_lengths(files: CallFiles, lengths: dict[str, float]) -> None:
    """Raises AudioError when the coach's and the client's tracks are too different in length to
    be one call (``MAX_LENGTH_DIFFERENCE_S``, ``MAX_LENGTH_DIFFERENCE``)."""
    longer, shorter = max(lengths.values()), min(lengths.values())
    if longer - shorter > max(MAX_LENGTH_DIFFERENCE_S, MAX_LENGTH_DIFFERENCE * longer):
        raise AudioError(
            f"{files.path(COACH)} lasts {clock(lengths[COACH])} and {files.path(CLIENT)} {clock(lengths[CLIENT])}: "
            f"not recordings of the same call (they may differ by {MAX_LENGTH_DIFFERENCE_S:g} s, "
            f"or {MAX_LENGTH_DIFFERENCE:.0%} of the longer one)")


# -- the one pass: analysis, recordings, level strips ---------------------------------------------


class _Track:
    """One participant's recording, made while the engine analyses, and its level strip
    ``<id>.peaks`` (one byte per 100 ms, recorder.peak_byte) from the audio as the engine hears
    it. ``add`` is given each block of that audio; ``close`` finishes both files and gives the
    recording's row (store.add_imported_call); ``abandon`` stops at once, leaving the files to
    the caller to delete."""

    def __init__(self, storage: RecordingStorage, folder: str, participant: str, container: Container) -> None:
        self.storage, self.folder, self.participant, self.container = storage, folder, participant, container
        self.id = new_audio_id(participant)
        self.name = f"{self.id}.{container.extension}"
        self.samples = 0  # handed in so far
        self._bin_peak, self._bin_fill = 0, 0
        self._peaks = storage.create(folder, f"{self.id}.peaks")

    def add(self, samples: np.ndarray) -> None:
        self.samples += samples.size
        self._peaks.write(self._levels(samples))

    def close(self) -> dict:
        self._finish()
        if self._bin_fill:
            self._peaks.write(bytes((peak_byte(self._bin_peak),)))
        self._peaks.close()
        return {"id": self.id, "participant": self.participant, "kind": "audio", "name": self.name,
                "media_type": self.container.media_type, "start_s": 0.0,
                "duration_s": round(self.samples / SAMPLE_RATE, 3),
                "bytes": self.storage.size(self.folder, self.name), "state": "finished", "gaps": []}

    def abandon(self) -> None:
        self._stop()
        self._peaks.close()

    def _finish(self) -> None:
        """Finish the recording (raises what went wrong in writing it)."""
        raise NotImplementedError

    def _stop(self) -> None:
        """Stop writing the recording at once."""
        raise NotImplementedError

    def _levels(self, samples: np.ndarray) -> bytes:
        """The level bytes of the 100 ms bins these samples complete."""
        out = bytearray()
        at = 0
        if self._bin_fill:
            at = min(PEAK_BIN - self._bin_fill, samples.size)
            self._bin_peak = max(self._bin_peak, sample_peak(samples[:at]))
            self._bin_fill += at
            if self._bin_fill == PEAK_BIN:
                out.append(peak_byte(self._bin_peak))
                self._bin_peak, self._bin_fill = 0, 0
        whole = (samples.size - at) // PEAK_BIN
        if whole:
            block = samples[at : at + whole * PEAK_BIN].astype(np.int32).reshape(whole, PEAK_BIN)
            out += bytes(peak_byte(int(p)) for p in np.abs(block).max(axis=1))
        rest = samples[at + whole * PEAK_BIN :]
        if rest.size:
            self._bin_peak, self._bin_fill = sample_peak(rest), rest.size
        return bytes(out)


class _KeptTrack(_Track):
    """A participant's own file whose codec Chromium plays (formats.KEPT_CODECS): the file as it
    is, or its audio packets copied into a new file, in a thread while the engine analyses (at
    the speed of the disk: it needs none of the engine's samples)."""

    def __init__(self, storage: RecordingStorage, folder: str, participant: str, source: Path, kept: Keeping) -> None:
        super().__init__(storage, folder, participant, kept.container)
        self.source, self.as_is = source, kept.as_is
        self._stopping = False
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._copy, name=f"import-{participant}", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        stopped = lambda: self._stopping  # noqa: E731
        try:
            if self.as_is:
                self.storage.copy_in(self.source, self.folder, self.name, stopped)
            else:
                keep_audio(self.source, self.storage, self.folder, self.name, self.container, stopped)
        except BaseException as err:  # raised by close, in the importing thread
            self._failed = err

    def _finish(self) -> None:
        self._thread.join()
        if self._failed is not None:
            raise self._failed

    def _stop(self) -> None:
        self._stopping = True
        self._thread.join()


class _WavTrack(_Track):
    """Audio kept as what the engine heard, 16 kHz 16-bit mono WAV: a file whose codec Chromium
    does not play, or one channel of a stereo file. Lossless and written as it comes: encoding
    it (FLAC, Opus) cost more than the analysis, since PyAV holds the GIL while it encodes."""

    def __init__(self, storage: RecordingStorage, folder: str, participant: str) -> None:
        super().__init__(storage, folder, participant, WAV)
        try:
            self._file = storage.create(folder, self.name)
            self._wav = wave.open(self._file, "wb")
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(SAMPLE_RATE)
        except BaseException:
            self._peaks.close()
            raise

    def add(self, samples: np.ndarray) -> None:
        super().add(samples)
        self._wav.writeframesraw(np.ascontiguousarray(samples, dtype="<i2").tobytes())

    def _finish(self) -> None:
        self._wav.close()  # writes the lengths into the header
        self._file.close()

    def _stop(self) -> None:
        self._finish()


def _analyse_and_record(
    storage: RecordingStorage, staging: str, files: CallFiles, expected: float | None, progress: Progress | None,
    config: EngineConfig | None,
) -> tuple[Analysis, list[dict]]:
    tracks: dict[str, _Track] = {}
    try:
        for role in ROLES:
            tracks[role] = _writing(lambda: _track(storage, staging, files, role))
        total = expected * SAMPLE_RATE if expected else None

        def observe(coach: np.ndarray | None, client: np.ndarray | None) -> None:
            for role, chunk in ((COACH, coach), (CLIENT, client)):
                if chunk is not None and chunk.size:
                    _writing(lambda: tracks[role].add(chunk))
            if progress is not None:
                done = max(t.samples for t in tracks.values())
                progress(min(0.99, done / total) if total else None)

        if files.stereo is not None:
            analysis = analyze_stereo(files.stereo, config, observe)
        else:
            analysis = analyze_tracks(files.coach, files.client, config, observe)
            check_lengths(files, {role: t.samples / SAMPLE_RATE for role, t in tracks.items()})
        return analysis, [_writing(tracks[role].close) for role in ROLES]
    except BaseException:
        for track in tracks.values():
            track.abandon()
        raise


def _track(storage: RecordingStorage, staging: str, files: CallFiles, role: str) -> _Track:
    """A participant's own file is kept as it is when Chromium plays it; otherwise, and for a
    channel of a stereo file, what the engine heard is kept as WAV."""
    if files.stereo is None:
        kept = keeping(files.path(role))
        if kept is not None:
            return _KeptTrack(storage, staging, role, files.path(role), kept)
    return _WavTrack(storage, staging, role)


def _writing(action: Callable[[], T]) -> T:
    """A step that writes the recordings: a failure of the disk is the import's, in one line."""
    try:
        return action()
    except (OSError, StorageError, MediaError, av.error.FFmpegError) as err:
        raise ImportFailed(f"cannot write the recordings: {getattr(err, 'strerror', None) or _first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    """An error's message for a one-line report (a database error's runs on with its SQL)."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


# -- the timeline, as a live call stores it --------------------------------------------------------


def _events(analysis: Analysis, files: CallFiles) -> list[tuple[float, float | None, str, str | None, dict]]:
    """The event log of a live call of this timeline (live/session.py, live/call.py): both
    participants there from the start to the end, a ``speech`` event as each segment ends, and
    where the call came from."""
    wall = time.time()
    end = round(analysis.duration, 3)
    events: list[tuple[float, float | None, str, str | None, dict]] = [(wall, 0.0, "joined", p, {}) for p in ROLES]
    speech = sorted((s.end, s.start, p) for p, segs in analysis.timeline.segments.items() for s in segs)
    events += [(wall, round(b, 3), "speech", p, {"start": round(a, 3), "end": round(b, 3)}) for b, a, p in speech]
    events += [(wall, end, "left", p, {}) for p in ROLES]
    events.append((wall, None, IMPORTED, None, {"sources": files.sources()}))
    return events


def indicator_samples(timeline: Timeline, window_s: float) -> list[IndicatorSample]:
    """The coach's indicators at each whole second, as a live call keeps them for the review: the
    talk shares to date and over the window (the metrics' own talk_time and share, a second at a
    time), who speaks, and the running silence."""
    seconds = int(timeline.end)
    talk = {p: np.zeros(seconds + 1) for p in ROLES}
    for p in ROLES:
        for s in timeline.segments[p]:
            for k in range(int(s.start), min(seconds, math.ceil(s.end))):
                talk[p][k + 1] = talk[p][k + 1] + talk_time([s], k, k + 1)
    to_date = {p: np.cumsum(talk[p]) for p in ROLES}  # to_date[p][k]: talk in [0, k)
    window = int(round(window_s))
    spans = {p: [(s.start, s.end) for s in timeline.segments[p]] for p in ROLES}
    anyone = union(s for p in ROLES for s in spans[p])
    out = []
    j = 0  # stretches of anyone's speech begun by t
    for t in range(1, seconds + 1):
        while j < len(anyone) and anyone[j][0] <= t:
            j += 1
        last_end = anyone[j - 1][1] if j else 0.0
        speaking = sorted(p for p in ROLES if any(a <= t < b for a, b in _around(spans[p], t)))
        w0 = max(0, t - window)
        whole = share(to_date[COACH][t], to_date[CLIENT][t])
        recent = share(to_date[COACH][t] - to_date[COACH][w0], to_date[CLIENT][t] - to_date[CLIENT][w0])
        silence = 0.0 if speaking else round(t - last_end, 3)
        out.append(IndicatorSample(float(t), speaking, _r3(whole), _r3(recent), silence))
    return out


def _around(spans: list[tuple[float, float]], t: float) -> list[tuple[float, float]]:
    """The span that starts last at or before ``t`` (the only one of a participant's that can hold it)."""
    i = bisect.bisect_right(spans, (t, math.inf)) - 1
    return spans[i : i + 1] if i >= 0 else []


def _r3(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _remove_stale_staging(storage: RecordingStorage) -> None:
    """Staging folders that a killed import left behind."""
    now = time.time()
    for name, changed in storage.staging():
        if now - changed > STALE_STAGING_S:
            storage.delete_session(name)


# -- the server's import process -----------------------------------------------------------------


def run_job(job: dict, out=sys.stdout) -> int:
    """One import for the server: ``job`` has ``data`` (the data folder), optionally ``database``
    (``--database``: the store's URL, when not the file in the data folder), optionally
    ``recordings`` (``--recordings``: where recordings are kept), ``files`` (key: path),
    ``names`` (key: the file's own name), ``label``, ``client``, ``coach_id`` and ``created_at``.
    Writes JSON lines: ``{"staging": …}``, ``{"progress": …}``, then ``{"session": …, "review": …}``
    or ``{"error": …}``. A closed output (the server went away) ends the import, leaving nothing."""
    data = Path(job["data"])
    files = CallFiles(**{key: Path(path) for key, path in job["files"].items()}, names=job.get("names") or {})

    def say(message: dict) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    last = [0.0]

    def progress(fraction: float | None) -> None:
        now = time.monotonic()
        if fraction == 1.0 or now - last[0] >= 0.2:
            last[0] = now
            say({"progress": None if fraction is None else round(fraction, 3)})

    store = Store(database_location(data, job.get("database")))  # the server's (import_api.py)
    try:
        done = import_call(
            store, open_storage(job.get("recordings"), data), files, label=job.get("label", ""), client=job.get("client"),
            coach_id=job.get("coach_id") or LOCAL_COACH, created_at=job.get("created_at"), progress=progress,
            on_staging=lambda name: say({"staging": name}))
    except (AudioError, ImportFailed) as err:
        say({"error": files.friendly(str(err))})
        return 1
    finally:
        store.close()
    say({"session": done.session.id, "review": done.review_path(),
         "talk_share_coach": _r3(done.analysis.metrics.talk_share_coach), "duration_s": round(done.analysis.duration, 3)})
    return 0


def _stop(signum: int, frame: object) -> None:
    """The server cancels an import with SIGTERM: raised here, it removes what was written."""
    raise SystemExit(1)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    try:
        sys.exit(run_job(json.loads(sys.stdin.read())))
    except BrokenPipeError:  # the server is gone: nothing was kept (import_call cleaned up)
        sys.exit(1)

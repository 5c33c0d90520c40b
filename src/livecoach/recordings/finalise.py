"""Turning a recording that grew during the call into the file the review plays.

Ogg is right while writing (a killed writer leaves a playable file) but has no seek index, and
MediaRecorder's WebM has neither duration nor cues. Chromium seeks quickly only in a file that
has both, so a finished recording is remuxed (packets copied, never re-encoded) into WebM, whose
muxer writes the duration and the cues when it can seek in its output.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

import av

from ..opus import SpeechDecoder, packet_samples
from ..store import Store
from .formats import WEBM, Container
from .ogg import packets, valid_length
from .recorder import PEAK_SAMPLES, LevelStrip, sample_peak
from .storage import FolderStorage, StorageError

log = logging.getLogger(__name__)


class MediaError(Exception):
    """A recording could not be read as media."""


def remux_to_webm(storage: FolderStorage, session: str, source: str, target: str) -> float:
    """Copy every packet of ``source`` into a new WebM ``target``; returns its duration (s).

    The seek index (Cues) goes before the media (formats.WEBM): a browser opening the file reads
    it with the header in its first request, instead of asking for the file's end first and then
    coming back (a round trip less before the first sound, and before the first seek)."""
    return _remux(str(storage.path(session, source)), storage, session, target, WEBM, ("audio", "video"))


def keep_audio(source: str | os.PathLike, storage: FolderStorage, folder: str, target: str, container: Container,
               stopped: Callable[[], bool] = lambda: False) -> float:
    """Copy the packets of the first audio stream of ``source`` (a file of the user's, e.g. an
    imported call's) into a new ``target`` in ``container``; returns its duration (s). Anything
    else the file holds (video, other audio) is left out. ``stopped`` is asked before each packet:
    True ends the copy, leaving the file unfinished for the caller to delete."""
    return _remux(os.fspath(source), storage, folder, target, container, ("audio",), first_only=True, stopped=stopped)


def _remux(source: str, storage: FolderStorage, folder: str, target: str, container: Container,
           kinds: tuple[str, ...], first_only: bool = False, stopped: Callable[[], bool] = lambda: False) -> float:
    out_path = storage.writer_path(folder, target)
    name = os.path.basename(source)
    try:
        with av.open(source) as inp:
            streams = [s for s in inp.streams if s.type in kinds][: 1 if first_only else None]
            if not streams:
                raise MediaError(f"{name} holds no {' or '.join(kinds)}")
            with av.open(str(out_path), "w", format=container.muxer, options=dict(container.options)) as out:
                mapping = {s.index: out.add_stream_from_template(s) for s in streams}
                end, copied = 0.0, 0
                try:
                    for packet in inp.demux(streams):
                        if stopped():
                            break
                        if packet.dts is None or packet.size == 0:
                            continue  # the demuxer's end-of-stream marker
                        stream = packet.stream
                        if packet.pts is not None:
                            end = max(end, float((packet.pts + (packet.duration or 0)) * stream.time_base))
                        packet.stream = mapping[stream.index]
                        out.mux(packet)
                        copied += 1
                except av.FFmpegError as err:
                    # A recording cut off by a closed tab or a killed writer: keep all before the cut.
                    if not copied:
                        raise
                    log.warning("%s/%s: copied up to a damaged end (%s)", folder, name, err)
    except av.FFmpegError as err:
        storage.delete(folder, target)
        raise MediaError(f"{name}: {err}") from None
    storage.seal(folder, target)
    return end


def repair_ogg(storage: FolderStorage, session: str, name: str) -> float:
    """Cut an Ogg file whose writer was killed back to its last intact page; returns the
    seconds of audio it holds."""
    data = storage.read(session, name)
    length, granule = valid_length(data)
    if length == 0:
        raise StorageError(f"{name} has no intact page")
    if length < len(data):
        storage.truncate(session, name, length)
    return granule / 48000


STRIP_WARM_UP = 5
"""Packets decoded before the first one whose level is missing: libopus's state settles."""


def complete_level_strip(storage: FolderStorage, session: str, name: str) -> int:
    """Add to a grown Ogg recording's level strip (``<id>.peaks``) the bins its writer did not
    write (killed: in an object store the strip goes up only at the close), made from the audio
    as the live call made them (recorder.LevelStrip, a packet's peak of its 16 kHz decoding);
    returns how many. Packets are walked from the start to count their samples, and only those
    of the missing bins decoded."""
    stem = name.rsplit(".", 1)[0]
    strip_name = f"{stem}.peaks"
    have = storage.size(session, strip_name) if storage.exists(session, strip_name) else 0
    data = storage.path(session, name).read_bytes()  # in a bucket, the spool's copy the remux reads next
    counts = [(packet, packet_samples(packet)) for packet in list(packets(data))[2:]]  # after the two headers
    if -(-sum(n for _, n in counts) // PEAK_SAMPLES) <= have:
        return 0
    strip, decoder, first = LevelStrip(), SpeechDecoder(), None
    for k, (packet, samples) in enumerate(counts):
        if first is None and strip.at + samples > have * PEAK_SAMPLES:
            first = k
            for warm_up, _ in counts[max(0, k - STRIP_WARM_UP) : k]:
                decoder.pcm(warm_up)
        peak = 0
        if first is not None:
            try:
                peak = sample_peak(decoder.pcm(packet))
            except av.error.InvalidDataError:
                pass  # a packet libopus rejects counts as silence
        strip.add(samples, peak)
    strip.finish()
    missing = bytes(strip.done[have:])
    with storage.append(session, strip_name) as out:
        out.write(missing)
    return len(missing)


def finish_audio(store: Store, storage: FolderStorage, session: str, recording: str, name: str, state: str) -> None:
    """Make a grown Ogg recording the finished WebM the review plays, and say so in its row:
    ``state`` is "finished" after a call, "interrupted" after its writer was killed (whose level
    strip is then completed from the audio). If the audio cannot be remuxed the Ogg stays (it
    plays too) and the row says why."""
    try:
        seconds = repair_ogg(storage, session, name)
        if state == "interrupted":
            complete_level_strip(storage, session, name)
        webm = name.rsplit(".", 1)[0] + ".webm"
        remux_to_webm(storage, session, name, webm)
        storage.delete(session, name)
        store.update_recording(session, recording, name=webm, media_type="audio/webm", duration_s=round(seconds, 3),
                               bytes=storage.size(session, webm), state=state, finished_at=time.time())
    except (StorageError, MediaError, OSError) as err:
        log.error("session %s: recording %s not finished: %s", session, recording, err)
        store.update_recording(session, recording, state="failed", error=str(err)[:500], finished_at=time.time())


def finish_video(store: Store, storage: FolderStorage, session: str, row: dict, state: str) -> None:
    """Make a browser's uploaded video the finished WebM the review plays: the counted chunks,
    remuxed with duration and cues. A video that cannot be remuxed is marked failed."""
    name = row["name"]
    final = name.replace(".part.webm", ".webm")
    try:
        if storage.size(session, name) > row["bytes"]:
            storage.truncate(session, name, row["bytes"])  # a chunk never counted
        seconds = remux_to_webm(storage, session, name, final)
        storage.delete(session, name)
        store.update_recording(session, row["id"], name=final, duration_s=round(seconds, 3),
                               bytes=storage.size(session, final), state=state, finished_at=time.time())
    except (StorageError, MediaError, OSError) as err:
        log.error("session %s: video %s not finished: %s", session, row["id"], err)
        store.update_recording(session, row["id"], state="failed", error=str(err)[:500], finished_at=time.time())


STALE_SECONDS = 15.0
"""A growing audio recording whose row and file have not changed for this long lost its writer
(the server writes the file every second, the row every two)."""
VIDEO_STALE_SECONDS = 120.0
"""A browser that has sent no chunk for this long is gone (closed, crashed); a browser whose
network drops keeps its chunks until it is back, so this is long."""
CLAIM_SECONDS = 600.0
"""How long a process that claimed a stale recording has to finish it (a remux takes seconds; an
hour's video from an object store, a minute or so): after that it is taken for dead, and another
process's sweep may claim the recording again."""


def sweep(store: Store, storage: FolderStorage, now: float | None = None) -> list[str]:
    """Finish the recordings whose writer died (a killed worker or server) and mark their
    sessions interrupted where the audio stopped; finish the videos of browsers that went away.
    Returns the sessions marked interrupted.

    Several processes may sweep one database (several nodes, each its own sweep): each claims a
    session's stale recordings before finishing them (``Store.claim_recordings``), and goes on
    with those it got only, so that one of them finishes each and logs the interruption once."""
    now = time.time() if now is None else now
    due: dict[str, list[dict]] = {}
    for row in store.stale_recordings(now - STALE_SECONDS, claimed_before=now - CLAIM_SECONDS):
        if row["kind"] == "video":
            if row["updated_at"] < now - VIDEO_STALE_SECONDS:
                due.setdefault(row["session_id"], []).append(row)
            continue
        modified = storage.modified(row["session_id"], row["name"])
        if modified is not None and modified > now - STALE_SECONDS:
            continue  # still being written: the row's update is what lags
        due.setdefault(row["session_id"], []).append(row)
    marked: list[str] = []
    for session, rows in due.items():
        claimed = set(store.claim_recordings(session, [row["id"] for row in rows], now - STALE_SECONDS,
                                             now - CLAIM_SECONDS, now))
        interrupted_at = None
        for row in rows:
            if row["id"] not in claimed:
                continue  # another process is finishing it, or its writer is back
            if row["kind"] == "video":
                finish_video(store, storage, session, row, "finished")
                continue
            finish_audio(store, storage, session, row["id"], row["name"], "interrupted")
            done = store.recording(session, row["id"]) or row
            end = row["start_s"] + (done.get("duration_s") or 0.0)
            interrupted_at = max(interrupted_at or 0.0, end)
        if interrupted_at is not None:
            store.log_event(session, "interrupted", None, round(interrupted_at, 3))
            marked.append(session)
    return marked

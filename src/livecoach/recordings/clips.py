"""A clip of a moment: both participants' recorded audio around a tag, as one file to download.

The two recordings are decoded for the clip's span, placed on the session clock (the coach on
the left channel, the client on the right) and encoded once as Opus in WebM. A clip is small
(45 s by default), so encoding it costs little; the recordings themselves are never re-encoded.
"""

from __future__ import annotations

import av
import numpy as np

from .finalise import MediaError
from .storage import FolderStorage

RATE = 48000
CHANNEL = {"coach": 0, "client": 1}


def audio_clip(storage: FolderStorage, session: str, recordings: list[dict], start: float, end: float,
               name: str) -> str:
    """Write ``name`` (WebM, Opus, stereo) holding session time ``start`` to ``end``; returns it.
    ``recordings`` are the session's audio recordings (rows of the store)."""
    if storage.exists(session, name):
        return name
    length = int(round((end - start) * RATE))
    mix = np.zeros((2, length), dtype=np.int32)
    used = 0
    for row in recordings:
        if row["kind"] != "audio" or row["participant"] not in CHANNEL:
            continue
        used += _place(storage, session, row, start, mix[CHANNEL[row["participant"]]])
    if not used:
        raise MediaError("no recorded audio in that span")
    _encode(storage, session, name, np.clip(mix, -32768, 32767).astype(np.int16))
    return name


def _place(storage: FolderStorage, session: str, row: dict, start: float, out: np.ndarray) -> int:
    """Decode the part of one recording that falls into ``out`` (which starts at session time
    ``start``); returns the samples placed."""
    offset = start - row["start_s"]  # clip start in the file's time
    if row.get("duration_s") is not None and offset > row["duration_s"]:
        return 0
    placed = 0
    try:
        with av.open(str(storage.path(session, row["name"]))) as container:
            stream = container.streams.audio[0]
            if offset > 1:
                container.seek(int((offset - 1) / stream.time_base), stream=stream)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                at = int(round((float(frame.pts * stream.time_base) - offset) * RATE))
                if at >= out.size:
                    break
                for mono in resampler.resample(frame):
                    samples = mono.to_ndarray().reshape(-1)
                    lo, hi = max(0, -at), min(samples.size, out.size - at)
                    if hi > lo:
                        out[at + lo : at + hi] += samples[lo:hi]
                        placed += hi - lo
                    at += samples.size
    except (av.FFmpegError, OSError) as err:
        raise MediaError(f"{row['name']}: {err}") from None
    return placed


def _encode(storage: FolderStorage, session: str, name: str, stereo: np.ndarray) -> None:
    path = storage.writer_path(session, name)
    try:
        with av.open(str(path), "w", format="webm") as out:
            stream = out.add_stream("libopus", rate=RATE, layout="stereo")
            step = 960
            for i in range(0, stereo.shape[1], step):
                chunk = np.ascontiguousarray(stereo[:, i : i + step].T.reshape(1, -1))
                frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
                frame.sample_rate = RATE
                frame.pts = i
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    except av.FFmpegError as err:
        storage.delete(session, name)
        raise MediaError(f"the clip could not be written: {err}") from None
    storage.seal(session, name)


def video_clip(storage: FolderStorage, session: str, row: dict, start: float, end: float, name: str) -> float:
    """Write ``name``: one participant's video recording from session time ``start`` to ``end``,
    packets copied (no re-encoding), so it begins at the key frame at or before ``start``.
    Returns the session time the clip really starts at."""
    if storage.exists(session, name):
        storage.delete(session, name)
    offset, stop = start - row["start_s"], end - row["start_s"]  # the clip in the file's time
    path = storage.writer_path(session, name)
    try:
        with av.open(str(storage.path(session, row["name"]))) as inp:
            streams = [s for s in inp.streams if s.type in ("audio", "video")]
            video = next(s for s in streams if s.type == "video")
            inp.seek(int(max(0.0, offset) / video.time_base), stream=video, backward=True, any_frame=False)
            with av.open(str(path), "w", format="webm") as out:
                mapping = {s.index: out.add_stream_from_template(s) for s in streams}
                first: float | None = None
                for packet in inp.demux(streams):
                    if packet.pts is None or packet.size == 0:
                        continue
                    at = float(packet.pts * packet.stream.time_base)
                    if first is None:
                        if packet.stream is not video or not packet.is_keyframe:
                            continue  # the clip opens on a picture, not on the frames that need one
                        first = at
                    if at < first:
                        continue
                    if at > stop:
                        break
                    shift = int(round(first / packet.stream.time_base))
                    packet.pts -= shift
                    if packet.dts is not None:
                        packet.dts -= shift
                    packet.stream = mapping[packet.stream.index]
                    out.mux(packet)
    except (av.FFmpegError, StopIteration, OSError) as err:
        storage.delete(session, name)
        raise MediaError(f"the clip could not be cut from {row['name']}: {err}") from None
    if first is None:
        storage.delete(session, name)
        raise MediaError("no video in that span")
    storage.seal(session, name)
    return row["start_s"] + first

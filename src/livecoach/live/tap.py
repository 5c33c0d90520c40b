"""The audio tap: a participant's received WebRTC audio track into the session's engine.

Opus packets are decoded straight to 16 kHz mono (opus.SpeechDecoder, as a file's are), other
frames resampled to it, and placed on the session clock by samples, with gaps found from RTP
timestamps. Audio is handed on in small batches (40 ms by default): each hand-over has
a fixed cost (about 50 µs in the engine, more in numpy around it), so batching keeps 20 calls
affordable while adding little to the time a speech onset takes to reach the coach.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..frames import FRAME_SAMPLES, SAMPLE_RATE
from ..opus import SpeechDecoder
from ..recordings.recorder import sample_peak
from .session import LiveSession

log = logging.getLogger(__name__)

RECORDING_RATE = 48000
"""Opus's clock, on which the recording places packets."""
RESYNC_SAMPLES = SAMPLE_RATE // 2
"""Audio placed this far behind its arrival is moved up to it: more than network jitter (a
late burst keeps its place by its timestamps, so the two tracks stay aligned), yet soon enough
that a sender whose clock runs slow stays on the session clock."""
OPUS_PRIMING = 312
"""Samples (48 kHz) of encoder priming at the start of an Opus stream: libopus's lookahead
(6.5 ms), which a file records as its pre-skip and ``livecoach analyze`` skips. RTP carries no
pre-skip, so the tap's decoder skips it: both paths then give the engine the same samples, on
the same 10 ms frames."""
QUEUE_FRAMES = 50
"""Packets (undecoded in a direct call, decoded frames in a relay one; 20 ms each, or 40 ms as a
direct call asks for) waiting for the tap; beyond this the oldest are dropped."""


def on_grid(samples: int, up: bool = True) -> int:
    """A position on the engine's 10 ms frame grid (the next one, or the nearest).

    A track's audio is placed so that its first sample starts a frame, as a file's first sample
    does in ``livecoach analyze``, and every move keeps that phase: the engine decides per frame,
    and on hard audio a few milliseconds of phase changed a talk share by up to 3 points."""
    if up:
        return -(-samples // FRAME_SAMPLES) * FRAME_SAMPLES
    return (samples + FRAME_SAMPLES // 2) // FRAME_SAMPLES * FRAME_SAMPLES


class DropOldestQueue(asyncio.Queue):
    """aiortc hands received audio over an unbounded queue; this one keeps the newest only, so
    a process that falls behind drops stale audio instead of growing without bound."""

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.limit = maxsize
        self.dropped_frames = 0
        self.dropped_samples = 0
        self.on_put: Callable[[], None] | None = None
        """Called as each frame comes in: the moment its audio arrived, whenever the tap reads it."""

    def put_nowait(self, item) -> None:
        while self.qsize() >= self.limit:
            old = self.get_nowait()
            if old is not None:
                self.dropped_frames += 1
                self.dropped_samples += getattr(old, "samples", 0)
        super().put_nowait(item)
        if item is not None and self.on_put is not None:
            self.on_put()

    async def put(self, item) -> None:
        self.put_nowait(item)


def bound_queue(track: MediaStreamTrack, frames: int = QUEUE_FRAMES) -> DropOldestQueue | None:
    """Give a received track a bounded queue. Must be called when the track appears, before
    its receiver starts decoding (aiortc passes the queue to its decoder thread then)."""
    if not isinstance(getattr(track, "_queue", None), asyncio.Queue):
        return None
    queue = DropOldestQueue(frames)
    track._queue = queue
    return queue


class AudioTap:
    """Reads one track until it ends and feeds the participant's audio to the session."""

    def __init__(self, session: LiveSession, role: str, track: MediaStreamTrack, batch_seconds: float = 0.04) -> None:
        self.session = session
        self.role = role
        self.track = track
        self.queue = bound_queue(track)
        if self.queue is not None:
            self.queue.on_put = lambda: session.heard(role)  # arrival, not when the tap gets to it
        self.batch = max(1, int(batch_seconds * SAMPLE_RATE))
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)  # other codecs
        self._opus = SpeechDecoder(skip=OPUS_PRIMING)
        self.failed = 0  # packets the decoder rejected
        self._position: int | None = None  # session sample where the next decoded sample goes
        self._next_pts: int | None = None
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._pending_at = 0
        self._packets: list[tuple[int, int, bytes, int]] = []  # received packets of the pending audio
        self._priming = OPUS_PRIMING  # still to skip at the start of the stream
        self.task: asyncio.Task | None = None
        self.on_start: Callable[[], None] | None = None  # called at the first audio
        self.on_packet: Callable[[int, int, bytes, int, int], None] | None = None
        """Gets each received packet (when decoded inline) placed on the session clock:
        (session sample at 48 kHz, samples, the packet, its sample peak, the priming it starts
        with), for the recording."""

    def start(self) -> asyncio.Task:
        self.task = asyncio.get_running_loop().create_task(self.run(), name=f"tap-{self.session.id}-{self.role}")
        return self.task

    async def run(self) -> None:
        try:
            while True:
                try:
                    frame = await self.track.recv()
                except MediaStreamError:
                    break
                self._take(frame)
        finally:
            self._hand_over()

    def _take(self, frame: av.AudioFrame) -> None:
        rate = frame.sample_rate
        if self.queue is None:  # no queue to tell when it arrived: now
            self.session.heard(self.role)
        if self.queue is not None and self.queue.dropped_samples:
            self.session.count_dropped(self.role, self.queue.dropped_samples * SAMPLE_RATE // rate)
            self.queue.dropped_samples = 0
        if self._position is None:
            # Anchored at arrival (the frame just finished playing at the sender), but never
            # before what the session has already filled for this participant.
            arrival = self.session.clock_samples() - frame.samples * SAMPLE_RATE // rate
            self._position = on_grid(max(arrival, self.session.cursor(self.role)))
            if self.on_start is not None:
                self.on_start()
        else:
            if frame.pts is not None and self._next_pts is not None and frame.pts > self._next_pts + frame.samples // 2:
                # packets were lost or dropped: leave the gap, so later speech keeps its time
                self._hand_over()
                self._position += on_grid((frame.pts - self._next_pts) * SAMPLE_RATE // rate, up=False)
            arrival = self.session.clock_samples() - frame.samples * SAMPLE_RATE // rate
            if arrival - self._position > RESYNC_SAMPLES:
                # The sender delivered less audio than time passed (a starved browser, a clock
                # running slow): back onto the session clock, leaving a gap, before the session
                # counts this participant as stalled and drops all that follows.
                self._hand_over()
                self._position = on_grid(arrival)
        if frame.pts is not None:
            self._next_pts = frame.pts + frame.samples
        packet = frame.opaque if rate == RECORDING_RATE else None  # an Opus packet, as received
        if packet is None:
            self._add(*(out.to_ndarray().reshape(-1) for out in self._resampler.resample(frame)))
            return
        try:
            samples = self._opus.pcm(packet)
        except av.FFmpegError as err:  # its time stays a gap: the next packet's timestamp places it
            self.failed += 1
            log.warning("session %s: a %s packet could not be decoded: %s", self.session.id, self.role, err)
            return
        primed = min(self._priming, frame.samples)  # what the decoder skipped, in the recording's count
        self._priming -= primed
        if self.on_packet is not None:
            self._packets.append(
                (self._position * (RECORDING_RATE // SAMPLE_RATE) - primed, frame.samples, packet, primed))
        self._add(samples)

    def _add(self, *parts: np.ndarray) -> None:
        """Decoded 16 kHz audio, next on this track: batched for the engine."""
        for samples in parts:
            if not samples.size:
                continue
            if not self._pending:
                self._pending_at = self._position
            self._pending.append(samples)
            self._pending_samples += samples.size
            self._position += samples.size
        if self._pending_samples >= self.batch:
            self._hand_over()

    def _hand_over(self) -> None:
        if self._pending:
            audio = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._pending, self._pending_samples = [], 0
            self.session.place(self.role, self._pending_at, audio)
            if self._packets:
                # One level for the batch's packets (40 ms): the strip has 100 ms bins.
                peak = sample_peak(audio)
                for position, samples, packet, primed in self._packets:
                    self.on_packet(position, samples, packet, peak, primed)
        self._packets.clear()

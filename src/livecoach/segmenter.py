"""From own-speech frames to speech segments: transient rejection, onset and offset hysteresis.

Frames flagged as speech are grouped into bursts (holes of a few frames filled). A burst shorter
than ``min_burst_frames``, or with fewer than ``min_strong_frames`` clearly loud frames, is a
transient (a key click, a tap) or noise and never starts or extends speech on its own: a double
threshold, strong evidence to start, weaker evidence to go on. Speech-like bursts closer than ``bridge_frames`` join into one segment, so the gaps
between words do not split it. A segment starts at its first speech frame and ends at its last:
the hysteresis delays decisions, never the times they carry.

It works on runs of equal flags rather than frame by frame, which keeps the per-frame cost in
numpy, and it gives the same segments however the frames are chunked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import SegmentConfig


@dataclass(frozen=True)
class SegmentEvent:
    """A change in one participant's speech, in frames of media time.

    ``kind`` is "start" (speech confirmed; ``end`` is None) or "end" (the segment is final).
    ``known_at`` is the frame at which the decision could be made: what a live call waits for.
    """

    kind: str
    start: int
    end: int | None
    known_at: int


class Segmenter:
    """One participant's segments, built incrementally from own-speech flags."""

    def __init__(self, config: SegmentConfig | None = None) -> None:
        self.config = config or SegmentConfig()
        self.position = 0  # frames consumed
        self.segments: list[tuple[int, int]] = []  # closed segments, [start, end) in frames
        self._burst_start = -1
        self._burst_end = -1  # exclusive end of the last speech frame in the current burst
        self._burst_strong = 0  # frames with strong evidence in the current burst
        self._open_start = -1  # start of the open segment, or -1
        self._open_end = -1  # end of the last speech-like burst in the open segment

    @property
    def open_segment(self) -> tuple[int, int] | None:
        """The segment in progress as [start, end of its last speech so far), if any."""
        return (self._open_start, self._open_end) if self._open_start >= 0 else None

    def push(self, flags: np.ndarray, strong: np.ndarray | None = None) -> list[SegmentEvent]:
        """Consume the next frames' own-speech flags; return the events they complete.

        ``strong`` marks the frames with strong evidence (a subset of ``flags``; default: all).
        """
        events: list[SegmentEvent] = []
        n = flags.size
        if n == 0:
            return events
        base = self.position
        padded = np.concatenate(([False], flags.astype(bool), [False]))
        edges = np.flatnonzero(padded[1:] != padded[:-1])
        counts = np.concatenate(([0], np.cumsum(flags if strong is None else strong & flags)))
        for a, b in zip(edges[0::2], edges[1::2]):
            self._run(base + int(a), base + int(b), int(counts[b] - counts[a]), events)
        self.position = base + n
        self._close_if_done(self.position, events)
        return events

    def finish(self) -> list[SegmentEvent]:
        """The track has ended: close whatever is open."""
        events: list[SegmentEvent] = []
        if self._open_start >= 0:
            self._close(self.position, events)
        self._burst_start = self._burst_end = -1
        return events

    def _run(self, a: int, b: int, strong: int, events: list[SegmentEvent]) -> None:
        cfg = self.config
        self._close_if_done(a, events)
        if self._burst_end >= 0 and a - self._burst_end <= cfg.hole_frames:
            self._burst_end = b
            self._burst_strong += strong
        else:
            self._burst_start, self._burst_end, self._burst_strong = a, b, strong
        if self._burst_end - self._burst_start < cfg.min_burst_frames or self._burst_strong < cfg.min_strong_frames:
            return
        if self._open_start >= 0:
            self._open_end = self._burst_end
            return
        self._open_start, self._open_end = self._burst_start, self._burst_end
        known = max(a + 1, self._burst_start + cfg.min_burst_frames)
        events.append(SegmentEvent("start", self._open_start, None, known))

    def _close_if_done(self, now: int, events: list[SegmentEvent]) -> None:
        """Close the open segment once ``now`` is a full bridge past its last speech.

        A short burst that began within the bridge may still grow into speech that extends the
        segment; closing waits until it has ended.
        """
        cfg = self.config
        if self._open_start < 0 or now - self._open_end < cfg.bridge_frames:
            return
        pending = (
            self._burst_end > self._open_end
            and self._burst_start < self._open_end + cfg.bridge_frames
            and now - self._burst_end <= cfg.hole_frames
        )
        if not pending:
            self._close(self._open_end + cfg.bridge_frames, events)

    def _close(self, known_at: int, events: list[SegmentEvent]) -> None:
        seg = (self._open_start, self._open_end)
        self.segments.append(seg)
        events.append(SegmentEvent("end", seg[0], seg[1], known_at))
        self._open_start = self._open_end = -1

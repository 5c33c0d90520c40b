"""From own-speech frames to speech segments: transient rejection, onset and offset hysteresis.

Frames flagged as speech are grouped into bursts (holes of a few frames filled). A burst shorter
than ``min_burst_frames``, or with fewer than ``min_strong_frames`` clearly loud frames, is a
transient (a key click, a tap) or noise and never starts or extends speech on its own: a double
threshold, strong evidence to start, weaker evidence to go on. Speech-like bursts closer than ``bridge_frames`` join into one segment, so the gaps
between words do not split it. A segment starts at its first speech frame and ends at its last:
the hysteresis delays decisions, never the times they carry.

It works on runs of speech frames rather than frame by frame, finding them with list searches
(a C loop), which keeps both a live batch of a few frames and a whole file cheap, and it gives the
same segments and events, with the same ``known_at``, however the frames are chunked.
"""

from __future__ import annotations

from collections.abc import Iterator
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
        self._run_start = -1  # start of the run of speech frames the last push ended in, or -1

    @property
    def open_segment(self) -> tuple[int, int] | None:
        """The segment in progress as [start, end of its last speech so far), if any."""
        return (self._open_start, self._open_end) if self._open_start >= 0 else None

    def next_start_bound(self) -> int:
        """The earliest frame a segment not yet closed can start at: the open segment's start, a
        burst still in progress's start (it may yet become speech), or the next frame. Closed
        segments never change, so everything before this bound is final."""
        if self._open_start >= 0:
            return self._open_start
        if self._burst_end >= 0 and self.position - self._burst_end <= self.config.hole_frames:
            return self._burst_start
        return self.position

    def push(self, flags: np.ndarray, strong: np.ndarray | None = None) -> list[SegmentEvent]:
        """Consume the next frames' own-speech flags; return the events they complete.

        ``strong`` marks the frames with strong evidence (a subset of ``flags``; default: all).
        """
        events: list[SegmentEvent] = []
        n = flags.size
        if n == 0:
            return events
        base = self.position
        flags = np.asarray(flags, dtype=bool)
        speech = flags.tolist()
        loud = speech if strong is None else (strong & flags).tolist()
        for a, b in _runs(speech):
            # A run that goes on from the last push is one run with it: its start is the earlier one.
            start = self._run_start if a == 0 and self._run_start >= 0 else base + a
            self._run(base + a, base + b, start, sum(loud[a:b]), events)
        # the run in progress at the end of this push, if any, may go on in the next
        self._run_start = start if speech[-1] else -1
        self.position = base + n
        self._close_if_done(self.position, events)
        return events

    def finish(self) -> list[SegmentEvent]:
        """The track has ended: close whatever is open."""
        events: list[SegmentEvent] = []
        if self._open_start >= 0:
            self._close(self.position, events)
        self._burst_start = self._burst_end = self._run_start = -1
        return events

    def _run(self, a: int, b: int, run_start: int, strong: int, events: list[SegmentEvent]) -> None:
        """Frames [a, b) are speech, ``strong`` of them strong; ``run_start`` is where their run of
        speech frames began (before ``a`` when the run was split between pushes).

        A start is known one frame into the run that makes the burst speech-like, and not before
        the burst's minimum length. Counting from the run's own start, not from ``a``, keeps that
        frame the same however the run was split between pushes.
        """
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
        known = max(run_start + 1, self._burst_start + cfg.min_burst_frames)
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


def _runs(flags: list[bool]) -> Iterator[tuple[int, int]]:
    """[start, end) of each run of True in ``flags``, found with ``list.index`` (a C loop)."""
    n = len(flags)
    marked = flags + [False, True]  # every run ends, and the search for the next one stops
    end = 0
    while (start := marked.index(True, end)) < n:
        end = marked.index(False, start)
        yield start, end

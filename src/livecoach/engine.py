"""The measuring engine: participants' audio in, speech segments, timeline and metrics out.

One engine serves a live call and a recorded file alike. Audio is pushed per participant in
chunks of any size; each participant's frames are measured as they arrive, and frames are
decided once every participant's audio has reached them, because attribution compares the
microphones at the same media time. Media time is counted from samples.

A live session that goes on from an earlier run of its call (a restarted worker) gives the engine
the frame its media time starts at and the segments measured before, so that its figures cover
the whole session on one clock; the engine itself never reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .attribution import Attributor
from .config import EngineConfig
from .detection import Detector, FrameFeatures
from .frames import FRAME_SECONDS, FrameBuffer
from .metrics import Metrics, compute
from .segmenter import Segmenter
from .timeline import ROLES, GrowingTimeline, Timeline


@dataclass(frozen=True)
class SpeechEvent:
    """A participant started (``end`` None) or finished a speech segment. Times in seconds."""

    participant: str
    kind: str  # "start" | "end"
    start: float
    end: float | None
    known_at: float


class Engine:
    """Incremental measurement of one session."""

    def __init__(
        self,
        participants: Sequence[str] = ROLES,
        config: EngineConfig | None = None,
        start_frame: int = 0,
        earlier: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    ) -> None:
        """``start_frame``: the frame of media time the first audio pushed starts at; ``earlier``:
        each participant's closed segments (seconds) before it, which the timeline and the metrics
        include (a session continued after its worker was restarted)."""
        self.participants = list(participants)
        self.config = config or EngineConfig()
        self.start_frame = start_frame
        self._earlier = {p: [(float(a), float(b)) for a, b in (earlier or {}).get(p, ())] for p in self.participants}
        self._buffers = {p: FrameBuffer() for p in self.participants}
        self._detectors = {p: Detector(self.config.detection) for p in self.participants}
        self._pending: dict[str, list[FrameFeatures]] = {p: [] for p in self.participants}
        self._pending_frames = {p: 0 for p in self.participants}
        self._attributor = Attributor(self.participants, self.config.attribution)
        self._segmenters = {p: Segmenter(self.config.segments) for p in self.participants}
        self._closed = {p: list(self._earlier[p]) for p in self.participants}  # in seconds, earlier first
        self._growing = GrowingTimeline(self.participants, self.config.timeline)
        self.frames_decided = 0
        self.finished = False

    # -- input ---------------------------------------------------------------------------

    def push(self, participant: str, samples: np.ndarray) -> list[SpeechEvent]:
        """Add a participant's next 16 kHz mono int16 samples; return events now decided."""
        frames = self._buffers[participant].push(samples)
        if frames.shape[0]:
            self._enqueue(participant, self._detectors[participant].process(frames))
        return self._decide()

    def push_absent(self, participant: str, frames: int) -> list[SpeechEvent]:
        """The participant is muted or gone for ``frames`` frames: they count as not speaking.

        A partial frame they had begun is completed with silence first. Their detector does not
        see the absent frames, so its noise floor is not dragged down by them.
        """
        if frames > 0:
            self._flush(participant)
            self._enqueue(participant, FrameFeatures.absent(frames))
        return self._decide()

    def finish(self) -> list[SpeechEvent]:
        """All audio is in: tracks of different lengths are aligned at their start, the shorter
        ones count as silent to the end, and open segments are closed."""
        for p in self.participants:
            self._flush(p)
        longest = max(self.frames_received(p) for p in self.participants)
        for p in self.participants:
            missing = longest - self.frames_received(p)
            if missing:
                self._enqueue(p, FrameFeatures.absent(missing))
        events = self._decide()
        for p in self.participants:
            events.extend(self._convert(p, self._segmenters[p].finish()))
        self.finished = True
        return events

    def _flush(self, participant: str) -> None:
        """Complete a participant's partial last frame with silence and measure it."""
        last = self._buffers[participant].flush()
        if last.shape[0]:
            self._enqueue(participant, self._detectors[participant].process(last))

    def frames_received(self, participant: str) -> int:
        return self.frames_decided + self._pending_frames[participant]

    # -- output --------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """Media time up to which every participant's speech is decided."""
        return (self.start_frame + self.frames_decided) * FRAME_SECONDS

    def speaking(self) -> frozenset[str]:
        return frozenset(p for p, s in self._segmenters.items() if s.open_segment is not None)

    def segments(self, include_open: bool = True) -> dict[str, list[tuple[float, float]]]:
        """Each participant's segments in seconds, the earlier ones first; an open one ends at its
        latest speech."""
        out = {}
        base = self.start_frame
        for p, seg in self._segmenters.items():
            closed = self._closed[p]
            for a, b in seg.segments[len(closed) - len(self._earlier[p]):]:
                closed.append(((base + a) * FRAME_SECONDS, (base + b) * FRAME_SECONDS))
            out[p] = list(closed)
            if include_open and seg.open_segment is not None:
                a, b = seg.open_segment
                out[p].append(((base + a) * FRAME_SECONDS, (base + b) * FRAME_SECONDS))
        return out

    def settled(self) -> float:
        """Media time before which every participant's segments are final (``Segmenter.next_start_bound``)."""
        return (self.start_frame + min(s.next_start_bound() for s in self._segmenters.values())) * FRAME_SECONDS

    def timeline(self) -> Timeline:
        """The session's timeline so far; built anew only after its last long silence
        (``GrowingTimeline``), so a live call can ask for it every second however long it runs."""
        return self._growing.timeline(self.segments(), self.now, self.speaking(), self.settled())

    def metrics(self) -> Metrics:
        return compute(self.timeline(), self.config.timeline)

    def coupling_db(self, source: str, listener: str) -> float:
        """The measured level of ``source``'s voice in ``listener``'s microphone (for diagnostics)."""
        return self._attributor.coupling_db(source, listener)

    def echo_paths(self) -> dict[str, dict[str, float | None]]:
        """Each direction's measured echo: delay (ms, None until measured) and level (dB)."""
        out = {}
        for src in self.participants:
            for dst in self.participants:
                if src != dst:
                    delay = self._attributor.delay_frames(src, dst)
                    out[f"{src}_into_{dst}"] = {
                        "delay_ms": None if delay is None else delay * FRAME_SECONDS * 1000,
                        "level_db": round(self._attributor.coupling_db(src, dst), 1),
                    }
        return out

    # -- internals -----------------------------------------------------------------------

    def _enqueue(self, participant: str, features: FrameFeatures) -> None:
        self._pending[participant].append(features)
        self._pending_frames[participant] += len(features)

    def _decide(self) -> list[SpeechEvent]:
        ready = min(self._pending_frames.values())
        if ready == 0:
            return []
        aligned = {p: self._take(p, ready) for p in self.participants}
        flags = self._attributor.process(aligned)
        events: list[SpeechEvent] = []
        for p in self.participants:
            events.extend(self._convert(p, self._segmenters[p].push(*flags[p])))
        self.frames_decided += ready
        events.sort(key=lambda e: e.known_at)
        return events

    def _take(self, participant: str, n: int) -> FrameFeatures:
        """The participant's next ``n`` pending frames (in a live call, usually all of them)."""
        joined = FrameFeatures.concat(self._pending[participant])
        rest = self._pending_frames[participant] - n
        self._pending_frames[participant] = rest
        if not rest:
            self._pending[participant] = []
            return joined
        self._pending[participant] = [joined.slice(n, n + rest)]
        return joined.slice(0, n)

    def _convert(self, participant: str, events) -> list[SpeechEvent]:
        base = self.start_frame
        return [
            SpeechEvent(
                participant,
                e.kind,
                (base + e.start) * FRAME_SECONDS,
                None if e.end is None else (base + e.end) * FRAME_SECONDS,
                (base + e.known_at) * FRAME_SECONDS,
            )
            for e in events
        ]

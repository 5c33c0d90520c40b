"""A call in progress: the measuring engine fed from live audio on one session clock.

Session time starts when the live session is opened. Each participant's audio is placed on
that clock by samples: a track's first frame is anchored at its arrival time, and every later
sample follows by count, with gaps (lost packets, a stalled network) found from the RTP
timestamps. A participant who is absent, muted or stalled counts as not speaking: their frames
are filled as absent, so the other participant's audio is decided without waiting for them,
and a muted microphone never accumulates talk time. Audio that arrives too late to be placed
is dropped and counted rather than let the analysis fall behind real time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config import EngineConfig
from ..engine import Engine, SpeechEvent
from ..frames import FRAME_SAMPLES, SAMPLE_RATE
from ..timeline import ROLES
from .indicators import IndicatorHub

log = logging.getLogger(__name__)

ABSENT, CONNECTED, MUTED = "absent", "connected", "muted"
METRICS_INTERVAL = 1.0
"""Full metrics in snapshots are at most this old (and fresh after every speech event)."""
STALL_SECONDS = 1.0
"""A connected participant whose audio is this far behind the clock is filled as absent."""


@dataclass
class _Audio:
    state: str = ABSENT
    cursor: int = 0  # samples handed to the engine (audio, silence fill and absence)
    received: int = 0  # samples of real audio placed
    dropped: int = 0  # samples of real audio that came too late to be placed


class LiveSession:
    """One session's live analysis. Not thread-safe: use it from the event loop."""

    def __init__(
        self,
        session_id: str,
        topology: str = "direct",
        config: EngineConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[str, str | None, float, dict], None] | None = None,
    ) -> None:
        self.id = session_id
        self.topology = topology
        self.engine = Engine(ROLES, config)
        self.hub = IndicatorHub()
        self._clock = clock
        self.started = clock()
        self._audio = {role: _Audio() for role in ROLES}
        self._speaking: frozenset[str] = frozenset()
        self._last_speech_end = 0.0
        self._on_event = on_event
        self._ticker: asyncio.Task | None = None
        self._metrics: dict | None = None  # the last full metrics, and when they were computed
        self._metrics_at = -1.0

    # -- clock ---------------------------------------------------------------------------

    def clock_samples(self) -> int:
        """Session time now, by the wall clock, in samples."""
        return int((self._clock() - self.started) * SAMPLE_RATE)

    @property
    def session_time(self) -> float:
        """Media time up to which speech is decided."""
        return self.engine.now

    # -- participants --------------------------------------------------------------------

    def state(self, role: str) -> str:
        return self._audio[role].state

    def set_state(self, role: str, state: str) -> None:
        """A participant joined, left, muted or unmuted."""
        audio = self._audio[role]
        if audio.state == state:
            return
        audio.state = state
        self._fill_absent()
        self.hub.event(self._message("presence", participant=role, state=state))
        self._log("presence", role, state=state)

    def set_topology(self, topology: str) -> None:
        if topology != self.topology:
            self.topology = topology
            self.hub.event(self._message("topology", topology=topology))
            self._log("topology", None, topology=topology)

    # -- audio ---------------------------------------------------------------------------

    def place(self, role: str, position: int, samples: np.ndarray) -> None:
        """Hand the engine a participant's 16 kHz mono samples that start at ``position``
        (samples of session time). Late parts are dropped, gaps become absence."""
        audio = self._audio[role]
        if audio.state != CONNECTED or not samples.size:
            return
        late = audio.cursor - position
        if late > 0:
            dropped = min(late, samples.size)
            audio.dropped += dropped
            samples = samples[dropped:]
            position += dropped
            if not samples.size:
                return
        self._absent_until(role, position)
        gap = position - audio.cursor
        if gap > 0:
            self._push(role, np.zeros(gap, dtype=np.int16))
        self._push(role, samples)
        audio.received += samples.size
        self._fill_absent()

    def cursor(self, role: str) -> int:
        """The session sample up to which this participant's audio (or absence) is placed."""
        return self._audio[role].cursor

    def count_dropped(self, role: str, samples: int) -> None:
        """Audio dropped before it could be placed (the tap's queue overflowed)."""
        self._audio[role].dropped += samples

    def tick(self) -> None:
        """Let session time run on for those who send nothing: absent or muted participants,
        and connected ones whose audio has stalled."""
        now = self.clock_samples()
        for role, audio in self._audio.items():
            self._absent_until(role, now if audio.state != CONNECTED else now - int(STALL_SECONDS * SAMPLE_RATE))

    def _fill_absent(self) -> None:
        """Absent and muted participants keep pace with the furthest audio received."""
        front = max(a.cursor for a in self._audio.values())
        for role, audio in self._audio.items():
            if audio.state != CONNECTED:
                self._absent_until(role, front)

    def _push(self, role: str, samples: np.ndarray) -> None:
        self._audio[role].cursor += samples.size
        self._publish_events(self.engine.push(role, samples))

    def _absent_until(self, role: str, position: int) -> None:
        """Whole frames of absence, from the participant's cursor up to at most ``position``."""
        audio = self._audio[role]
        edge = -(-audio.cursor // FRAME_SAMPLES) * FRAME_SAMPLES  # a partial frame is completed first
        frames = (position - edge) // FRAME_SAMPLES
        if frames > 0:
            audio.cursor = edge + frames * FRAME_SAMPLES
            self._publish_events(self.engine.push_absent(role, frames))

    # -- output --------------------------------------------------------------------------

    def _publish_events(self, events: list[SpeechEvent]) -> None:
        for e in events:
            fields = {"participant": e.participant, "state": e.kind, "start": round(e.start, 3)}
            if e.end is not None:
                fields["end"] = round(e.end, 3)
                self._last_speech_end = max(self._last_speech_end, e.end)
            self.hub.event(self._message("speech", at=e.known_at, **fields))
        if events:
            self._metrics = None  # someone started or stopped: the figures change now
            speaking = self.engine.speaking()
            if self._speaking and not speaking:
                self.hub.event(self._message("silence", since=round(self._last_speech_end, 3)))
            self._speaking = speaking

    def snapshot(self) -> dict:
        """The whole state, as the indicator stream's ``snapshot`` message.

        The full metrics cost a pass over every segment of the session (about 7 ms an hour into
        a call), so they are recomputed at most once a second, and at once after someone starts
        or stops speaking; who is speaking and the current silence are always fresh.
        """
        now = self.engine.now
        if self._metrics is None or now - self._metrics_at >= METRICS_INTERVAL:
            self._metrics = self.engine.metrics().to_dict()
            self._metrics_at = now
        speaking = sorted(self.engine.speaking())
        silence = 0.0 if speaking else now - self._last_speech_end
        return self._message(
            "snapshot",
            speaking=speaking,
            participants={role: a.state for role, a in self._audio.items()},
            topology=self.topology,
            metrics=self._metrics | {"current_silence": round(silence, 3)},
            echo=self.engine.echo_paths(),
            audio={
                role: {"received_s": round(a.received / SAMPLE_RATE, 3), "dropped_s": round(a.dropped / SAMPLE_RATE, 3)}
                for role, a in self._audio.items()
            },
        )

    def dropped_seconds(self, role: str) -> float:
        return self._audio[role].dropped / SAMPLE_RATE

    def received_seconds(self, role: str) -> float:
        return self._audio[role].received / SAMPLE_RATE

    def _message(self, kind: str, at: float | None = None, **fields) -> dict:
        return {"type": kind, "session_time": round(self.engine.now if at is None else at, 3), **fields}

    def _log(self, kind: str, participant: str | None, **data) -> None:
        if self._on_event is not None:
            self._on_event(kind, participant, self.engine.now, data)

    # -- running -------------------------------------------------------------------------

    def start(self, snapshot_interval: float = 0.25) -> None:
        """Run the clock and the snapshots in the background."""
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._run(snapshot_interval))

    async def _run(self, interval: float) -> None:
        while True:
            try:
                self.tick()
                if self.hub.subscribers:
                    self.hub.snapshot(self.snapshot())
            except Exception:  # a bug here must not end the call's analysis
                log.exception("session %s: indicator tick failed", self.id)
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
            self._ticker = None

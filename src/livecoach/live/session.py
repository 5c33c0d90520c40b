"""A call in progress: the measuring engine fed from live audio on one session clock.

Session time starts when the session's call is first opened. A call opened again for a session
whose timeline is stored (its worker was killed, or the call had closed) goes on from it: the
clock from the stored clock run on over the wall time since, the figures from the stored speech,
and the time between is marked as a gap (storing.py). Each participant's audio is placed on
that clock by samples: a track's first frame is anchored at its arrival time, and every later
sample follows by count, with gaps (lost packets, a stalled network) found from the RTP
timestamps. A participant who is absent, muted or stalled counts as not speaking: their frames
are filled as absent, so the other participant's audio is decided without waiting for them,
and a muted microphone never accumulates talk time. Audio that arrives too late to be placed
is dropped and counted rather than let the analysis fall behind real time.

With a store, the session also keeps what the review needs (storing.py): its events, nudges as
they fire and one indicator sample per second of session time. A dismissed nudge comes over the
coach's indicator websocket (signalling.serve_indicators).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config import EngineConfig
from ..engine import Engine, SpeechEvent
from ..frames import FRAME_SAMPLES, FRAME_SECONDS, SAMPLE_RATE
from ..nudges import Nudge, Nudger, NudgeRules
from ..store import IndicatorSample, Store
from ..timeline import ROLES
from .indicators import IndicatorHub
from .storing import Past, SessionWriter, StoreExchange, read_past

log = logging.getLogger(__name__)

ABSENT, CONNECTED, MUTED, NO_AUDIO = "absent", "connected", "muted", "no-audio"
METRICS_INTERVAL = 1.0
"""Full metrics in snapshots are at most this old (and fresh after every speech event)."""
STALL_SECONDS = 0.1
"""A connected participant whose audio has stopped coming while another's still comes is filled
as absent up to this far behind the latest arrival, so that the other's figures wait at most this
long for them; longer (up to ALONE_STALL_SECONDS) for one whose packets have lately come with
longer gaps (a jittery network: see GAP_FORGET_PER_S), whose audio would otherwise be dropped at
every spike. Arrival is when a packet is handed on on the event loop, not when the tap gets to it:
a pause of the server's own loop delays everyone's packets alike and stalls no one. Their audio
that then comes (a burst after a network hiccup) is dropped as late and counted; audio that
keeps coming, only late (a slow sender), is waited for."""
GAP_FORGET_PER_S = 0.005
"""A participant's longest recent gap between packets shrinks by this many seconds a second:
a 150 ms spike raises their stall limit to 170 ms, back to STALL_SECONDS after 14 s without
another; spikes a few seconds apart keep it up."""
GAP_MARGIN_SECONDS = 0.02
"""Added to the longest recent gap: one packet's time."""
ALONE_STALL_SECONDS = 0.3
"""When nobody's audio comes (both networks stopped, or the other is muted or away), the clock
runs on by the wall clock instead, waiting this long. A tick that comes late (the loop was busy,
and packets that came meanwhile are still unread) does not judge this."""
LATE_TICK_SECONDS = 0.05
"""A tick this much later than asked for means the event loop was busy: it leaves the judging of
stalls and of "no-audio" by the wall clock to the next one."""
NO_AUDIO_SECONDS = 0.5
"""A connected participant from whom no audio has come for this long is shown as "no-audio"."""


@dataclass
class _Audio:
    state: str = ABSENT
    cursor: int = 0  # session sample up to which the engine has this one's audio, silence fill and absence
    received: int = 0  # samples of real audio placed
    dropped: int = 0  # samples of real audio that came too late to be placed
    heard_at: int = 0  # session sample (by the wall clock) when audio last came
    gap: float = 0.0  # the longest recent gap between arrivals, seconds, fading (GAP_FORGET_PER_S)
    arriving: bool = False  # a packet has come since the last change of state (gaps count from it)
    silent: bool = False  # connected, but no audio for NO_AUDIO_SECONDS: shown as "no-audio"


class LiveSession:
    """One session's live analysis. Not thread-safe: use it from the event loop."""

    def __init__(
        self,
        session_id: str,
        topology: str = "direct",
        config: EngineConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        store: Store | None = None,
        wall_clock: Callable[[], float] = time.time,
        exchange: StoreExchange | None = None,
        recorded_until: Callable[[], float | None] | None = None,
    ) -> None:
        """``clock`` runs the session clock; ``wall_clock`` (epoch seconds) dates the stored events,
        carries the clock over from a stored past and times the store's exchanges; ``exchange``:
        the process's, which its calls share (storing.py); ``recorded_until``: where the session's
        recordings left growing end (storing.py's ``read_past``)."""
        self.id = session_id
        self.topology = topology
        self.hub = IndicatorHub()
        self._clock = clock
        self._writer: SessionWriter | None = None
        past: Past | None = None
        if store is not None:
            self._writer = SessionWriter(store, session_id, self._new_settings, wall_clock, exchange)
            past = read_past(store, session_id, recorded_until)
        start_frame = 0 if past is None else math.ceil(past.resume_at(wall_clock()) / FRAME_SECONDS)
        self.origin = start_frame * FRAME_SAMPLES
        """The session sample this run of the call starts at (0 unless it goes on from a past)."""
        self._config, self._earlier = config, past.segments if past else None
        self.engine = Engine(ROLES, config, start_frame, self._earlier)
        self._measuring = False  # no audio yet this run: the engine has had only absence
        self.started = clock()
        self._audio = {role: _Audio(cursor=self.origin, heard_at=self.origin) for role in ROLES}
        self._speaking: frozenset[str] = frozenset()
        self._last_end: dict[str, float] = _last_ends(past)  # each participant's last speech end
        if self._writer is not None and past is not None:
            self._writer.resumed(past, self.engine.now)
        self._ticker: asyncio.Task | None = None
        self._metrics: dict | None = None  # the last full metrics, and when they were computed
        self._metrics_at = -1.0
        self.nudger = Nudger()
        self._sampled_second = -1
        self.recording: dict = {"state": "off", "audio": [], "problem": None}
        """The recording's status (recordings/call.py), as the coach's sidebar shows it."""

    # -- clock ---------------------------------------------------------------------------

    def clock_samples(self) -> int:
        """Session time now, by the wall clock, in samples."""
        return self.origin + int((self._clock() - self.started) * SAMPLE_RATE)

    @property
    def session_time(self) -> float:
        """Media time up to which speech is decided."""
        return self.engine.now

    @property
    def heard_until(self) -> float:
        """Session time up to which audio has come: where a recording pauses or resumes. The
        recorders write each packet as it comes, while the engine decides speech some tenths of
        a second behind (session_time), so a pause stamped with that would start late in the
        files."""
        cursors = [a.cursor for a in self._audio.values() if a.state == CONNECTED]
        return max([self.engine.now, *(c / SAMPLE_RATE for c in cursors)])

    # -- participants --------------------------------------------------------------------

    def state(self, role: str) -> str:
        return self._audio[role].state

    def shown_state(self, role: str) -> str:
        """What the coach sees: the state, or "no-audio" for a connected participant whose audio
        has stopped coming."""
        audio = self._audio[role]
        return NO_AUDIO if audio.state == CONNECTED and audio.silent else audio.state

    def set_state(self, role: str, state: str) -> None:
        """A participant joined, left, muted or unmuted."""
        audio = self._audio[role]
        if audio.state == state:
            return
        audio.state = state
        audio.silent = False
        audio.heard_at = self.clock_samples()
        audio.arriving, audio.gap = False, 0.0
        self._fill_absent()
        self.hub.event(self._message("presence", participant=role, state=state))
        self.log("presence", role, state=state)

    def set_topology(self, topology: str) -> None:
        if topology != self.topology:
            self.topology = topology
            self.hub.event(self._message("topology", topology=topology))
            self.log("topology", None, topology=topology)

    def set_recording(self, status: dict) -> None:
        """The recording started, paused, resumed or failed: the coach hears of it at once, and
        the review's timeline keeps it."""
        if status != self.recording:
            self.recording = status
            self.hub.event(self._message("recording", **status))
            self.log("recording", None, at=self.heard_until, state=status["state"])

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
        if not self._measuring:
            self._start_measuring(position)
        self._absent_until(role, position)
        gap = position - audio.cursor
        if gap > 0:
            self._push(role, np.zeros(gap, dtype=np.int16))
        self._push(role, samples)
        audio.received += samples.size
        self._fill_absent()
        self._fill_stalled(self._latest_arrival(), STALL_SECONDS)

    def _start_measuring(self, position: int) -> None:
        """The run's first audio: the engine starts anew at its frame, with everyone's absence
        so far carried over. Until now it had only absence, which decides nothing, but the
        attribution counts its blocks (a second each) from the engine's first frame, and the
        phase of those blocks moved a hard call's talk share by 2 points against
        ``livecoach analyze`` of the same files, whose blocks start with the audio."""
        self._measuring = True
        frame = position // FRAME_SAMPLES  # not before the old engine's decided time: the audio is past every cursor there
        self.engine = Engine(ROLES, self._config, frame, self._earlier)
        for audio_role, audio in self._audio.items():
            ahead = audio.cursor - frame * FRAME_SAMPLES  # absence already filled past the audio (whole frames)
            if ahead > 0:
                self.engine.push_absent(audio_role, ahead // FRAME_SAMPLES)
            else:
                audio.cursor = frame * FRAME_SAMPLES

    def heard(self, role: str) -> None:
        """Audio of the participant arrived (a packet handed on, before the tap decodes it): they
        are not stalled, whatever its place on the clock."""
        audio = self._audio[role]
        now = self.clock_samples()
        if audio.arriving:
            since = (now - audio.heard_at) / SAMPLE_RATE
            audio.gap = min(max(since, audio.gap - since * GAP_FORGET_PER_S), ALONE_STALL_SECONDS)
        audio.arriving = True
        audio.heard_at = now
        if audio.silent:
            self._set_silent(role, False)

    def cursor(self, role: str) -> int:
        """The session sample up to which this participant's audio (or absence) is placed."""
        return self._audio[role].cursor

    def count_dropped(self, role: str, samples: int) -> None:
        """Audio dropped before it could be placed (the tap's queue overflowed)."""
        self._audio[role].dropped += samples

    def tick(self, late: float = 0.0) -> None:
        """Let session time run on for those who send nothing: absent or muted participants,
        and connected ones whose audio has stalled (shown as "no-audio" after a while).
        ``late``: seconds this tick came after its time (see LATE_TICK_SECONDS)."""
        now = self.clock_samples()
        on_time = late < LATE_TICK_SECONDS
        for role, audio in self._audio.items():
            if audio.state != CONNECTED:
                self._absent_until(role, now)
            elif on_time and not audio.silent and now - audio.heard_at > NO_AUDIO_SECONDS * SAMPLE_RATE:
                self._set_silent(role, True)
        self._fill_stalled(self._latest_arrival(), STALL_SECONDS)
        if on_time:
            self._fill_stalled(now, ALONE_STALL_SECONDS)

    def _latest_arrival(self) -> int | None:
        """When audio last came from any connected participant: the freshest sign that the
        server is reading packets."""
        return max((a.heard_at for a in self._audio.values() if a.state == CONNECTED), default=None)

    def _fill_stalled(self, reference: int | None, limit: float) -> None:
        """Connected participants from whom nothing has come for ``limit`` seconds before
        ``reference`` (or their recent longest gap, if longer, up to ALONE_STALL_SECONDS) are
        filled as absent up to that far behind it: checked at every placement, so that one
        participant's stalled network delays the other's figures by at most that."""
        if reference is None:
            return
        for role, audio in self._audio.items():
            wait = max(limit, min(audio.gap + GAP_MARGIN_SECONDS, ALONE_STALL_SECONDS))
            edge = reference - int(wait * SAMPLE_RATE)
            if audio.state == CONNECTED and audio.heard_at < edge and audio.cursor < edge:
                self._absent_until(role, edge)

    def _set_silent(self, role: str, silent: bool) -> None:
        self._audio[role].silent = silent
        state = self.shown_state(role)
        self.hub.event(self._message("presence", participant=role, state=state))
        self.log("presence", role, state=state)

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
                self._last_end[e.participant] = e.end
                self.log("speech", e.participant, start=fields["start"], end=fields["end"])
            self.hub.event(self._message("speech", at=e.known_at, **fields))
        if events:
            self._metrics = None  # someone started or stopped: the figures change now
            speaking = self.engine.speaking()
            if self._speaking and not speaking:
                since = round(self._last_speech_end(), 3)
                self.hub.event(self._message("silence", since=since))
                self.log("silence", None, since=since)
            self._speaking = speaking

    def snapshot(self) -> dict:
        """The whole state, as the indicator stream's ``snapshot`` message.

        The full metrics cost about 1.5 ms an hour into a call (``GrowingTimeline`` rebuilds only
        what follows the last long silence; the figures still pass over every turn), so they are
        recomputed at most once a second, and at once after someone starts
        or stops speaking; who is speaking and the current silence are always fresh.
        """
        metrics = self._fresh_metrics()
        speaking = sorted(self.engine.speaking())
        nudge = self.nudger.standing(self.engine.now)
        return self._message(
            "snapshot",
            speaking=speaking,
            participants={role: self.shown_state(role) for role in self._audio},
            topology=self.topology,
            metrics=metrics | {"current_silence": self._current_silence(speaking)},
            nudge=nudge.to_dict() if nudge else None,
            echo=self.engine.echo_paths(),
            recording=self.recording,
            audio={
                role: {"received_s": round(a.received / SAMPLE_RATE, 3), "dropped_s": round(a.dropped / SAMPLE_RATE, 3)}
                for role, a in self._audio.items()
            },
        )

    def _fresh_metrics(self) -> dict:
        now = self.engine.now
        if self._metrics is None or now - self._metrics_at >= METRICS_INTERVAL:
            self._metrics = self.engine.metrics().to_dict()
            self._metrics_at = now
        return self._metrics

    def _current_silence(self, speaking: list[str]) -> float:
        return 0.0 if speaking else round(self.engine.now - self._last_speech_end(), 3)

    def _last_speech_end(self) -> float:
        """When anyone last stopped speaking (0 before anyone spoke)."""
        return max(self._last_end.values(), default=0.0)

    def observe(self) -> None:
        """Once a tick: the nudge rules on the current metrics, and the indicator sample of each
        new second of session time while anyone is in the call (an empty call's clock runs on,
        but its review must not grow)."""
        metrics = self._fresh_metrics()
        now = self.engine.now
        client_present = self._audio["client"].state != ABSENT
        nudge = self.nudger.evaluate(now, metrics, client_present, self._last_end.get("client"))
        if nudge is not None:
            self._send_nudge(nudge)
        present = any(a.state != ABSENT for a in self._audio.values())
        if self._writer is not None and present and int(now) > self._sampled_second:
            self._sampled_second = int(now)
            speaking = sorted(self.engine.speaking())
            self._writer.sample(IndicatorSample(
                round(now, 3), speaking, metrics["talk_share_coach"], metrics["window_talk_share_coach"],
                self._current_silence(speaking),
            ))

    def _send_nudge(self, nudge: Nudge) -> None:
        """Stored first, so that the coach can dismiss it as soon as it is shown."""
        if self._writer is not None:
            self._writer.nudge(nudge)
        self.hub.event(self._message("nudge", at=nudge.session_time, id=nudge.id, kind=nudge.kind, text=nudge.text))

    async def exchange_with_store(self) -> None:
        """Write what is buffered and read the coach's settings now (storing.py)."""
        if self._writer is not None:
            await self._writer.exchange()

    def exchange_if_due(self) -> None:
        """The store's exchange, if this turn of the wall clock has had none (storing.py): the
        session's own ticks ask too, but a call asks at the turn itself, with its recording's rows."""
        if self._writer is not None:
            self._writer.exchange_if_due()

    def _new_settings(self, settings: dict) -> None:
        self.nudger.rules = NudgeRules.from_settings(settings["nudges"])

    def dropped_seconds(self, role: str) -> float:
        return self._audio[role].dropped / SAMPLE_RATE

    def received_seconds(self, role: str) -> float:
        return self._audio[role].received / SAMPLE_RATE

    def _message(self, kind: str, /, at: float | None = None, **fields) -> dict:
        return {"type": kind, "session_time": round(self.engine.now if at is None else at, 3), **fields}

    def log(self, kind: str, participant: str | None, at: float | None = None, **data) -> None:
        """Keep an event of the session's timeline for the store's next exchange: a write per
        event would hold the loop. ``at``: its session time, if not the engine's now."""
        if self._writer is not None:
            self._writer.event(self.engine.now if at is None else at, kind, participant, data)

    # -- running -------------------------------------------------------------------------

    def start(self, snapshot_interval: float = 0.25) -> None:
        """Run the clock and the snapshots in the background."""
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._run(snapshot_interval))

    async def _run(self, interval: float) -> None:
        due = self._clock()
        while True:
            try:
                self.tick(late=self._clock() - due)
                self.observe()
                if self.hub.subscribers:
                    self.hub.snapshot(self.snapshot())
                if self._writer is not None:
                    self._writer.exchange_if_due()
            except Exception:  # a bug here must not end the call's analysis
                log.exception("session %s: indicator tick failed", self.id)
            due = self._clock() + interval
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        """Stop the clock and write what is still buffered."""
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
            self._ticker = None
        if self._writer is not None:
            await self._writer.close()


def _last_ends(past: Past | None) -> dict[str, float]:
    """Each participant's last stored speech end: the silence and the nudges go on from them."""
    if past is None:
        return {}
    return {who: max(end for _, end in spans) for who, spans in past.segments.items() if spans}

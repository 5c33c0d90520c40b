"""The coaching metrics, as pure functions of a timeline: session-to-date and over a rolling window.

Definitions, denominators and defaults are published in ``docs/metrics.md``; keep them in step.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from .config import TimelineConfig
from .timeline import CLIENT, COACH, Interval, Segment, Timeline


@dataclass(frozen=True)
class Metrics:
    now: float
    window_start: float
    speaking: tuple[str, ...]
    talk_time: dict[str, float]
    talk_share_coach: float | None
    window_talk_time: dict[str, float]
    window_talk_share_coach: float | None
    current_silence: float
    longest_silence: float
    long_silences: int
    wait_times: tuple[float, ...]
    median_wait: float | None
    last_wait: float | None
    filled_silences: int
    window_filled_silences: int
    current_monologue: dict[str, float]
    longest_monologue: dict[str, float]
    overlaps: int
    overlap_time: float
    interruptions: dict[str, int]
    backchannels: dict[str, int]
    switches: int
    interactivity_per_min: float
    window_interactivity_per_min: float

    def to_dict(self) -> dict:
        return _round(asdict(self))


def talk_time(segments: Iterable[Segment], start: float = 0.0, end: float = float("inf")) -> float:
    """Seconds of speech inside [start, end); backchannels are speech too."""
    return sum(max(0.0, min(s.end, end) - max(s.start, start)) for s in segments)


def share(mine: float, theirs: float) -> float | None:
    """My talk over both sides' talk: silence is not in the denominator, overlap counts for both."""
    total = mine + theirs
    return mine / total if total > 0 else None


def compute(timeline: Timeline, config: TimelineConfig | None = None) -> Metrics:
    """Every metric at the end of the timeline: live, that is now; for a file, its end."""
    cfg = config or TimelineConfig()
    now = timeline.end
    w0 = max(0.0, now - cfg.window_s)
    segs = timeline.segments
    names = list(segs)
    talk = {p: talk_time(segs[p], 0.0, now) for p in names}
    recent = {p: talk_time(segs[p], w0, now) for p in names}
    silences = [s for s in timeline.silences if s.start < now]
    current_silence = 0.0
    if not timeline.speaking and silences and silences[-1].end >= now:
        current_silence = now - silences[-1].start
    waits = tuple(w.seconds for w in timeline.waits if w.client_start <= now)
    turns = [t for t in timeline.turns if t.start < now]
    switches = [u.start for t, u in zip(turns, turns[1:]) if u.participant != t.participant]
    minutes = now / 60.0
    window_minutes = (now - w0) / 60.0
    return Metrics(
        now=now,
        window_start=w0,
        speaking=tuple(sorted(timeline.speaking)),
        talk_time=talk,
        talk_share_coach=share(talk.get(COACH, 0.0), talk.get(CLIENT, 0.0)),
        window_talk_time=recent,
        window_talk_share_coach=share(recent.get(COACH, 0.0), recent.get(CLIENT, 0.0)),
        current_silence=current_silence,
        longest_silence=max((min(s.end, now) - s.start for s in silences), default=0.0),
        long_silences=sum(1 for s in silences if min(s.end, now) - s.start >= cfg.silence_report_min_s),
        wait_times=waits,
        median_wait=statistics.median(waits) if waits else None,
        last_wait=waits[-1] if waits else None,
        filled_silences=_count_in(timeline.filled_silences, 0.0, now),
        window_filled_silences=_count_in(timeline.filled_silences, w0, now),
        current_monologue=_current_monologue(timeline, names, now, cfg),
        longest_monologue={p: max((t.duration for t in turns if t.participant == p), default=0.0) for p in names},
        overlaps=sum(1 for o in timeline.overlaps if o.start < now),
        overlap_time=sum(min(o.end, now) - o.start for o in timeline.overlaps if o.start < now),
        interruptions={p: sum(1 for i in timeline.interruptions if i.by == p and i.at < now) for p in names},
        backchannels={p: sum(1 for s in segs[p] if s.backchannel and s.start < now) for p in names},
        switches=len(switches),
        interactivity_per_min=len(switches) / minutes if minutes > 0 else 0.0,
        window_interactivity_per_min=(
            sum(1 for t in switches if t >= w0) / window_minutes if window_minutes > 0 else 0.0
        ),
    )


def _count_in(intervals: list[Interval], start: float, end: float) -> int:
    return sum(1 for i in intervals if start <= i.end <= end)


def _current_monologue(timeline: Timeline, names: list[str], now: float, cfg: TimelineConfig) -> dict[str, float]:
    """The length of the turn in progress, for whoever holds the floor (0 for the others)."""
    out = {p: 0.0 for p in names}
    if timeline.turns:
        last = timeline.turns[-1]
        if last.participant in timeline.speaking or now - last.end < cfg.turn_pause_s:
            out[last.participant] = last.duration
    return out


def _round(value):
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v) for v in value]
    return value

"""The conversation's structure, derived from both participants' speech segments.

Pure functions of the segments (and of ``end``, the media time up to which the session is
known), so the live indicators, ``livecoach analyze`` and the review all see the same turns,
silences and events for the same segments. Times are seconds of media time.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from .config import TimelineConfig

COACH = "coach"
CLIENT = "client"
ROLES = (COACH, CLIENT)


@dataclass(frozen=True)
class Segment:
    participant: str
    start: float
    end: float
    backchannel: bool = False

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Interval:
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Turn:
    """A run of one participant's speech not broken by the other's speech or a long silence."""

    participant: str
    start: float
    end: float
    segments: int

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Wait:
    """The silence after a coach turn ends until the client starts speaking (0 if they overlap)."""

    coach_end: float
    client_start: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.client_start - self.coach_end)


@dataclass(frozen=True)
class Interruption:
    """``by`` started while ``of`` was speaking, and ``of`` stopped within the window."""

    by: str
    of: str
    at: float
    yielded_at: float


@dataclass
class Timeline:
    end: float
    segments: dict[str, list[Segment]]
    speaking: frozenset[str] = frozenset()
    silences: list[Interval] = field(default_factory=list)
    overlaps: list[Interval] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    waits: list[Wait] = field(default_factory=list)
    filled_silences: list[Interval] = field(default_factory=list)
    interruptions: list[Interruption] = field(default_factory=list)

    def all_segments(self) -> list[Segment]:
        return sorted((s for segs in self.segments.values() for s in segs), key=lambda s: (s.start, s.end))

    def to_dict(self) -> dict:
        return {
            "end": round(self.end, 3),
            "segments": {
                p: [_rounded(asdict(s), "participant") for s in segs] for p, segs in self.segments.items()
            },
            "silences": [_interval(i) for i in self.silences],
            "overlaps": [_interval(i) for i in self.overlaps],
            "turns": [_rounded(asdict(t)) | {"duration": round(t.duration, 3)} for t in self.turns],
            "waits": [_rounded(asdict(w)) | {"seconds": round(w.seconds, 3)} for w in self.waits],
            "filled_silences": [_interval(i) for i in self.filled_silences],
            "interruptions": [_rounded(asdict(i)) for i in self.interruptions],
        }


def stored_segments(events: Iterable[dict]) -> dict[str, list[tuple[float, float]]]:
    """Each participant's speech segments (seconds), from the stored ``speech`` events, logged
    as segments end. An exact repeat (a batch of events written twice) is kept once."""
    out: dict[str, set[tuple[float, float]]] = {p: set() for p in ROLES}
    for e in events:
        if e.get("kind") == "speech" and e.get("participant") in out and "start" in e and "end" in e:
            out[e["participant"]].add((float(e["start"]), float(e["end"])))
    return {p: sorted(spans) for p, spans in out.items()}


def build_timeline(
    segments: dict[str, list[tuple[float, float]]],
    end: float,
    config: TimelineConfig | None = None,
    speaking: frozenset[str] = frozenset(),
    start: float = 0.0,
) -> Timeline:
    """Derive the whole structure from each participant's ``(start, end)`` speech segments.

    ``speaking`` names participants whose last segment is still open at ``end``. ``start``: where
    the first silence may begin (``GrowingTimeline`` builds the part after a cut with it).
    """
    cfg = config or TimelineConfig()
    spans = {p: sorted((float(a), float(b)) for a, b in segs if b > a) for p, segs in segments.items()}
    marked = {p: _mark_backchannels(p, spans, cfg) for p in spans}
    everything = sorted((s for segs in marked.values() for s in segs), key=lambda s: (s.start, s.end))
    speech = [s for s in everything if not s.backchannel]
    turns = _turns(speech, cfg)
    return Timeline(
        end=end,
        segments=marked,
        speaking=speaking,
        silences=gaps(((s.start, s.end) for s in everything), end, start),
        overlaps=_overlaps(spans),
        turns=turns,
        waits=_waits(turns),
        filled_silences=_filled_silences(spans, cfg),
        interruptions=_interruptions(marked, cfg),
    )


class GrowingTimeline:
    """``build_timeline`` of a session still being measured, equal to it to the bit, at a cost that
    does not grow with the session's length.

    Every rule of the timeline looks at most ``reach`` seconds across a silence (a turn's pause, the
    wait-time target, the backchannel tolerance). So a silence of at least ``reach`` that no later
    speech can fall into (it ends before ``settled``) splits the session into parts that are built
    alone: the part before it is built once and kept (``_kept``), each call builds only the rest,
    and the two are joined (the silence across the cut, and the wait from the kept part's last
    turn to the rest's first).
    """

    def __init__(self, participants: Iterable[str], config: TimelineConfig | None = None) -> None:
        self.config = config or TimelineConfig()
        self.reach = max(self.config.turn_pause_s, self.config.wait_target_s, self.config.backchannel_tolerance_s)
        self._kept = Timeline(end=0.0, segments={p: [] for p in participants})
        self._cut = 0.0  # where the kept part ends: the start of a silence of at least ``reach``
        self._taken = {p: 0 for p in participants}  # each participant's segments in the kept part

    def timeline(
        self,
        segments: dict[str, list[tuple[float, float]]],
        end: float,
        speaking: frozenset[str],
        settled: float,
    ) -> Timeline:
        """The timeline of ``segments`` (each participant's, in order, the open one last) up to
        ``end``. ``settled``: no segment not in ``segments`` yet, and no open one, starts before it."""
        self._keep_up_to_cut(segments, settled)
        rest = {p: segs[self._taken[p]:] for p, segs in segments.items()}
        return _joined(self._kept, build_timeline(rest, end, self.config, speaking, self._cut))

    def _keep_up_to_cut(self, segments: dict[str, list[tuple[float, float]]], settled: float) -> None:
        """Move the cut to the latest silence of at least ``reach`` that ends before ``settled``
        (or runs on past it), and keep the part before it."""
        known = sorted(
            (a, b) for p, segs in segments.items() for a, b in segs[self._taken[p]:] if a < settled and b > a
        )
        cut, speech_end = None, self._cut  # speech_end: where the speech swept so far ends
        for a, b in known:
            if a - speech_end >= self.reach and speech_end > self._cut:
                cut = speech_end
            speech_end = max(speech_end, b)
        if settled - speech_end >= self.reach and speech_end > self._cut:
            cut = speech_end  # nothing known after it, and nothing can start before ``settled``
        if cut is None:
            return
        part = {p: [s for s in segs[self._taken[p]:] if s[1] <= cut] for p, segs in segments.items()}
        # a segment that ends by the cut begins before it; the segments are in order
        built = build_timeline(part, cut, self.config, frozenset(), self._cut)
        self._kept = _joined(self._kept, built)
        for p, segs in part.items():
            self._taken[p] += len(segs)
        self._cut = cut


def _joined(kept: Timeline, rest: Timeline) -> Timeline:
    """A kept part and the part after its cut (built from the cut on) as one timeline."""
    waits = list(kept.waits)
    if kept.turns and rest.turns and kept.turns[-1].participant == COACH and rest.turns[0].participant == CLIENT:
        waits.append(Wait(kept.turns[-1].end, rest.turns[0].start))
    return Timeline(
        end=rest.end,
        segments={p: kept.segments.get(p, []) + segs for p, segs in rest.segments.items()},
        speaking=rest.speaking,
        silences=kept.silences + rest.silences,
        overlaps=kept.overlaps + rest.overlaps,
        turns=kept.turns + rest.turns,
        waits=waits + rest.waits,
        filled_silences=kept.filled_silences + rest.filled_silences,
        interruptions=kept.interruptions + rest.interruptions,
    )


def _mark_backchannels(p: str, spans: dict[str, list[tuple[float, float]]], cfg: TimelineConfig) -> list[Segment]:
    """A short segment while the other keeps talking is a backchannel: the other's speech, itself
    not short, runs into it (or ends at most the tolerance before it) and goes on after it (or
    resumes within the tolerance). Quick exchanges of short replies are turns, not backchannels."""
    others = _Speech(s for q, segs in spans.items() if q != p for s in segs)
    tol, long = cfg.backchannel_tolerance_s, cfg.backchannel_max_s
    out = []
    for a, b in spans[p]:
        short = b - a < long
        around = others.any_in(a - tol, b, long) and others.any_in(b, b + tol, long)
        out.append(Segment(p, a, b, short and around))
    return out


class _Speech:
    """Speech of one or more participants as disjoint sorted intervals, for quick look-ups."""

    def __init__(self, spans: Iterable[tuple[float, float]]) -> None:
        merged = union(spans)
        self.starts = [a for a, _ in merged]
        self.ends = [b for _, b in merged]

    def any_in(self, lo: float, hi: float, min_length: float = 0.0) -> bool:
        """Whether anyone speaks somewhere strictly inside (lo, hi), in a stretch of speech at
        least ``min_length`` long."""
        j = bisect.bisect_right(self.ends, lo)
        while j < len(self.starts) and self.starts[j] < hi:
            if self.ends[j] - self.starts[j] >= min_length:
                return True
            j += 1
        return False


def union(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping or touching spans merged: when anyone speaks."""
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def gaps(spans: Iterable[tuple[float, float]], end: float, start: float = 0.0) -> list[Interval]:
    """Spans of [start, end) that no span covers: the silences, from the session's start to ``end``."""
    out, reach = [], start
    for a, b in union(spans):
        if a > reach:
            out.append(Interval(reach, a))
        reach = max(reach, b)
    if end > reach:
        out.append(Interval(reach, end))
    return out


def _turns(speech: list[Segment], cfg: TimelineConfig) -> list[Turn]:
    turns: list[Turn] = []
    cur: list = []  # participant, start, end, count
    for s in speech:
        if cur and s.participant == cur[0] and s.start - cur[2] < cfg.turn_pause_s:
            cur[2] = max(cur[2], s.end)
            cur[3] += 1
            continue
        if cur:
            turns.append(Turn(*cur))
        cur = [s.participant, s.start, s.end, 1]
    if cur:
        turns.append(Turn(*cur))
    return turns


def _overlaps(spans: dict[str, list[tuple[float, float]]]) -> list[Interval]:
    """Spans where two participants speak at once."""
    names = list(spans)
    out = []
    for i, p in enumerate(names):
        for q in names[i + 1 :]:
            out.extend(_intersections(spans[p], spans[q]))
    return sorted(out, key=lambda iv: iv.start)


def _intersections(xs: list[tuple[float, float]], ys: list[tuple[float, float]]) -> list[Interval]:
    out, i, j = [], 0, 0
    while i < len(xs) and j < len(ys):
        a = max(xs[i][0], ys[j][0])
        b = min(xs[i][1], ys[j][1])
        if b > a:
            out.append(Interval(a, b))
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return out


def _waits(turns: list[Turn]) -> list[Wait]:
    return [
        Wait(t.end, u.start)
        for t, u in zip(turns, turns[1:])
        if t.participant == COACH and u.participant == CLIENT
    ]


def _filled_silences(spans: dict[str, list[tuple[float, float]]], cfg: TimelineConfig) -> list[Interval]:
    """The coach stops, nobody speaks, and the coach resumes before the wait-time target."""
    coach = spans.get(COACH, [])
    others = _Speech(s for q, segs in spans.items() if q != COACH for s in segs)
    return [
        Interval(a_end, b_start)
        for (_, a_end), (b_start, _) in zip(coach, coach[1:])
        if cfg.filled_silence_min_s <= b_start - a_end < cfg.wait_target_s and not others.any_in(a_end, b_start)
    ]


def _interruptions(marked: dict[str, list[Segment]], cfg: TimelineConfig) -> list[Interruption]:
    """Someone starts real speech (not a backchannel) while the other is speaking, the other's
    speech ends within the window, and the newcomer goes on past that end: the floor changed hands."""
    out = []
    for p, segs in marked.items():
        for q, other in marked.items():
            if q == p:
                continue
            theirs = [(s.start, s.end) for s in other if not s.backchannel]
            starts = [a for a, _ in theirs]
            for s in segs:
                if s.backchannel:
                    continue
                i = bisect.bisect_right(starts, s.start) - 1
                if i < 0:
                    continue
                y_start, y_end = theirs[i]
                if y_start < s.start < y_end <= s.start + cfg.interruption_window_s and s.end > y_end:
                    out.append(Interruption(p, q, s.start, y_end))
    return sorted(out, key=lambda x: x.at)


def _interval(i: Interval) -> dict:
    return {"start": round(i.start, 3), "end": round(i.end, 3), "duration": round(i.duration, 3)}


def _rounded(d: dict, *drop: str) -> dict:
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items() if k not in drop}

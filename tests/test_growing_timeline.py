"""A live call's timeline, built only after its last long silence, equals the whole build exactly.

``Engine.timeline`` keeps the part of the session before its latest silence of at least
``GrowingTimeline.reach`` and builds only the rest (so its cost does not grow with the call).
These tests compare it, with ``==`` on every turn, silence, wait and flag, against
``build_timeline`` of all the segments: at every step of a real engine over the fixtures, and over
random sessions revealed a piece at a time.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import track
from livecoach.config import TimelineConfig
from livecoach.engine import Engine
from livecoach.timeline import CLIENT, COACH, ROLES, GrowingTimeline, build_timeline


def whole(engine: Engine):
    return build_timeline(engine.segments(), engine.now, engine.config.timeline, engine.speaking())


def test_the_engine_timeline_equals_the_whole_build_at_every_step_of_a_call() -> None:
    """Each fixture pushed as a live call does (40 ms pieces, alternating), compared after every
    tenth push and at the end; the kept part must really be used (cuts happen)."""
    cuts = 0
    for name in ("realcall", "keyboard", "fan"):
        audio = {who: track(name, who) for who in ROLES}
        engine = Engine(ROLES)
        n = max(a.size for a in audio.values())
        for i, start in enumerate(range(0, n, 640)):
            for who in ROLES:
                engine.push(who, audio[who][start:start + 640])
            if i % 10 == 0:
                assert engine.timeline() == whole(engine), (name, engine.now)
                assert engine.timeline().to_dict() == whole(engine).to_dict()
        engine.finish()
        assert engine.timeline() == whole(engine), name
        cuts += sum(engine._growing._taken.values())
    assert cuts > 0


segment_lengths = st.floats(min_value=0.05, max_value=6.0)
pauses = st.floats(min_value=-0.8, max_value=7.0)


@st.composite
def sessions(draw) -> list[tuple[str, float, float]]:
    """Speech in time order: who speaks, for how long, after which pause (negative: overlapping
    the other's last segment), with the pauses around the cut rule's reach (3 s) well covered."""
    out: list[tuple[str, float, float]] = []
    last_end = {COACH: 0.0, CLIENT: 0.0}
    t = draw(st.floats(min_value=0.0, max_value=4.0))
    for _ in range(draw(st.integers(min_value=1, max_value=60))):
        who = draw(st.sampled_from(ROLES))
        start = max(t + draw(pauses), last_end[who] + 0.01)
        end = start + draw(segment_lengths)
        out.append((who, round(start, 2), round(end, 2)))
        last_end[who] = round(end, 2)
        t = max(t, round(end, 2))
    return sorted(out, key=lambda s: s[1])


@settings(max_examples=300, deadline=None)
@given(sessions(), st.integers(min_value=1, max_value=5))
def test_growing_equals_whole_build_for_any_session_revealed_piecewise(speech, step) -> None:
    """The session revealed a few segments at a time, each still open for one step (its end not
    yet final) and ``settled`` at the open segment's start, as the engine reports them."""
    config = TimelineConfig()
    growing = GrowingTimeline(ROLES, config)
    for shown in range(1, len(speech) + 1, step):
        done, open_one = speech[:shown - 1], speech[shown - 1]
        segments = {p: [(a, b) for who, a, b in done if who == p] for p in ROLES}
        # the open segment's end so far: half of it
        who, a, b = open_one
        segments[who].append((a, a + (b - a) / 2))
        end = max(b for _, _, b in speech[:shown])
        got = growing.timeline(segments, end, frozenset({who}), settled=a)  # later ones start after it
        assert got == build_timeline(segments, end, config, frozenset({who}))
    final = {p: [(a, b) for who, a, b in speech if who == p] for p in ROLES}
    end = max(b for _, _, b in speech) + 5.0
    assert growing.timeline(final, end, frozenset(), end) == build_timeline(final, end, config)


def test_a_burst_that_may_still_become_speech_holds_the_settled_bound_back() -> None:
    """Weak speech-like frames (no strong evidence yet) may become a segment that starts where
    they began, however long they go on: nothing after their start is final."""
    import numpy as np

    from livecoach.segmenter import Segmenter

    seg = Segmenter()
    seg.push(np.zeros(500, bool))
    assert seg.next_start_bound() == 500
    seg.push(np.ones(400, bool), np.zeros(400, bool))  # 4 s of weak speech: not a segment yet
    assert seg.open_segment is None and seg.next_start_bound() == 500
    seg.push(np.ones(10, bool))  # strong evidence: it is speech, from frame 500
    assert seg.open_segment == (500, 910) and seg.next_start_bound() == 500
    seg.push(np.zeros(100, bool))  # closed after the bridge; the next segment starts later
    assert seg.segments == [(500, 910)] and seg.next_start_bound() == 1010

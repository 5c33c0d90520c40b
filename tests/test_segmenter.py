import numpy as np

from livecoach.config import SegmentConfig
from livecoach.segmenter import Segmenter


def flags_from(spans, n):
    f = np.zeros(n, dtype=bool)
    for a, b in spans:
        f[a:b] = True
    return f


def run(flags, chunk=None):
    seg = Segmenter()
    events = []
    step = chunk or flags.size
    for i in range(0, flags.size, step):
        events += seg.push(flags[i : i + step])
    events += seg.finish()
    return seg.segments, events


def test_a_burst_of_speech_is_one_segment_with_exact_times():
    segments, events = run(flags_from([(100, 180)], 400))
    assert segments == [(100, 180)]
    assert [(e.kind, e.start, e.end) for e in events] == [("start", 100, None), ("end", 100, 180)]
    # speech is confirmed after the minimum burst, the end after the bridge
    assert events[0].known_at == 100 + SegmentConfig().min_burst_frames
    assert events[1].known_at == 180 + SegmentConfig().bridge_frames


def test_key_clicks_never_make_speech():
    clicks = [(i, i + 2) for i in range(10, 3000, 33)]  # 20 ms bursts three times a second
    segments, events = run(flags_from(clicks, 3000))
    assert segments == [] and events == []


def test_gaps_under_the_bridge_are_bridged_and_longer_ones_split():
    segments, _ = run(flags_from([(100, 150), (179, 230), (260, 300)], 500))
    assert segments == [(100, 230), (260, 300)]


def test_clicks_after_speech_do_not_stretch_the_segment():
    spans = [(100, 200)] + [(i, i + 2) for i in range(215, 600, 25)]
    segments, _ = run(flags_from(spans, 700))
    assert segments == [(100, 200)]


def test_a_short_burst_that_grows_into_speech_inside_the_bridge_extends_the_segment():
    # the burst starts 25 frames after speech (within the bridge) and only becomes speech-like
    # once it is past the bridge: the segment must still be one
    spans = [(100, 200), (225, 228), (231, 240)]
    segments, _ = run(flags_from(spans, 400))
    assert segments == [(100, 240)]


def test_chunking_does_not_change_anything():
    rng = np.random.default_rng(7)
    flags = np.repeat(rng.random(600) < 0.45, rng.integers(1, 25, 600))
    whole_segments, whole_events = run(flags)
    for chunk in (1, 2, 7, 50, 333):
        segments, events = run(flags, chunk)
        assert segments == whole_segments
        assert [(e.kind, e.start, e.end) for e in events] == [(e.kind, e.start, e.end) for e in whole_events]
    assert len(whole_segments) > 10

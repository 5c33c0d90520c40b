"""The engine gives the same answer however audio arrives, and handles absence and unequal tracks."""

import numpy as np
import pytest

from conftest import track, track_path
from livecoach.analyze import analyze_tracks
from livecoach.engine import Engine
from livecoach.frames import SAMPLE_RATE


def feed_live(coach: np.ndarray, client: np.ndarray, seed: int = 1) -> tuple[Engine, list]:
    """Feed like a live call: small packets of uneven sizes, the two tracks interleaved unevenly."""
    rng = np.random.default_rng(seed)
    engine, events = Engine(), []
    pos = {"coach": 0, "client": 0}
    data = {"coach": coach, "client": client}
    while any(pos[p] < data[p].size for p in data):
        who = "coach" if rng.random() < 0.5 else "client"
        if pos[who] >= data[who].size:
            who = "client" if who == "coach" else "coach"
        n = int(rng.choice([160, 320, 480, 960, 77, 1234]))
        events += engine.push(who, data[who][pos[who] : pos[who] + n])
        pos[who] += n
    events += engine.finish()
    return engine, events


@pytest.mark.parametrize("name", ["realcall", "bleed"])
def test_live_packets_and_a_whole_file_give_identical_segments_and_metrics(name):
    offline = analyze_tracks(track_path(name, "coach"), track_path(name, "client"))
    live, _ = feed_live(track(name, "coach"), track(name, "client"))
    assert live.segments() == {p: [(s.start, s.end) for s in segs] for p, segs in offline.timeline.segments.items()}
    assert live.metrics().to_dict() == offline.metrics.to_dict()
    assert sum(len(s) for s in live.segments().values()) > 10


def test_events_rebuild_the_segments_and_speech_is_confirmed_quickly():
    engine, events = feed_live(track("clean", "coach"), track("clean", "client"))
    for who in ("coach", "client"):
        starts = [e for e in events if e.participant == who and e.kind == "start"]
        ends = [e for e in events if e.participant == who and e.kind == "end"]
        assert [(e.start, e.end) for e in ends] == engine.segments()[who]
        assert [e.start for e in starts] == [a for a, _ in engine.segments()[who]]
        # a start is known within 0.1 s of the speech it marks; an end a bridge (0.3 s) after it
        assert all(0 < e.known_at - e.start <= 0.1 + 1e-9 for e in starts)
        assert all(abs(e.known_at - e.end - 0.3) < 1e-6 for e in ends)
    times = [e.known_at for e in events]
    assert times == sorted(times)


def test_an_absent_participant_never_talks_and_comes_back_cleanly():
    coach, client = track("clean", "coach"), track("clean", "client")
    full = Engine()
    full.push("coach", coach)
    full.push("client", client)
    full.finish()
    # the client is muted from 20 s to 50 s: their samples are replaced by absence
    engine = Engine()
    engine.push("coach", coach)
    a, b = 20 * SAMPLE_RATE, 50 * SAMPLE_RATE
    engine.push("client", client[:a])
    engine.push_absent("client", (b - a) // 160)
    engine.push("client", client[b:])
    engine.finish()
    muted = [(s, e) for s, e in engine.segments()["client"] if e > 20.0 and s < 50.0]
    assert all(e <= 20.3 or s >= 50.0 for s, e in muted)
    # speech before and well after the mute is found as without it
    before = [seg for seg in full.segments()["client"] if seg[1] < 19.0]
    after = [seg for seg in full.segments()["client"] if seg[0] > 51.0]
    assert before and after
    assert [seg for seg in engine.segments()["client"] if seg[1] < 19.0] == before
    # after it, to within a frame: the detector's level trackers start again from the absence
    came_back = [seg for seg in engine.segments()["client"] if seg[0] > 51.0]
    assert len(came_back) == len(after)
    assert all(abs(x[0] - y[0]) <= 0.011 and abs(x[1] - y[1]) <= 0.011 for x, y in zip(came_back, after))


def test_tracks_of_different_lengths_are_aligned_at_their_start():
    coach, client = track("clean", "coach"), track("clean", "client")
    engine = Engine()
    engine.push("coach", coach)
    engine.push("client", client[: 30 * SAMPLE_RATE])
    engine.finish()
    assert engine.now == pytest.approx(coach.size / SAMPLE_RATE, abs=0.01)
    assert all(e <= 30.0 for _, e in engine.segments()["client"])
    assert any(s > 30.0 for s, _ in engine.segments()["coach"])


def test_digital_silence_and_empty_pushes_are_harmless():
    engine = Engine()
    assert engine.push("coach", np.zeros(0, np.int16)) == []
    engine.push("coach", np.zeros(SAMPLE_RATE * 3, np.int16))
    engine.push("client", np.zeros(SAMPLE_RATE * 3, np.int16))
    engine.finish()
    assert engine.segments() == {"coach": [], "client": []}
    m = engine.metrics()
    assert m.talk_share_coach is None and m.current_silence == pytest.approx(3.0)


def test_a_leak_that_starts_mid_call_is_learnt_and_removed():
    """The client unplugs their headphones 40 s in: from then on the coach's voice leaks into
    their microphone (-25 dB, 150 ms later). Their talk time must not grow with it."""
    from conftest import truth
    from livecoach.scoring import frame_f1, share

    coach, client = track("clean", "coach"), track("clean", "client").astype(np.float64)
    start, delay = 40 * SAMPLE_RATE, int(0.150 * SAMPLE_RATE)
    leak = np.zeros_like(client)
    leak[start + delay :] = coach[start : coach.size - delay] * 10 ** (-25 / 20)
    leaky = np.clip(client + leak, -32768, 32767).astype(np.int16)
    engine = Engine()
    engine.push("coach", coach)
    engine.push("client", leaky)
    engine.finish()
    t = truth("clean")
    segs = engine.segments()
    assert engine.coupling_db("coach", "client") == pytest.approx(-25, abs=4)
    assert share(segs["coach"], segs["client"]) == pytest.approx(share(t["segments"]["coach"], t["segments"]["client"]), abs=0.02)
    assert frame_f1(t["segments"]["client"], segs["client"], t["duration"]) >= 0.9
    # the client's talk time stays within 2 s of the truth despite 45 s of leaking coach speech
    found = sum(b - a for a, b in segs["client"])
    assert found < sum(b - a for a, b in t["segments"]["client"]) + 2.0


def test_an_engine_started_later_is_the_same_engine_shifted_and_counts_the_earlier_talk():
    """A session going on after a restarted worker: its media time starts at a given frame, and
    the segments measured before count in its timeline and metrics."""
    coach, client = track("clean", "coach")[: 20 * SAMPLE_RATE], track("clean", "client")[: 20 * SAMPLE_RATE]
    plain, plain_events = feed_live(coach, client)
    earlier = {"coach": [(1.0, 4.0), (10.0, 12.5)], "client": [(5.0, 9.0)]}
    later, events = Engine(start_frame=3000, earlier=earlier), []  # 30 s in
    for who, audio in (("coach", coach), ("client", client)):
        events += later.push(who, audio)
    events += later.finish()
    flat = lambda spans, by=0.0: [t + by for span in spans for t in span]  # noqa: E731
    for who in ("coach", "client"):
        assert flat(later.segments()[who]) == pytest.approx(flat(earlier[who]) + flat(plain.segments()[who], 30.0))
    assert [e.known_at for e in events] == pytest.approx([e.known_at + 30.0 for e in plain_events])
    assert later.now == pytest.approx(plain.now + 30.0)
    talk = later.metrics().talk_time
    assert talk["coach"] == pytest.approx(plain.metrics().talk_time["coach"] + 5.5)
    assert talk["client"] == pytest.approx(plain.metrics().talk_time["client"] + 4.0)
    assert later.timeline().silences[0].start == 0.0  # the session's start, not this run's


@pytest.mark.parametrize("window", [1, 2, 3, 7, 8, 34])
def test_the_attributions_running_maximum_is_each_windows_peak(window):
    """The peaks over the echo delay range and around each lag come from a running maximum by
    doubling (windows.running_max): each value is the plain maximum of its window."""
    from livecoach.windows import running_max

    x = np.random.default_rng(window).normal(-50, 20, size=(3, 120))
    x[:, 40:60] = -120.0  # runs of equal values (digital silence)
    expected = np.stack([x[:, j : j + window].max(axis=1) for j in range(x.shape[1] - window + 1)], axis=1)
    assert np.array_equal(running_max(x, window), expected)

import pytest

from livecoach.metrics import compute, share, talk_time
from livecoach.timeline import Segment, build_timeline

CALL = {
    "coach": [(1.0, 10.0), (11.5, 20.0), (25.0, 30.0)],
    "client": [(5.0, 5.5), (20.3, 24.0), (29.0, 35.0)],
}


def test_backchannel_inside_the_other_s_speech_does_not_make_a_turn():
    tl = build_timeline(CALL, 40.0)
    assert tl.segments["client"][0] == Segment("client", 5.0, 5.5, backchannel=True)
    assert [(t.participant, t.start, t.end) for t in tl.turns] == [
        ("coach", 1.0, 20.0),
        ("client", 20.3, 24.0),
        ("coach", 25.0, 30.0),
        ("client", 29.0, 35.0),
    ]


def test_silences_cover_everything_nobody_speaks_in():
    tl = build_timeline(CALL, 40.0)
    assert [(s.start, s.end) for s in tl.silences] == [(0.0, 1.0), (10.0, 11.5), (20.0, 20.3), (24.0, 25.0), (35.0, 40.0)]


def test_waits_filled_silences_interruptions_and_overlaps():
    tl = build_timeline(CALL, 40.0)
    assert [round(w.seconds, 3) for w in tl.waits] == [0.3, 0.0]
    assert [(f.start, f.end) for f in tl.filled_silences] == [(10.0, 11.5)]
    assert [(i.by, i.of, i.at) for i in tl.interruptions] == [("client", "coach", 29.0)]
    assert [(o.start, o.end) for o in tl.overlaps] == [(5.0, 5.5), (29.0, 30.0)]


def test_a_short_reply_after_the_other_stops_is_a_turn_not_a_backchannel():
    tl = build_timeline({"coach": [(0.0, 5.0)], "client": [(5.4, 6.0)]}, 10.0)
    assert not tl.segments["client"][0].backchannel
    assert [t.participant for t in tl.turns] == ["coach", "client"]
    assert tl.waits[0].seconds == pytest.approx(0.4)


def test_a_long_silence_ends_a_turn_and_a_short_pause_is_not_a_filled_silence():
    tl = build_timeline({"coach": [(0.0, 4.0), (4.5, 8.0), (12.0, 15.0)], "client": []}, 20.0)
    assert [(t.start, t.end) for t in tl.turns] == [(0.0, 8.0), (12.0, 15.0)]
    assert tl.filled_silences == []  # 0.5 s is breathing, 4 s is a real wait


def test_a_pause_with_a_client_murmur_in_it_is_not_filled():
    tl = build_timeline({"coach": [(0.0, 4.0), (6.0, 8.0)], "client": [(4.5, 5.0)]}, 10.0)
    assert tl.filled_silences == []


def test_talk_share_ignores_silence_and_counts_overlap_for_both():
    tl = build_timeline({"coach": [(0.0, 10.0)], "client": [(5.0, 15.0)]}, 100.0)
    m = compute(tl)
    assert m.talk_time == {"coach": 10.0, "client": 10.0}
    assert m.talk_share_coach == 0.5
    assert m.overlap_time == 5.0
    assert share(0.0, 0.0) is None


def test_rolling_window_counts_only_recent_speech():
    segs = {"coach": [(0.0, 200.0)], "client": [(400.0, 460.0)]}
    tl = build_timeline(segs, 500.0)
    m = compute(tl)
    assert m.window_start == 200.0
    assert m.window_talk_time == {"coach": 0.0, "client": 60.0}
    assert m.window_talk_share_coach == 0.0
    assert m.talk_share_coach == pytest.approx(200 / 260)
    assert talk_time(tl.segments["coach"], 150.0, 250.0) == 50.0


def test_current_silence_and_monologue_at_the_moment():
    tl = build_timeline({"coach": [(0.0, 70.0)], "client": [(72.0, 80.0)]}, 86.5)
    m = compute(tl)
    assert m.current_silence == pytest.approx(6.5)
    assert m.longest_monologue == {"coach": 70.0, "client": 8.0}
    assert m.current_monologue == {"coach": 0.0, "client": 0.0}
    live = build_timeline({"coach": [(0.0, 70.0)], "client": []}, 70.0, speaking=frozenset({"coach"}))
    m = compute(live)
    assert m.current_silence == 0.0
    assert m.current_monologue["coach"] == 70.0
    assert m.speaking == ("coach",)


def test_interactivity_is_switches_per_minute():
    segs = {"coach": [(i * 10.0, i * 10.0 + 4.0) for i in range(0, 12, 2)], "client": [(i * 10.0, i * 10.0 + 4.0) for i in range(1, 12, 2)]}
    m = compute(build_timeline(segs, 120.0))
    assert m.switches == 11
    assert m.interactivity_per_min == pytest.approx(5.5)


def test_quick_exchanges_of_short_replies_are_turns_not_backchannels():
    tl = build_timeline({"coach": [(0.0, 0.8), (2.0, 2.8)], "client": [(1.0, 1.8), (3.0, 3.8)]}, 5.0)
    assert not any(s.backchannel for segs in tl.segments.values() for s in segs)
    assert [t.participant for t in tl.turns] == ["coach", "client", "coach", "client"]
    assert [round(w.seconds, 3) for w in tl.waits] == [0.2, 0.2]


def test_a_backchannel_in_a_pause_of_the_other_s_speech_is_still_one():
    tl = build_timeline({"coach": [(0.0, 6.0), (6.9, 12.0)], "client": [(6.2, 6.7)]}, 13.0)
    assert tl.segments["client"][0].backchannel
    assert [t.participant for t in tl.turns] == ["coach"]


def test_talking_over_a_backchannel_is_not_an_interruption():
    # the client murmurs "mm-hm" at 10.0-10.6 inside the coach's speech pause; the coach resumes
    tl = build_timeline({"coach": [(0.0, 9.9), (10.3, 20.0)], "client": [(10.0, 10.6)]}, 21.0)
    assert tl.segments["client"][0].backchannel
    assert tl.interruptions == []


def test_report_clock_rounds_tenths():
    from livecoach.report import clock

    assert clock(8.6, tenths=True) == "0:08.6"
    assert clock(1.2, tenths=True) == "0:01.2"
    assert clock(59.96, tenths=True) == "1:00.0"
    assert clock(3725.0) == "1:02:05"

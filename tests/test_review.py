"""The review payload (docs/review.md) from hand-made stored data with known answers, and its size
for a 2-hour call."""

from __future__ import annotations

import json
import random

import pytest

from livecoach.review import build_review
from livecoach.store import IndicatorSample

SESSION = {"id": "sess-1", "label": "Alex", "created_at": 1795000000.0, "video_recording": False}
KINDS = [{"id": "breakthrough", "label": "Breakthrough"}, {"id": "resistance", "label": "Resistance"}]


def url(recording_id: str, what: str) -> str:
    return f"/media/{recording_id}/{what}?key=k"


def speech(participant: str, start: float, end: float) -> dict:
    """A speech event as LiveSession logs it: when the segment ends (the decision comes 300 ms later)."""
    return {"wall_time": 1795000000.0 + end, "session_time": end + 0.3, "kind": "speech",
            "participant": participant, "start": start, "end": end}


def event(kind: str, t: float | None, participant: str | None = None, **data) -> dict:
    return {"wall_time": 1795000000.0 + (t or 0), "session_time": t, "kind": kind, "participant": participant, **data}


def sample(t: float, window: float | None = None, session: float | None = None) -> IndicatorSample:
    return IndicatorSample(t, [], session, window, 0.0)


def review(events=(), tags=(), nudges=(), samples=(), recordings=(), now=None, session=SESSION) -> dict:
    payload = build_review(session, list(events), list(tags), list(nudges), list(samples), list(recordings),
                           KINDS, url, now=now)
    json.dumps(payload, allow_nan=False)  # what the endpoint sends must be plain JSON
    return payload


# The worked example of docs/metrics.md, as stored speech events, with a last sample at 35 s.
EXAMPLE = [
    speech("coach", 1.0, 8.0), speech("coach", 9.5, 14.0), speech("client", 10.0, 10.6),
    speech("client", 18.0, 26.0), speech("coach", 25.0, 30.0), speech("client", 30.5, 33.0),
]


def test_the_payload_has_exactly_the_documented_fields():
    p = review(EXAMPLE, samples=[sample(35.0)])
    assert set(p) == {"version", "session", "segments", "silences", "overlaps", "tags", "nudges", "pauses",
                      "interruptions", "absences", "samples", "recordings", "summary", "tag_kinds"}
    assert p["version"] == 1
    assert p["session"] == {"id": "sess-1", "label": "Alex", "client": "Alex", "origin": "live",
                            "created_at": 1795000000.0, "duration_s": 35.0, "state": "ended", "video_recording": False}
    assert set(p["summary"]) == {"metrics", "quarters", "longest_silences", "longest_turns"}
    assert p["tag_kinds"] == KINDS


def test_segments_silences_overlaps_and_metrics_come_from_the_timeline_code():
    p = review(EXAMPLE + [event("presence", 0.2, "coach", state="connected"), event("silence", 14.3, since=14.0)],
               samples=[sample(35.0)])
    assert p["segments"] == {"coach": [[1.0, 8.0], [9.5, 14.0], [25.0, 30.0]],
                             "client": [[10.0, 10.6], [18.0, 26.0], [30.5, 33.0]]}
    # Only silences of 3 s or more: 14.0–18.0 (4 s). 0–1, 8–9.5, 30–30.5 and the trailing 33–35 are shorter.
    assert p["silences"] == [[14.0, 18.0]]
    assert p["overlaps"] == [[10.0, 10.6], [25.0, 26.0]]
    m = p["summary"]["metrics"]
    assert m["talk_time"] == {"coach": 16.5, "client": 11.1}
    assert m["talk_share_coach"] == 0.598
    assert m["median_wait"] == 2.25 and m["wait_times"] == [4.0, 0.5]
    assert m["longest_silence"] == 4.0 and m["long_silences"] == 2
    assert m["interruptions"] == {"coach": 1, "client": 0} and m["backchannels"] == {"coach": 0, "client": 1}
    assert m["switches"] == 3 and m["interactivity_per_min"] == 5.143
    # The longest silences of any length, longest first, and the longest turns.
    assert p["summary"]["longest_silences"] == [
        {"start": 14.0, "end": 18.0}, {"start": 33.0, "end": 35.0}, {"start": 8.0, "end": 9.5},
        {"start": 0.0, "end": 1.0}, {"start": 30.0, "end": 30.5}]
    assert p["summary"]["longest_turns"] == [
        {"participant": "coach", "start": 1.0, "end": 14.0}, {"participant": "client", "start": 18.0, "end": 26.0},
        {"participant": "coach", "start": 25.0, "end": 30.0}, {"participant": "client", "start": 30.5, "end": 33.0}]


def test_only_the_five_longest_silences_and_turns_are_listed():
    # Eleven coach turns of 1..11 s, each followed by a silence of 3..13 s.
    events, t = [], 0.0
    for i in range(11):
        events.append(speech("coach", t, t + 1 + i))
        t += 1 + i + 3 + i
    p = review(events)
    assert [round(s["end"] - s["start"], 3) for s in p["summary"]["longest_silences"]] == [12.0, 11.0, 10.0, 9.0, 8.0]
    assert [round(s["end"] - s["start"], 3) for s in p["summary"]["longest_turns"]] == [11.0, 10.0, 9.0, 8.0, 7.0]
    assert len(p["silences"]) == 10  # every gap is 3 s or more; the last speech ends the session (no trailing one)


def test_a_repeated_speech_event_counts_once_and_other_participants_are_ignored():
    p = review([speech("coach", 1.0, 2.0), speech("coach", 1.0, 2.0), speech("observer", 3.0, 4.0)])
    assert p["segments"] == {"coach": [[1.0, 2.0]], "client": []}
    assert p["summary"]["metrics"]["talk_time"]["coach"] == 1.0


def test_talk_balance_by_quarter():
    # 40 s: coach alone in Q1, client alone in Q2, nobody in Q3, 3 s coach + 5.7 s client in Q4
    # (the last segment is logged at 39.7 + 0.3 = 40.0, the last sample's time too).
    events = [speech("coach", 0.0, 10.0), speech("client", 10.0, 20.0), speech("coach", 30.0, 33.0),
              speech("client", 34.0, 39.7)]
    p = review(events, samples=[sample(40.0)])
    assert p["summary"]["quarters"] == [
        {"start": 0.0, "end": 10.0, "talk_share_coach": 1.0},
        {"start": 10.0, "end": 20.0, "talk_share_coach": 0.0},
        {"start": 20.0, "end": 30.0, "talk_share_coach": None},
        {"start": 30.0, "end": 40.0, "talk_share_coach": 0.345},
    ]


def test_a_segment_across_a_quarter_boundary_is_split_between_quarters():
    p = review([speech("coach", 5.0, 15.0), speech("client", 15.0, 20.0)], samples=[sample(40.0)])
    shares = [q["talk_share_coach"] for q in p["summary"]["quarters"]]
    assert shares == [1.0, 0.5, None, None]  # Q2: coach 10–15, client 15–20


def test_an_empty_session_has_four_empty_quarters_and_no_figures():
    p = review()
    assert p["session"]["duration_s"] == 0.0
    assert p["segments"] == {"coach": [], "client": []}
    assert [q["talk_share_coach"] for q in p["summary"]["quarters"]] == [None] * 4
    assert p["summary"]["metrics"]["talk_share_coach"] is None
    assert p["summary"]["longest_silences"] == [] and p["summary"]["longest_turns"] == []


def test_pauses_from_recording_events_including_one_still_open_at_the_end():
    events = [
        event("recording", 0.5, "coach", state="on"), event("recording", 0.6, "client", state="on"),
        event("recording", 100.0, "coach", state="paused"), event("recording", 100.01, "client", state="paused"),
        event("recording", 160.25, "coach", state="on"), event("recording", 160.3, "client", state="on"),
        event("recording", 300.0, None, state="paused"),
        event("recording", 400.0, None, state="off"),  # the call ended while paused
    ]
    p = review(events)
    assert p["pauses"] == [[100.0, 160.25], [300.0, None]]
    assert p["session"]["duration_s"] == 400.0


def test_a_pause_ends_at_the_next_on_even_after_an_off():
    events = [event("recording", 10.0, state="paused"), event("recording", 20.0, state="off"),
              event("recording", 30.0, state="on"), event("recording", 40.0, state="on")]
    assert review(events)["pauses"] == [[10.0, 30.0]]


def test_pause_events_out_of_order_are_taken_in_session_time_order():
    events = [event("recording", 70.0, state="on"), event("recording", 50.0, state="paused")]
    assert review(events)["pauses"] == [[50.0, 70.0]]


def test_interruptions_are_the_session_times_of_interrupted_events():
    events = [event("interrupted", 1500.2004), event("interrupted", 90.0), event("joined", 1.0, "coach")]
    assert review(events)["interruptions"] == [90.0, 1500.2]


def test_absences_are_the_spans_each_participant_was_out_unheard_or_muted():
    """From joined/left/presence events: before joining, a network drop (no-audio), a mute, a
    leave and rejoin, and a leave that lasts to the end."""
    p = review([event("joined", 0.4, "coach"), event("joined", 1.0, "client"),
                event("presence", 1.1, "client", state="connected"),  # no change: nothing
                event("presence", 10.0, "client", state="no-audio"), event("presence", 20.0, "client", state="connected"),
                event("presence", 25.0, "coach", state="muted"), event("presence", 27.5, "coach", state="connected"),
                event("left", 30.0, "client"), event("joined", 32.0, "client"),
                event("left", 38.0, "coach"), event("left", 39.0, "client")], samples=[sample(40.0)])
    assert p["absences"] == {
        "coach": [[0.0, 0.4, "absent"], [25.0, 27.5, "muted"], [38.0, 40.0, "absent"]],
        "client": [[0.0, 1.0, "absent"], [10.0, 20.0, "no-audio"], [30.0, 32.0, "absent"], [39.0, 40.0, "absent"]],
    }


def test_events_without_a_session_time_are_ignored():
    events = [event("joined", None, "coach"), event("interrupted", None), event("recording", None, state="paused")]
    p = review(events)
    assert p["interruptions"] == [] and p["pauses"] == [] and p["session"]["duration_s"] == 0.0


@pytest.mark.parametrize("longest", ["sample", "speech", "event", "recording", "now"])
def test_duration_is_the_latest_of_samples_speech_events_recordings_and_the_live_clock(longest):
    ends = {"sample": 50.0, "speech": 50.0, "event": 50.0, "recording": 50.0, "now": 50.0}
    ends[longest] = 80.0
    events = [speech("coach", 10.0, ends["speech"]) | {"session_time": 20.0}, event("left", ends["event"], "client")]
    recordings = [{"id": "r1", "participant": "coach", "kind": "audio", "media_type": "audio/webm",
                   "start_s": 0.5, "duration_s": ends["recording"] - 0.5, "state": "finished", "gaps": []}]
    p = review(events, samples=[sample(1.0), sample(ends["sample"])], recordings=recordings, now=ends["now"])
    assert p["session"]["duration_s"] == 80.0
    assert p["session"]["state"] == "live"  # a live clock was given
    assert p["summary"]["metrics"]["now"] == 80.0
    # The leading silence, and a trailing one up to the end unless the speech runs to it.
    assert p["silences"] == [[0.0, 10.0]] + ([] if longest == "speech" else [[50.0, 80.0]])


def test_recordings_carry_their_signed_urls_and_rounded_times():
    calls = []

    def signed(recording_id, what):
        calls.append((recording_id, what))
        return f"/media/{recording_id}?what={what}&key=sig"

    recordings = [
        {"id": "rc", "participant": "client", "kind": "audio", "media_type": "audio/webm", "start_s": 1.23456,
         "duration_s": 99.0001, "state": "finished", "gaps": [[10.00049, 20.0]], "bytes": 123456, "path": "x"},
        {"id": "ra", "participant": "coach", "kind": "audio", "media_type": "audio/webm", "start_s": 0.52,
         "duration_s": 100.0, "state": "recording", "gaps": []},
    ]
    p = build_review(SESSION | {"video_recording": True}, [], [], [], [], recordings, KINDS, signed)
    assert p["session"]["video_recording"] is True
    assert p["recordings"] == [
        {"id": "ra", "participant": "coach", "kind": "audio", "media_type": "audio/webm", "start_s": 0.52,
         "duration_s": 100.0, "state": "recording", "gaps": [],
         "url": "/media/ra?what=file&key=sig", "peaks_url": "/media/ra?what=peaks&key=sig"},
        {"id": "rc", "participant": "client", "kind": "audio", "media_type": "audio/webm", "start_s": 1.235,
         "duration_s": 99.0, "state": "finished", "gaps": [[10.0, 20.0]],
         "url": "/media/rc?what=file&key=sig", "peaks_url": "/media/rc?what=peaks&key=sig"},
    ]
    assert sorted(calls) == [("ra", "file"), ("ra", "peaks"), ("rc", "file"), ("rc", "peaks")]
    assert p["session"]["duration_s"] == 100.52  # the coach's file ends last: 0.52 + 100
    assert p["session"]["state"] == "live"  # the coach's file is still being written


def test_a_session_has_ended_once_no_recording_is_being_written():
    recordings = [{"id": f"r{i}", "participant": "coach", "kind": "audio", "media_type": "audio/webm", "start_s": 0.0,
                   "duration_s": 10.0, "state": state, "gaps": []} for i, state in enumerate(("finished", "interrupted"))]
    assert review(recordings=recordings)["session"]["state"] == "ended"
    assert review(recordings=recordings, now=12.0)["session"]["state"] == "live"


def test_tags_and_nudges_in_time_order_with_the_documented_fields():
    tags = [
        {"id": "t2", "kind": "resistance", "label": "Resistance", "session_time": 50.12345, "original_session_time": 40.0,
         "clicked_at": 45.0, "note": "moved in review", "origin": "live", "created_at": 1795000040.00012,
         "deleted_at": None},
        {"id": "t1", "kind": "breakthrough", "label": "Breakthrough", "session_time": 12.0, "clicked_at": None,
         "note": None, "created_at": 1795000012.0, "deleted_at": None},  # an older row: no origin, no original
        {"id": "t3", "kind": "breakthrough", "label": "Breakthrough", "session_time": 60.0,
         "original_session_time": 60.0, "clicked_at": 60.0, "note": "", "origin": "review",
         "created_at": 1795000100.0, "deleted_at": None},
    ]
    nudges = [{"id": "n-2", "kind": "monologue", "text": "Pause", "session_time": 700.0, "dismissed_at": None},
              {"id": "n-1", "kind": "talk_balance", "text": "Listen", "session_time": 600.0, "dismissed_at": 604.2}]
    p = review(tags=tags, nudges=nudges)
    assert p["tags"] == [
        {"id": "t1", "kind": "breakthrough", "label": "Breakthrough", "session_time": 12.0,
         "original_session_time": 12.0, "clicked_at": None, "note": "", "origin": "live", "created_at": 1795000012.0},
        {"id": "t2", "kind": "resistance", "label": "Resistance", "session_time": 50.123, "original_session_time": 40.0,
         "clicked_at": 45.0, "note": "moved in review", "origin": "live", "created_at": 1795000040.0},
        {"id": "t3", "kind": "breakthrough", "label": "Breakthrough", "session_time": 60.0,
         "original_session_time": 60.0, "clicked_at": 60.0, "note": "", "origin": "review",
         "created_at": 1795000100.0},
    ]
    assert p["nudges"] == [
        {"id": "n-1", "kind": "talk_balance", "text": "Listen", "session_time": 600.0, "dismissed_at": 604.2},
        {"id": "n-2", "kind": "monologue", "text": "Pause", "session_time": 700.0, "dismissed_at": None},
    ]


def test_samples_go_column_by_column_rounded():
    p = review(samples=[sample(1.0004, None, None), sample(2.0119, 0.61234, 0.6), sample(3.0, 1.0, 0.59999)])
    assert p["samples"] == {"t": [1.0, 2.012, 3.0], "share_window": [None, 0.612, 1.0],
                            "share_session": [None, 0.6, 0.6]}


# --- size -------------------------------------------------------------------------------------

# The page must be on screen within 1 s for a 2-hour call. Of that second we give the payload a
# third: 330 ms at 10 Mbit/s (a modest home line, no compression assumed) is about 410 KB, and
# JSON.parse of that takes a few ms. The bound is 400 KB: the 2-hour case below comes to about
# 250 KB, so the bound leaves room for longer notes and labels but catches a change that, say,
# sends samples as objects (about 560 KB) or times unrounded.
MAX_PAYLOAD_BYTES = 400_000


def two_hour_session(seed: int = 7):
    """2,000 speech segments, 7,200 samples, 200 tags with short notes, 20 nudges, two recordings."""
    rng = random.Random(seed)
    events, t = [], 0.0
    for i in range(2000):
        t += rng.uniform(0.2, 1.5)
        length = rng.uniform(0.4, 5.5)
        events.append(speech("coach" if i % 2 == 0 else "client", round(t, 2), round(t + length, 2)))
        t += length
    events += [event("presence", rng.uniform(0, 7200), "coach", state="connected") for _ in range(40)]
    events += [event("recording", 1800.0, state="paused"), event("recording", 1860.0, state="on")]
    samples = [IndicatorSample(s + 0.0123, ["coach"], rng.random(), rng.random(), 0.0) for s in range(1, 7201)]
    tags = [{"id": f"{rng.getrandbits(128):032x}", "kind": "breakthrough", "label": "Breakthrough",
             "session_time": rng.uniform(0, 7200), "original_session_time": None, "clicked_at": rng.uniform(0, 7200),
             "note": "Client named the real obstacle" if i % 3 == 0 else "", "origin": "live",
             "created_at": 1795000000.0 + i, "deleted_at": None} for i in range(200)]
    nudges = [{"id": f"n-{i:010x}", "kind": "talk_balance", "text": "Listen", "session_time": 300.0 * i,
               "dismissed_at": 300.0 * i + 4.2} for i in range(20)]
    recordings = [{"id": f"rec-{p}", "participant": p, "kind": "audio", "media_type": "audio/webm", "start_s": 0.52,
                   "duration_s": 7199.4, "state": "finished", "gaps": [[1800.0, 1860.0]]} for p in ("coach", "client")]
    return events, tags, nudges, samples, recordings


def test_a_two_hour_session_fits_the_size_bound():
    events, tags, nudges, samples, recordings = two_hour_session()
    p = build_review(SESSION, events, tags, nudges, samples, recordings, KINDS,
                     lambda rid, what: f"/media/sess-1/{rid}/{what}?key={'x' * 64}")
    # As the endpoint sends it (Starlette's JSONResponse: compact separators).
    body = json.dumps(p, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    assert len(p["segments"]["coach"]) + len(p["segments"]["client"]) == 2000
    assert len(p["samples"]["t"]) == 7200 and len(p["tags"]) == 200
    assert p["session"]["duration_s"] >= 7200
    assert len(body) < MAX_PAYLOAD_BYTES, f"{len(body)} bytes"

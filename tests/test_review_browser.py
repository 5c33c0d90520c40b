"""Recording and review in real browsers: a recorded call with live tags and a pause, then its
review on /s/<session>/review (docs/review.md).

The page: lanes, markers and the pause drawn from the payload it loaded, a marker's click that
seeks every recording, a tag made while replaying (stored once, kept across a reload), a clip
downloaded and decoded, and the client's link kept out. The server: the recordings on the
session clock, both voices in the live analysis to the end of the call, and the review of an
ended call whole as soon as its recordings are finished, and unchanging after that.

tests/review_call.py runs one call and its review for all of these checks (about 65 s) and
reports what it saw; browser_run.py runs it in a loopback-only network namespace. Screenshots
and the downloaded clips go to test-artifacts/review/. Every failure shows how much audio each
browser's fake microphone really delivered: on a busy machine Chromium's fake device falls
behind the wall clock, which the server must cope with as it would with any slow sender.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from browser_run import diagnostics, fresh_artifacts, run_script
from livecoach.frames import SAMPLE_RATE
from livecoach.live.tap import RESYNC_SAMPLES

SCRIPT = Path(__file__).resolve().parent / "review_call.py"
RUN_TIMEOUT_S = 180
PAGES = ("coach", "client", "review", "client_review")

SEEK_TOLERANCE_S = 0.1  # a marker's click puts every recording and the play position at its tag
REVIEW_TAG_TOLERANCE_S = 0.5  # a tag of the review lands at the play position of its key press
CLIP_BEFORE_S, CLIP_AFTER_S = 30.0, 15.0  # clips.js
CLIP_TOLERANCE_S = 0.1  # the clip's decoded length against its span (Opus frames are 20 ms)
# Where the server logged the pause and resume: between the session time just before the click
# and just after it (read from the coach's indicator stream), plus the message's way there.
CLICK_SLACK_S = 0.5
# A recording runs on the session clock (docs/review.md: file time + start_s = session time),
# so the silence it holds for the pause lies where the pause is.
GAP_TOLERANCE_S = RESYNC_SAMPLES / SAMPLE_RATE + 0.1
"""How far a recording's pause gap may sit from the pause's stamp: a sender that delivers less
audio than time passes drifts back on the session clock until the tap moves it up again, at
RESYNC_SAMPLES behind its arrival (live/tap.py), and the arrival itself is known to a packet or
two. A clean run failed at 0.5 s: the gap 0.517 s early, the coach's fake microphone 1.5% slow."""
# A fake microphone that delivered less audio than this share of the wall clock fell behind
# (Chromium's fake device skips reads on a machine too busy); reported with any failure.
CAPTURE_RATE_OK = 0.98
PEAK_S = 0.1  # a level strip's byte per 100 ms (docs/review.md)
LOUD = 128  # a level of -30 dBFS or more: speech in these fixtures (their noise floor is -70 dBFS)
SEGMENT_SLACK_S = 0.5  # a level's 100 ms against a segment's edges (onset and hangover)
LANES = {"coach": "coach_lane", "client": "client_lane"}
OPAQUE = 250  # a speech bar is drawn opaque; the lanes' background, silences and pauses are not
LEVEL_DRAWN = 120  # a level strip's bar, drawn at half opacity (a silence's grey is about 33)
HATCH = 80  # the pause's hatching in the band between the lanes (a silence there is about 33)


@pytest.fixture(scope="module")
def call(tmp_path_factory):
    artifacts = fresh_artifacts("review")
    result, stderr = run_script(SCRIPT, [], tmp_path_factory.mktemp("review"), artifacts, RUN_TIMEOUT_S)
    result["why"] = diagnostics(result, stderr, PAGES) + capture_report(result)
    result["artifacts"] = artifacts
    assert "error" not in result, result["why"]
    assert result.get("reached_live"), f"the call did not go live with both recording indicators on within 30 s\n{result['why']}"
    assert result.get("finished"), f"the recordings were not finished within 30 s of both leaving\n{result['why']}"
    return result


def capture_rates(result: dict) -> dict[str, float | None]:
    """Per page: seconds of audio its microphone delivered per second of wall clock, from going
    live to leaving (the most of its open peer connections)."""
    rates = {}
    for who, (first, last) in ((w, c) for w, c in result.get("capture", {}).items() if len(c) == 2):
        wall = (last["at"] - first["at"]) / 1000
        pairs = [(a.get("source_s"), b.get("source_s")) for a, b in zip(first["peers"], last["peers"])]
        got = [b - a for a, b in pairs if a is not None and b is not None]
        rates[who] = round(max(got) / wall, 3) if got and wall > 0 else None
    return rates


def capture_report(result: dict) -> str:
    rates = capture_rates(result)
    slow = {who: r for who, r in rates.items() if r is not None and r < CAPTURE_RATE_OK}
    text = f"\n--- audio delivered by each fake microphone per second of wall clock: {json.dumps(rates)}"
    if slow:
        text += (f"\n    {', '.join(slow)} fell behind the wall clock (Chromium's fake device skips reads on a busy "
                 "machine); the server places audio by its sample count, so it runs late on the session clock")
    return text


def payload(call) -> dict:
    return call["payload"]


def covers(rec: dict, t: float) -> bool:
    return rec["start_s"] <= t < rec["start_s"] + (rec["duration_s"] or 0.0)


def columns(width: int, duration: float):
    """Each canvas column's span of session time (the view is the whole call)."""
    step = duration / width
    return [(i * step, (i + 1) * step) for i in range(width)]


def decode(path: str) -> tuple[np.ndarray, int, str, str]:
    """A clip's audio as int16 (channels, samples), its rate, its codec and container format."""
    with av.open(path) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="s16p", layout=stream.codec_context.layout.name, rate=rate)
        parts = [out.to_ndarray() for frame in container.decode(stream) for out in resampler.resample(frame)]
        parts += [out.to_ndarray() for out in resampler.resample(None)]
        return np.concatenate(parts, axis=1), rate, stream.codec_context.name, container.format.name


def test_the_call_is_recorded_and_both_pages_say_so(call):
    why = call["why"]
    # The client agreed to the server's notice, shown on their page before Join.
    status, notice = call["notice_api"]
    assert call["recording_setting"] == [200, {"video": False}], why  # the coach's choice in the lobby
    assert status == 200 and "record" in notice["notice"] and "audio" in notice["scopes"], why
    assert "video" not in notice["scopes"], why
    assert call["client_notice"] == notice["notice"], why
    # Both pages showed the indicator from the start, paused while paused, and on again.
    for who in ("coach", "client"):
        live = call["live_states"][who]["recording"]
        assert live["state"] == "on" and not live["hidden"] and live["text"].startswith("Recording"), f"{who}\n{why}"
        assert call["paused_states"][who]["recording"]["state"] == "paused", f"{who}\n{why}"
        assert call["paused_states"][who]["recording"]["text"] == "Recording paused", f"{who}\n{why}"
        assert call["resumed_states"][who]["recording"]["state"] == "on", f"{who}\n{why}"
        assert call[f"{who}_ended"]["recording_seen"] == ["on", "paused", "on"], f"{who}\n{why}"
        assert call[f"{who}_ended"]["ended"], f"{who}\n{why}"
    assert call["toggle_before"] == "Pause recording", why
    assert call["live_states"]["client"]["toggle"] is None, why  # only the coach pauses

    # The pause is stored where it was made.
    pauses = payload(call)["pauses"]
    assert len(pauses) == 1, f"pauses: {pauses}\n{why}"
    (a, b), pause, resume = pauses[0], call["pause_click"], call["resume_click"]
    assert pause["before"] - CLICK_SLACK_S <= a <= pause["after"] + CLICK_SLACK_S, f"pause {pauses[0]}, clicks {pause}\n{why}"
    assert resume["before"] - CLICK_SLACK_S <= b <= resume["after"] + CLICK_SLACK_S, f"pause {pauses[0]}, clicks {resume}\n{why}"

    # One finished WebM audio recording per participant, from their first audio to the end.
    audio = {r["participant"]: r for r in payload(call)["recordings"] if r["kind"] == "audio"}
    assert sorted(audio) == ["client", "coach"], why
    for who, rec in audio.items():
        assert rec["state"] == "finished" and rec["media_type"] == "audio/webm", f"{who}: {rec}\n{why}"
        assert 0 < rec["start_s"] < 10 and rec["duration_s"] > 20, f"{who}: {rec}\n{why}"

    # The coach's end screen links the review with the coach's own token; the client's has none.
    links = call["links"]
    coach_token = links["coach_url"].split("#", 1)[1]
    review_url = f"{call['server_url']}/s/{links['session']}/review#{coach_token}"
    assert call["coach_ended"]["review_link"] == {"hidden": False, "href": review_url}, why
    assert call["client_ended"]["review_link"] is None, why


def test_recordings_stay_on_the_session_clock(call):
    """docs/review.md: file time + start_s = session time everywhere; a pause is filled with
    silence where it happened, and a recording runs until its participant leaves."""
    why = call["why"]
    (a, b) = payload(call)["pauses"][0]
    for rec in (r for r in payload(call)["recordings"] if r["kind"] == "audio"):
        holding = [g for g in rec["gaps"] if g[0] <= (a + b) / 2 <= g[1]]
        assert len(holding) == 1, f"{rec['participant']}'s gaps {rec['gaps']}: none holds the pause {[a, b]}\n{why}"
        g0, g1 = holding[0]
        assert abs(g0 - a) <= GAP_TOLERANCE_S and abs(g1 - b) <= GAP_TOLERANCE_S, (
            f"{rec['participant']}'s recording holds the pause {[a, b]} as the gap {holding[0]}: its audio is not on the "
            f"session clock\n{why}")
        end, left = rec["start_s"] + rec["duration_s"], (call["leave_at"], call["left_by"])
        assert left[0] - 1.0 <= end <= left[1] + 1.0, (
            f"{rec['participant']}'s recording ends at session time {end:.2f}; both left between {left[0]:.2f} and "
            f"{left[1]:.2f}\n{why}")


def test_both_voices_reach_the_review(call):
    """What each participant said, as their recording holds it (its level strip), is speech on
    the review's timeline (the live analysis), to the end of the call. (The review as loaded at
    the end of the run: whether it was whole as soon as the recordings were finished is
    test_the_review_is_whole_once_the_recordings_are_finished.)"""
    why = call["why"]
    data = call["payload_end"]
    for rec in (r for r in data["recordings"] if r["kind"] == "audio"):
        who, segments = rec["participant"], data["segments"][rec["participant"]]
        loud = [round(rec["start_s"] + (i + 0.5) * PEAK_S, 2) for i, v in enumerate(call["peaks"][rec["id"]]) if v >= LOUD]
        missed = [t for t in loud if not any(a - SEGMENT_SLACK_S <= t <= b + SEGMENT_SLACK_S for a, b in segments)]
        assert len(loud) * PEAK_S > 5, f"{who}'s recording holds {len(loud) * PEAK_S:.1f} s of loud audio\n{why}"
        assert len(missed) <= 0.1 * len(loud), (
            f"{who} spoke for {len(loud) * PEAK_S:.1f} s of the recording, but {len(missed) * PEAK_S:.1f} s of it is not "
            f"speech in the review (from {missed[0]:.1f} s to {missed[-1]:.1f} s; the last segment ends at "
            f"{max((b for _, b in segments), default=0):.1f} s): {segments}\n{why}")


def test_the_review_is_whole_once_the_recordings_are_finished(call):
    """The coach may open the review as soon as every recording is finished (the server
    finishes them when the call empties, so that the coach can review at once): by then the
    timeline holds every turn, up to the last one, which may run until a participant leaves."""
    why = call["why"]
    first, later = payload(call), call["payload_end"]
    for who in ("coach", "client"):
        assert first["segments"][who] == later["segments"][who], (
            f"when the recordings were finished the review had the {who}'s speech {first['segments'][who][-3:]} "
            f"(the last three), some {call['timings']['clipped'] - call['timings']['finished']:.0f} s later "
            f"{later['segments'][who][-3:]}\n{why}")


def test_an_ended_sessions_review_stays_the_same_length(call):
    """Once both have left and the recordings are finished, the review is of the call: loading
    it again later (the coach's page still open on its end screen) gives the same session."""
    why = call["why"]
    first, later = payload(call)["session"], call["payload_end"]["session"]
    assert first["state"] == later["state"] == "ended", why
    assert later["duration_s"] == pytest.approx(first["duration_s"], abs=0.5), (
        f"the ended session lasted {first['duration_s']} s when the recordings were finished and "
        f"{later['duration_s']} s some {call['timings']['clipped'] - call['timings']['finished']:.0f} s later\n{why}")
    assert first["duration_s"] <= call["leave_at"] + 5, f"{first} left at {call['leave_at']:.1f}\n{why}"


def test_the_review_draws_the_lanes_the_tags_and_the_pause(call):
    why = call["why"]
    page, canvas, data = call["review_loaded"], call["canvas"], call["page_payload"]
    assert page["body_shown"] and page["problem"] is None and page["media_problem"] is None, why
    # The page's inline script ran (the server's CSP allows it by its hash) and sent the requests.
    assert page["early_requests"], why
    assert page["view_range"] == "whole call", why  # a 45 s call opens whole
    duration = data["session"]["duration_s"]
    assert data["session"]["state"] == "ended" and duration >= 40, why
    spans = columns(canvas["width"], duration)

    # Speech lanes: a column is drawn where the payload's segments cover it, and only there.
    # (That both participants' speech is in the payload at all is the server's part:
    # test_both_voices_reach_the_review.)
    drawn_somewhere = 0
    for who, row in LANES.items():
        segments = data["segments"][who]
        margin = duration / canvas["width"]
        inside = [i for i, (t0, t1) in enumerate(spans) if any(a <= t0 and t1 <= b for a, b in segments)]
        outside = [i for i, (t0, t1) in enumerate(spans) if not any(a < t1 + margin and t0 - margin < b for a, b in segments)]
        alpha = canvas[row]
        drawn = sum(alpha[i] >= OPAQUE for i in inside)
        stray = [i for i in outside if alpha[i] >= OPAQUE]
        assert drawn >= 0.98 * len(inside), f"{who}: {drawn} of {len(inside)} columns of speech drawn\n{why}"
        assert len(stray) <= 0.02 * len(outside), f"{who}: speech drawn at columns {stray[:20]} with none there\n{why}"
        drawn_somewhere += drawn
    assert drawn_somewhere > 10, f"no speech drawn: {data['segments']}\n{why}"

    # The level strips (the peaks files) are drawn too.
    (pa, pb) = data["pauses"][0]
    unpaused = [i for i, (t0, t1) in enumerate(spans) if t1 < pa or t0 > pb]
    for row in ("coach_level", "client_level"):
        assert sum(canvas[row][i] >= LEVEL_DRAWN for i in unpaused) > 10, f"{row} not drawn\n{why}"

    # Exactly the two live tags, as markers at their stored times.
    stored = call["tags_before_review"][1]["tags"]
    assert len(stored) == 2 and [t["origin"] for t in stored] == ["live", "live"], why
    markers = page["markers"]
    assert sorted(m["id"] for m in markers) == sorted(t["id"] for t in stored), f"markers {markers}\n{why}"
    width = page["canvas_box"]["width"]
    for tag in stored:
        (m,) = [m for m in markers if m["id"] == tag["id"]]
        assert m["time"] == pytest.approx(tag["session_time"], abs=0.0005) and not m["hidden"], f"{m} {tag}\n{why}"
        assert m["x"] == pytest.approx(tag["session_time"] / duration * width, abs=2), f"{m} {tag}\n{why}"
    # Live tags landed the lead (5 s) before the click and the key press.
    for tag, made in zip(stored, call["live_tags"]):
        assert made["before"] - CLICK_SLACK_S <= tag["clicked_at"] <= made["after"] + CLICK_SLACK_S, f"{tag} {made}\n{why}"
        assert tag["session_time"] == pytest.approx(tag["clicked_at"] - 5, abs=0.0015), why

    # The pause: named, and hatched across the lanes where it was and nowhere else.
    assert "1 recording pause" in page["canvas_label"], page["canvas_label"]
    band = canvas["between_top"]
    step = duration / canvas["width"]
    in_pause = [i for i, (t0, t1) in enumerate(spans) if pa + 2 * step <= t0 and t1 <= pb - 2 * step]
    out_pause = [i for i, (t0, t1) in enumerate(spans) if t1 < pa - 2 * step or t0 > pb + 2 * step]
    hatched = sum(band[i] >= HATCH for i in in_pause)
    assert in_pause and hatched >= 0.3 * len(in_pause), f"{hatched} of {len(in_pause)} columns of the pause hatched\n{why}"
    assert sum(band[i] >= HATCH for i in out_pause) <= 0.01 * len(out_pause), f"hatching outside the pause\n{why}"


def test_a_click_on_a_tag_marker_seeks_every_recording(call):
    why = call["why"]
    data = payload(call)
    tag = next(t for t in call["tags_before_review"][1]["tags"] if t["id"] == call["seek_target"])
    t = tag["session_time"]
    recordings = {r["id"]: r for r in data["recordings"]}
    seen = call["seek"]["sync"]  # right after the click's handlers
    frame = call["seek"]["frame"]  # the next frame, with the play position drawn
    assert frame["play_time"] == pytest.approx(t, abs=SEEK_TOLERANCE_S), f"{call['seek']}\n{why}"
    assert {m["recording"] for m in seen["media"]} == set(recordings), f"{seen}\n{why}"
    covering = [m for m in seen["media"] if covers(recordings[m["recording"]], t)]
    assert {recordings[m["recording"]]["participant"] for m in covering if recordings[m["recording"]]["kind"] == "audio"} \
        == {"coach", "client"}, why
    for m in seen["media"] + frame["media"]:
        rec = recordings[m["recording"]]
        if covers(rec, t):
            assert m["current"] + rec["start_s"] == pytest.approx(t, abs=SEEK_TOLERANCE_S), f"{m} {rec}\n{why}"
            assert m["inside"] == "true", f"{m}\n{why}"
        else:  # a recording that does not reach this moment stays out of it (a video hides)
            assert m["inside"] == "false" and (rec["kind"] == "audio" or m["hidden"]), f"{m} {rec}\n{why}"

    # Then it plays, every recording that covers the moment in step with the play position.
    later = call["after_play"]
    assert call["played"], f"the recordings were not playing 10 s after the marker's click: {later['media']}\n{why}"
    assert later["play_button"] == "Pause" and later["media_problem"] is None, f"{later}\n{why}"
    assert later["play_time"] - t > 1.0, f"played from {t} to {later['play_time']}\n{why}"
    for m in later["media"]:
        rec = recordings[m["recording"]]
        if covers(rec, later["play_time"]):
            assert not m["paused"], f"{m}\n{why}"
            assert m["current"] + rec["start_s"] == pytest.approx(later["play_time"], abs=0.25), f"{m} {rec}\n{why}"


def test_a_tag_made_in_review_is_stored_once(call):
    why = call["why"]
    assert call["review_tag_saved"], f"the review's tag was not saved within 10 s\n{why}"
    live = call["tags_before_review"][1]["tags"]
    status, body = call["tags_after_review"]
    assert status == 200 and len(body["tags"]) == 3, f"{body}\n{why}"
    new = [t for t in body["tags"] if t["id"] not in {x["id"] for x in live}]
    assert len(new) == 1, why
    (tag,) = new
    assert tag["origin"] == "review" and tag["kind"] == "action_commitment", f"{tag}\n{why}"  # key 3: the third kind
    assert tag["session_time"] == pytest.approx(call["key"]["play_time"], abs=REVIEW_TAG_TOLERANCE_S), f"{tag} {call['key']}\n{why}"
    assert tag["original_session_time"] == tag["session_time"], why
    # The live tags are unchanged.
    assert [t for t in body["tags"] if t["id"] != tag["id"]] == live, why

    # After a reload: still three, the new one once, as a marker and a row, nothing queued.
    page = call["review_reloaded"]
    assert page["problem"] is None and page["queued_ops"] == 0 and page["waiting"] == 0, f"{page}\n{why}"
    assert [m["id"] for m in page["markers"]].count(tag["id"]) == 1 and len(page["markers"]) == 3, f"{page['markers']}\n{why}"
    (marker,) = [m for m in page["markers"] if m["id"] == tag["id"]]
    assert marker["origin"] == "review" and marker["time"] == pytest.approx(tag["session_time"], abs=0.0005), why
    assert [r["id"] for r in page["rows"]].count(tag["id"]) == 1 and len(page["rows"]) == 3, f"{page['rows']}\n{why}"
    assert call["tags_after_reload"][1]["tags"] == body["tags"], why


def test_a_clip_is_a_webm_of_both_voices(call):
    why = call["why"]
    tags = {t["id"]: t for t in call["tags_after_reload"][1]["tags"]}
    clips = call["clips"]
    assert len(clips) == 2, why
    for clip in clips:
        tag = tags[clip["tag"]]
        at = tag["session_time"]
        start, end = max(0.0, at - CLIP_BEFORE_S), at + CLIP_AFTER_S
        assert clip["path"], f"no clip was downloaded for the tag at {at} s: {clip}\n{why}"
        assert clip["enabled"] and clip["failure"] is None, f"{clip}\n{why}"
        answer = clip["answers"][-1]
        assert answer["status"] == 201, f"{clip}\n{why}"
        assert answer["body"]["start_s"] == pytest.approx(start, abs=0.002), f"{clip}\n{why}"
        assert answer["body"]["end_s"] == pytest.approx(end, abs=0.002), f"{clip}\n{why}"
        assert clip["suggested_filename"].endswith(".webm"), why

        audio, rate, codec, form = decode(clip["path"])
        assert "webm" in form and codec == "opus", f"{clip['path']}: {form}, {codec}"
        length = audio.shape[1] / rate
        # 45 s around the tag (30 s before, 15 s after), cut at the session's start.
        assert length == pytest.approx(end - start, abs=CLIP_TOLERANCE_S), f"{clip['path']}: {length:.3f} s for {start}–{end}\n{why}"
        assert np.abs(audio.astype(np.int32)).max() > 1000, f"{clip['path']} is silent\n{why}"
        # The coach on the left, the client on the right, and both talk in every 25 s.
        assert audio.shape[0] == 2, audio.shape
        for channel, who in enumerate(("coach", "client")):
            peak_db = 20 * np.log10(np.abs(audio[channel].astype(np.int32)).max() / 32768 + 1e-9)
            assert peak_db > -30, f"{clip['path']}: the {who}'s channel peaks at {peak_db:.0f} dBFS\n{why}"
    assert sorted(tags[c["tag"]]["origin"] for c in clips) == ["live", "review"], why


def test_the_clients_link_cannot_open_the_review(call):
    why = call["why"]
    status, body = call["client_review_api"]
    assert status == 403 and body["error"]["code"] == "forbidden", f"{status} {body}\n{why}"
    page = call["client_review_page"]
    assert page["problem"] and "client" in page["problem"] and page["problem"].endswith("."), f"{page}\n{why}"
    assert not page["body_shown"] and not page["loading_shown"], f"{page}\n{why}"
    assert not page["timeline"] and page["markers"] == [] and page["media"] == [] and page["rows"] == [], f"{page}\n{why}"


def test_screenshots_are_kept(call):
    folder = call["artifacts"]
    kept = {p.name: p.stat().st_size for p in folder.glob("*.png")}
    for name in ("review.png", "review-timeline.png", "review-tagged.png", "review-clipped.png", "review-client-link.png",
                 "coach-paused.png", "client-paused.png"):
        assert kept.get(name, 0) > 5_000, f"{folder / name} missing or blank; kept: {kept}\n{call['why']}"

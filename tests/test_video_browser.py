"""Video recording in real browsers (docs/review.md, "What is recorded", "Video uploads"): each
browser records its own camera and microphone with MediaRecorder and uploads it in chunks; a
reload continues in a new file; the review shows the videos beside the timeline, in step with
the audio; a clip can be video.

tests/video_call.py runs one short call with video on (about 35 s: two Chromiums whose fake
cameras play a tiny Y4M, so that encoding stays light on 2 cores) and its review, and reports
what it saw; browser_run.py runs it in a loopback-only network namespace. Screenshots, every
video file and the clips go to test-artifacts/video/.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
from browser_run import diagnostics, fresh_artifacts, run_script
from test_review_browser import capture_report
from livecoach.frames import SAMPLE_RATE
from livecoach.live.tap import RESYNC_SAMPLES

SCRIPT = Path(__file__).resolve().parent / "video_call.py"
RUN_TIMEOUT_S = 150
PAGES = ("coach", "client", "review")

SEEK_TOLERANCE_S = 0.1  # a marker's click puts every recording at its tag (as test_review_browser.py)
IN_STEP_S = 0.25  # while playing, every recording at the play position
CHUNK_S = 3.0  # videorec.js
LOST_AT_RELOAD_S = CHUNK_S + 1.0  # a reload loses at most the chunk being recorded
# A video's length is the browser's wall clock, its start and the reload are session times: a
# microphone that delivers less audio than time passes puts the session clock up to RESYNC_SAMPLES
# behind (live/tap.py), so a file may end that much after the reload on the session clock (CI once:
# 0.68 s after it, the client's fake microphone delivering 89% of the wall clock's audio).
END_SLACK_S = 0.5 + RESYNC_SAMPLES / SAMPLE_RATE
LEAVE_SLACK_S = 1.0  # a video that was stopped by Leave ends when its participant left
DURATION_TOLERANCE_S = 0.5  # a finished file's own duration against the payload's duration_s
CLIP_END_TOLERANCE_S = 0.5  # a clip ends at its span's end or its recording's, to a frame or so
# A clip starts at a key frame: when its span begins before the recording, at the file's first
# picture, which MediaRecorder may time a frame or two (10 fps) after the file's time 0.
CLIP_START_SLACK_S = 0.25
VIDEO_CODECS = ("vp8", "vp9")
CAMERA = (160, 120)  # video_call.py's fake cameras

# WebM's top-level elements (Matroska ids), to see where the seek index lies in a file.
EBML_HEADER, SEGMENT = 0x1A45DFA3, 0x18538067
ELEMENTS = {0x114D9B74: "SeekHead", 0x1549A966: "Info", 0x1654AE6B: "Tracks", 0x1C53BB6B: "Cues",
            0x1F43B675: "Cluster", 0x1254C367: "Tags", 0xEC: "Void"}


@pytest.fixture(scope="module")
def call(tmp_path_factory):
    artifacts = fresh_artifacts("video")
    result, stderr = run_script(SCRIPT, [], tmp_path_factory.mktemp("video"), artifacts, RUN_TIMEOUT_S)
    result["why"] = diagnostics(result, stderr, PAGES) + capture_report(result) + uploads_report(result)
    result["artifacts"] = artifacts
    assert "error" not in result, result["why"]
    assert result.get("reached_live"), f"the call did not go live with both recording indicators on within 30 s\n{result['why']}"
    return result


def uploads_report(result: dict) -> str:
    """Every chunk each page uploaded, with the server's answer: when the videos go wrong."""
    lines = ["\n--- video chunks uploaded (seconds into the run, status, recording/number, query):"]
    for who, seen in result.get("uploads", {}).items():
        lines += [f"  {who}: {u['t']:6.2f}s {u['status']} {u['path']} {u['query']}" for u in seen]
    return "\n".join(lines)


def payload(call) -> dict:
    return call["payload"]


def videos(call, who: str) -> list[dict]:
    """The finished payload's video recordings of one participant, in the order they began."""
    return sorted((r for r in payload(call)["recordings"] if r["kind"] == "video" and r["participant"] == who),
                  key=lambda r: r["start_s"])


def covers(rec: dict, t: float) -> bool:
    return rec["start_s"] <= t < rec["start_s"] + (rec["duration_s"] or 0.0)


def the_tag(call) -> dict:
    (tag,) = call["tags"][1]["tags"]
    return tag


def segment_children(data: bytes) -> list[str]:
    """The names of a WebM file's top-level elements in its Segment, in file order, up to the
    first Cluster (the media): what a browser reads before it can seek."""

    def vint(pos: int, marker: bool) -> tuple[int, int]:
        length = 9 - data[pos].bit_length()
        value = data[pos] if marker else data[pos] & (0xFF >> length)
        for b in data[pos + 1 : pos + length]:
            value = value << 8 | b
        return value, pos + length

    element, pos = vint(0, True)
    assert element == EBML_HEADER, "not an EBML file"
    size, pos = vint(pos, False)
    element, pos = vint(pos + size, True)
    assert element == SEGMENT, "no Segment after the EBML header"
    _, pos = vint(pos, False)
    names = []
    while pos < len(data):
        element, pos = vint(pos, True)
        size, pos = vint(pos, False)
        names.append(ELEMENTS.get(element, hex(element)))
        if names[-1] == "Cluster":
            break
        pos += size
    return names


def test_the_session_records_video_and_the_notice_names_it(call):
    why = call["why"]
    assert call["record_video_box"], f"the coach's lobby shows video recording off for a session made with it on\n{why}"
    assert call["recording_setting"] == [200, {"video": True}], why
    assert payload(call)["session"]["video_recording"] is True, why
    status, notice = call["notice_api"]
    assert status == 200 and "video" in notice["scopes"] and "your camera" in notice["notice"], f"{notice}\n{why}"
    # The client agreed to that notice on the page, when joining and again after the reload.
    assert call["client_notices"] == [notice["notice"]] * 2, why


def test_each_browser_records_its_small_fake_camera(call):
    """The premise of running this on 2 cores: the cameras are the tiny Y4M files, not
    Chromium's 640x480 pattern."""
    why = call["why"]
    for who in ("coach", "client"):
        camera = call["camera"][who]
        assert camera and (camera["width"], camera["height"]) == CAMERA and camera["label"].endswith(f"{who}.y4m"), (
            f"the {who}'s camera: {camera}\n{why}")


def test_each_video_grows_chunk_by_chunk_during_the_call(call):
    why = call["why"]
    first, second = call["videos_first"], call["videos_second"]
    for who in ("coach", "client"):
        (a,) = [v for v in first if v["participant"] == who]
        (b,) = [v for v in second if v["id"] == a["id"]]
        assert a["state"] == b["state"] == "recording" and a["media_type"] == "video/webm", f"{a}\n{b}\n{why}"
        assert a["bytes"] and b["bytes"] > a["bytes"], (
            f"the {who}'s video held {a['bytes']} bytes at session time {call['first_read_at']:.1f} s and {b['bytes']} "
            f"at {call['second_read_at']:.1f} s: it does not grow while the call runs\n{why}")
    # Every chunk was stored at its first try, in order, each recording from its chunk 0 (with
    # its start), and a recording stopped by Leave ends with its last chunk.
    left = {r["id"] for who in ("coach", "client") for r in videos(call, who)[-1:]}
    for who, seen in call["uploads"].items():
        by_id: dict[str, list[dict]] = {}
        for u in seen:
            by_id.setdefault(u["path"].split("/")[0], []).append(u)
        for rid, ups in by_id.items():
            assert [int(u["path"].split("/")[1]) for u in ups] == list(range(len(ups))), f"{who} {rid}: {ups}\n{why}"
            assert all(u["status"] == 201 for u in ups) and ups[0]["query"].startswith("start="), f"{who}: {ups}\n{why}"
            assert (ups[-1]["query"] == "last=1") == (rid in left), f"{who} {rid}: {ups}\n{why}"


def test_a_reload_continues_the_video_in_a_new_file(call):
    """The client reloads mid-call: the file it was recording is finished with what was stored
    (all but the chunk being recorded), and the rejoined page records a new file that starts
    later on the session clock."""
    why = call["why"]
    assert call["new_file_seen"], f"no new video of the client within 15 s of it rejoining: {call['after_rejoin']}\n{why}"
    client, coach = videos(call, "client"), videos(call, "coach")
    assert len(coach) == 1 and len(client) == 2, f"coach {coach}\nclient {client}\n{why}"
    first, second = client
    before = {v["id"] for v in call["before_reload"] if v["participant"] == "client"}
    assert first["id"] in before and second["id"] not in before, why
    assert call["first_finished_in_call"], (
        f"the client's first video was not finished while the call went on (after the reload at session time "
        f"{call['reload_at']:.1f} s): {call['after_rejoin']}\n{why}")
    end = first["start_s"] + first["duration_s"]
    reload_at = call["reload_at"]
    assert reload_at - LOST_AT_RELOAD_S <= end <= reload_at + END_SLACK_S, (
        f"the client's first video runs from {first['start_s']} s to {end:.2f} s; the page reloaded at {reload_at:.2f} s "
        f"(chunks are {CHUNK_S:g} s)\n{why}")
    assert second["start_s"] >= max(end, reload_at) - 0.1, (
        f"the client's second video starts at {second['start_s']} s, before the first one's end {end:.2f} s or the "
        f"reload at {reload_at:.2f} s\n{why}")


def test_every_video_is_finished_whole_and_seekable(call):
    """After both left: every video finished; each file a WebM with VP8/VP9 and Opus, as long as
    the payload says, with its seek index before the media, seekable to its middle; each video
    that Leave stopped runs until its participant left."""
    why = call["why"]
    assert call["finished"], f"the recordings were not all finished within 30 s of both leaving: {call['review_poll']}\n{why}"
    recs = [r for r in payload(call)["recordings"] if r["kind"] == "video"]
    assert sorted(r["id"] for r in recs) == sorted(call["files"]), why
    for rec in recs:
        got = call["files"][rec["id"]]
        name = f"{rec['participant']}'s video {rec['id']} ({got['path']})"
        assert rec["state"] == "finished" and rec["media_type"] == "video/webm", f"{rec}\n{why}"
        assert got["status"] == 200 and got["content_type"] == "video/webm" and got["accept_ranges"] == "bytes", f"{got}\n{why}"
        data = Path(got["path"]).read_bytes()
        children = segment_children(data)
        assert "Cues" in children, f"{name}: no seek index (Cues) before the first Cluster: {children}"
        with av.open(got["path"]) as c:
            assert "webm" in c.format.name, f"{name}: {c.format.name}"
            video, audio = c.streams.video, c.streams.audio
            assert len(video) == 1 and video[0].codec_context.name in VIDEO_CODECS, f"{name}: {list(c.streams)}"
            assert len(audio) == 1 and audio[0].codec_context.name == "opus", f"{name}: {list(c.streams)}"
            length = c.duration / 1e6
            assert length == pytest.approx(rec["duration_s"], abs=DURATION_TOLERANCE_S), (
                f"{name}: {length:.3f} s long, the payload says {rec['duration_s']}\n{why}")
            middle = length / 2
            c.seek(int(middle / video[0].time_base), stream=video[0], backward=True, any_frame=False)
            frame = next(c.decode(video[0]))
            assert (frame.width, frame.height) == CAMERA and 0 <= frame.time <= middle + 0.2, (
                f"{name}: after a seek to {middle:.2f} s the first frame is {frame.width}x{frame.height} at {frame.time}")
    for who in ("coach", "client"):
        last = videos(call, who)[-1]
        end = last["start_s"] + last["duration_s"]
        assert call["leave_at"] - LEAVE_SLACK_S <= end <= call["left_by"] + LEAVE_SLACK_S, (
            f"the {who}'s last video ends at {end:.2f} s; they left between {call['leave_at']:.2f} and "
            f"{call['left_by']:.2f} s\n{why}")


def test_the_review_shows_the_videos_and_a_marker_seeks_every_recording(call):
    why = call["why"]
    page = call["review_loaded"]
    assert page["problem"] is None and page["media_problem"] is None and call["media_loaded"], f"{page}\n{why}"
    tiles = call["tiles"]
    for who in ("coach", "client"):
        tile = tiles[who]
        assert tile and tile["shown"], f"no video tile of the {who} on the review: {tiles}\n{why}"
        assert [v["recording"] for v in tile["videos"]] == [r["id"] for r in videos(call, who)], f"{tiles}\n{why}"

    # The tag's marker: every recording that covers its moment is put there, audio and video.
    tag = the_tag(call)
    t = tag["session_time"]
    recordings = {r["id"]: r for r in payload(call)["recordings"]}
    seen, frame = call["seek"]["sync"], call["seek"]["frame"]
    assert call["seek_target"] == tag["id"] and frame["play_time"] == pytest.approx(t, abs=SEEK_TOLERANCE_S), (
        f"{call['seek']}\n{why}")
    assert {m["recording"] for m in seen["media"]} == set(recordings), f"{seen}\n{why}"
    covering = {(recordings[m["recording"]]["participant"], recordings[m["recording"]]["kind"])
                for m in seen["media"] if covers(recordings[m["recording"]], t)}
    assert covering == {(p, k) for p in ("coach", "client") for k in ("audio", "video")}, (
        f"the tag at {t} s is covered by {sorted(covering)}: {list(recordings.values())}\n{why}")
    for m in seen["media"] + frame["media"]:
        rec = recordings[m["recording"]]
        if covers(rec, t):
            assert m["current"] + rec["start_s"] == pytest.approx(t, abs=SEEK_TOLERANCE_S), f"{m} {rec}\n{why}"
            assert m["inside"] == "true" and not m["hidden"], f"{m}\n{why}"
        else:  # the client's second video does not reach the tag: hidden
            assert m["inside"] == "false" and (rec["kind"] == "audio" or m["hidden"]), f"{m} {rec}\n{why}"

    # Then it plays: both participants' video and audio in step with the play position.
    later = call["after_play"]
    assert call["played"], f"the recordings were not playing 10 s after the marker's click: {later['media']}\n{why}"
    assert later["media_problem"] is None and later["play_time"] - t > 1.0, f"{later}\n{why}"
    playing = [m for m in later["media"] if covers(recordings[m["recording"]], later["play_time"])]
    assert {(m["participant"], m["tag"]) for m in playing} == covering, f"{later['media']}\n{why}"
    for m in playing:
        rec = recordings[m["recording"]]
        assert not m["paused"], f"{m}\n{why}"
        assert m["current"] + rec["start_s"] == pytest.approx(later["play_time"], abs=IN_STEP_S), (
            f"{m} {rec}, play position {later['play_time']}\n{why}")
    for who in ("coach", "client"):
        shown = [v for v in call["tiles_playing"][who]["videos"] if not v["hidden"]]
        assert len(shown) == 1 and (shown[0]["width"], shown[0]["height"]) == CAMERA, f"{call['tiles_playing']}\n{why}"


@pytest.mark.parametrize("who", ["client", "coach"])
def test_a_clip_of_the_tag_can_be_video(call, who):
    """POST /clips with kind "video": the participant's video around the tag, packets copied, so
    it starts at a key frame at or before the span's start (start_s says where)."""
    why = call["why"]
    clip = call["clips"][who]
    assert clip["status"] == 201, f"{clip}\n{why}"
    body, tag = clip["body"], the_tag(call)
    t = tag["session_time"]
    (rec,) = [r for r in videos(call, who) if covers(r, t)]
    assert body["media_type"] == "video/webm" and body["filename"].endswith(".webm") and who in body["filename"], f"{body}\n{why}"
    assert rec["start_s"] - 0.01 <= body["start_s"] <= max(rec["start_s"], t - 30) + CLIP_START_SLACK_S, f"{body} {rec}\n{why}"
    assert body["end_s"] == pytest.approx(t + 15, abs=0.002), f"{body}\n{why}"
    path = clip["file"]["path"]
    with av.open(path) as c:
        assert "webm" in c.format.name and len(c.streams.video) == 1, f"{path}: {list(c.streams)}"
        assert c.streams.video[0].codec_context.name in VIDEO_CODECS, f"{path}: {list(c.streams)}"
        length = c.duration / 1e6
        frames = list(c.decode(video=0))
    assert frames and frames[0].key_frame and (frames[0].width, frames[0].height) == CAMERA, f"{path}: {frames[:1]}"
    # It runs to the span's end, or to its recording's end if that comes first.
    until = min(body["end_s"], rec["start_s"] + rec["duration_s"])
    assert length == pytest.approx(until - body["start_s"], abs=CLIP_END_TOLERANCE_S), (
        f"{path}: {length:.2f} s for {body['start_s']}–{until:.2f}\n{why}")


def test_a_video_clip_is_served_as_video(call):
    for who, clip in call["clips"].items():
        assert clip["file"]["content_type"] == "video/webm", f"the {who}'s video clip is served as {clip['file']}"


def test_screenshots_are_kept(call):
    folder = call["artifacts"]
    kept = {p.name: p.stat().st_size for p in folder.glob("*.png")}
    for name in ("review.png", "review-playing.png", "client-before-reload.png", "coach-call.png", "client-call.png"):
        assert kept.get(name, 0) > 5_000, f"{folder / name} missing or blank; kept: {json.dumps(kept)}\n{call['why']}"

"""One call with video recording on in two headless Chromiums, then its review, for
tests/test_video_browser.py.

Each browser's fake camera plays a tiny Y4M file written here (160x120 at 10 fps, a moving
pattern; Chromium loops it), so that encoding video twice per browser (the call and
MediaRecorder) stays light on a 2-core machine. One short call serves every check, in order:

1. the session is made with video on; the coach leaves the lobby's record-video box ticked; the
   client reads the notice (the API's and the page's) and joins;
2. while both are live, each participant's video recording appears in the review payload, and
   its bytes (read over its signed link) grow across two reads a few seconds apart; the coach
   tags once with a click;
3. the client reloads the page mid-call and joins again: the payload then holds a second video
   recording of the client, and the first one is finished;
4. both leave; the script waits (polling the review API) until every recording is finished
   and downloads each video over its signed link;
5. the review page: its video tiles, a click on the tag's marker (every media element's state
   right after it and one frame later), and a moment of playing;
6. a video clip of the tag, of each participant, made through the API and downloaded.

Runs inside a loopback-only network namespace (tests/browser_run.py). Prints what it observed
as one JSON object on the last line of stdout; the test decides pass or fail (and opens the
downloaded files with PyAV).
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser_call import DEVICES_READY, Page, chromium_args, closing, opening, report, script_parser
from review_call import (CLIENT_READY, PROBE_SEEK, READ_CALL, READ_CAPTURE, READ_REVIEW, RECORD_PEERS, REVIEW_READY,
                         WATCH_RECORDING, audio_files)
from sidebar_call import NOW_MS, RECORD_STREAM, Api, reference, wait_until

LIVE_TIMEOUT_S = 30.0  # from a Join to: both live, the coach's stream live, both indicators on
VIDEO_TIMEOUT_S = 15.0  # for a participant's first video chunk to be stored (chunks are 3 s)
GROW_WAIT_S = 4.0  # between the two reads of the videos' sizes: more than one chunk
TAG_MARGIN_S = 1.5  # the tag lands this far inside every recording (tags land 5 s before the click)
TAG_LEAD_S = 5.0  # sidebar: a live tag marks the moment 5 s before the click
RELOAD_AFTER_TAG_S = 2.0  # the client reloads this long after the tag's click, at the next MID_CHUNK_S
MID_CHUNK_S = (1.0, 2.0)  # the reload: this long after the client's last chunk was answered (3 s apart)
AFTER_REJOIN_S = 8.0  # the call goes on this long after the client is back (two chunks of the new file)
FIRST_FINISHED_TIMEOUT_S = 10.0  # after the new file's first chunk, for the first to be finished
FINISH_TIMEOUT_S = 30.0  # after both left, for every recording to be finished
READY_TIMEOUT_S = 10.0  # for the review's media elements to have their metadata
PLAY_S = 1.5  # seconds replayed after the marker's seek
PLAY_TIMEOUT_S = 10.0

# The fake cameras: small and slow, so that encoding costs little.
WIDTH, HEIGHT, FPS, LOOP_S = 160, 120, 10, 4.0
TINTS = {"coach": (170, 90), "client": (90, 170)}  # (U, V): blue for the coach, orange for the client (as the review draws them)

READ_TILES = """
() => {
  const tile = (who) => {
    const el = document.querySelector(`[data-testid="video-${who}"]`);
    return el && {shown: !el.closest('[hidden]'), videos: [...el.querySelectorAll('video')].map((v) => ({
      recording: v.dataset.recording, hidden: v.hidden, width: v.videoWidth, height: v.videoHeight,
      ready: v.readyState, muted: v.muted}))};
  };
  return {coach: tile('coach'), client: tile('client')};
}
"""

MEDIA_LOADED = """
() => [...document.querySelectorAll('[data-testid="media"]')].every((m) => m.readyState >= 1 || m.error)
"""

# The camera the page previews: its size and frame rate (the Y4M's, if Chromium took the file).
READ_CAMERA = """
() => {
  const track = document.querySelector('[data-testid="preview"]')?.srcObject?.getVideoTracks()[0];
  if (!track) return null;
  const s = track.getSettings();
  return {label: track.label, width: s.width, height: s.height, frame_rate: s.frameRate, state: track.readyState};
}
"""


def write_y4m(path: Path, who: str) -> Path:
    """LOOP_S seconds of WIDTH x HEIGHT I420 at FPS: diagonal stripes and a bright square that
    cross the picture once per loop (so the loop is seamless), tinted per participant."""
    frames = int(LOOP_S * FPS)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    u, v = TINTS[who]
    chroma = (np.full((HEIGHT // 2, WIDTH // 2), u, np.uint8).tobytes()
              + np.full((HEIGHT // 2, WIDTH // 2), v, np.uint8).tobytes())
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            shift = i * WIDTH // frames
            luma = 60 + ((xx + yy + shift) % 40) * 3
            x0 = (shift * 2) % WIDTH
            luma[40:80, x0 : x0 + 30] = 235
            f.write(b"FRAME\n" + luma.astype(np.uint8).tobytes() + chroma)
    return path


def media_size(server_url: str, url: str) -> int | None:
    """A file's size over its signed link, from a one-byte range's Content-Range (None: not served)."""
    req = urllib.request.Request(server_url + url, headers={"Range": "bytes=0-0"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
            total = r.headers.get("Content-Range", "").rsplit("/", 1)[-1]
    except urllib.error.HTTPError as e:
        total = (e.headers.get("Content-Range") or "").rsplit("/", 1)[-1] if e.code == 416 else ""
    return int(total) if total.isdigit() else None


def download(server_url: str, url: str, path: Path) -> dict:
    """A file over its signed link, kept at ``path``: what the server said about it."""
    with urllib.request.urlopen(server_url + url, timeout=30) as r:
        path.write_bytes(r.read())
        return {"path": str(path.resolve()), "status": r.status, "content_type": r.headers.get("Content-Type"),
                "accept_ranges": r.headers.get("Accept-Ranges"), "bytes": path.stat().st_size}


def run(args: argparse.Namespace, out: dict) -> None:
    from playwright.sync_api import sync_playwright

    t0, mark, work, artifacts, server = opening(args, out, "direct")
    files = audio_files(work)
    cameras = {who: write_y4m(work / f"{who}.y4m", who) for who in ("coach", "client")}
    pages: dict[str, Page] = {}
    try:
        links = server.create_session(video=True)
        session = out["session"] = links["session"]
        coach_token = links["coach_url"].split("#", 1)[1]
        client_token = links["client_url"].split("#", 1)[1]
        api, client_api = Api(server, session, coach_token), Api(server, session, client_token)
        out["links"] = links
        out["server_url"] = server.url

        def videos() -> list[dict]:
            """The payload's video recordings, each with its file's size now."""
            status, payload = api("GET", "/review")
            if status != 200:
                return []
            return [r | {"bytes": media_size(server.url, r["url"])} for r in payload["recordings"] if r["kind"] == "video"]

        with sync_playwright() as pw:
            browsers = {}
            try:
                for who in ("coach", "client"):
                    browsers[who] = pw.chromium.launch(executable_path=args.chromium, headless=True,
                                                       args=chromium_args(files[who], cameras[who]))
                    pages[who] = Page(browsers[who], who, t0)
                mark("browsers_up")
                coach, client = pages["coach"], pages["client"]
                # Every chunk's answer, as each browser saw it.
                out["uploads"] = {}
                for who, p in pages.items():
                    seen = out["uploads"][who] = []
                    p.page.on("response", lambda r, seen=seen: "/uploads/" in r.url and seen.append(
                        {"t": round(time.monotonic() - t0, 2), "status": r.status,
                         "path": urllib.parse.urlsplit(r.url).path.split("/uploads/", 1)[1],
                         "query": urllib.parse.urlsplit(r.url).query}))

                # 1. The call, with video on.
                coach.page.add_init_script(RECORD_STREAM)
                for p in (coach, client):
                    p.page.add_init_script(RECORD_PEERS)
                coach.page.goto(server.url + links["coach_url"])
                coach.page.wait_for_function(DEVICES_READY)
                out["camera"] = {"coach": coach.page.evaluate(READ_CAMERA)}
                coach.page.wait_for_function("() => !document.querySelector('[data-testid=\"record-video\"]').disabled")
                out["record_video_box"] = coach.page.get_by_test_id("record-video").is_checked()
                out["recording_setting"] = api("GET", "/recording")
                out["notice_api"] = client_api("GET", "/notice")
                coach.page.get_by_test_id("join").click()
                coach.page.evaluate(WATCH_RECORDING)

                def join_client() -> None:
                    client.page.wait_for_function(DEVICES_READY)
                    out["camera"].setdefault("client", client.page.evaluate(READ_CAMERA))
                    client.page.wait_for_function(CLIENT_READY)
                    out.setdefault("client_notices", []).append(client.page.get_by_test_id("notice").text_content())
                    client.page.get_by_test_id("join").click()
                    client.page.evaluate(WATCH_RECORDING)

                client.page.goto(server.url + links["client_url"])
                join_client()
                mark("joined")

                def read_both() -> tuple[dict, dict]:
                    out["coach"], out["client"] = coach.page.evaluate(READ_CALL), client.page.evaluate(READ_CALL)
                    return out["coach"], out["client"]

                def live() -> bool:
                    c, k = read_both()
                    return (c["call_state"] == "live" and k["call_state"] == "live" and c["stream_state"] == "live"
                            and (c["recording"] or {}).get("state") == "on" and (k["recording"] or {}).get("state") == "on")

                out["reached_live"] = bool(wait_until(coach.page, live, LIVE_TIMEOUT_S))
                if not out["reached_live"]:
                    return
                mark("live")
                out["capture"] = {"coach": [coach.page.evaluate(READ_CAPTURE)]}

                def now_s() -> float:
                    return reference(coach.page.evaluate("() => window.__lcStream"), coach.page.evaluate(NOW_MS)) or 0.0

                def at_session(t: float) -> float:
                    """Waits until session time t; the session time just before returning."""
                    wait_until(coach.page, lambda: now_s() >= t, max(0.0, t - now_s()) + 10, step_ms=50)
                    return now_s()

                # 2. Both videos arrive, chunk by chunk.
                def both_videos() -> list[dict] | None:
                    vs = videos()
                    out["videos_first"] = vs
                    return vs if {v["participant"] for v in vs if v["bytes"]} == {"coach", "client"} else None

                first = wait_until(coach.page, both_videos, VIDEO_TIMEOUT_S, step_ms=250)
                out["first_read_at"] = now_s()
                if not first:
                    return
                mark("videos_seen")
                coach.page.wait_for_timeout(GROW_WAIT_S * 1000)
                out["videos_second"] = videos()
                out["second_read_at"] = now_s()
                mark("videos_grew")

                # The tag: a click, whose moment (5 s before it) lies inside every recording so far.
                status, payload = api("GET", "/review")
                starts = [r["start_s"] for r in payload.get("recordings", [])]
                out["starts_before_tag"] = starts
                before = at_session(max(starts, default=0.0) + TAG_LEAD_S + TAG_MARGIN_S)
                coach.page.get_by_test_id("tag-breakthrough").click()
                out["tag_click"] = {"before": before, "after": now_s()}
                wait_until(coach.page, lambda: (r := coach.page.evaluate(READ_CALL)["recent"]) and len(r) == 1
                           and r[0]["state"] == "saved", 10)
                out["tags"] = api("GET", "/tags")
                mark("tagged")

                # 3. The client reloads mid-call, and joins again: in the middle of a chunk, with
                # no upload in flight (a chunk cut off with the page may or may not have reached
                # the server, and then the page cannot number its last chunk: videorec.js).
                at_session(out["tag_click"]["after"] + RELOAD_AFTER_TAG_S)

                def chunk_age() -> float | None:
                    answered = [u["t"] for u in out["uploads"]["client"] if u["status"] < 300]
                    return time.monotonic() - t0 - answered[-1] if answered else None

                wait_until(client.page, lambda: MID_CHUNK_S[0] <= (chunk_age() or -1) <= MID_CHUNK_S[1], 5, step_ms=50)
                out["before_reload"] = videos()
                out["reload_chunk_age"] = chunk_age()
                out["reload_at"] = now_s()
                client.page.screenshot(path=str(artifacts / "client-before-reload.png"))
                client.page.reload()
                join_client()
                out["reached_live_again"] = bool(wait_until(coach.page, live, LIVE_TIMEOUT_S))
                out["rejoined_at"] = now_s()
                if not out["reached_live_again"]:
                    return
                mark("rejoined")
                out["capture"]["client"] = [client.page.evaluate(READ_CAPTURE)]
                known = {v["id"] for v in out["before_reload"] if v["participant"] == "client"}

                def new_file() -> list[dict] | None:
                    vs = out["after_rejoin"] = videos()
                    return vs if any(v["participant"] == "client" and v["id"] not in known and v["bytes"] for v in vs) else None

                out["new_file_seen"] = bool(wait_until(coach.page, new_file, VIDEO_TIMEOUT_S, step_ms=250))
                out["new_file_seen_at"] = now_s()
                mark("new_file")

                def first_finished() -> bool:
                    vs = out["after_rejoin"] = videos()
                    return all(v["state"] == "finished" for v in vs if v["id"] in known)

                out["first_finished_in_call"] = bool(wait_until(coach.page, first_finished, FIRST_FINISHED_TIMEOUT_S, 250))
                out["first_finished_seen_at"] = now_s()

                at_session(out["rejoined_at"] + AFTER_REJOIN_S)
                for who, p in pages.items():
                    out["capture"][who].append(p.page.evaluate(READ_CAPTURE))
                    p.page.screenshot(path=str(artifacts / f"{who}-call.png"))
                out["leave_at"] = now_s()
                client.page.get_by_test_id("leave").click()
                coach.page.get_by_test_id("leave").click()
                out["left_by"] = now_s()
                coach.page.get_by_test_id("review-link").wait_for(state="visible", timeout=5000)
                out["coach_ended"], out["client_ended"] = read_both()
                mark("left")

                # 4. Every recording finished; each video downloaded over its signed link.
                def finished():
                    status, payload = api("GET", "/review")
                    out["review_poll"] = {"status": status, "recordings": payload.get("recordings") if status == 200 else payload}
                    recs = payload.get("recordings", []) if status == 200 else []
                    return payload if recs and all(r["state"] == "finished" for r in recs) else None

                payload = wait_until(coach.page, finished, FINISH_TIMEOUT_S, step_ms=100)
                out["finished"] = payload is not None
                out["payload"] = payload or out["review_poll"]
                mark("finished")
                out["files"] = {}
                for i, rec in enumerate(r for r in out["payload"]["recordings"] if r["kind"] == "video"):
                    out["files"][rec["id"]] = download(server.url, rec["url"], artifacts / f"video-{rec['participant']}-{i}.webm")
                mark("downloaded")

                # 5. The review page: the tiles, a click on the tag's marker, a moment of playing.
                pages["review"] = review = Page(browsers["coach"], "review", t0)
                review.page.goto(f"{server.url}/s/{session}/review#{coach_token}")
                review.page.wait_for_function(REVIEW_READY)
                out["media_loaded"] = bool(wait_until(review.page, lambda: review.page.evaluate(MEDIA_LOADED), READY_TIMEOUT_S))
                out["review_loaded"] = review.page.evaluate(READ_REVIEW)
                out["tiles"] = review.page.evaluate(READ_TILES)
                review.page.screenshot(path=str(artifacts / "review.png"), full_page=True)
                mark("review_loaded")

                target = out["tags"][1]["tags"][0]["id"]
                review.page.evaluate(PROBE_SEEK)
                review.page.locator(f'[data-testid="tag-marker"][data-id="{target}"]').click()
                out["seek_target"] = target
                review.page.wait_for_function("() => window.__lcSeek !== null", timeout=5000)
                out["seek"] = review.page.evaluate("() => window.__lcSeek")
                start = out["seek"]["frame"]["play_time"]

                def playing() -> bool:
                    s = review.page.evaluate(READ_REVIEW)
                    inside = [m for m in s["media"] if m["inside"] == "true"]
                    return s["play_time"] > start + PLAY_S and all(not m["paused"] and not m["seeking"] for m in inside)

                out["played"] = bool(wait_until(review.page, playing, PLAY_TIMEOUT_S))
                out["after_play"] = review.page.evaluate(READ_REVIEW)
                out["tiles_playing"] = review.page.evaluate(READ_TILES)
                review.page.screenshot(path=str(artifacts / "review-playing.png"), full_page=True)
                review.page.get_by_test_id("play").click()  # pause the replay
                mark("seeked")

                # 6. A video clip of the tag, of each participant.
                out["clips"] = {}
                for who in ("client", "coach"):
                    status, body = api("POST", "/clips", {"tag": target, "kind": "video", "participant": who})
                    clip = out["clips"][who] = {"status": status, "body": body}
                    if status == 201:
                        clip["file"] = download(server.url, body["url"], artifacts / f"clip-{who}.webm")
                mark("clipped")
            finally:
                closing(pages, browsers.values(), out, artifacts, "clipped")
    finally:
        server.stop()
        mark("stopped")


def main() -> int:
    args = script_parser(__doc__, "where screenshots and the downloaded videos and clips go").parse_args()
    out: dict = {"timings": {}, "console": {}, "websockets": {}}
    return report(run, args, out)


if __name__ == "__main__":
    sys.exit(main())

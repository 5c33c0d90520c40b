"""One recorded call in two headless Chromiums, then its review, for tests/test_review_browser.py.

One call serves every check, in this order:

1. the call (audio only: the coach unticks video in the lobby, see VIDEO): the client agrees to
   the notice (loaded from the server) and joins; both pages show the recording indicator; the
   coach tags twice live (a click at about 15 s, the key 2 at about 25 s of session time),
   pauses the recording for about 3 s at about 30 s and resumes; at about 40 s both press Leave;
2. the coach's end screen gives the review link; the script waits (polling the review API with
   the coach's token) until every recording is finished, keeps that payload and the level
   strips, then opens the link in a new page (the end screen stays open);
3. the review page: its lanes, markers and pause read from the canvas and the DOM; a click on a
   tag marker (the state one frame later: where every media element and the play position are);
   a tag added with the key 3 while it plays; a reload; two clips downloaded (a tag of the
   review, and the first live tag, whose clip is cut at the session's start); the payload again;
4. the client's token: the review API from here, and the review page opened with the client's
   link in the client's browser.

Runs inside a loopback-only network namespace (tests/browser_run.py). Prints what it observed
as one JSON object on the last line of stdout; the test decides pass or fail (and opens the
downloaded clips with PyAV).
"""

from __future__ import annotations

import argparse
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser_call import DEVICES_READY, Page, chromium_args, closing, opening, report, script_parser
from conftest import track
from sidebar_call import NOW_MS, RECORD_STREAM, Api, reference, wait_until
from livecoach.ingest import write_wav

RATE = 16000
LIVE_TIMEOUT_S = 30.0  # from the client's Join to: both live, the coach's stream live, both indicators on
TAG_AT_S = (15.0, 25.0)  # session times of the live click and key press
PAUSE_AT_S, PAUSE_S = 30.0, 3.0
CALL_S = 40.0
LEAVE_TURN_WAIT_S = 8.0  # then, at most, for someone to be speaking when both leave
INDICATOR_TIMEOUT_S = 5.0  # for both pages to show a pause or a resume
FINISH_TIMEOUT_S = 30.0  # after both left, for every recording to be finished
PLAY_S = 1.5  # seconds replayed after the marker's seek, before the tag of the review
PLAY_TIMEOUT_S = 10.0  # for that, with every recording at the play position playing
SKIP_KEYS = 2  # then ArrowRight twice (+10 s): the review's tag lands past 30 s, so its clip is whole
# The session's video setting, chosen in the coach's lobby. This run is about the audio
# recordings, the replay and the clips; the browsers' video recording has its own tests
# (tests/test_uploads.py). With video on, MediaRecorder's encoding in both Chromiums takes so
# much of this 2-core machine that their fake microphones deliver only 80-90 % of real time.
VIDEO = False

READ_CALL = """
() => {
  const q = (id) => document.querySelector(`[data-testid="${id}"]`);
  const ind = q('recording-indicator');
  const toggle = q('record-toggle');
  const link = q('review-link');
  return {
    call_state: q('call-status')?.dataset.state ?? null,
    stream_state: q('stream-state')?.dataset.state ?? null,
    problem: q('problem') && !q('problem').hidden ? q('problem').textContent : null,
    recording: ind && {state: ind.dataset.state, text: ind.textContent, hidden: ind.hidden},
    recording_seen: window.__lcRecording ?? [],
    toggle: toggle && {hidden: toggle.hidden, text: toggle.textContent},
    recent: [...document.querySelectorAll('[data-testid="recent-tag"]')].map((li) => ({id: li.dataset.id, state: li.dataset.state})),
    ended: Boolean(q('ended') && !q('ended').hidden),
    ended_title: q('ended-title')?.textContent ?? null,
    review_link: link && {hidden: link.hidden, href: link.href},
  };
}
"""

LEVEL_DRAWN = 120  # a level strip's bar (drawn at half opacity) on the canvas, once the peaks are loaded

# Every data-state the recording indicator takes, recorded by the page as it happens.
WATCH_RECORDING = """
() => {
  const seen = (window.__lcRecording = window.__lcRecording || []);
  const el = document.querySelector('[data-testid="recording-indicator"]');
  if (!el || window.__lcRecordingWatched) return;
  window.__lcRecordingWatched = true;
  const note = () => { if (!el.hidden && seen[seen.length - 1] !== el.dataset.state) seen.push(el.dataset.state); };
  note();
  new MutationObserver(note).observe(el, {attributes: true, attributeFilter: ['data-state', 'hidden']});
}
"""

# Every RTCPeerConnection the page makes, so that the run can read how much audio each
# browser's (fake) microphone really delivered: Chromium's fake device skips its reads when the
# machine is too busy, and then a participant's audio runs slower than the wall clock.
RECORD_PEERS = """
(() => {
  const Native = window.RTCPeerConnection;
  const made = (window.__lcPeers = []);
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      made.push(this);
    }
  };
})();
"""

# The microphone's audio so far: seconds delivered by the source, and packets sent, per peer
# connection still open, at a wall-clock instant (ms).
READ_CAPTURE = """
async () => {
  const out = {at: performance.timeOrigin + performance.now(), peers: []};
  for (const pc of window.__lcPeers ?? []) {
    if (pc.connectionState === 'closed') continue;
    const one = {state: pc.connectionState};
    (await pc.getStats()).forEach((s) => {
      if (s.kind !== 'audio') return;
      if (s.type === 'media-source') one.source_s = s.totalSamplesDuration ?? null;
      if (s.type === 'outbound-rtp') one.packets = s.packetsSent ?? null;
    });
    out.peers.push(one);
  }
  return out;
}
"""

CLIENT_READY = """
() => {
  const join = document.querySelector('[data-testid="join"]');
  const notice = document.querySelector('[data-testid="notice"]');
  return Boolean(join && !join.disabled && notice && !notice.textContent.startsWith('Loading'));
}
"""

REVIEW_READY = "() => Boolean(document.body.dataset.ready)"

READ_REVIEW = """
() => {
  const q = (id) => document.querySelector(`[data-testid="${id}"]`);
  const shown = (el) => Boolean(el && !el.hidden);
  const canvas = document.querySelector('[data-testid="timeline"] canvas');
  const box = canvas?.getBoundingClientRect();
  const ops = Object.keys(localStorage).filter((k) => k.endsWith('.ops')).map((k) => JSON.parse(localStorage.getItem(k) || '[]'));
  return {
    ready: document.body.dataset.ready ?? null,
    early_requests: Boolean(globalThis.livecoachEarly?.review),
    problem: shown(q('problem')) ? q('problem').textContent : null,
    loading_shown: shown(q('review-status')),
    body_shown: shown(document.getElementById('review-body')),
    timeline: Boolean(q('timeline')),
    play_time: q('play-time') ? Number(q('play-time').dataset.time) : null,
    play_button: q('play')?.textContent ?? null,
    view_range: q('view-range')?.textContent ?? null,
    duration_text: document.querySelector('.time-box .duration')?.textContent ?? null,
    canvas_label: canvas?.getAttribute('aria-label') ?? null,
    markers: [...document.querySelectorAll('[data-testid="tag-marker"]')].map((b) => {
      const r = b.getBoundingClientRect();
      return {id: b.dataset.id, time: Number(b.dataset.time), origin: b.dataset.origin, hidden: b.hidden,
              x: box ? r.left + r.width / 2 - box.left : null};
    }),
    canvas_box: box ? {width: box.width} : null,
    media: [...document.querySelectorAll('[data-testid="media"]')].map((m) => ({
      recording: m.dataset.recording, participant: m.dataset.participant, tag: m.tagName.toLowerCase(),
      current: m.currentTime, paused: m.paused, seeking: m.seeking, ready: m.readyState, inside: m.dataset.inside,
      duration: Number.isFinite(m.duration) ? m.duration : null, error: m.error?.message ?? null})),
    rows: [...document.querySelectorAll('[data-testid="tag-row"]')].map((li) => ({
      id: li.dataset.id, state: li.dataset.state, time: Number(li.dataset.time),
      origin: li.querySelector('.tr-origin')?.textContent ?? null, msg: li.querySelector('.tr-msg')?.textContent ?? null})),
    waiting: q('tags-waiting') ? Number(q('tags-waiting').dataset.count) : null,
    tags_problem: shown(q('tags-problem')) ? q('tags-problem').textContent : null,
    media_problem: shown(q('media-problem')) ? q('media-problem').textContent : null,
    queued_ops: ops.flat().length,
  };
}
"""

# The timeline's canvas, one device-pixel row at a time: the alpha of every column at the middle
# of each speech lane, just under the top of the band between the lanes (where only silences and
# pauses are drawn), and at the foot of each level strip. Rows in CSS pixels, as in timeline.js.
READ_CANVAS = """
() => {
  const c = document.querySelector('[data-testid="timeline"] canvas');
  const dpr = c.width / c.clientWidth;
  const ctx = c.getContext('2d');
  const alphas = (y) => {
    const d = ctx.getImageData(0, Math.floor(y * dpr), c.width, 1).data;
    const out = [];
    for (let i = 3; i < d.length; i += 4) out.push(d[i]);
    return out;
  };
  return {dpr, width: c.width, css_width: c.clientWidth, coach_lane: alphas(54), client_lane: alphas(98),
          between_top: alphas(69), coach_level: alphas(39), client_level: alphas(112)};
}
"""

# The state right after the first click on a tag marker (after the page's own handler and the
# media's sync, which runs in a microtask), and at the next frame (the page draws the play
# position in its own frame callback, which runs before this one).
PROBE_SEEK = """
() => {
  window.__lcSeek = null;
  const q = (id) => document.querySelector(`[data-testid="${id}"]`);
  document.addEventListener('click', (e) => {
    const marker = e.target.closest?.('[data-testid="tag-marker"]');
    if (!marker) return;
    const at = performance.now();
    const read = () => ({
      ms: performance.now() - at, marker: marker.dataset.id, play_time: Number(q('play-time').dataset.time),
      media: [...document.querySelectorAll('[data-testid="media"]')].map((m) => ({
        recording: m.dataset.recording, current: m.currentTime, seeking: m.seeking, paused: m.paused,
        inside: m.dataset.inside, hidden: m.hidden}))});
    const sync = read();
    requestAnimationFrame(() => { window.__lcSeek = {sync, frame: read()}; });
  }, {once: true});
}
"""

# The play position at the key press that tags it (the page tags the play clock's now()).
PROBE_KEY = """
() => {
  window.__lcKey = null;
  document.addEventListener('keydown', (e) => {
    if (e.key !== '3') return;
    const t = document.querySelector('[data-testid="play-time"]');
    window.__lcKey = {play_time: Number(t.dataset.time), text: t.textContent};
  }, {capture: true, once: true});
}
"""


def audio_files(folder: Path) -> dict[str, Path]:
    """Both talk: the first 30 s of the 'clean' fixture's coach and client tracks (Chromium loops
    them, so both lanes and every clip hold speech)."""
    return {who: write_wav(folder / f"{who}-30s.wav", track("clean", who)[: 30 * RATE]) for who in ("coach", "client")}


def run(args: argparse.Namespace, out: dict) -> None:
    from playwright.sync_api import sync_playwright

    t0, mark, work, artifacts, server = opening(args, out, "direct")
    files = audio_files(work)
    pages: dict[str, Page] = {}
    try:
        links = server.create_session()
        session = out["session"] = links["session"]
        coach_token = links["coach_url"].split("#", 1)[1]
        client_token = links["client_url"].split("#", 1)[1]
        api, client_api = Api(server, session, coach_token), Api(server, session, client_token)
        out["links"] = links
        out["server_url"] = server.url

        with sync_playwright() as pw:
            browsers = {}
            try:
                for who in ("coach", "client"):
                    browsers[who] = pw.chromium.launch(executable_path=args.chromium, headless=True,
                                                       args=chromium_args(files[who]))
                    pages[who] = Page(browsers[who], who, t0)
                mark("browsers_up")
                coach, client = pages["coach"], pages["client"]

                # 1. The call.
                coach.page.add_init_script(RECORD_STREAM)
                for p in (coach, client):
                    p.page.add_init_script(RECORD_PEERS)
                coach.page.goto(server.url + links["coach_url"])
                coach.page.wait_for_function(DEVICES_READY)
                # The coach's choice in the lobby: this call records audio only (see VIDEO).
                box = coach.page.get_by_test_id("record-video")
                coach.page.wait_for_function("() => !document.querySelector('[data-testid=\"record-video\"]').disabled")
                if box.is_checked() != VIDEO:
                    box.set_checked(VIDEO)
                wait_until(coach.page, lambda: api("GET", "/recording")[1].get("video") == VIDEO, 5)
                out["recording_setting"] = api("GET", "/recording")
                out["notice_api"] = client_api("GET", "/notice")
                coach.page.get_by_test_id("join").click()
                coach.page.evaluate(WATCH_RECORDING)
                client.page.goto(server.url + links["client_url"])
                client.page.wait_for_function(DEVICES_READY)
                client.page.wait_for_function(CLIENT_READY)
                out["client_notice"] = client.page.get_by_test_id("notice").text_content()
                client.page.get_by_test_id("join").click()
                client.page.evaluate(WATCH_RECORDING)
                mark("joined")

                def read_both() -> tuple[dict, dict]:
                    out["coach"], out["client"] = coach.page.evaluate(READ_CALL), client.page.evaluate(READ_CALL)
                    return out["coach"], out["client"]

                def live() -> bool:
                    c, k = read_both()
                    return (c["call_state"] == "live" and k["call_state"] == "live" and c["stream_state"] == "live"
                            and (c["recording"] or {}).get("state") == "on" and (k["recording"] or {}).get("state") == "on")

                out["reached_live"] = bool(wait_until(coach.page, live, LIVE_TIMEOUT_S))
                out["live_states"] = {"coach": out["coach"], "client": out["client"]}
                if not out["reached_live"]:
                    return
                mark("live")
                out["capture"] = {who: [p.page.evaluate(READ_CAPTURE)] for who, p in pages.items()}

                def now_s() -> float:
                    return reference(coach.page.evaluate("() => window.__lcStream"), coach.page.evaluate(NOW_MS)) or 0.0

                def at_session(t: float) -> float:
                    """Waits until session time t; the session time just before returning."""
                    wait_until(coach.page, lambda: now_s() >= t, t + 30, step_ms=50)
                    return now_s()

                def clicked(act) -> dict:
                    before = now_s()
                    act()
                    return {"before": before, "after": now_s()}

                out["live_tags"] = []
                at_session(TAG_AT_S[0])
                out["live_tags"].append({"how": "click", **clicked(coach.page.get_by_test_id("tag-breakthrough").click)})
                at_session(TAG_AT_S[1])
                out["live_tags"].append({"how": "key 2", **clicked(lambda: coach.page.keyboard.press("2"))})
                wait_until(coach.page, lambda: (r := coach.page.evaluate(READ_CALL)["recent"]) and len(r) == 2
                           and all(x["state"] == "saved" for x in r), 10)
                out["tags_live"] = api("GET", "/tags")
                mark("tagged")

                # The pause: both pages show it, then the resume.
                at_session(PAUSE_AT_S)
                toggle = coach.page.get_by_test_id("record-toggle")
                out["toggle_before"] = toggle.text_content()
                out["pause_click"] = clicked(toggle.click)

                def both(state: str) -> bool:
                    c, k = read_both()
                    return (c["recording"] or {}).get("state") == state and (k["recording"] or {}).get("state") == state

                out["paused_on_both"] = bool(wait_until(coach.page, lambda: both("paused"), INDICATOR_TIMEOUT_S))
                out["paused_states"] = {"coach": out["coach"], "client": out["client"]}
                for who, p in pages.items():
                    p.page.screenshot(path=str(artifacts / f"{who}-paused.png"))
                at_session(out["pause_click"]["after"] + PAUSE_S)
                out["resume_click"] = clicked(toggle.click)
                out["resumed_on_both"] = bool(wait_until(coach.page, lambda: both("on"), INDICATOR_TIMEOUT_S))
                out["resumed_states"] = {"coach": out["coach"], "client": out["client"]}
                mark("paused_and_resumed")

                at_session(CALL_S)
                read_both()
                for who, p in pages.items():
                    p.page.screenshot(path=str(artifacts / f"{who}-call.png"))
                # Leave in the middle of a turn, as calls often end: the turn must still reach the
                # review (it ends when they leave).
                out["speaking_at_leave"] = wait_until(
                    coach.page, lambda: (w := coach.page.get_by_test_id("speaking").get_attribute("data-state")) != "nobody" and w,
                    LEAVE_TURN_WAIT_S, step_ms=50) or "nobody"
                for who, p in pages.items():
                    out["capture"][who].append(p.page.evaluate(READ_CAPTURE))
                out["leave_at"] = now_s()
                client.page.get_by_test_id("leave").click()
                coach.page.get_by_test_id("leave").click()
                out["left_by"] = now_s()  # (the stream's last message and the time since, if it has closed)
                coach.page.get_by_test_id("review-link").wait_for(state="visible", timeout=5000)
                out["coach_ended"], out["client_ended"] = read_both()
                coach.page.screenshot(path=str(artifacts / "coach-ended.png"))
                mark("left")

                # 2. Every recording finished (the page shows what the payload holds when it loads).
                def finished():
                    status, payload = api("GET", "/review")
                    out["review_poll"] = {"status": status, "recordings": payload.get("recordings") if status == 200 else payload}
                    recs = payload.get("recordings", []) if status == 200 else []
                    return payload if recs and all(r["state"] == "finished" for r in recs) else None

                payload = wait_until(coach.page, finished, FINISH_TIMEOUT_S, step_ms=50)
                out["finished"] = payload is not None
                if payload is None:
                    return
                mark("finished")
                out["payload"] = payload
                # Each audio recording's level strip (one byte per 100 ms of the file), by its signed link.
                out["peaks"] = {}
                for rec in payload["recordings"]:
                    if rec["kind"] == "audio":
                        with urllib.request.urlopen(server.url + rec["peaks_url"], timeout=10) as answer:
                            out["peaks"][rec["id"]] = list(answer.read())
                out["tags_before_review"] = api("GET", "/tags")

                # 3. The review page, from the coach's end screen.
                pages["review"] = review = Page(browsers["coach"], "review", t0)
                with review.page.expect_response(lambda r: "/review" in r.url and "/api/" in r.url) as loaded:
                    review.page.goto(out["coach_ended"]["review_link"]["href"])
                out["page_payload"] = loaded.value.json()  # what the page draws (fetched a moment after ours)
                review.page.wait_for_function(REVIEW_READY)
                mark("review_loaded")

                def levels_drawn() -> dict | None:
                    c = review.page.evaluate(READ_CANVAS)
                    return c if max(c["coach_level"]) >= LEVEL_DRAWN and max(c["client_level"]) >= LEVEL_DRAWN else None

                out["canvas"] = wait_until(review.page, levels_drawn, 5) or review.page.evaluate(READ_CANVAS)
                out["review_loaded"] = review.page.evaluate(READ_REVIEW)
                review.page.screenshot(path=str(artifacts / "review.png"), full_page=True)
                review.page.get_by_test_id("timeline").screenshot(path=str(artifacts / "review-timeline.png"))

                # 4. A click on the later live tag's marker.
                live_ids = [t["id"] for t in out["tags_before_review"][1]["tags"]]
                target = live_ids[-1]
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
                mark("seeked")

                # 5. A tag of the review at the play position (key 3), stored once.
                for _ in range(SKIP_KEYS):
                    review.page.keyboard.press("ArrowRight")
                review.page.wait_for_timeout(500)
                review.page.evaluate(PROBE_KEY)
                review.page.keyboard.press("3")
                out["key"] = review.page.evaluate("() => window.__lcKey")

                def review_tag_saved():
                    s = review.page.evaluate(READ_REVIEW)
                    out["review_after_key"] = s
                    new = [r for r in s["rows"] if r["id"] not in live_ids]
                    return new and all(r["state"] == "saved" for r in new) and s["waiting"] == 0

                out["review_tag_saved"] = bool(wait_until(review.page, review_tag_saved, 10))
                review.page.get_by_test_id("play").click()  # pause the replay
                out["tags_after_review"] = api("GET", "/tags")
                review.page.screenshot(path=str(artifacts / "review-tagged.png"), full_page=True)
                review.page.reload()
                review.page.wait_for_function(REVIEW_READY)
                review.page.wait_for_timeout(500)  # the outbox's first flush, if anything were queued
                out["review_reloaded"] = review.page.evaluate(READ_REVIEW)
                out["tags_after_reload"] = api("GET", "/tags")
                mark("review_tagged")

                # 6. Clips: the review's tag (30 s before, 15 s after) and the first live tag (cut at 0).
                new_ids = [r["id"] for r in out["review_reloaded"]["rows"] if r["id"] not in live_ids]
                out["clips"] = []
                clip_answers: list = []
                downloads: list = []
                review.page.on("response", lambda r: r.url.endswith("/clips") and r.request.method == "POST"
                               and clip_answers.append(r))
                review.page.on("download", lambda d: downloads.append(d))
                for tag_id in new_ids[:1] + live_ids[:1]:
                    row = review.page.locator(f'[data-testid="tag-row"][data-id="{tag_id}"]')
                    button = row.locator('[data-action="clip"]')
                    clip = {"tag": tag_id, "enabled": button.is_enabled(), "path": None}
                    out["clips"].append(clip)
                    button.click()
                    # The row says what came of it ("Clip made…" or "No clip: …"), then the download.
                    review.page.wait_for_function(
                        "(id) => document.querySelector(`[data-testid='tag-row'][data-id='${id}'] .tr-msg`)?.textContent",
                        arg=tag_id, timeout=20000)
                    clip["message"] = row.locator(".tr-msg").text_content()
                    if not clip["message"].startswith("No clip"):
                        wait_until(review.page, lambda: downloads, 10)
                    # Every answer to the page's POST /clips for this click (a video clip may be
                    # asked again as audio: clips.js).
                    clip["answers"] = [{"status": r.status, "body": r.json()} for r in clip_answers]
                    clip_answers.clear()
                    if downloads:
                        download = downloads.pop()
                        clip["failure"] = download.failure()
                        clip["suggested_filename"] = download.suggested_filename
                        path = artifacts / f"clip-{len(out['clips'])}.webm"
                        download.save_as(str(path))
                        clip["path"] = str(path.resolve())
                mark("clipped")
                # The ended session's review once more, some 15 s later (the coach's page is still open).
                out["payload_end"] = api("GET", "/review")[1]
                review.page.screenshot(path=str(artifacts / "review-clipped.png"), full_page=True)

                # 7. The client's token.
                out["client_review_api"] = client_api("GET", "/review")
                pages["client_review"] = spy = Page(browsers["client"], "client_review", t0)
                spy.page.goto(f"{server.url}/s/{session}/review#{client_token}")
                spy.page.wait_for_function("() => !document.querySelector('[data-testid=\"problem\"]').hidden", timeout=10000)
                spy.page.wait_for_timeout(300)
                out["client_review_page"] = spy.page.evaluate(READ_REVIEW)
                spy.page.screenshot(path=str(artifacts / "review-client-link.png"))
                mark("client_checked")
            finally:
                closing(pages, browsers.values(), out, artifacts, "client_checked")
    finally:
        server.stop()
        mark("stopped")


def main() -> int:
    args = script_parser(__doc__, "where screenshots and the downloaded clips go").parse_args()
    out: dict = {"timings": {}, "console": {}, "websockets": {}}
    return report(run, args, out)


if __name__ == "__main__":
    sys.exit(main())

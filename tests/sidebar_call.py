"""One call in two headless Chromiums that exercises the coach's sidebar, for
tests/test_sidebar_browser.py.

The coach talks most of the time, the client says one sentence now and then. One call serves
every check, in this order:

1. the client's page: no sidebar in its DOM; the sidebar API and the indicator stream refuse
   its token; the sidebar page opened with its token shows nothing;
2. a tag by a click and one by the key 2 on the coach's page, with the instant of each event
   (RECORD_INPUT) and the page's own record of the stream (RECORD_STREAM), from which the test
   computes the session time of the click independently of the sidebar's code;
3. the sidebar alone in a window: opened from the coach's page, then in a second browser
   context made unreachable (API requests aborted, the stream's websocket closed), where two tags
   are made, noted and undone, the page reloaded, and the server restored; the very first PUT
   reaches the server but its answer is lost, so the retry must not store it twice;
4. the talk balance after some 30 s of the coach talking; then the coach's thresholds are
   lowered so that a talk-balance nudge comes at once, and it is dismissed with Escape.

Runs inside a loopback-only network namespace (tests/browser_run.py). Prints what it observed
as one JSON object on the last line of stdout; the test decides pass or fail.
"""

from __future__ import annotations

import argparse
import copy
import json
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser_call import DEVICES_READY, SIDEBAR_IDS, Page, chromium_args, closing, opening, report, script_parser
from conftest import track
from liveserver import Server
from livecoach.ingest import write_wav

RATE = 16000
LIVE_TIMEOUT_S = 30.0  # from the client's Join to: both live, the sidebar showing a talk share
CALL_S = 30.0  # session time to reach before the talk balance is read
NUDGE_TIMEOUT_S = 15.0  # a live call picks up new thresholds within 5 s
SYNC_TIMEOUT_S = 25.0  # for the outbox to empty after the server is back (backoff up to 8 s)

# The coach's thresholds for this call: a talk-balance nudge soon, no other kind.
NUDGE_SETTINGS = {
    "talk_balance": {"enabled": True, "share": 0.6, "min_speech_s": 5},
    "monologue": {"enabled": False},
    "wait": {"enabled": False},
    "client_quiet": {"enabled": False},
}

# Every indicator-stream message's arrival (wall clock, ms) and session_time, recorded by the
# page itself before the sidebar's code sees it. The test's reference for "the session time of
# the click" is computed from this record, independently of the sidebar's own clock.
RECORD_STREAM = """
(() => {
  const seen = (window.__lcStream = []);
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(url, ...rest) {
      super(url, ...rest);
      if (!String(url).includes('/ws/indicators')) return;
      this.addEventListener('message', (e) => {
        let m;
        try { m = JSON.parse(e.data); } catch { return; }
        if (typeof m?.session_time !== 'number') return;
        seen.push([performance.timeOrigin + performance.now(), m.session_time]);
        if (seen.length > 2000) seen.splice(0, 1000);
      });
    }
  };
})();
"""

# The instant of every click and key press (wall clock, ms), taken from the event itself as the
# sidebar does, by a listener that runs before the page's own.
RECORD_INPUT = """
(() => {
  const seen = (window.__lcInput = []);
  for (const type of ['click', 'keydown']) {
    document.addEventListener(type, (e) => seen.push(performance.timeOrigin + e.timeStamp), true);
  }
})();
"""

NOW_MS = "() => performance.timeOrigin + performance.now()"

def live_nudge(url: str, session: str, token: str, within_s: float = 3.0) -> dict | None:
    """The nudge the live call has standing, as a new coach connection's snapshots tell it: the
    first snapshot without one within ``within_s``, or the last one seen."""
    from websockets.sync.client import connect

    nudge = None
    with connect(url.replace("http", "ws") + "/ws/indicators", origin=url.rstrip("/")) as ws:
        ws.send(json.dumps({"type": "hello", "session": session, "token": token}))
        end = time.time() + within_s
        while time.time() < end:
            msg = json.loads(ws.recv(timeout=within_s))
            if msg["type"] == "snapshot":
                nudge = msg["nudge"]
                if nudge is None:
                    break
    return nudge


READ_SIDEBAR = """
() => {
  const q = (id) => document.querySelector(`[data-testid="${id}"]`);
  const text = (id) => q(id)?.textContent ?? null;
  const width = (el) => el ? el.getBoundingClientRect().width : null;
  const bar = (scope) => {
    const b = q(`share-${scope}-bar`);
    return b && {coach: width(b.querySelector('.part.coach')), client: width(b.querySelector('.part.client')),
                 whole: width(b), empty: b.dataset.empty, label: b.getAttribute('aria-label')};
  };
  return {
    call_state: q('call-status')?.dataset.state ?? null,
    stream_state: q('stream-state')?.dataset.state ?? null,
    recording_state: q('recording-state')?.dataset.state ?? null,
    problem: q('sidebar-problem') && !q('sidebar-problem').hidden ? text('sidebar-problem') : null,
    session_time: text('session-time'),
    speaking: text('speaking'),
    client_state: text('client-state'),
    share_window: text('share-window'),
    share_window_client: text('share-window-client'),
    share_session: text('share-session'),
    share_session_client: text('share-session-client'),
    bars: {window: bar('window'), session: bar('session')},
    silence: text('silence'),
    last_wait: text('last-wait'),
    median_wait: text('median-wait'),
    nudge: q('nudge')?.dataset.active === 'true' ? text('nudge-text') : null,
    tag_buttons: [...document.querySelectorAll('[data-testid="tag-buttons"] button')].map((b) => b.textContent),
    waiting: q('tags-waiting') ? Number(q('tags-waiting').dataset.count) : null,
    waiting_text: text('tags-waiting'),
    recent: [...document.querySelectorAll('[data-testid="recent-tag"]')].map((li) => ({
      id: li.dataset.id, state: li.dataset.state, label: li.querySelector('.tag-label').textContent,
      note: li.querySelector('.tag-note').textContent})),
  };
}
"""

# The client's page tries the coach's API and stream with its own token (from its link).
CLIENT_TRIES = """
async ({session}) => {
  const token = location.hash.slice(1);
  const base = `/api/sessions/${session}`;
  const headers = {Authorization: `Bearer ${token}`, 'Content-Type': 'application/json'};
  const tag = {kind: 'breakthrough', label: 'Breakthrough', session_time: 1, clicked_at: 6, note: ''};
  const tries = [['GET', '/tags'], ['GET', '/nudges'], ['GET', '/settings'],
                 ['PUT', '/tags/client-made-tag-1', tag], ['POST', '/nudges/n-1/dismiss', {session_time: 1}]];
  const api = [];
  for (const [method, path, body] of tries) {
    const r = await fetch(base + path, {method, headers, body: body && JSON.stringify(body)});
    let code = null;
    try { code = (await r.json())?.error?.code ?? null; } catch {}
    api.push({method, path, status: r.status, code});
  }
  const stream = await new Promise((resolve) => {
    const got = [];
    const ws = new WebSocket(`ws://${location.host}/ws/indicators`);
    const done = () => resolve(got);
    ws.onopen = () => ws.send(JSON.stringify({type: 'hello', session, token}));
    ws.onmessage = (e) => { try { got.push(JSON.parse(e.data)); } catch { got.push(e.data); } };
    ws.onclose = done;
    setTimeout(() => { ws.close(); done(); }, 5000);
  });
  return {api, stream: stream.map((m) => ({type: m.type, code: m.code ?? null}))};
}
"""


def audio_files(folder: Path) -> dict[str, Path]:
    """The coach: a 30 s turn of the 'clean' fixture (Chromium loops the file). The client: one
    2.4 s sentence, then 22 s of -70 dBFS noise."""
    rng = np.random.default_rng(5)
    noise = np.clip(np.round(rng.normal(0.0, 32768 * 10 ** (-70 / 20), 22 * RATE)), -32768, 32767).astype(np.int16)
    coach = track("clean", "coach")[int(25.5 * RATE) : int(56.2 * RATE)]
    client = np.concatenate([track("clean", "client")[int(4.9 * RATE) : int(7.3 * RATE)], noise])
    return {"coach": write_wav(folder / "coach-talks.wav", coach), "client": write_wav(folder / "client-brief.wav", client)}


class Api:
    """The sidebar's HTTP API from here, with a token."""

    def __init__(self, server: Server, session: str, token: str) -> None:
        self.base = f"{server.url}/api/sessions/{session}"
        self.token = token

    def __call__(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


def reference(record: list, wall_ms: float) -> float | None:
    """The session time at a wall-clock instant, from the page's record of the stream: the last
    message before it, plus the time since."""
    before = [(at, t) for at, t in record if at <= wall_ms]
    if not before:
        return None
    at, t = before[-1]
    return t + (wall_ms - at) / 1000


def jitter(record: list, wall_ms: float, span_ms: float = 3000) -> float:
    """How much session_time - arrival varies among the messages near an instant (s)."""
    offsets = [t - at / 1000 for at, t in record if abs(at - wall_ms) <= span_ms]
    return max(offsets) - min(offsets) if offsets else float("nan")


def wait_until(page, predicate, timeout_s: float, step_ms: int = 100):
    """Polls predicate() (which reads the page) until it is true; returns its last value.
    Waits with page.wait_for_timeout so that Playwright's events keep flowing."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        page.wait_for_timeout(step_ms)


def tag_at(page, act) -> dict:
    """Does act() (a click or a key press): the wall-clock instant of its event, and the bracket
    around it (ms)."""
    before = page.evaluate(NOW_MS)
    act()
    after = page.evaluate(NOW_MS)
    return {"before": before, "at": page.evaluate("() => window.__lcInput.at(-1) ?? null"), "after": after}


def refer(made: list[dict], record: list) -> None:
    """Adds each action's reference session time, from the page's record of the stream."""
    for m in made:
        m["ref"] = reference(record, m["at"]) if m["at"] else None
        m["jitter"] = jitter(record, m["at"] or m["before"])


def run(args: argparse.Namespace, out: dict) -> None:
    from playwright.sync_api import sync_playwright

    t0, mark, work, artifacts, server = opening(args, out, "direct")
    files = audio_files(work)
    pages: dict[str, Page] = {}
    try:
        links = server.create_session(video=False)  # the cameras' recording is not what this run tests
        session = out["session"] = links["session"]
        coach_token = links["coach_url"].split("#", 1)[1]
        api = Api(server, session, coach_token)
        out["default_settings"] = api("GET", "/settings")[1]
        sidebar_url = f"{server.url}/s/{session}/sidebar#{coach_token}"

        with sync_playwright() as pw:
            browsers = {}
            try:
                for who in ("coach", "client"):
                    browsers[who] = pw.chromium.launch(executable_path=args.chromium, headless=True,
                                                       args=chromium_args(files[who]))
                    pages[who] = Page(browsers[who], who, t0)
                mark("browsers_up")
                coach, client = pages["coach"], pages["client"]

                # 1. The client's page, before and apart from the call.
                client.page.goto(server.url + links["client_url"])
                client.page.wait_for_function(DEVICES_READY)
                out["client_sidebar_elements"] = [i for i in SIDEBAR_IDS if client.page.get_by_test_id(i).count()]
                out["client_tries"] = client.page.evaluate(CLIENT_TRIES, {"session": session})
                client_token = links["client_url"].split("#", 1)[1]
                pages["client_sidebar"] = spy = Page(browsers["client"], "client_sidebar", t0)
                spy.page.goto(f"{server.url}/s/{session}/sidebar#{client_token}")
                spy.page.wait_for_function("() => document.querySelector('[data-testid=\"stream-state\"]')?.dataset.state === 'stopped'",
                                           timeout=10000)
                spy.page.keyboard.press("1")
                spy.page.wait_for_timeout(300)
                out["client_sidebar_page"] = spy.page.evaluate(READ_SIDEBAR)
                spy.page.close()
                mark("client_checked")

                # The call.
                coach.page.add_init_script(RECORD_STREAM)
                coach.page.add_init_script(RECORD_INPUT)
                coach.page.goto(server.url + links["coach_url"])
                coach.page.wait_for_function(DEVICES_READY)
                coach.page.get_by_test_id("join").click()
                client.page.get_by_test_id("join").click()
                mark("joined")

                def live_with_share():
                    s = coach.page.evaluate(READ_SIDEBAR)
                    out["coach"] = s
                    return s["call_state"] == "live" and s["stream_state"] == "live" and s["share_window"].endswith("%")

                out["reached_live"] = bool(wait_until(coach.page, live_with_share, LIVE_TIMEOUT_S))
                if not out["reached_live"]:
                    return
                mark("live")
                coach.page.get_by_test_id("sidebar").screenshot(path=str(artifacts / "sidebar-early.png"))

                # 2. A click and a key press on the coach's page, at least 6 s into the session
                # so that the lead is not cut off at 0.
                wait_until(coach.page, lambda: (reference(coach.page.evaluate("() => window.__lcStream"),
                                                          coach.page.evaluate(NOW_MS)) or 0) > 6, 15)
                button = coach.page.get_by_test_id("tag-breakthrough")
                clicks = [{"how": "click", "kind": "breakthrough", **tag_at(coach.page, button.click)}]
                coach.page.wait_for_timeout(700)
                clicks.append({"how": "key 2", "kind": "resistance", **tag_at(coach.page, lambda: coach.page.keyboard.press("2"))})
                refer(clicks, coach.page.evaluate("() => window.__lcStream"))
                out["online_clicks"] = clicks
                wait_until(coach.page, lambda: (s := coach.page.evaluate(READ_SIDEBAR))["recent"] and
                           all(r["state"] == "saved" for r in s["recent"]), 10)
                out["coach_after_tags"] = coach.page.evaluate(READ_SIDEBAR)
                out["tags_online"] = api("GET", "/tags")[1]
                mark("tagged_online")

                # 3a. The sidebar's own window, opened from the coach's page (same token).
                with coach.page.expect_popup() as popup_info:
                    coach.page.get_by_test_id("open-sidebar-window").click()
                popup = popup_info.value
                popup.wait_for_function("() => document.querySelector('[data-testid=\"stream-state\"]')?.dataset.state === 'live'",
                                        timeout=10000)
                out["popup_url_matches"] = popup.url == sidebar_url
                popup.close()

                # 3b. The sidebar window in a context of its own (its own localStorage), made
                # unreachable: API requests aborted, the stream's websocket closed at once. The
                # first PUT goes through to the server and only its answer is lost.
                pages["window"] = window = Page(browsers["coach"], "window", t0)
                window.page.add_init_script(RECORD_INPUT)
                window.page.set_viewport_size({"width": 400, "height": 900})
                window.page.goto(sidebar_url)
                window.page.wait_for_function("() => document.querySelector('[data-testid=\"stream-state\"]')?.dataset.state === 'live'")
                window.page.wait_for_timeout(2500)  # the clock's anchor is saved every 2 s
                window.page.screenshot(path=str(artifacts / "sidebar-window.png"))
                offline = {"on": True, "first_put": None, "aborted": 0}

                def api_route(route):
                    req = route.request
                    if not offline["on"]:
                        return route.continue_()
                    if req.method == "PUT" and "/tags/" in req.url and offline["first_put"] is None:
                        response = route.fetch()
                        offline["first_put"] = {"url": req.url, "status": response.status}
                    offline["aborted"] += 1
                    return route.abort("internetdisconnected")

                def ws_route(ws):
                    if offline["on"]:
                        ws.close()
                    else:
                        ws.connect_to_server()

                window.page.route("**/api/sessions/**", api_route)
                window.page.route_web_socket("**/ws/indicators", ws_route)
                window.page.reload()
                window.page.wait_for_function("() => document.querySelectorAll('[data-testid=\"tag-buttons\"] button').length > 0")
                window.page.wait_for_timeout(300)
                out["window_offline_state"] = window.page.evaluate(READ_SIDEBAR)["stream_state"]
                made = [{"how": "key 3 offline", "kind": "action_commitment",
                         **tag_at(window.page, lambda: window.page.keyboard.press("3"))}]
                wait_until(window.page, lambda: offline["first_put"] is not None, 5)
                made.append({"how": "click offline", "kind": "goal_clarity",
                             **tag_at(window.page, window.page.get_by_test_id("tag-goal_clarity").click)})
                # A note on the first, undo on the second (the list shows the newest first).
                first = window.page.locator('[data-testid="recent-tag"]').nth(1)
                first.get_by_role("button", name="Note").click()
                first.get_by_role("textbox").fill("said while offline")
                first.get_by_role("textbox").press("Enter")
                window.page.locator('[data-testid="recent-tag"]').nth(0).get_by_test_id("recent-tag-undo").click()
                out["window_before_reload"] = window.page.evaluate(READ_SIDEBAR)
                window.page.reload()
                window.page.wait_for_function("() => document.querySelectorAll('[data-testid=\"recent-tag\"]').length > 0")
                window.page.wait_for_timeout(500)
                out["window_after_reload"] = window.page.evaluate(READ_SIDEBAR)
                out["queue_after_reload"] = window.page.evaluate(f"() => JSON.parse(localStorage.getItem('livecoach.{session}.ops') ?? '[]')")
                window.page.screenshot(path=str(artifacts / "sidebar-offline.png"))
                mark("offline_done")

                offline["on"] = False
                synced = wait_until(window.page, lambda: (s := window.page.evaluate(READ_SIDEBAR))["waiting"] == 0
                                    and s["stream_state"] == "live" and all(r["state"] in ("saved", "undone") for r in s["recent"]),
                                    SYNC_TIMEOUT_S)
                out["window_synced"] = bool(synced)
                out["window_after_sync"] = window.page.evaluate(READ_SIDEBAR)
                out["offline_first_put"] = offline["first_put"]
                out["offline_aborted"] = offline["aborted"]
                refer(made, coach.page.evaluate("() => window.__lcStream"))
                out["offline_tags"] = made
                out["offline_recent_ids"] = [r["id"] for r in out["window_after_sync"]["recent"]]
                window.page.screenshot(path=str(artifacts / "sidebar-window-synced.png"))
                mark("synced")

                # 4. The talk balance once the coach has talked for a while, and the nudge.
                wait_until(coach.page, lambda: (reference(coach.page.evaluate("() => window.__lcStream"),
                                                          coach.page.evaluate(NOW_MS)) or 0) > CALL_S, 40)
                out["coach"] = coach.page.evaluate(READ_SIDEBAR)
                coach.page.screenshot(path=str(artifacts / "coach-call.png"))
                coach.page.get_by_test_id("sidebar").screenshot(path=str(artifacts / "sidebar.png"))
                client.page.screenshot(path=str(artifacts / "client-call.png"))
                mark("balance_read")

                settings = copy.deepcopy(out["default_settings"])
                settings["nudges"] = {**settings["nudges"], **{k: {**settings["nudges"][k], **v} for k, v in NUDGE_SETTINGS.items()}}
                out["settings_put"] = api("PUT", "/settings", settings)[0]
                out["nudge_seen"] = wait_until(coach.page, lambda: coach.page.evaluate(READ_SIDEBAR)["nudge"], NUDGE_TIMEOUT_S)
                if out["nudge_seen"]:
                    coach.page.get_by_test_id("sidebar").screenshot(path=str(artifacts / "sidebar-nudge.png"))
                    # The window of its own shows it too (the same stream): the README's picture.
                    wait_until(window.page, lambda: window.page.evaluate(READ_SIDEBAR)["nudge"], 3)
                    window.page.screenshot(path=str(artifacts / "sidebar-window-nudge.png"))
                    coach.page.keyboard.press("Escape")
                    coach.page.wait_for_timeout(300)
                    out["nudge_after_escape"] = coach.page.evaluate(READ_SIDEBAR)["nudge"]
                    out["live_nudge_after_escape"] = live_nudge(server.url, session, coach_token)
                    wait_until(coach.page, lambda: any(n.get("dismissed_at") is not None
                                                       for n in api("GET", "/nudges")[1].get("nudges", [])), 10)
                    out["nudges"] = api("GET", "/nudges")[1]
                mark("nudged")

                out["tags_final"] = api("GET", "/tags")[1]
                with sqlite3.connect(f"file:{work / 'data' / 'livecoach.sqlite3'}?mode=ro", uri=True) as db:
                    out["tag_rows"] = [dict(zip(("id", "kind", "session_time", "clicked_at", "note", "deleted"), row)) for row in
                                       db.execute("SELECT id, kind, session_time, clicked_at, note, deleted_at IS NOT NULL "
                                                  "FROM tags WHERE session_id = ?", (session,))]
                out["client"] = {"call_state": client.page.evaluate(
                    "() => document.querySelector('[data-testid=\"call-status\"]')?.dataset.state")}
            finally:
                closing(pages, browsers.values(), out, artifacts, "nudged")
    finally:
        server.stop()
        mark("stopped")


def main() -> int:
    args = script_parser(__doc__).parse_args()
    out: dict = {"timings": {}, "console": {}, "websockets": {}}
    return report(run, args, out)


if __name__ == "__main__":
    sys.exit(main())

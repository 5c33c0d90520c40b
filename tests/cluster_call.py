"""A call in two headless Chromiums through HAProxy in front of two nodes, one of which is killed
mid-call, for tests/test_cluster_browser.py.

Two nodes (``livecoach serve --node-url``) share a data folder and its SQLite database (the
registry works on both databases; PostgreSQL cannot run in the test's user namespace), HAProxy
(deploy/haproxy_config.py) in front. The coach and the client open their links through the
proxy (``/n/<owner>/s/…``), join, and talk until the coach's sidebar shows the client speaking.
Then the owning node is SIGKILLed, and the run records what the pages do: when each page's
address moves under the other node's prefix (without a reload: the call goes on), when the
sidebar's stream is live again there, when it shows the client speaking again, and the
session time before and after. Prints one JSON object on the last line; the test decides.

Runs in a loopback-only network namespace (tests/browser_run.py).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser_call import DEVICES_READY, WATCH_READOUT, Page, audio_files, chromium_args, closing, report, script_parser
from liveserver import COACH_EMAIL, COACH_PASSWORD, Server, free_port, start_haproxy

LIVE_TIMEOUT_S = 30.0
MOVE_TIMEOUT_S = 30.0

READ = """
() => {
  const q = (id) => document.querySelector(`[data-testid="${id}"]`);
  return {
    path: location.pathname,
    loads: performance.getEntriesByType('navigation').length,
    call_state: q('call-status')?.dataset.state ?? null,
    stream_state: q('stream-state')?.dataset.state ?? null,
    client_state: q('client-state')?.textContent ?? null,
    session_time: q('session-time')?.textContent ?? null,
    speaking_seen: window.__lcSeen ?? [],
    recent: [...document.querySelectorAll('[data-testid="recent-tag"]')].map((li) => [li.dataset.id, li.dataset.state]),
  };
}
"""


RECORD_STATES = """
() => {
  // The page's own record of what it shows, stamped with its clock (Date.now(), the machine's
  // wall clock): the run's times come from it, not from when this process gets round to reading
  // the page (a busy machine delayed those reads by up to 2 s).
  if (window.__lcStates) return;
  const q = (id) => document.querySelector(`[data-testid="${id}"]`);
  const states = (window.__lcStates = []);
  let last = '';
  const record = () => {
    const state = [location.pathname.split('/')[2], q('call-status')?.dataset.state ?? null,
                   q('stream-state')?.dataset.state ?? null, q('client-state')?.textContent ?? null,
                   q('speaking')?.textContent ?? null];
    const key = JSON.stringify(state);
    if (key !== last) { last = key; states.push([Date.now() / 1000, ...state]); }
  };
  // every change of the page as it happens (a speaker shown for a moment too), and the address,
  // which the history API changes without touching the page
  new MutationObserver(record).observe(document.documentElement,
                                       { subtree: true, childList: true, characterData: true, attributes: true });
  setInterval(record, 50);
}
"""
RECORDED = "() => window.__lcStates"
"""What ``RECORD_STATES`` has recorded so far: [time, node, call state, stream state, client state, speaking]."""


def seen_by_pages(coach: list, client: list, killed: float, other: str) -> dict[str, float]:
    """When, after ``killed`` (wall clock), the pages showed each step of the move (``RECORD_STATES``
    records: [time, node, call state, stream state, client state, speaking])."""
    events = sorted([(r[0], "coach", r[1:]) for r in coach] + [(r[0], "client", r[1:]) for r in client],
                    key=lambda e: e[0])
    now = {"coach": [None] * 5, "client": [None] * 5}
    seen: dict[str, float] = {}
    for at, who, state in events:
        now[who] = state
        if at < killed:
            continue
        (c_node, c_call, c_stream, c_client, c_speaking), (k_node, k_call, *_) = now["coach"], now["client"]
        moved = c_node == other and k_node == other
        for key, ok in (("coach_moved", c_node == other), ("client_moved", k_node == other),
                        ("stream_live", moved and c_stream == "live"),
                        ("calls_live", moved and c_call == "live" and k_call == "live"),
                        # the sidebar's own states once its stream is live on the new node (before, it
                        # still shows what the dead node said last)
                        ("client_connected", "stream_live" in seen and c_client == "connected"),
                        ("client_speaking", "client_connected" in seen and c_speaking == "client")):
            if ok and key not in seen:
                seen[key] = round(at - killed, 2)
    return seen


def tag_saved(page, kind: str, timeout: float = 10.0) -> tuple[str | None, str | None]:
    """Click the sidebar's tag button ``kind``; the tag's id and its state once saved (or last seen)."""
    before = {i for i, _ in page.evaluate(READ)["recent"]}
    page.get_by_test_id(f"tag-{kind}").click()
    deadline = time.monotonic() + timeout
    new: list = []
    while time.monotonic() < deadline:
        new = [r for r in page.evaluate(READ)["recent"] if r[0] not in before]
        if new and new[0][1] == "saved":
            break
        time.sleep(0.1)
    return (new[0][0], new[0][1]) if new else (None, None)


def post(url: str, body: dict, cookie: str = "") -> tuple[dict, str]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **({"Cookie": cookie} if cookie else {})})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read()), (r.headers.get("Set-Cookie") or "").split(";", 1)[0]


def run(args, out: dict) -> None:
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()

    def mark(name: str) -> None:
        out["timings"][name] = round(time.monotonic() - t0, 2)

    work, artifacts = Path(args.work), Path(args.artifacts)
    work.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    nodes: dict[str, Server] = {}
    proxy = None
    pages: dict[str, Page] = {}
    try:
        for node_id in ("a", "b"):
            port = free_port()
            nodes[node_id] = Server(data, workers=0, coach=node_id == "a", port=port, log_name=f"node-{node_id}.log",
                                    extra=["--node-url", f"http://127.0.0.1:{port}", "--node-id", node_id])
        out["server_log"] = str(nodes["a"].log)
        proxy, url, _ = start_haproxy(work, nodes, timeout=20)
        mark("cluster_up")
        _, cookie = post(url + "/api/login", {"email": COACH_EMAIL, "password": COACH_PASSWORD})
        links, _ = post(url + "/api/sessions", {"video": False}, cookie)
        out["links"] = {k: links[k].split("#", 1)[0] for k in ("coach_url", "client_url")}
        files = audio_files(work)
        with sync_playwright() as pw:
            browsers = []
            try:
                for who in ("coach", "client"):
                    browser = pw.chromium.launch(executable_path=args.chromium, headless=True,
                                                 args=chromium_args(files[who]))
                    browsers.append(browser)
                    pages[who] = Page(browser, who, t0)
                coach, client = pages["coach"], pages["client"]
                coach.page.goto(url + links["coach_url"])
                coach.page.wait_for_function(DEVICES_READY)
                coach.page.evaluate(WATCH_READOUT)
                coach.page.evaluate(RECORD_STATES)
                coach.page.get_by_test_id("join").click()
                client.page.goto(url + links["client_url"])
                client.page.wait_for_function(DEVICES_READY)
                client.page.evaluate(RECORD_STATES)
                client.page.get_by_test_id("join").click()
                mark("joined")

                deadline = time.monotonic() + LIVE_TIMEOUT_S
                while time.monotonic() < deadline:
                    cs, ks = coach.page.evaluate(READ), client.page.evaluate(READ)
                    out["coach"], out["client"] = cs, ks
                    if cs["call_state"] == "live" and ks["call_state"] == "live" and "client" in cs["speaking_seen"]:
                        break
                    time.sleep(0.1)
                else:
                    raise RuntimeError("the call did not go live with the client speaking")
                mark("live")
                owner = cs["path"].split("/")[2]
                other = next(i for i in nodes if i != owner)
                out["owner"], out["other"] = owner, other
                out["tag_before"] = tag_saved(coach.page, "breakthrough")  # acknowledged by the node about to die
                out["before"] = {"coach": coach.page.evaluate(READ), "client": client.page.evaluate(READ)}
                nodes[owner].proc.kill()  # SIGKILL: no drain, no goodbye
                killed = time.monotonic()
                killed_wall = time.time()
                mark("killed")
                deadline = killed + MOVE_TIMEOUT_S
                while True:  # until the pages have shown every step of the move
                    recorded = {who: p.page.evaluate(RECORDED) for who, p in pages.items()}
                    seen = seen_by_pages(recorded["coach"], recorded["client"], killed_wall, other)
                    if len(seen) == 6 or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                out["after_kill_s"] = seen
                time.sleep(5)  # and after: does it stay so?
                out["states"] = {  # what each page showed from 1 s before the kill on, the times from the kill
                    who: [[round(r[0] - killed_wall, 2), *r[1:]] for r in p.page.evaluate(RECORDED)
                          if r[0] >= killed_wall - 1]
                    for who, p in pages.items()}
                out["after"] = {"coach": coach.page.evaluate(READ), "client": client.page.evaluate(READ)}
                out["tag_after"] = tag_saved(coach.page, "goal_clarity")  # through the proxy to the new node
                with sqlite3.connect(f"file:{data / 'livecoach.sqlite3'}?mode=ro", uri=True) as db:
                    out["tag_rows"] = db.execute("SELECT id, kind, deleted_at IS NULL FROM tags WHERE session_id = ? "
                                                 "ORDER BY clicked_at", (links["session"],)).fetchall()
                for who, p in pages.items():
                    p.page.screenshot(path=str(artifacts / f"{who}-after-move.png"))
                mark("done")
            finally:
                closing(pages, browsers, out, artifacts, "done")
    finally:
        if proxy is not None:
            proxy.kill()
            proxy.wait()
        out["node_logs"] = {i: n.stop()[-3000:] for i, n in nodes.items()}


def main() -> int:
    args = script_parser(__doc__).parse_args()
    out: dict = {"timings": {}, "console": {}, "websockets": {}}
    return report(run, args, out)


if __name__ == "__main__":
    sys.exit(main())

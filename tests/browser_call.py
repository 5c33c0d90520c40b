"""One real call between two headless Chromium browsers, for tests/test_browser.py.

Starts `livecoach serve` on loopback, opens the coach's page and the client's invite in two
Chromium processes (one each: the fake microphone's file is per process), joins both, and waits
until the call is live and the coach's sidebar shows the client speaking. It prints what it
observed as one JSON object on the last line of stdout; the test decides pass or fail.

Meant to run inside a network namespace that has only loopback (the test starts it with
`unshare -rn`), because Chromium gathers ICE candidates on every interface it sees.

    python tests/browser_call.py --topology direct --work /tmp/x --artifacts test-artifacts/browser-direct
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser_run import CHROMIUM
from conftest import track
from liveserver import Server
from livecoach.ingest import write_wav

RATE = 16000
LIVE_TIMEOUT_S = 30.0  # from the client's Join to: both live, client connected, client speaking
SHARE_TIMEOUT_S = 8.0  # then, for the session talk share to show a number

# Recorded on the page as it happens, so a short "client" between two polls is not missed.
WATCH_READOUT = """
() => {
  const seen = (window.__lcSeen = window.__lcSeen || []);
  const el = document.querySelector('[data-testid="speaking"]');
  if (!el || window.__lcWatching) return;
  window.__lcWatching = true;
  const note = () => { if (seen[seen.length - 1] !== el.textContent) seen.push(el.textContent); };
  note();
  new MutationObserver(note).observe(el, { childList: true, characterData: true, subtree: true });
}
"""

READ_STATE = """
() => {
  const q = (id) => document.querySelector(`[data-testid="${id}"]`);
  const text = (id) => q(id)?.textContent ?? null;
  const status = q('call-status');
  const remote = q('remote-video');
  return {
    call_state: status?.dataset.state ?? null,
    call_topology: status?.dataset.topology ?? null,
    call_text: status?.textContent ?? null,
    problem: q('problem') && !q('problem').hidden ? q('problem').textContent : null,
    speaking: text('speaking'),
    client_state: text('client-state'),
    coach_state: text('coach-state'),
    topology: text('topology'),
    stream_state: q('stream-state')?.dataset.state ?? null,
    session_time: text('session-time'),
    share_session: text('share-session'),
    share_session_client: text('share-session-client'),
    silence: text('silence'),
    speaking_seen: window.__lcSeen ?? [],
    remote: remote && {
      width: remote.videoWidth,
      height: remote.videoHeight,
      time: remote.currentTime,
      audio_tracks: remote.srcObject?.getAudioTracks().length ?? 0,
      video_tracks: remote.srcObject?.getVideoTracks().length ?? 0,
    },
  };
}
"""

# Chromium needs the same device opened and its preview showing before Join, or the call
# starts without a microphone.
DEVICES_READY = """
() => {
  const mic = document.querySelector('[data-testid="mic-select"]');
  const preview = document.querySelector('[data-testid="preview"]');
  return Boolean(mic && !mic.disabled && preview?.srcObject?.getAudioTracks().length);
}
"""

# What may only ever be on the coach's page.
SIDEBAR_IDS = ["sidebar", "stream-state", "recording-state", "speaking", "silence", "share-session", "share-window",
               "last-wait", "median-wait", "monologue", "tag-buttons", "recent-tags", "tags-waiting", "nudge",
               "client-state", "coach-state", "topology", "session-time"]



def audio_files(folder: Path) -> dict[str, Path]:
    """The client speaks (the 'clean' fixture, 4 s to 20 s); the coach is near-silent noise."""
    speech = track("clean", "client")[4 * RATE : 20 * RATE]
    noise = np.random.default_rng(3).normal(0.0, 32768 * 10 ** (-70 / 20), len(speech))
    return {
        "client": write_wav(folder / "client-speech.wav", speech),
        "coach": write_wav(folder / "coach-quiet.wav", np.clip(np.round(noise), -32768, 32767).astype(np.int16)),
    }


def chromium_args(wav: Path, y4m: Path | None = None) -> list[str]:
    """Chromium's flags for a browser whose fake microphone plays ``wav`` (looped). ``y4m``: a
    Y4M file for its fake camera instead of Chromium's built-in 640x480 pattern, which takes far
    more CPU to encode (tests/video_call.py gives each browser a tiny one)."""
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        *([f"--use-file-for-fake-video-capture={y4m}"] if y4m is not None else []),
        "--allow-loopback-in-peer-connection",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]


def where(location: dict) -> str:
    return f"{location.get('url', '')}:{location.get('lineNumber', '')}"


class Page:
    """A Playwright page with its console, errors and websockets recorded."""

    def __init__(self, browser, name: str, t0: float) -> None:
        self.name = name
        self.console: list[str] = []
        self.websockets: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 800})
        self.page.set_default_timeout(10000)  # each step; the whole run stays well inside the test's limit

        def stamp() -> str:
            return f"{time.monotonic() - t0:6.2f}s"

        self.page.on("console", lambda m: self.console.append(f"{stamp()} {m.type}: {m.text} ({where(m.location)})"))
        self.page.on("pageerror", lambda e: self.console.append(f"{stamp()} pageerror: {e}"))
        self.page.on("requestfailed", lambda r: self.console.append(f"{stamp()} requestfailed: {r.url} {r.failure}"))
        self.page.on("websocket", lambda ws: self.websockets.append(ws.url))
        self.page.on("response", lambda r: r.status >= 400 and self.console.append(f"{stamp()} http {r.status}: {r.url}"))

    def state(self) -> dict:
        return self.page.evaluate(READ_STATE)


def opening(args: argparse.Namespace, out: dict, topology: str):
    """What every browser run starts with: its start time and a clock for ``out["timings"]``, its
    folders, a server."""
    t0 = time.monotonic()

    def mark(name: str) -> None:
        out["timings"][name] = round(time.monotonic() - t0, 2)

    work = Path(args.work)
    artifacts = Path(args.artifacts)
    work.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    server = Server(work / "data", topology)
    out["server_log"] = str(server.log)
    mark("server_up")
    return t0, mark, work, artifacts, server


def closing(pages: dict[str, "Page"], browsers, out: dict, artifacts: Path, done: str) -> None:
    """What every browser run ends with: each page's console and websockets kept, what a page
    showed kept if the run failed before reaching the mark ``done``, the browsers closed."""
    for who, p in pages.items():
        out["console"][who] = p.console
        out["websockets"][who] = p.websockets
        if done not in out["timings"] and not p.page.is_closed():
            keep_failure(p, artifacts, out)
    for browser in browsers:
        browser.close()


def run(args: argparse.Namespace, out: dict) -> None:
    from playwright.sync_api import sync_playwright

    t0, mark, work, artifacts, server = opening(args, out, args.topology)
    files = audio_files(work)
    pages: dict[str, Page] = {}
    try:
        links = server.create_session(video=False)  # the cameras' recording is not what this run tests
        out["session"] = links["session"]
        with sync_playwright() as pw:
            browsers = []
            try:
                for who in ("coach", "client"):
                    browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=chromium_args(files[who]))
                    browsers.append(browser)
                    pages[who] = Page(browser, who, t0)
                mark("browsers_up")
                coach, client = pages["coach"], pages["client"]

                coach.page.goto(server.url + links["coach_url"])
                coach.page.wait_for_function(DEVICES_READY)
                coach.page.evaluate(WATCH_READOUT)
                coach.page.get_by_test_id("join").click()
                mark("coach_joined")

                client.page.goto(server.url + links["client_url"])
                client.page.wait_for_function(DEVICES_READY)
                out["client_notice_visible"] = client.page.get_by_test_id("notice").is_visible()
                out["client_notice"] = client.page.get_by_test_id("notice").text_content()
                out["client_sidebar_elements"] = [i for i in SIDEBAR_IDS if client.page.get_by_test_id(i).count()]
                client.page.get_by_test_id("join").click()
                mark("client_joined")

                deadline = time.monotonic() + LIVE_TIMEOUT_S
                done = False
                while time.monotonic() < deadline:
                    cs, ks = coach.state(), client.state()
                    out["coach"], out["client"] = cs, ks
                    live = cs["call_state"] == "live" and ks["call_state"] == "live"
                    for key, ok in (("live", live),
                                    ("client_connected", cs["client_state"] == "connected"),
                                    ("client_speaking", "client" in cs["speaking_seen"])):
                        if ok and key not in out["timings"]:
                            mark(key)
                    done = live and cs["client_state"] == "connected" and "client" in cs["speaking_seen"]
                    if done:
                        break
                    time.sleep(0.1)
                out["reached_live_and_speaking"] = done
                if done:
                    # The sidebar the moment it first showed the client speaking.
                    coach.page.screenshot(path=str(artifacts / "coach-speaking.png"))
                    deadline = time.monotonic() + SHARE_TIMEOUT_S
                    while time.monotonic() < deadline and not coach.state()["share_session"].endswith("%"):
                        time.sleep(0.1)
                    time.sleep(1.0)  # a little more talk in the share
                    out["coach"], out["client"] = coach.state(), client.state()
                    mark("share_read")
                    for who, p in pages.items():
                        p.page.screenshot(path=str(artifacts / f"{who}-call.png"))
            finally:
                closing(pages, browsers, out, artifacts, "share_read")
    finally:
        server.stop()
        mark("stopped")
        out["packet_samples"] = packet_lengths(work / "data" / "recordings")


def packet_lengths(recordings: Path) -> dict[str, dict[int, int]]:
    """For each audio recording the server kept: how many of its packets have each length (48 kHz
    samples), i.e. what the browser sent the server, as the recording keeps packets as received."""
    import av

    from livecoach.opus import packet_samples

    found: dict[str, dict[int, int]] = {}
    for path in sorted(p for p in recordings.rglob("*-audio-*") if p.suffix in (".webm", ".ogg")):
        counts: dict[int, int] = {}
        try:
            with av.open(str(path)) as container:
                for packet in container.demux(audio=0):
                    if packet.size:
                        n = packet_samples(bytes(packet))
                        counts[n] = counts.get(n, 0) + 1
        except av.FFmpegError as err:
            counts[-1] = 0
            found[f"{path.name} (unreadable: {err})"] = counts
            continue
        found[path.name] = counts
    return found


def keep_failure(p: Page, artifacts: Path, out: dict) -> None:
    """After a failure: the page's last state and a screenshot, as far as they can be had."""
    try:
        out[p.name] = p.state()
        p.page.screenshot(path=str(artifacts / f"{p.name}-failed.png"))
    except Exception as e:  # noqa: BLE001 - the page may be gone; the first error is what matters
        p.console.append(f"(no state or screenshot after the failure: {e})")



def report(run, args: argparse.Namespace, out: dict) -> int:
    """Runs a browser run; any failure goes into the result with everything seen so far. The
    result, with the end of the server's log, is kept as result.json and printed as JSON."""
    try:
        run(args, out)
    except Exception:  # noqa: BLE001
        out["error"] = traceback.format_exc()
    log = Path(out.get("server_log", "/nonexistent"))
    out["server_log_tail"] = log.read_text(errors="replace")[-6000:] if log.exists() else ""
    (Path(args.artifacts) / "result.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out), flush=True)
    return 0


def script_parser(doc: str, artifacts: str = "where screenshots go") -> argparse.ArgumentParser:
    """The arguments every browser run takes from browser_run.run_script."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--work", required=True, help="a scratch folder (audio files, the server's data and log)")
    ap.add_argument("--artifacts", required=True, help=artifacts)
    ap.add_argument("--chromium", default=CHROMIUM)
    return ap


def main() -> int:
    ap = script_parser(__doc__)
    ap.add_argument("--topology", choices=["direct", "relay"], default="direct")
    args = ap.parse_args()
    out: dict = {"topology": args.topology, "timings": {}, "console": {}, "websockets": {}}
    return report(run, args, out)


if __name__ == "__main__":
    sys.exit(main())

"""Importing a recorded call (docs/exports.md): the fixtures through ``livecoach import`` give a
session whose figures are ``livecoach analyze``'s exactly, kept like a live call (recordings that
play, level strips, samples, an event log the review reads); bad files leave nothing behind; and
the same through the server's upload."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import track, track_path
from liveserver import Server, add_coach
from livecoach.cli import main
from livecoach.importing import CallFiles, ImportFailed, import_call
from livecoach.ingest import write_wav
from livecoach.recordings.storage import FolderStorage
from livecoach.review_source import load_review
from livecoach.store import Store

ROLES = ("coach", "client")


def run(*args):
    """``livecoach`` in a process of its own, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "livecoach", *map(str, args)], capture_output=True, text=True)


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def livecoach(capsys):
    """``livecoach`` run in this process (the same code as the command, without a second or two of
    starting Python each time)."""
    def call(*args) -> Done:
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as stop:  # argparse's usage errors
            code = stop.code
        out, err = capsys.readouterr()
        return Done(code, out, err)

    return call


def one_line_error(done) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def nothing_kept(data: Path) -> None:
    """No session row and no file: not even a staging folder."""
    store = Store(data / "livecoach.sqlite3")
    try:
        assert store.retention_rows() == []
    finally:
        store.close()
    recordings = data / "recordings"
    assert not recordings.exists() or list(recordings.iterdir()) == []


def analyze_json(livecoach, *inputs) -> dict:
    done = livecoach("analyze", *inputs, "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def bleed(tmp_path_factory):
    """The bleed fixture imported with ``livecoach import --format json``."""
    data = tmp_path_factory.mktemp("data")
    coach, client = track_path("bleed", "coach"), track_path("bleed", "client")
    done = run("import", "--coach", coach, "--client", client, "--label", "Sam", "--client-name", "Sam K.",
               "--data", data, "--format", "json", "--url", "https://coach.example.org/")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    return data, answer


def test_json_answer_names_the_session_and_its_review(bleed):
    data, answer = bleed
    assert set(answer) == {"session", "review"}
    store = Store(data / "livecoach.sqlite3")
    try:
        stored = store.get_session(answer["session"])
        assert (stored.label, stored.client, stored.origin, stored.video_recording) == ("Sam", "Sam K.", "import", False)
        prefix = f"https://coach.example.org/s/{answer['session']}/review#"
        assert answer["review"].startswith(prefix)
        token = answer["review"][len(prefix):]
        assert store.role_for(answer["session"], token) == "coach"
        # Nobody joins a call that is over: the session has no client invite.
        assert store.invite_expires_at(answer["session"]) is None
    finally:
        store.close()


def test_talk_share_and_every_figure_equal_analyze_exactly(bleed, livecoach):
    data, answer = bleed
    analysis = analyze_json(livecoach, "--coach", track_path("bleed", "coach"), "--client", track_path("bleed", "client"))
    exported = livecoach("export", answer["session"], "--data", data, "--format", "json")
    assert exported.returncode == 0, exported.stderr
    doc = json.loads(exported.stdout)
    assert doc["metrics"]["talk_share_coach"] == analysis["metrics"]["talk_share_coach"]
    assert doc["metrics"] == analysis["metrics"]
    assert doc["timeline"] == analysis["timeline"]
    assert doc["session"]["duration_s"] == analysis["duration"]
    store = Store(data / "livecoach.sqlite3")
    try:
        review = json.loads(load_review(store, answer["session"], lambda name: name))
    finally:
        store.close()
    assert review["summary"]["metrics"] == analysis["metrics"]


def test_the_rttm_export_equals_analyze_rttm(bleed, livecoach):
    data, answer = bleed
    analyzed = livecoach("analyze", "--coach", track_path("bleed", "coach"), "--client", track_path("bleed", "client"),
                         "--format", "rttm")
    exported = run("export", answer["session"], "--data", data, "--format", "rttm")  # the real command's bytes
    assert analyzed.returncode == exported.returncode == 0
    assert exported.stdout == analyzed.stdout and analyzed.stdout.count("\n") > 15


def test_the_session_is_kept_like_a_live_call(bleed):
    """Its recordings play (WebM Opus with a duration and the whole call), level strips of 100 ms,
    a sample a second, and the events the review reads."""
    data, answer = bleed
    session = answer["session"]
    store = Store(data / "livecoach.sqlite3")
    try:
        recordings = store.recordings(session)
        review = json.loads(load_review(store, session, lambda name: name))
        samples = store.indicator_samples(session)
        events = store.events(session)
    finally:
        store.close()
    duration = review["session"]["duration_s"]
    assert review["session"]["state"] == "ended" and duration == pytest.approx(87.7, abs=0.2)
    assert sorted((r["participant"], r["kind"], r["state"], r["media_type"], r["start_s"]) for r in recordings) == [
        ("client", "audio", "finished", "audio/webm", 0.0), ("coach", "audio", "finished", "audio/webm", 0.0)]
    folder = data / "recordings" / session
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [r["name"] for r in recordings] + [f"{r['id']}.peaks" for r in recordings])
    for r in recordings:
        assert r["duration_s"] == pytest.approx(duration, abs=0.011)
        with av.open(str(folder / r["name"])) as media:
            assert media.format.name.startswith("matroska") and media.streams.audio[0].codec_context.name == "opus"
            assert media.duration / 1e6 == pytest.approx(r["duration_s"], abs=0.05)
            decoded = sum(f.samples for f in media.decode(audio=0)) / media.streams.audio[0].codec_context.sample_rate
            assert decoded == pytest.approx(r["duration_s"], abs=0.05)
        peaks = (folder / f"{r['id']}.peaks").read_bytes()
        assert len(peaks) == int(np.ceil(r["duration_s"] * 10 - 1e-6)) and max(peaks) > 150 and min(peaks) < 60
        assert (folder / r["name"]).stat().st_mode & 0o777 == 0o600
    assert [s.session_time for s in samples] == [float(t) for t in range(1, int(duration) + 1)]
    assert samples[-1].share_session == pytest.approx(review["summary"]["metrics"]["talk_share_coach"], abs=0.002)
    kinds = [e["kind"] for e in events]
    assert kinds.count("joined") == kinds.count("left") == 2 and kinds.count("imported") == 1
    speech = [e for e in events if e["kind"] == "speech"]
    assert len(speech) == sum(len(review["segments"][p]) for p in ROLES)
    imported = next(e for e in events if e["kind"] == "imported")
    assert imported["sources"] == {"coach": "coach.opus", "client": "client.opus"}


def test_the_samples_are_what_the_metrics_say_at_each_second():
    """An import's once-a-second samples (the review's "what you saw live") equal metrics.compute
    of the timeline as it stood at that second, a 30 s window here so that it moves."""
    from livecoach.analyze import analyze_tracks
    from livecoach.config import TimelineConfig
    from livecoach.importing import indicator_samples
    from livecoach.metrics import compute
    from livecoach.timeline import build_timeline

    analysis = analyze_tracks(track_path("realcall", "coach"), track_path("realcall", "client"))
    spans = {p: [(s.start, s.end) for s in analysis.timeline.segments[p]] for p in ROLES}
    samples = indicator_samples(analysis.timeline, 30.0)
    assert len(samples) == int(analysis.duration)
    for x in samples:
        t = x.session_time
        speaking = frozenset(p for p in ROLES if any(a <= t < b for a, b in spans[p]))
        so_far = build_timeline({p: [(a, min(b, t)) for a, b in spans[p] if a < t] for p in ROLES}, t,
                                speaking=speaking)
        m = compute(so_far, TimelineConfig(window_s=30.0))
        assert x.speaking == list(m.speaking)
        assert x.share_session == pytest.approx(m.talk_share_coach, abs=0.0005)
        assert x.share_window == pytest.approx(m.window_talk_share_coach, abs=0.0005)
        assert x.current_silence == pytest.approx(m.current_silence, abs=0.0011)


def test_a_stereo_file_imports_as_its_two_channels(tmp_path, livecoach):
    stereo = tmp_path / "call (2).wav"
    write_wav(stereo, np.stack([track("clean", "coach"), track("clean", "client")], axis=1))
    data = tmp_path / "data"
    done = livecoach("import", "--stereo", stereo, "--label", "Ana", "--data", data, "--progress", "bar",
               "--date", "2026-03-01T10:30")
    assert done.returncode == 0, done.stderr
    assert "importing" in done.stderr and "100%" in done.stderr  # the bar, on standard error
    session = done.stdout.split()[1]
    assert f"/s/{session}/review#" in done.stdout and "talk balance coach 6" in done.stdout
    analysis = analyze_json(livecoach, "--stereo", stereo)
    exported = json.loads(livecoach("export", session, "--data", data, "--format", "json").stdout)
    assert exported["metrics"] == analysis["metrics"] and exported["sources"] == {"stereo": "call (2).wav"}
    rttm = livecoach("export", session, "--data", data, "--format", "rttm").stdout
    assert rttm == livecoach("analyze", "--stereo", stereo, "--format", "rttm").stdout
    assert rttm.split()[1] == "call_(2)"
    from datetime import datetime
    assert exported["session"]["created_at"] == datetime(2026, 3, 1, 10, 30).timestamp()


# -- bad inputs leave nothing --------------------------------------------------------------------


def truncated(tmp_path: Path) -> Path:
    data = track_path("clean", "client").read_bytes()
    out = tmp_path / "client-cut.opus"
    out.write_bytes(data[: len(data) * 2 // 5])  # a download that stopped at 40%
    return out


def headers_only(tmp_path: Path) -> Path:
    out = tmp_path / "client-headers.opus"
    out.write_bytes(track_path("clean", "client").read_bytes()[:180])
    return out


def empty(tmp_path: Path) -> Path:
    out = tmp_path / "client.m4a"
    out.write_bytes(b"")
    return out


def not_audio(tmp_path: Path) -> Path:
    out = tmp_path / "notes.wav"
    out.write_text("my notes of the session, not a recording\n" * 50)
    return out


def shorter(tmp_path: Path) -> Path:
    """Another call's recording: 30 s against the coach's 89 s."""
    return write_wav(tmp_path / "other-call.wav", track("fan", "client")[: 30 * 16000])


@pytest.mark.parametrize("make, words", [
    (truncated, "not recordings of the same call"),
    (headers_only, "client-headers.opus"),
    (empty, "empty"),
    (not_audio, "notes.wav"),
    (shorter, "lasts 1:28 and"),
    (lambda tmp_path: track_path("clean", "coach"), "the same recording"),
])
def test_a_bad_client_file_is_one_line_and_leaves_nothing(tmp_path, make, words, livecoach):
    data = tmp_path / "data"
    done = livecoach("import", "--coach", track_path("clean", "coach"), "--client", make(tmp_path), "--label", "x",
               "--data", data)
    assert words in one_line_error(done)
    nothing_kept(data)


def test_mono_given_as_stereo_is_refused(tmp_path, livecoach):
    data = tmp_path / "data"
    msg = one_line_error(livecoach("import", "--stereo", track_path("clean", "coach"), "--label", "x", "--data", data))
    assert "only 1 channel" in msg and "two" in msg
    nothing_kept(data)
    usage = livecoach("import", "--coach", track_path("clean", "coach"), "--label", "x", "--data", data)
    assert usage.returncode == 2 and "--client" in usage.stderr
    nothing_kept(data)


@pytest.mark.parametrize("when", ["during the analysis", "while storing"])
def test_a_failure_midway_removes_every_row_and_file(tmp_path, when, monkeypatch):
    """Ctrl-C in the middle of the audio, or the database failing once the files are written: the
    staging folder, the session's folder and its row all go."""
    data = tmp_path / "data"
    store, storage = Store(data / "livecoach.sqlite3"), FolderStorage(data / "recordings")
    files = CallFiles(coach=track_path("clean", "coach"), client=track_path("clean", "client"))
    seen = []

    def progress(fraction):
        seen.append(fraction)
        if when == "during the analysis" and len(seen) == 3:
            assert [p.name for p in (data / "recordings").iterdir()][0].startswith("import-")  # being written
            raise KeyboardInterrupt

    if when == "while storing":
        def broken(*args, **kwargs):
            raise RuntimeError("database is locked")
        monkeypatch.setattr(store, "add_imported_call", broken)
    try:
        with pytest.raises(KeyboardInterrupt if when == "during the analysis" else ImportFailed):
            import_call(store, storage, files, label="x", progress=progress)
    finally:
        store.close()
    nothing_kept(data)


# -- through the server ----------------------------------------------------------------------------


class Browser:
    """What the import form sends: JSON and files with the login cookie."""

    def __init__(self, server: Server, cookie: str) -> None:
        self.server, self.cookie = server, cookie

    def request(self, method: str, path: str, body=None, raw: bytes | None = None, headers=None):
        sent = {"Cookie": self.cookie, "Origin": self.server.url} | (headers or {})
        data = raw
        if body is not None:
            data, sent["Content-Type"] = json.dumps(body).encode(), "application/json"
        req = urllib.request.Request(self.server.url + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                return res.status, res.headers, res.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()

    def json(self, method: str, path: str, body=None, raw=None):
        status, _, data = self.request(method, path, body, raw)
        return status, json.loads(data)

    def start(self, files: dict[str, Path], label: str = "Alex", layout: str = "tracks"):
        announced = {part: {"name": path.name, "size": path.stat().st_size} for part, path in files.items()}
        return self.json("POST", "/api/imports", {"label": label, "layout": layout, "files": announced,
                                                   "recorded_at": 1795000000.0})

    def finish(self, job: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, answer = self.json("GET", f"/api/imports/{job}")
            assert status == 200
            if answer["state"] in ("done", "failed", "cancelled"):
                return answer
            time.sleep(0.1)
        raise AssertionError("the import did not finish")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("server")
    add_coach(data, "other@example.com", "another coach's password")
    s = Server(data, workers=0)
    yield s, data
    s.stop()


def test_an_upload_imports_the_call_like_the_command(server, livecoach):
    s, data = server
    browser = Browser(s, s.login())
    coach, client = track_path("clean", "coach"), track_path("clean", "client")
    status, job = browser.start({"coach": coach, "client": client})
    assert status == 201 and job["state"] == "uploading" and job["total"] == coach.stat().st_size + client.stat().st_size
    for part, path in (("coach", coach), ("client", client)):
        status, answer = browser.json("PUT", job["upload"][part], raw=path.read_bytes())
        assert status == 200 and answer["files"][part]["received"] == path.stat().st_size
    assert answer["state"] in ("queued", "analysing", "done")
    done = browser.finish(job["import"])
    assert done["state"] == "done" and done["progress"] == 1.0 and done["error"] is None
    session, token = done["session"], done["review"].split("#", 1)[1]
    assert done["review"] == f"/s/{session}/review#{token}"

    # The review opens with the coach's token, and its figures are analyze's.
    review = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"{s.url}/api/sessions/{session}/review", headers={"Authorization": f"Bearer {token}"})).read())
    expected = analyze_json(livecoach, "--coach", coach, "--client", client)
    assert review["summary"]["metrics"]["talk_share_coach"] == expected["metrics"]["talk_share_coach"]
    assert review["summary"]["metrics"] == expected["metrics"]
    assert review["session"]["created_at"] == 1795000000.0 and len(review["recordings"]) == 2
    media = urllib.request.urlopen(s.url + review["recordings"][0]["url"])
    assert media.headers["Content-Type"] == "audio/webm" and len(media.read()) > 100_000

    # A tag added in replay, then every export as a download, each in the access log.
    status, _, _ = browser.request("PUT", f"/api/sessions/{session}/tags/review-tag-1",
                                   {"kind": "breakthrough", "label": "Breakthrough", "session_time": 20.0,
                                    "origin": "review"})
    assert status == 201
    for fmt, kind in [("json", "application/json"), ("csv", "application/zip"), ("vtt", "text/vtt"),
                      ("rttm", "text/plain"), ("audacity", "text/plain")]:
        status, headers, body = browser.request("GET", f"/api/sessions/{session}/export?format={fmt}")
        assert status == 200 and headers["Content-Type"].startswith(kind)
        assert headers["Content-Disposition"].startswith('attachment; filename="livecoach-Alex-')
        assert headers["Cache-Control"] == "no-store" and body
    vtt = browser.request("GET", f"/api/sessions/{session}/export?format=vtt")[2].decode()
    assert "tag-review-tag-1\n00:00:20.000 --> 00:00:25.000\nBreakthrough\n" in vtt
    status, log = browser.json("GET", f"/api/sessions/{session}/access-log")
    actions = [(e["action"], e["detail"]) for e in log["entries"]]
    assert actions[0] == ("imported the call", "coach.opus, client.opus")
    assert ("exported the session", "vtt") in actions
    # Only the session's coach exports it: not the client's link, not nobody.
    status, _, _ = Browser(s, "").request("GET", f"/api/sessions/{session}/export?format=json")
    assert status == 401
    status, _, _ = browser.request("GET", f"/api/sessions/{session}/export?format=xml")
    assert status == 400
    # The upload folder is gone; the session's folder holds its recordings only.
    assert [p.name for p in (data / "recordings").iterdir()] == [session]


def test_bad_uploads_get_a_clear_answer_and_leave_nothing(server):
    s, data = server
    browser = Browser(s, s.login())
    folders = data / "recordings"  # made by the first recording: earlier tests of this module, or none
    before = sorted(p.name for p in folders.iterdir()) if folders.exists() else []
    store = Store(data / "livecoach.sqlite3")
    try:
        sessions_before = len(store.retention_rows())
    finally:
        store.close()
    coach = track_path("clean", "coach")

    # Mono given as stereo: refused by the import, with the file's own name.
    status, job = browser.start({"stereo": coach}, layout="stereo")
    assert status == 201
    browser.json("PUT", job["upload"]["stereo"], raw=coach.read_bytes())
    failed = browser.finish(job["import"])
    assert failed["state"] == "failed" and failed["session"] is None
    assert failed["error"].startswith("coach.opus: has only 1 channel") and "\n" not in failed["error"]

    # An empty file is refused before any upload; a body of the wrong length is refused.
    status, answer = browser.json("POST", "/api/imports", {"label": "x", "layout": "stereo",
                                                             "files": {"stereo": {"name": "a.m4a", "size": 0}}})
    assert status == 400 and "empty" in answer["error"]["message"]
    status, job = browser.start({"coach": coach, "client": coach})
    status, answer = browser.json("PUT", job["upload"]["coach"], raw=coach.read_bytes()[:1000])
    assert status == 400 and "Content-Length" in answer["error"]["message"]

    # A cancelled import stops and keeps nothing.
    status, job = browser.start({"coach": coach, "client": track_path("clean", "client")})
    status, answer = browser.json("DELETE", f"/api/imports/{job['import']}")
    assert status == 200 and answer["state"] == "cancelled"
    status, answer = browser.json("PUT", job["upload"]["coach"], raw=coach.read_bytes())
    assert status == 409

    # Only a logged-in coach imports, and sees only their own imports.
    status, answer = Browser(s, "").json("POST", "/api/imports", {"label": "x", "layout": "stereo", "files": {}})
    assert status == 401
    s.cookie = ""
    other = Browser(s, s.login("other@example.com", "another coach's password"))
    s.cookie = ""
    assert other.json("GET", f"/api/imports/{job['import']}")[0] == 404

    time.sleep(0.2)
    assert (sorted(p.name for p in folders.iterdir()) if folders.exists() else []) == before
    store = Store(data / "livecoach.sqlite3")
    try:
        assert len(store.retention_rows()) == sessions_before  # no session left by a bad upload
    finally:
        store.close()

"""Recording live calls end to end: a real server process, real aiortc peers on loopback, the
recorded files opened by PyAV and analysed by the same engine as `livecoach analyze`.

- A call is recorded per participant, aligned on the session clock: the recording, analysed
  offline, gives the live session's talk share within 1 point.
- A coach's pause shows on both participants' connections and as a gap in the files.
- Files are served only through signed links, with byte ranges; the review API only to the coach.
- A worker killed mid-call leaves recordings that play to within 5 s of the kill, and the
  session is marked interrupted; a call that goes on after it keeps one session clock, with
  the gap marked.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
import urllib.error
import urllib.request
from email.message import Message

import av
import numpy as np
import pytest

from liveserver import Server, excerpt, held, together
from livecoach.analyze import analyze_tracks
from livecoach.ingest import write_wav
from livecoach.live.ice import restrict_host_addresses
from livecoach.live.simpeer import IndicatorReader, SimPeer

SECONDS = 40.0
PAUSE_AT, PAUSE_S = 15.0, 3.0


@pytest.fixture(autouse=True)
def loopback_only():
    restrict_host_addresses(["127.0.0.1"])
    yield
    restrict_host_addresses([])


def request(server: Server, path: str, token: str | None = None, headers: dict | None = None,
            method: str = "GET", body: dict | None = None) -> tuple[int, Message, bytes]:
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(server.url + path, headers=h, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def review(server: Server, sid: str, token: str) -> dict:
    status, _, body = request(server, f"/api/sessions/{sid}/review", token)
    assert status == 200, body
    return json.loads(body)


async def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.5)
    raise AssertionError(f"not within {timeout:g} s: {what}")


def decoded_16k(path: str) -> np.ndarray:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
    with av.open(path) as c:
        return np.concatenate([f.to_ndarray().reshape(-1) for fr in c.decode(audio=0) for f in resampler.resample(fr)])


def share_outside(segments: dict[str, list[tuple[float, float]]], a: float, b: float) -> float:
    """The coach's talk share, leaving out the span from ``a`` to ``b``."""
    def talk(segs):
        return sum(max(0.0, e - s) - max(0.0, min(e, b) - max(s, a)) for s, e in segs)
    coach, client = talk(segments["coach"]), talk(segments["client"])
    return coach / (coach + client)


def recording_status(message: dict) -> dict:
    """The recording's status in an indicator message: a ``recording`` event, or a snapshot's."""
    if message["type"] == "recording":
        return message
    return message.get("recording") or {"state": None}


async def start_call(srv: Server, tmp_path, fixture: str, seconds: float) -> tuple[str, str, str, SimPeer, SimPeer, dict]:
    """A session whose two participants join and start playing ``seconds`` of a fixture
    together: (session, coach token, client token, coach, client, their files)."""
    sid, coach_token, client_token = srv.new_session()
    files = {who: excerpt(fixture, who, seconds, tmp_path) for who in ("coach", "client")}
    start = asyncio.Event()
    coach = SimPeer(srv.url, sid, coach_token, str(files["coach"]), start=start)
    client = SimPeer(srv.url, sid, client_token, str(files["client"]), start=start)
    await asyncio.gather(coach.join(), client.join())
    await asyncio.gather(coach.server_connected(), client.server_connected())
    start.set()
    return sid, coach_token, client_token, coach, client, files


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path / "data", "direct", workers=0)
    yield srv
    log = srv.stop()
    assert "Traceback" not in log, log


async def test_a_recorded_call_is_the_call_aligned_and_paused_where_the_coach_paused(server, tmp_path):
    sid, coach_token, client_token = server.new_session()
    # "bleed" (echo both ways): the recording must keep the two tracks aligned for the echo to be
    # told apart from speech.
    files = {who: excerpt("bleed", who, SECONDS, tmp_path) for who in ("coach", "client")}
    reader = IndicatorReader(server.url, sid, coach_token)
    await reader.open()
    start = asyncio.Event()
    coach = SimPeer(server.url, sid, coach_token, str(files["coach"]), start=start)
    client = SimPeer(server.url, sid, client_token, str(files["client"]), start=start)
    try:
        welcome = await coach.join()
        assert welcome["recording"]["state"] == "on" and welcome["recording"]["audio"] == ["coach"]
        await client.join()
        await asyncio.gather(coach.server_connected(), client.server_connected())
        start.set()
        await asyncio.sleep(PAUSE_AT)
        assert reader.latest()["recording"]["state"] == "on"
        # A pause and a resume: both participants hear of it, and it lands on the timeline.
        await coach._send({"type": "recording", "paused": True})
        await asyncio.sleep(PAUSE_S)
        assert reader.latest()["recording"]["state"] == "paused"
        await coach._send({"type": "recording", "paused": False})
        # The client may not pause the recording.
        await client._send({"type": "recording", "paused": True})
        await asyncio.sleep(SECONDS - PAUSE_AT - PAUSE_S + 1.5)
        live = reader.latest()["metrics"]
        for peer in (coach, client):
            states = [m["state"] for m in peer.messages if m["type"] == "recording"]
            assert "paused" in states and states[-1] == "on", peer.messages
        assert any(m.get("code") == "forbidden" for m in client.messages if m["type"] == "error"), client.messages
    finally:
        await asyncio.gather(coach.leave(), client.leave())
        await reader.close()

    data = await wait_for(lambda: (lambda d: d if len(d["recordings"]) == 2 and all(
        r["state"] == "finished" for r in d["recordings"]) else None)(review(server, sid, coach_token)),
        30, "both recordings finished")
    recs = {r["participant"]: r for r in data["recordings"]}
    assert data["pauses"] and data["pauses"][0][1] is not None and data["pauses"][0][1] - data["pauses"][0][0] >= 1.5
    tracks = {}
    for who, rec in recs.items():
        assert rec["kind"] == "audio" and rec["media_type"] == "audio/webm"
        status, headers, body = request(server, rec["url"])
        assert status == 200 and headers["Accept-Ranges"] == "bytes"
        path = tmp_path / f"{who}.webm"
        path.write_bytes(body)
        with av.open(str(path)) as c:
            assert c.duration / 1e6 == pytest.approx(rec["duration_s"], abs=0.1)
        # The pause is a gap of silence in each file, where the session clock says.
        assert any(a <= data["pauses"][0][0] + 0.5 and b >= data["pauses"][0][1] - 0.5 for a, b in rec["gaps"]), (rec, data["pauses"])
        # Placed on the session clock: the file from its start_s, the time before it silent.
        pcm = decoded_16k(str(path))
        tracks[who] = np.concatenate([np.zeros(int(round(rec["start_s"] * 16000)), np.int16), pcm])
    n = max(t.size for t in tracks.values())
    wavs = {who: write_wav(tmp_path / f"rec-{who}.wav", np.pad(t, (0, n - t.size))) for who, t in tracks.items()}
    offline = analyze_tracks(wavs["coach"], wavs["client"])
    # The recording is the call: its analysis gives the live talk share within 1 point, with
    # the paused span taken out of both (the live analysis went on through the pause).
    a, b = data["pauses"][0][0] - 0.5, data["pauses"][0][1] + 0.5
    live_segments = {who: [tuple(s) for s in segs] for who, segs in data["segments"].items()}
    offline_segments = {who: [(s.start, s.end) for s in segs] for who, segs in offline.timeline.segments.items()}
    assert share_outside(live_segments, 0, 0) == pytest.approx(live["talk_share_coach"], abs=0.005), (
        live["talk_time"], {w: sum(e - s for s, e in x) for w, x in live_segments.items()}, data["summary"]["metrics"]["talk_time"])
    # The recording is the audio that was sent, aligned: analysed offline it gives the talk share
    # of the original files and that of the live session within one point (the paused span,
    # missing from the recording, left out of all three; the engine relearns the echo after the
    # pause's silence, which moves the share by a few tenths).
    original = analyze_tracks(files["coach"], files["client"])
    original_segments = {who: [(s.start, s.end) for s in segs] for who, segs in original.timeline.segments.items()}
    # Both files started playing at one moment, which the earlier recording's start marks.
    shift = min(r["start_s"] for r in recs.values())
    why = (original.metrics.talk_share_coach, offline.metrics.talk_share_coach, live["talk_share_coach"], shift)
    assert share_outside(offline_segments, a, b) == pytest.approx(
        share_outside(original_segments, a - shift, b - shift), abs=0.01), why
    assert share_outside(offline_segments, a, b) == pytest.approx(share_outside(live_segments, a, b), abs=0.01), why

    # Range requests: exactly the bytes asked for.
    rec = recs["coach"]
    whole = request(server, rec["url"])[2]
    status, headers, part = request(server, rec["url"], headers={"Range": "bytes=100-1099"})
    assert status == 206 and part == whole[100:1100] and headers["Content-Range"] == f"bytes 100-1099/{len(whole)}"
    status, headers, part = request(server, rec["url"], headers={"Range": "bytes=-500"})
    assert status == 206 and part == whole[-500:]
    assert request(server, rec["url"], headers={"Range": f"bytes={len(whole)}-"})[0] == 416
    # Only with the signed link: no key, a wrong key, another file's key.
    bare = rec["url"].split("?")[0]
    assert request(server, bare)[0] == 403
    assert request(server, rec["url"][:-4] + "0000")[0] == 403
    other = recs["client"]["url"].split("?")[1]
    assert request(server, f"{bare}?{other}")[0] == 403
    # The review API: the coach only.
    assert request(server, f"/api/sessions/{sid}/review", client_token)[0] == 403
    assert request(server, f"/api/sessions/{sid}/review", "not-a-token")[0] == 401
    assert request(server, f"/api/sessions/{sid}/review")[0] == 401
    # Peaks: one byte per 100 ms of the file.
    status, _, peaks = request(server, rec["peaks_url"])
    assert status == 200 and len(peaks) == pytest.approx(rec["duration_s"] * 10, abs=2) and max(peaks) > 100


@pytest.fixture(scope="module")
def killed_workers(tmp_path_factory) -> dict:
    """The two scenarios of a killed worker, at the same time (each waits for its recordings to
    go stale, 15 s): liveserver.together."""
    return together(tmp_path_factory, killed=worker_killed, goes_on=call_goes_on_after_its_worker_was_killed)


def test_a_worker_killed_mid_call_leaves_playable_recordings_and_an_interrupted_session(killed_workers):
    held(killed_workers["killed"])


def test_a_call_that_goes_on_after_its_worker_was_killed_keeps_one_clock_with_the_gap_marked(killed_workers):
    """The worker is killed 10 s into a call and both participants join again, as their pages do
    when their websockets reconnect. The session's clock goes on from where it was stored plus
    the time the call was down: every event, sample, tag and recording after the restart comes
    after all before it, by about that time, and the review shows one session with the gap in
    it. The tags acknowledged before the kill are all there."""
    held(killed_workers["goes_on"])


async def worker_killed(tmp_path) -> None:
    srv = await asyncio.to_thread(Server, tmp_path / "data", "direct", workers=1)  # not holding the other scenario's call
    sid, coach_token, _, coach, client, _ = await start_call(srv, tmp_path, "clean", 30)
    try:
        await asyncio.sleep(15.0)
        worker = srv.get("/healthz")["workers"][0]["pid"]
        os.kill(worker, signal.SIGKILL)
        killed_at = 15.0
        await asyncio.gather(coach.close(), client.close())
        data = await wait_for(lambda: (lambda d: d if d["recordings"] and d["interruptions"] and all(
            r["state"] == "interrupted" for r in d["recordings"]) else None)(review(srv, sid, coach_token)),
            45, "the recordings finished as interrupted")
        for rec in data["recordings"]:
            status, _, body = request(srv, rec["url"])
            assert status == 200
            path = tmp_path / f"{rec['participant']}-killed.webm"
            path.write_bytes(body)
            pcm = await asyncio.to_thread(decoded_16k, str(path))
            # Playable to within 5 s of the kill (the audio started about when the clock did).
            assert pcm.size / 16000 >= killed_at - 5 - rec["start_s"], (rec, pcm.size / 16000)
        assert data["interruptions"][0] >= killed_at - 5
    finally:
        log = srv.stop()
    assert "Traceback" not in log, log


async def call_goes_on_after_its_worker_was_killed(tmp_path) -> None:
    """test_a_call_that_goes_on_after_its_worker_was_killed_keeps_one_clock_with_the_gap_marked"""
    from livecoach.live.storing import RESUMED, STORE_INTERVAL
    from livecoach.store import Store

    srv = await asyncio.to_thread(Server, tmp_path / "data", "direct", workers=1)
    sid, coach_token, client_token, coach, client, _ = await start_call(srv, tmp_path, "clean", 30)
    reader = IndicatorReader(srv.url, sid, coach_token)
    await reader.open()
    peers, readers = [coach, client], [reader]

    def tag(tag_id: str, at: float) -> None:
        status, _, body = request(srv, f"/api/sessions/{sid}/tags/{tag_id}", coach_token, method="PUT",
                                  body={"kind": "breakthrough", "label": "Breakthrough", "session_time": at})
        assert status == 201, body  # acknowledged: stored before the answer

    def restarted() -> bool:
        try:
            health = srv.get("/healthz")
        except OSError:  # 503 while the worker is down
            return False
        return health["workers"][0]["started"] == 2 and health["ok"]

    try:
        await asyncio.sleep(10.0)
        for i in range(3):
            tag(f"before-the-kill-{i}", reader.latest()["session_time"] - 2 * i)
        killed_at = time.time()
        os.kill(srv.get("/healthz")["workers"][0]["pid"], signal.SIGKILL)
        await wait_for(restarted, 20, "the worker started again")
        # The pages join again, and the call goes on from 10 s into the participants' audio.
        rejoined_at = time.time()
        files = {who: excerpt("clean", who, 12, tmp_path, start=10.0) for who in ("coach", "client")}
        start = asyncio.Event()
        coach, client = (SimPeer(srv.url, sid, token, str(files[who]), start=start)
                         for who, token in (("coach", coach_token), ("client", client_token)))
        peers += [coach, client]
        await asyncio.gather(coach.join(), client.join())
        joined_at = time.time()
        await asyncio.gather(coach.server_connected(), client.server_connected())
        start.set()
        reader = IndicatorReader(srv.url, sid, coach_token)
        readers.append(reader)
        await reader.open()
        await asyncio.sleep(10.0)
        tag("after-the-restart", reader.latest()["session_time"])
    finally:
        await asyncio.gather(*(peer.close() for peer in peers), *(r.close() for r in readers))

    try:
        data = await wait_for(lambda: (lambda d: d if d["session"]["state"] == "ended" and d["interruptions"] and len(
            d["recordings"]) == 4 else None)(review(srv, sid, coach_token)), 60, "the recordings finished")
        store = Store(srv.log.parent / "livecoach.sqlite3")
        try:
            events, samples = store.events(sid), [s.session_time for s in store.indicator_samples(sid)]
        finally:
            store.close()
    finally:
        log = srv.stop()
    assert "Traceback" not in log, log

    # One resumption: the gap from the last stored time to the resumed clock, about as long as
    # the call was down (the last turn of the store exchange before the kill may not have been stored).
    resumed = [e for e in events if e["kind"] == RESUMED]
    assert len(resumed) == 1, resumed
    since, resumed_at = resumed[0]["since"], resumed[0]["session_time"]
    before = [e["session_time"] for e in events if e["wall_time"] < killed_at and e["session_time"] is not None]
    assert since >= max(before + [s for s in samples if s <= since]) and since > 8.0
    assert rejoined_at - killed_at - 0.5 <= resumed_at - since <= joined_at - killed_at + 2.0, (since, resumed_at)
    marks = [e for e in events if e["kind"] == "interrupted" or (e["kind"] == "left" and e["session_time"] == since)]
    assert {e["participant"] for e in marks if e["kind"] == "left"} == {"coach", "client"}
    after = [e for e in events if e["wall_time"] >= rejoined_at and e not in marks]
    assert len(after) > 5 and min(e["session_time"] for e in after) >= resumed_at
    # Samples: once a second on one clock, none in the gap, no second twice.
    seconds = [int(s) for s in samples]
    assert seconds == sorted(set(seconds)), samples
    # (a sample's time is rounded to the ms, an event's is the engine's own: the first sample after
    # the gap was stored as 12.28 beside a resumption at 12.280000000000001)
    assert not [s for s in samples if since < s < round(resumed_at, 3)]
    assert len([s for s in samples if s >= round(resumed_at, 3)]) >= 8
    # Recordings: the first ones end at the gap (it begins where their files end, which may be
    # up to a turn of the store's exchange past their stored rows), the new ones start after it.
    old = [r for r in data["recordings"] if r["state"] == "interrupted"]
    new = [r for r in data["recordings"] if r["state"] == "finished"]
    assert len(old) == len(new) == 2
    assert all(r["start_s"] + r["duration_s"] <= since + 0.001 for r in old), (old, since)
    assert max(r["start_s"] + r["duration_s"] for r in old) >= since - STORE_INTERVAL, (old, since)
    assert all(r["start_s"] >= resumed_at for r in new), (new, resumed_at)
    # Tags: those acknowledged before the kill are all there; the one after lands after the gap.
    tags = {t["id"]: t["session_time"] for t in data["tags"]}
    assert {f"before-the-kill-{i}" for i in range(3)} < set(tags)
    assert tags["after-the-restart"] > resumed_at
    # The review: one session whose timeline runs on through the gap, marked where it begins.
    assert data["session"]["duration_s"] >= resumed_at + 8
    for spans in data["segments"].values():
        assert all(a < b <= c for (a, b), (c, _) in zip(spans, spans[1:]))
        assert not [s for s in spans if s[1] > since and s[0] < resumed_at]
    assert [t for t in data["interruptions"] if since - 2.0 <= t <= resumed_at]
    for who in ("coach", "client"):  # away over the gap, on each one's lane (the payload's times are to 1 ms)
        assert [gap for gap in data["absences"][who]
                if gap[0] <= since + 0.001 and gap[1] >= resumed_at - 0.001 and gap[2] == "absent"], data["absences"]


@pytest.fixture(scope="module")
def disk_and_consent(tmp_path_factory) -> dict:
    """A full disk and a withdrawn consent, at the same time: liveserver.together."""
    return together(tmp_path_factory, disk=full_disk, consent=client_withdraws_consent)


def test_a_full_disk_stops_the_recording_with_a_message_while_the_call_goes_on(disk_and_consent):
    held(disk_and_consent["disk"])


def test_a_client_who_withdraws_consent_stops_being_recorded_at_once(disk_and_consent):
    held(disk_and_consent["consent"])


async def full_disk(tmp_path) -> None:
    """The recordings folder is a 160 KiB filesystem of the server's own (a tmpfs in a mount
    namespace): it fills within seconds, the coach's stream says so, the analysis goes on, and
    what was recorded before still plays."""
    unshare = shutil.which("unshare") or shutil.which("unshare", path="/usr/bin:/bin")
    if unshare is None:
        pytest.fail("this test needs unshare (util-linux) to give the server a small filesystem; scripts/test installs it")
    data = tmp_path / "data"
    (data / "recordings").mkdir(parents=True)
    prefix = [unshare, "-rm", "sh", "-c", f'mount -t tmpfs -o size=160k,mode=0700 tmpfs "{data / "recordings"}" && exec "$@"',
              "sh"]
    srv = await asyncio.to_thread(Server, data, "direct", workers=0, prefix=prefix)
    sid, coach_token, _, coach, client, _ = await start_call(srv, tmp_path, "clean", 30)
    reader = IndicatorReader(srv.url, sid, coach_token)
    await reader.open()
    try:
        failed = await wait_for(lambda: next((m for _, m in reader.messages if recording_status(m)["state"] == "failed"),
                                             None), 25, "the recording failed")
        assert "disk is full" in recording_status(failed)["problem"]
        at_failure = reader.latest()["audio"]["coach"]["received_s"]
        await asyncio.sleep(5)
        snap = reader.latest()
        assert snap["recording"]["state"] == "failed"
        assert snap["audio"]["coach"]["received_s"] > at_failure + 4  # the analysis goes on
        assert any(m["type"] == "speech" and m["session_time"] > failed["session_time"] for _, m in reader.messages)
        for peer in (coach, client):  # both pages were told
            assert any(m["type"] == "recording" and m["state"] == "failed" for m in peer.messages)
    finally:
        await asyncio.gather(coach.leave(), client.leave())
        await reader.close()
    data_ = await wait_for(lambda: (lambda d: d if d["recordings"] and all(
        r["state"] != "recording" for r in d["recordings"]) else None)(review(srv, sid, coach_token)),
        30, "the recordings were closed")
    played = 0.0
    for rec in data_["recordings"]:
        status, _, body = request(srv, rec["url"])
        assert status == 200
        path = tmp_path / f"{rec['id']}.media"
        path.write_bytes(body)
        played = max(played, (await asyncio.to_thread(decoded_16k, str(path))).size / 16000)
    assert played > 2  # what was written before the disk filled plays
    log = srv.stop()
    assert "Traceback" not in log, log


async def client_withdraws_consent(tmp_path) -> None:
    """The client takes back the recording mid-call: their audio file ends there while the
    coach's goes on, the coach's indicators say so, the event is logged and their video uploads
    are refused; then they take back the analysis: their call ends and they cannot rejoin."""
    server = await asyncio.to_thread(Server, tmp_path / "data", "direct", workers=0)
    try:
        await _client_withdraws_consent(server, tmp_path)
    finally:
        log = server.stop()
    assert "Traceback" not in log, log


async def _client_withdraws_consent(server: Server, tmp_path) -> None:
    sid, coach_token, client_token, coach, client, files = await start_call(server, tmp_path, "clean", 20.0)
    reader = IndicatorReader(server.url, sid, coach_token)
    await reader.open()
    try:
        await asyncio.sleep(5.0)
        await client._send({"type": "withdraw", "scopes": ["audio", "video"]})
        answer = await wait_for(lambda: next((m for m in client.messages if m["type"] == "withdrawn"), None), 5,
                                "the server's answer to the withdrawal")
        assert answer["scopes"] == ["audio", "video"]
        status = await wait_for(
            lambda: (s := recording_status(reader.latest() or {"type": "x"})).get("withdrawn") and s, 5,
            "the coach's indicators showing the withdrawal")
        assert status["withdrawn"] == {"client": ["audio", "video"]} and status["audio"] == ["coach"]
        assert status["state"] == "on"
        # A video chunk of the client's is refused from now on.
        code, _, body = request(server, f"/api/sessions/{sid}/uploads/client-video-1/0?start=1", client_token,
                                {"X-Content-SHA256": "0" * 64, "Content-Type": "video/webm"}, method="PUT")
        assert code == 403 and json.loads(body)["error"]["code"] == "no-consent"
        await asyncio.sleep(5.0)
        # The analysis too: the client's call ends, and a rejoin is refused.
        await client._send({"type": "withdraw", "scopes": ["analysis"]})
        error = await wait_for(lambda: next((e for e in client.errors if e["code"] == "consent-withdrawn"), None), 5,
                               "the consent-withdrawn error")
        assert "left the call" in error["message"]
        again = SimPeer(server.url, sid, client_token, str(files["client"]))
        try:
            refused = await again.join()
            assert (refused["type"], refused.get("code")) == ("error", "consent-withdrawn"), refused
        finally:
            await again.close()
    finally:
        await reader.close()
        await asyncio.gather(coach.close(), client.close())
    payload = await wait_for(lambda: (p := review(server, sid, coach_token))["session"]["state"] == "ended" and p, 30,
                             "the recordings finished")
    by_who = {r["participant"]: r for r in payload["recordings"] if r["kind"] == "audio"}
    # The client's file ends where they withdrew (about 5 s into the call), the coach's goes on.
    assert by_who["client"]["duration_s"] < by_who["coach"]["duration_s"] - 4
    assert by_who["client"]["start_s"] + by_who["client"]["duration_s"] < 8.5
    from livecoach.store import Store

    store = Store(server.log.parent / "livecoach.sqlite3")
    try:
        logged = [(e["participant"], e["scopes"]) for e in store.events(sid, ("consent-withdrawn",))]
        assert logged == [("client", ["audio", "video"]), ("client", ["analysis"])]
        assert store.consent_scopes(sid, "client") == set()
    finally:
        store.close()

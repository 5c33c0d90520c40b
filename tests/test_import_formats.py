"""An imported call keeps its own audio (recordings/formats.py): a participant's file whose codec
Chromium plays becomes the recording packet for packet, in a container with its seek index; other
audio, and each channel of a stereo file, becomes a WAV of what the engine heard. Every
kept file is then played and seeked by Debian's Chromium from the server, as the replay plays it."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import track
from browser_run import CHROMIUM
from liveserver import Server, add_coach
from livecoach.frames import SAMPLE_RATE
from livecoach.importing import CallFiles, import_call
from livecoach.ingest import read_mono, read_stereo, write_wav
from livecoach.recordings.storage import FolderStorage
from livecoach.store import Store

SECONDS = 30
SOURCES = {
    # name: (muxer, extension, encoder, sample format) of the participants' own files
    "aac": ("ipod", "m4a", "aac", "fltp"),
    "mp3": ("mp3", "mp3", "libmp3lame", "s16p"),
    "flac": ("flac", "flac", "flac", "s16"),
    "wav16": ("wav", "wav", "pcm_s16le", "s16"),
    "wav24": ("wav", "wav", "pcm_s24le", "s32"),
    "wavfloat": ("wav", "wav", "pcm_f32le", "flt"),
    "opus": ("ogg", "opus", "libopus", "s16"),
    "mulaw": ("wav", "wav", "pcm_mulaw", "s16"),
}
KEPT_AS = {"aac": ("m4a", "audio/mp4"), "mp3": ("mp3", "audio/mpeg"), "flac": ("flac", "audio/flac"),
           "wav16": ("wav", "audio/wav"), "wav24": ("wav", "audio/wav"), "wavfloat": ("wav", "audio/wav"),
           "opus": ("webm", "audio/webm")}
"""What each is kept as; the rest (mu-law, which Chromium does not play) becomes 16 kHz WAV."""


def encode(samples: np.ndarray, path: Path, muxer: str, encoder: str, sample_format: str) -> Path:
    """16 kHz mono int16 ``samples`` as a file the way another program would write it."""
    with av.open(str(path), "w", format=muxer) as out:
        rate = 48000 if encoder == "libopus" else SAMPLE_RATE
        stream = out.add_stream(encoder, rate=rate)
        stream.codec_context.layout = "mono"
        resampler = av.AudioResampler(format=sample_format, layout="mono", rate=rate)
        for i in range(0, samples.size, SAMPLE_RATE):
            frame = av.AudioFrame.from_ndarray(samples[i : i + SAMPLE_RATE].reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            for part in resampler.resample(frame):
                part.pts = None
                out.mux(stream.encode(part))
        for part in resampler.resample(None):
            part.pts = None
            out.mux(stream.encode(part))
        out.mux(stream.encode(None))
    return path


def with_video(samples: np.ndarray, path: Path) -> Path:
    """An MP4 with a small video stream beside the AAC audio (one frame a second)."""
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=1)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=SAMPLE_RATE)
        audio.codec_context.layout = "mono"
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=SAMPLE_RATE)
        for second, i in enumerate(range(0, samples.size, SAMPLE_RATE)):
            picture = av.VideoFrame.from_ndarray(np.full((48, 64, 3), second * 8 % 256, np.uint8), format="rgb24")
            picture.pts = second
            out.mux(video.encode(picture))
            frame = av.AudioFrame.from_ndarray(samples[i : i + SAMPLE_RATE].reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            for part in resampler.resample(frame):
                part.pts = None
                out.mux(audio.encode(part))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as media:
        return [bytes(p) for p in media.demux(media.streams.audio[0]) if p.size]


def decoded(path: Path) -> np.ndarray:
    return np.concatenate(list(read_mono(path)))


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Each source format imported into one data folder, served by a real server."""
    folder = tmp_path_factory.mktemp("formats")
    data = folder / "data"
    add_coach(data)
    store, storage = Store(data / "livecoach.sqlite3"), FolderStorage(data / "recordings")
    coach_id = store.coaches()[0].id
    sessions = {}
    try:
        for name, (muxer, extension, encoder, sample_format) in SOURCES.items():
            files = {role: encode(track("clean", role)[: SECONDS * SAMPLE_RATE], folder / f"{role}-{name}.{extension}",
                                  muxer, encoder, sample_format) for role in ("coach", "client")}
            done = import_call(store, storage, CallFiles(**files), label=name, coach_id=coach_id)
            sessions[name] = (done, files, store.recordings(done.session.id))
        files = {role: with_video(track("clean", role)[: SECONDS * SAMPLE_RATE], folder / f"{role}-video.mp4")
                 for role in ("coach", "client")}
        done = import_call(store, storage, CallFiles(**files), label="video", coach_id=coach_id)
        sessions["video"] = (done, files, store.recordings(done.session.id))
        stereo = np.stack([track("clean", "coach")[: SECONDS * SAMPLE_RATE], track("clean", "client")[: SECONDS * SAMPLE_RATE]])
        path = write_wav(folder / "stereo.wav", stereo.T.copy())
        done = import_call(store, storage, CallFiles(stereo=path), label="stereo", coach_id=coach_id)
        sessions["stereo"] = (done, {"stereo": path}, store.recordings(done.session.id))
    finally:
        store.close()
    server = Server(data, workers=0)
    try:
        yield server, data, sessions
    finally:
        server.stop()


@pytest.mark.parametrize("name", sorted(KEPT_AS))
def test_a_file_chromium_plays_is_kept_packet_for_packet(imported, name):
    _, data, sessions = imported
    done, files, rows = sessions[name]
    extension, media_type = KEPT_AS[name]
    assert sorted(r["participant"] for r in rows) == ["client", "coach"]
    for row in rows:
        assert row["name"].endswith(f".{extension}") and row["media_type"] == media_type and row["state"] == "finished"
        kept = data / "recordings" / done.session.id / row["name"]
        source = files[row["participant"]]
        assert audio_packets(kept) == audio_packets(source)
        if name != "opus":  # Ogg has no seek index: its packets go into WebM; the rest are kept whole
            assert kept.read_bytes() == source.read_bytes()
        assert row["duration_s"] == pytest.approx(SECONDS, abs=0.1)


def test_a_video_file_keeps_only_its_audio(imported):
    """A meeting program's MP4 with the participant's camera: the AAC packets alone, in M4A."""
    _, data, sessions = imported
    done, files, rows = sessions["video"]
    for row in rows:
        kept = data / "recordings" / done.session.id / row["name"]
        assert row["media_type"] == "audio/mp4" and kept.suffix == ".m4a"
        with av.open(str(kept)) as media:
            assert [s.type for s in media.streams] == ["audio"]
        assert audio_packets(kept) == audio_packets(files[row["participant"]])


def test_audio_chromium_does_not_play_is_kept_as_what_the_engine_heard(imported):
    _, data, sessions = imported
    done, files, rows = sessions["mulaw"]
    for row in rows:
        assert row["name"].endswith(".wav") and row["media_type"] == "audio/wav"
        kept = data / "recordings" / done.session.id / row["name"]
        assert np.array_equal(decoded(kept), decoded(files[row["participant"]]))
        with av.open(str(kept)) as media:
            assert media.streams.audio[0].codec_context.name == "pcm_s16le" and media.streams.audio[0].rate == SAMPLE_RATE


def test_each_channel_of_a_stereo_file_is_kept_as_what_the_engine_heard(imported):
    _, data, sessions = imported
    done, files, rows = sessions["stereo"]
    coach, client = (np.concatenate(c) for c in zip(*read_stereo(files["stereo"]), strict=True))
    heard = {"coach": coach, "client": client}
    for row in rows:
        assert row["media_type"] == "audio/wav"
        kept = data / "recordings" / done.session.id / row["name"]
        assert np.array_equal(decoded(kept), heard[row["participant"]])


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed")
def test_chromium_plays_and_seeks_every_kept_recording_from_the_server(imported):
    from playwright.sync_api import sync_playwright

    server, _, sessions = imported
    media = []
    for name, (done, _, _) in sorted(sessions.items()):
        session, token = done.session.id, done.review_path().split("#", 1)[1]
        review = json.loads(urllib.request.urlopen(urllib.request.Request(
            f"{server.url}/api/sessions/{session}/review", headers={"Authorization": f"Bearer {token}"})).read())
        media += [(name, r["participant"], r["media_type"], r["duration_s"], r["url"]) for r in review["recordings"]]
    assert len(media) == 2 * len(sessions)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required", "--mute-audio"])
        try:
            page = browser.new_page()
            page.goto(server.url + "/healthz")
            for name, who, media_type, duration, url in media:
                seen = page.evaluate(PLAY_AND_SEEK, url)
                where = f"{name} ({who}, {media_type})"
                assert seen["error"] is None, f"{where}: {seen['error']}"
                assert seen["type"] == media_type, where
                assert seen["duration"] == pytest.approx(duration, abs=0.15), where
                assert seen["seeked"] == pytest.approx(duration / 2, abs=0.1), where
                assert seen["played"] > seen["seeked"] + 0.05, where
        finally:
            browser.close()


PLAY_AND_SEEK = """async (url) => {
  const audio = new Audio();
  const failed = new Promise((resolve) => audio.addEventListener('error', () => resolve(audio.error?.message || 'error')));
  const event = (name) => Promise.race([new Promise((r) => audio.addEventListener(name, r, { once: true })), failed]);
  const type = (await fetch(url, { headers: { Range: 'bytes=0-0' } })).headers.get('content-type');
  audio.src = url;
  const loaded = await event('loadedmetadata');
  if (typeof loaded === 'string') return { error: loaded };
  const duration = audio.duration;
  audio.currentTime = duration / 2;
  const sought = await event('seeked');
  if (typeof sought === 'string') return { error: sought };
  const seeked = audio.currentTime;
  await audio.play();
  await new Promise((r) => setTimeout(r, 400));
  audio.pause();
  return { error: null, type, duration, seeked, played: audio.currentTime };
}"""

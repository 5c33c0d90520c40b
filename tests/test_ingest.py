"""Tests for livecoach.ingest: every input is made here with PyAV, nothing is committed."""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
import pytest

from livecoach.frames import SAMPLE_RATE
from livecoach.ingest import AudioError, AudioInfo, probe, read_mono, read_stereo

TONE_SECONDS = 1.5  # 440 Hz in the left (or only) channel from 0 to 1.5 s, then silence
RIGHT_FROM, RIGHT_TO = 1.0, 2.5  # 1000 Hz in the right channel over this span
TOTAL_SECONDS = 2.5
AMP = 0.5
FULL_SCALE = 32768.0

# Lossless formats must keep the duration within 30 ms. Lossy encoders add a delay ("priming")
# at the start and pad the end to a whole codec frame; FFmpeg removes both when the file says how
# much: Opus pre-skip and end trimming from the Ogg/WebM headers, MP3 from the LAME gapless header.
# Measured with FFmpeg 8: Opus and MP3 come out sample-exact. AAC in M4A: the priming is removed
# (via the MP4 edit list, written because we give the encoder real pts) but the end padding is
# not, so AAC can be up to one 1024-sample frame long: +8 ms at 44.1 kHz, +60 ms measured at
# 8 kHz, 128 ms at worst. Bound: 60 ms, plus one AAC frame for AAC. The start is what matters for
# timing, and there every format is held to 5 ms.
LOSSLESS_TOLERANCE = 0.030
LOSSY_TOLERANCE = 0.060

# (extension, encoder); the WAV encoders give s16, 24-bit and 32-bit float files
LOSSLESS = [("wav", "pcm_s16le"), ("wav", "pcm_s24le"), ("wav", "pcm_f32le"), ("flac", "flac")]
LOSSY = [("ogg", "libopus"), ("webm", "libopus"), ("mp3", "libmp3lame"), ("m4a", "aac")]
RATES = [8000, 44100, 48000]


# --- making test files ---------------------------------------------------------------------------


def signal(rate: int, channels: int, seconds: float = TOTAL_SECONDS) -> np.ndarray:
    """float32 (channels, n): a 440 Hz tone left; with 2+ channels, a 1000 Hz tone right."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    left = np.where(t < TONE_SECONDS, AMP * np.sin(2 * np.pi * 440 * t), 0.0)
    chans = [left]
    if channels >= 2:
        chans.append(np.where((t >= RIGHT_FROM) & (t < RIGHT_TO), AMP * np.sin(2 * np.pi * 1000 * t), 0.0))
    chans += [np.zeros(n)] * (channels - len(chans))
    return np.asarray(chans, dtype=np.float32)


def encode(path: Path, data: np.ndarray, rate: int, codec: str, layout: str | None = None) -> Path:
    """Write float32 (channels, n) audio with PyAV, with real pts so encoders write their delay info."""
    channels = data.shape[0]
    layout = layout or {1: "mono", 2: "stereo"}[channels]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        block = 4096
        for start in range(0, data.shape[1], block):
            piece = np.ascontiguousarray(data[:, start : start + block])
            frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def make(tmp_path: Path, ext: str, codec: str, rate: int, channels: int) -> Path:
    return encode(tmp_path / f"in_{codec}_{rate}_{channels}.{ext}", signal(rate, channels), rate, codec)


def read_all(path: Path, chunk_seconds: float = 2.0) -> np.ndarray:
    return np.concatenate(list(read_mono(path, chunk_seconds)))


def read_all_stereo(path: Path, chunk_seconds: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    chunks = list(read_stereo(path, chunk_seconds))
    return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])


def rms_db(x: np.ndarray, start: float, end: float) -> float:
    """RMS of x[start:end seconds] in dB relative to full scale."""
    part = x[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)].astype(np.float64) / FULL_SCALE
    return 10 * np.log10(np.mean(part**2) + 1e-20)


TONE_DB = 20 * np.log10(AMP / np.sqrt(2))  # -9.03 dBFS


# --- conversions -------------------------------------------------------------------------------


def duration_tolerance(codec: str, rate: int) -> float:
    if codec == "aac":
        return LOSSY_TOLERANCE + 1024 / rate
    return LOSSY_TOLERANCE if codec in ("libopus", "libmp3lame") else LOSSLESS_TOLERANCE


def check_mono(x: np.ndarray, channels: int, codec: str, rate: int) -> None:
    lossy = codec in ("libopus", "libmp3lame", "aac")
    assert x.dtype == np.int16 and x.ndim == 1
    assert abs(x.size / SAMPLE_RATE - TOTAL_SECONDS) <= duration_tolerance(codec, rate)
    onset = np.flatnonzero(np.abs(x.astype(np.int32)) > 0.1 * AMP * FULL_SCALE)[0]
    assert onset / SAMPLE_RATE < 0.005  # priming removed: the tone starts at 0
    # Windows keep clear of the edges (lossy codecs smear a few ms around them).
    if channels == 1:
        assert abs(rms_db(x, 0.1, 0.9) - TONE_DB) < 1.0  # the tone
        assert rms_db(x, 1.6, 2.4) < TONE_DB - 40  # the silence after it
    else:  # the average of the channels: each tone at half level, -6 dB
        assert abs(rms_db(x, 0.1, 0.9) - (TONE_DB - 6.02)) < 1.0
        assert abs(rms_db(x, 1.6, 2.4) - (TONE_DB - 6.02)) < 1.0
    if not lossy:  # sample by sample against the expected signal, computed at 16 kHz
        expected = signal(SAMPLE_RATE, channels).mean(axis=0)[: x.size] * FULL_SCALE
        window = slice(int(0.1 * SAMPLE_RATE), int(2.4 * SAMPLE_RATE))
        assert np.corrcoef(x[window], expected[window])[0, 1] > 0.999


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("ext,codec", LOSSLESS, ids=[c for _, c in LOSSLESS])
def test_lossless_formats(tmp_path, ext, codec, rate, channels):
    path = make(tmp_path, ext, codec, rate, channels)
    check_mono(read_all(path), channels, codec, rate)


LOSSY_CASES = [
    (ext, codec, rate, channels)
    for ext, codec in LOSSY
    for rate in ([8000, 48000] if codec == "libopus" else RATES)  # Opus has no 44.1 kHz
    for channels in (1, 2)
]


@pytest.mark.parametrize("ext,codec,rate,channels", LOSSY_CASES, ids=[f"{e}-{r}-{c}ch" for e, _, r, c in LOSSY_CASES])
def test_lossy_formats(tmp_path, ext, codec, rate, channels):
    path = make(tmp_path, ext, codec, rate, channels)
    check_mono(read_all(path), channels, codec, rate)


STEREO_CASES = [("wav", "pcm_s16le", 44100), ("flac", "flac", 48000), ("wav", "pcm_f32le", 8000),
                ("ogg", "libopus", 48000), ("webm", "libopus", 48000), ("mp3", "libmp3lame", 44100),
                ("m4a", "aac", 48000)]  # fmt: skip


@pytest.mark.parametrize("ext,codec,rate", STEREO_CASES, ids=[f"{e}-{c}-{r}" for e, c, r in STEREO_CASES])
def test_read_stereo_keeps_channels_apart(tmp_path, ext, codec, rate):
    path = make(tmp_path, ext, codec, rate, 2)
    left, right = read_all_stereo(path)
    assert left.dtype == right.dtype == np.int16 and left.shape == right.shape and left.ndim == 1
    assert abs(left.size / SAMPLE_RATE - TOTAL_SECONDS) <= duration_tolerance(codec, rate)
    # 0.1-0.9 s: tone left only; 1.6-2.4 s: tone right only. Joint-stereo codecs leak a little.
    assert abs(rms_db(left, 0.1, 0.9) - TONE_DB) < 1.0
    assert abs(rms_db(right, 1.6, 2.4) - TONE_DB) < 1.0
    assert rms_db(right, 0.1, 0.9) < TONE_DB - 40
    assert rms_db(left, 1.6, 2.4) < TONE_DB - 40


def test_output_length_is_sample_exact_after_resampling(tmp_path):
    # 10.000 s at 44.1 kHz must give 160000 samples: the resampler is flushed at the end.
    n = 441_000
    noise = np.random.default_rng(0).uniform(-0.1, 0.1, (1, n)).astype(np.float32)
    path = encode(tmp_path / "ten.wav", noise, 44100, "pcm_s16le")
    assert abs(read_all(path).size - 160_000) <= 2
    left, right = read_all_stereo(encode(tmp_path / "ten2.wav", np.vstack([noise, noise]), 44100, "pcm_s16le"))
    assert abs(left.size - 160_000) <= 2 and left.size == right.size


def test_16k_mono_s16_passes_through_bit_exact(tmp_path):
    samples = np.random.default_rng(1).integers(-30000, 30000, 40_000).astype(np.int16)
    path = encode(tmp_path / "native.wav", samples[None, :].astype(np.float32) / FULL_SCALE, 16000, "pcm_s16le")
    assert np.array_equal(read_all(path), samples)


def test_more_than_two_channels_average_and_first_two(tmp_path):
    # 5.1 with the tone on LFE only: FFmpeg's own downmix would drop it; we average all six.
    rate, n = 48000, 48000
    t = np.arange(n) / rate
    data = np.zeros((6, n), np.float32)
    data[0] = 0.3 * np.sin(2 * np.pi * 440 * t)  # FL
    data[1] = 0.3 * np.sin(2 * np.pi * 1000 * t)  # FR
    data[3] = 0.6 * np.sin(2 * np.pi * 200 * t)  # LFE
    path = encode(tmp_path / "six.wav", data, rate, "pcm_s16le", layout="5.1")
    mono = read_all(path)
    t16 = np.arange(mono.size) / SAMPLE_RATE
    expected = (0.3 * np.sin(2 * np.pi * 440 * t16) + 0.3 * np.sin(2 * np.pi * 1000 * t16)
                + 0.6 * np.sin(2 * np.pi * 200 * t16)) / 6 * FULL_SCALE  # fmt: skip
    window = slice(800, mono.size - 800)
    assert np.max(np.abs(mono[window] - expected[window])) < 60  # within ~-55 dBFS
    left, right = read_all_stereo(path)
    assert abs(rms_db(left, 0.1, 0.9) - 20 * np.log10(0.3 / np.sqrt(2))) < 0.5
    assert abs(rms_db(right, 0.1, 0.9) - 20 * np.log10(0.3 / np.sqrt(2))) < 0.5
    assert np.corrcoef(left[window], 0.3 * np.sin(2 * np.pi * 440 * t16[window]))[0, 1] > 0.999


@pytest.mark.parametrize("codec", ["pcm_u8", "pcm_s32le", "pcm_f64le", "pcm_mulaw"])
@pytest.mark.parametrize("layout", ["mono", "3.0"])
def test_other_sample_formats_and_channel_counts(tmp_path, codec, layout):
    channels = {"mono": 1, "3.0": 3}[layout]
    path = encode(tmp_path / f"odd_{codec}.wav", signal(8000, channels), 8000, codec, layout=layout)
    mono = read_all(path)
    assert abs(mono.size / SAMPLE_RATE - TOTAL_SECONDS) <= LOSSLESS_TOLERANCE
    # Average of the channels: at 0.1-0.9 s only the left tone plays, so it comes out /channels.
    assert abs(rms_db(mono, 0.1, 0.9) - (TONE_DB - 20 * np.log10(channels))) < 0.5
    if channels > 1:
        left, right = read_all_stereo(path)
        assert abs(rms_db(left, 0.1, 0.9) - TONE_DB) < 0.5 and rms_db(right, 0.1, 0.9) < TONE_DB - 40
        assert abs(rms_db(right, 1.6, 2.4) - TONE_DB) < 0.5 and rms_db(left, 1.6, 2.4) < TONE_DB - 40


def test_loud_input_saturates_instead_of_wrapping(tmp_path):
    rate = 44100
    t = np.arange(rate) / rate
    loud = (1.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = encode(tmp_path / "loud.wav", np.vstack([loud, loud]), rate, "pcm_f32le")
    x = read_all(path)
    assert x.max() == 32767 and x.min() <= -32767
    t16 = np.arange(x.size) / SAMPLE_RATE
    expected = np.sin(2 * np.pi * 440 * t16)
    strong = np.abs(expected) > 0.5
    assert np.all(np.sign(x[strong]) == np.sign(expected[strong]))  # no wrap-around


@pytest.mark.parametrize("reader", [read_mono, read_stereo])
def test_chunks_are_exact_and_concatenate_to_the_same_audio(tmp_path, reader):
    path = make(tmp_path, "mp3", "libmp3lame", 44100, 2)
    small = list(reader(path, 0.37))
    large = list(reader(path, 2.0))
    if reader is read_stereo:
        assert all(len(c) == 2 and c[0].shape == c[1].shape for c in small)
        small_l, large_l = [c[0] for c in small], [c[0] for c in large]
        assert np.array_equal(np.concatenate([c[1] for c in small]), np.concatenate([c[1] for c in large]))
    else:
        small_l, large_l = small, large
    assert np.array_equal(np.concatenate(small_l), np.concatenate(large_l))
    assert {c.size for c in small_l[:-1]} == {5920} and 0 < small_l[-1].size <= 5920
    assert {c.size for c in large_l[:-1]} == {32000} and 0 < large_l[-1].size <= 32000


def test_bad_chunk_seconds_is_a_programming_error(tmp_path):
    path = make(tmp_path, "wav", "pcm_s16le", 16000, 1)
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError):
            read_mono(path, bad)


def test_probe(tmp_path):
    path = make(tmp_path, "flac", "flac", 48000, 2)
    info = probe(path)
    assert isinstance(info, AudioInfo)
    assert info.path == str(path)
    assert info.sample_rate == 48000 and info.channels == 2 and info.codec == "flac"
    assert info.duration_seconds == pytest.approx(TOTAL_SECONDS, abs=0.03)
    info = probe(make(tmp_path, "ogg", "libopus", 48000, 1))
    assert (info.channels, info.codec) == (1, "opus")
    assert info.duration_seconds == pytest.approx(TOTAL_SECONDS, abs=0.06)


def test_stopping_early_releases_the_file(tmp_path):
    path = make(tmp_path, "ogg", "libopus", 48000, 1)
    chunks = read_mono(path, 0.5)
    assert next(chunks).size == 8000
    chunks.close()  # closes the container now
    with pytest.raises(StopIteration):
        next(chunks)


# --- damaged data --------------------------------------------------------------------------------


def test_packets_the_decoder_rejects_become_silence_of_the_same_length(tmp_path, caplog):
    # Policy (see the module docstring): skip the packet, put in silence of its duration, log it.
    good = make(tmp_path, "m4a", "aac", 44100, 1)
    data = bytearray(good.read_bytes())
    middle = len(data) // 2  # the AAC frames (mdat) sit between a small header and the index
    data[middle : middle + 3000] = bytes(3000)
    bad = tmp_path / "damaged.m4a"
    bad.write_bytes(bytes(data))
    clean = read_all(good)
    with caplog.at_level(logging.WARNING, logger="livecoach.ingest"):
        damaged = read_all(bad)
    assert "damaged.m4a" in caplog.text and "skipped" in caplog.text
    assert abs(damaged.size - clean.size) <= 16  # the timeline is kept: within 1 ms
    # The tone still ends at 1.5 s: the audio after the damage has not moved.
    loud = np.flatnonzero(np.abs(damaged.astype(np.int32)) > 3000)
    assert abs(loud[-1] / SAMPLE_RATE - TONE_SECONDS) < 0.01
    assert not np.array_equal(damaged[: clean.size], clean)  # something was in fact replaced


def test_no_packet_decodable_is_an_error(tmp_path):
    good = make(tmp_path, "m4a", "aac", 44100, 1)
    data = bytearray(good.read_bytes())
    at = data.find(b"mdat")  # box: 4-byte size, "mdat", payload
    size = int.from_bytes(data[at - 4 : at], "big")
    data[at + 4 : at - 4 + size] = bytes(size - 8)
    bad = tmp_path / "all_damaged.m4a"
    bad.write_bytes(bytes(data))
    assert_audio_error(bad, "no decodable audio")


class _FailingContainer:
    """A real container whose demuxer fails with an I/O error after some packets."""

    def __init__(self, container, good_packets):
        self._container, self._good = container, good_packets

    def demux(self, *args):
        for i, packet in enumerate(self._container.demux(*args)):
            if i == self._good:
                raise av.error.OSError(5, "Input/output error", "x")
            yield packet

    def close(self):
        self._container.close()


def test_read_error_mid_file_names_the_file_and_time(tmp_path, monkeypatch):
    from livecoach import ingest

    path = make(tmp_path, "ogg", "libopus", 48000, 1)
    real_open = ingest._open

    def failing_open(name):
        container, stream = real_open(name)
        return _FailingContainer(container, 60), stream  # 60 Opus packets of 20 ms: 1.2 s

    monkeypatch.setattr(ingest, "_open", failing_open)
    error = assert_audio_error(path, "read error at 0:01.2", "Input/output error")
    assert error.__cause__ is None  # a one-liner for the user, not a chained traceback


# --- errors --------------------------------------------------------------------------------------


def assert_audio_error(path, *needles: str, fn=read_mono) -> AudioError:
    with pytest.raises(AudioError) as info:
        result = fn(path)
        if fn is not probe:
            list(result)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    for needle in needles:
        assert needle in message
    return info.value


@pytest.mark.parametrize("fn", [read_mono, read_stereo, probe])
def test_missing_file(tmp_path, fn):
    assert_audio_error(tmp_path / "nope.wav", "no such file", fn=fn)


def test_missing_file_raises_at_the_call_not_later(tmp_path):
    with pytest.raises(AudioError):
        read_mono(tmp_path / "nope.wav")  # not iterated


def test_directory(tmp_path):
    assert_audio_error(tmp_path, "directory")
    assert_audio_error(tmp_path, "directory", fn=probe)


def test_permission_denied(tmp_path, monkeypatch):
    path = make(tmp_path, "wav", "pcm_s16le", 16000, 1)
    if os.geteuid() == 0:  # root reads anything: make the open fail the way FFmpeg reports it

        def denied(file, *args, **kwargs):
            raise av.error.PermissionError(13, "Permission denied", str(file))

        monkeypatch.setattr(av, "open", denied)
    else:
        path.chmod(0)
    assert_audio_error(path, "permission denied")
    assert_audio_error(path, "permission denied", fn=probe)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    assert_audio_error(path, "empty", "0 bytes")
    assert_audio_error(path, "empty", fn=probe)


def test_text_file_renamed_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("These are my coaching notes, not audio.\n" * 50)
    assert_audio_error(path, "not a readable audio file")
    assert_audio_error(path, "not a readable audio file", fn=probe)


@pytest.mark.parametrize("ext,codec,keep", [("wav", "pcm_s16le", 30), ("m4a", "aac", 40), ("mp3", "libmp3lame", 100)])
def test_truncated_header(tmp_path, ext, codec, keep):
    whole = make(tmp_path, ext, codec, 44100, 1)
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(whole.read_bytes()[:keep])
    assert_audio_error(path)


def test_ogg_with_headers_but_no_audio_pages(tmp_path):
    whole = make(tmp_path, "ogg", "libopus", 48000, 1)
    path = tmp_path / "cut.ogg"
    path.write_bytes(whole.read_bytes()[:200])
    assert_audio_error(path, "ends before any audio")


def test_video_only_webm(tmp_path):
    path = tmp_path / "video.webm"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    assert_audio_error(path, "no audio stream", "video")
    assert_audio_error(path, "no audio stream", fn=probe)


@pytest.mark.parametrize("ext,codec", [("wav", "pcm_s16le"), ("flac", "flac")])
def test_audio_stream_with_zero_samples(tmp_path, ext, codec):
    path = tmp_path / f"nothing.{ext}"
    with av.open(str(path), "w") as container:
        container.add_stream(codec, rate=16000, layout="mono")
        container.start_encoding()  # headers only
    assert path.stat().st_size > 0
    assert_audio_error(path, "no samples")
    assert_audio_error(path, "no samples", fn=probe)
    assert_audio_error(path, fn=read_stereo)


def test_read_stereo_of_a_mono_file(tmp_path):
    path = make(tmp_path, "ogg", "libopus", 48000, 1)
    with pytest.raises(AudioError) as info:
        read_stereo(path)
    assert str(path) in str(info.value) and "1 channel" in str(info.value)

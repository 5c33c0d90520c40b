"""Audio made hard for the live path, and written as a browser sends it: shared by
tests/test_live.py and scripts/bench_live.py (``--hard``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
ROOT = Path(__file__).resolve().parent.parent


def write_opus(path: Path, audio: np.ndarray) -> None:
    """Ogg/Opus, 48 kHz mono, 32 kbit/s, 20 ms packets: what a browser sends over RTP."""
    import av

    out = av.open(str(path), "w", format="ogg")
    stream = out.add_stream("libopus", rate=48000)
    stream.layout = "mono"
    stream.bit_rate = 32000
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, dtype=np.int16).reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = 0
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48000, frame_size=960)
    for f in resampler.resample(frame) + resampler.resample(None):
        for packet in stream.encode(f):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()


HARD_NOISES = ["fan_extractor", "typing_mechanical_keyboard", "cafe_chatter", "hvac_room_tone_low"]
"""Real noise recordings (../shared/data/real-noise/noise) mixed into ``--hard`` calls, in turn."""
NOISE_FOLDER = ROOT.parent / "shared" / "data" / "real-noise" / "noise"


def make_hard(coach: np.ndarray, client: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    """The excerpt made hard, as the issue's outside tester did: the client 10 dB quieter, each
    microphone hearing the other's loudspeaker (-25 dB, 120 ms later) and a real noise recording
    under both (15 dB below the coach's speech level, 10 dB below the quiet client's)."""
    from livecoach.ingest import read_mono

    a, b = coach.astype(np.float64), client.astype(np.float64) * 10 ** (-10 / 20)
    delay = int(0.12 * SAMPLE_RATE)
    leak = 10 ** (-25 / 20)
    a_in = a + leak * np.concatenate([np.zeros(delay), b[:-delay]])
    b_in = b + leak * np.concatenate([np.zeros(delay), a[:-delay]])
    name = HARD_NOISES[index % len(HARD_NOISES)]
    noise = np.concatenate(list(read_mono(NOISE_FOLDER / f"{name}.wav"))).astype(np.float64)
    noise = np.tile(noise, -(-a.size // noise.size) + 1)

    def level(x: np.ndarray) -> float:
        loud = np.abs(x) > 0.1 * np.abs(x).max()
        return float(np.sqrt(np.mean(x[loud] ** 2))) if loud.any() else 1.0

    n = noise / level(noise)
    out = []
    for track, speech, shift, snr_db in ((a_in, a, 0, 15), (b_in, b, a.size // 3, 10)):
        mixed = track + n[shift: shift + track.size] * level(speech) * 10 ** (-snr_db / 20)
        out.append(np.clip(mixed, -32768, 32767).astype(np.int16))
    return out[0], out[1]

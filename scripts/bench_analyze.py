#!/usr/bin/env python3
"""Benchmark `livecoach analyze` on a long two-participant session: time, real-time multiple, memory.

The session is the `realcall` fixture (bleed, fan, clicks, a quiet client) repeated to the
requested length and written as one 16 kHz WAV per participant (or, with --codec, Ogg/Opus as the
recordings are kept, or AAC in M4A at 48 kHz as Zoom and phones record).
Each analysis runs in a child process so its peak memory is its own; a 1-minute session is
measured beside it to show that memory does not grow with length beyond the segment lists.

Beside it, the bare pipeline (decode both tracks, webrtcvad on every frame) is timed the same
way, for the cost rule: analyze may take at most 1.5 times as long.

Usage: scripts/bench_analyze.py [--minutes 60] [--codec wav|opus|aac] [--repeat 3]
The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from livecoach.frames import SAMPLE_RATE  # noqa: E402
from livecoach.ingest import read_mono  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "realcall"

CHILD = r"""
import json, resource, sys, time
from livecoach.analyze import analyze_tracks
t0, c0 = time.perf_counter(), time.process_time()
result = analyze_tracks(sys.argv[1], sys.argv[2])
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "audio_s": result.duration,
                  "segments": sum(len(s) for s in result.timeline.segments.values()),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

BASELINE = r"""
import json, resource, sys, time
from itertools import repeat
import numpy as np
import _webrtcvad, webrtcvad
from livecoach.ingest import read_mono
from livecoach.analyze import CHUNK_SECONDS
t0, c0 = time.perf_counter(), time.process_time()
frames = 0
for path in sys.argv[1:3]:
    vad = webrtcvad.Vad(2)
    rest = np.zeros(0, np.int16)
    for chunk in read_mono(path, CHUNK_SECONDS):
        x = np.concatenate((rest, chunk))
        n = x.size // 160
        chunks = x[: n * 160].view(np.dtype((np.void, 320))).tolist()  # one bytes object a frame
        rest = x[n * 160 :]
        flags = list(map(_webrtcvad.process, repeat(vad._vad), repeat(16000), chunks, repeat(160)))
        frames += n
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "audio_s": frames / 200, "segments": 0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
"""The bare pipeline the cost rule compares with: decode both tracks and run webrtcvad on every
10 ms frame, nothing else (``audio_s`` here is the two tracks' total)."""


def write_session(folder: Path, seconds: float, codec: str) -> dict[str, Path]:
    """Repeat the fixture's two tracks to ``seconds`` and write them, streaming."""
    out = {}
    for who in ("coach", "client"):
        track = np.concatenate(list(read_mono(FIXTURE / f"{who}.opus")))
        total = int(seconds * SAMPLE_RATE)
        wav_path = folder / f"{who}.wav"
        with wave.open(str(wav_path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            written = 0
            while written < total:
                part = track[: total - written]
                w.writeframes(part.tobytes())
                written += part.size
        out[who] = wav_path if codec == "wav" else _encode(wav_path, codec)
    return out


ENCODINGS = {"opus": (".opus", "ogg", "libopus", "s16", 32000), "aac": (".m4a", "mp4", "aac", "fltp", 64000)}
"""--codec: the file's suffix, container, encoder, the samples it takes and its bit rate (mono, 48 kHz)."""


def _encode(wav_path: Path, codec: str) -> Path:
    import av

    suffix, container, encoder, samples, bit_rate = ENCODINGS[codec]
    target = wav_path.with_suffix(suffix)
    with av.open(str(wav_path)) as src, av.open(str(target), "w", format=container) as dst:
        stream = dst.add_stream(encoder, rate=48000, layout="mono")
        stream.bit_rate = bit_rate
        resampler = av.AudioResampler(format=samples, layout="mono", rate=48000)
        for frame in src.decode(audio=0):
            for f in resampler.resample(frame):
                dst.mux(stream.encode(f))
        for f in resampler.resample(None):
            dst.mux(stream.encode(f))
        dst.mux(stream.encode(None))
    wav_path.unlink()
    return target


def measure(tracks: dict[str, Path], repeat: int, child: str = CHILD) -> dict:
    runs = []
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-c", child, str(tracks["coach"]), str(tracks["client"])],
            capture_output=True, text=True, env=env, check=True,
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["cpu_s"])
    best["x_realtime_cpu"] = best["audio_s"] / best["cpu_s"]
    best["x_realtime_wall"] = best["audio_s"] / best["wall_s"]
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in best.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--codec", choices=("wav", *ENCODINGS), default="wav")
    ap.add_argument("--repeat", type=int, default=3, help="runs per length; the fastest counts")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="livecoach-bench-") as tmp:
        for minutes in (1.0, args.minutes):
            folder = Path(tmp) / f"{minutes:g}min"
            folder.mkdir()
            tracks = write_session(folder, minutes * 60, args.codec)
            results[f"{minutes:g}min"] = measure(tracks, args.repeat)
            r = results[f"{minutes:g}min"]
            print(
                f"{minutes:5g} min {args.codec}: {r['cpu_s']:.2f} s CPU ({r['x_realtime_cpu']:.0f}x real time), "
                f"{r['wall_s']:.2f} s wall, peak {r['peak_rss_mb']:.0f} MB, {r['segments']} segments"
            )
            if minutes == args.minutes:
                base = measure(tracks, args.repeat, BASELINE)
                print(f"{minutes:5g} min {args.codec}: decode + webrtcvad alone {base['cpu_s']:.2f} s CPU, "
                      f"analyze / bare = {r['cpu_s'] / base['cpu_s']:.2f}")
    long, short = results[f"{args.minutes:g}min"], results["1min"]
    summary = {
        "benchmark": "analyze",
        "codec": args.codec,
        "minutes": args.minutes,
        "cpu_s": long["cpu_s"],
        "wall_s": long["wall_s"],
        "x_realtime": long["x_realtime_cpu"],
        "peak_rss_mb": long["peak_rss_mb"],
        "peak_rss_mb_1min": short["peak_rss_mb"],
        "segments": long["segments"],
        "bare_decode_vad_cpu_s": base["cpu_s"],
        "ratio_to_bare": round(long["cpu_s"] / base["cpu_s"], 3),
        "runs": results,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

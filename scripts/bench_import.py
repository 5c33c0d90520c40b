#!/usr/bin/env python3
"""Benchmark `livecoach import` against `livecoach analyze` of the same files.

The contract (issue 11): "long files import at the analyzer's speed". The call is the `realcall`
fixture (bleed, fan, clicks, a quiet client) repeated to ``--minutes``, written as
- ``wav``: one 16 kHz 16-bit WAV per participant (kept as it is);
- ``m4a``: one 48 kHz AAC file per participant, as Zoom's "separate audio file for each
  participant" gives them (kept as they are);
- ``stereo``: one 16 kHz stereo WAV, the coach left (each channel kept as FLAC).
For each, ``--repeat`` times and interleaved, `livecoach analyze --format json` and `livecoach
import --format json` run as a user runs them (a process each; the import into a data folder
that holds no session yet, made before the clock starts, as a coach's first import): wall and CPU
seconds, real-time multiple, and the import's time over the analysis's. The recordings'
size per hour is printed too.

Usage: scripts/bench_import.py [--minutes 60] [--repeat 3] [--layouts wav,m4a,stereo] [--work DIR]
The last line printed is JSON. The exit status is 0 when the benchmark ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from livecoach.frames import SAMPLE_RATE  # noqa: E402
from livecoach.ingest import read_mono, write_wav  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "realcall"
LIVECOACH = [sys.executable, "-m", "livecoach"]


def looped(role: str, seconds: int) -> np.ndarray:
    one = np.concatenate(list(read_mono(FIXTURE / f"{role}.opus")))
    return np.tile(one, -(-seconds * SAMPLE_RATE // one.size))[: seconds * SAMPLE_RATE]


def write_m4a(samples: np.ndarray, path: Path) -> Path:
    """48 kHz AAC at 64 kbit/s in MP4, as a meeting program writes a participant's audio."""
    with av.open(str(path), "w", format="ipod") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.codec_context.layout = "mono"
        stream.bit_rate = 64000
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=48000)
        for i in range(0, samples.size, 10 * SAMPLE_RATE):
            frame = av.AudioFrame.from_ndarray(samples[i : i + 10 * SAMPLE_RATE].reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            for part in resampler.resample(frame):
                part.pts = None
                out.mux(stream.encode(part))
        out.mux(stream.encode(None))
    return path


def make_inputs(work: Path, minutes: int, layouts: list[str]) -> dict[str, list[str]]:
    """The files of each layout, made once per length (kept in ``work``)."""
    seconds = minutes * 60
    tracks = None
    out = {}
    for layout in layouts:
        stem = work / f"{minutes}min"
        if layout == "stereo":
            path = stem.with_name(f"{stem.name}-stereo.wav")
            if not path.exists():
                tracks = tracks or {r: looped(r, seconds) for r in ("coach", "client")}
                write_wav(path, np.stack([tracks["coach"], tracks["client"]]).T.copy())
            out[layout] = ["--stereo", str(path)]
            continue
        args = []
        for role in ("coach", "client"):
            path = stem.with_name(f"{stem.name}-{role}.{layout}")
            if not path.exists():
                tracks = tracks or {r: looped(r, seconds) for r in ("coach", "client")}
                if layout == "wav":
                    write_wav(path, tracks[role])
                else:
                    write_m4a(tracks[role], path)
            args += [f"--{role}", str(path)]
        out[layout] = args
    return out


def timed(args: list[str]) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "answer": json.loads(done.stdout)}


def spread(values: list[float]) -> dict:
    return {"n": len(values), "min": round(min(values), 3), "p50": round(statistics.median(values), 3),
            "max": round(max(values), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--layouts", default="wav,m4a,stereo")
    parser.add_argument("--work", type=Path, help="keep the generated files here (reused by the next run)")
    args = parser.parse_args()
    layouts = args.layouts.split(",")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-import-"))
    work.mkdir(parents=True, exist_ok=True)
    inputs = make_inputs(work, args.minutes, layouts)
    audio_s = args.minutes * 60
    runs: dict[str, dict[str, list]] = {layout: {"analyze": [], "import": [], "ratio": [], "mb_per_hour": []}
                                        for layout in layouts}
    for r in range(args.repeat):
        for layout in layouts:
            analysed = timed([*LIVECOACH, "analyze", *inputs[layout], "--format", "json"])
            data = work / f"data-{layout}"
            shutil.rmtree(data, ignore_errors=True)
            subprocess.run([*LIVECOACH, "sessions", "--data", str(data)], check=True, capture_output=True)  # the coach's data folder
            imported = timed([*LIVECOACH, "import", *inputs[layout], "--label", "bench", "--data", str(data),
                              "--format", "json"])
            folder = data / "recordings" / imported["answer"]["session"]
            size = sum(p.stat().st_size for p in folder.iterdir() if not p.name.endswith(".peaks"))
            row = runs[layout]
            row["analyze"].append(analysed)
            row["import"].append(imported)
            row["ratio"].append(imported["wall_s"] / analysed["wall_s"])
            row["mb_per_hour"].append(size / 1e6 * 3600 / audio_s)
            print(f"run {r + 1} {layout}: analyze {analysed['wall_s']:.2f} s ({audio_s / analysed['wall_s']:.0f}x, "
                  f"cpu {analysed['cpu_s']:.2f} s), "
                  f"import {imported['wall_s']:.2f} s ({audio_s / imported['wall_s']:.0f}x, cpu {imported['cpu_s']:.2f} s), "
                  f"import/analyze {row['ratio'][-1]:.2f}, recordings {row['mb_per_hour'][-1]:.0f} MB/h", flush=True)
    summary = {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "load_1min": round(os.getloadavg()[0], 2)},
        "minutes": args.minutes,
        "layouts": {
            layout: {
                "analyze_wall_s": spread([x["wall_s"] for x in row["analyze"]]),
                "import_wall_s": spread([x["wall_s"] for x in row["import"]]),
                "analyze_cpu_s": spread([x["cpu_s"] for x in row["analyze"]]),
                "import_cpu_s": spread([x["cpu_s"] for x in row["import"]]),
                "analyze_x_realtime": spread([audio_s / x["wall_s"] for x in row["analyze"]]),
                "import_x_realtime": spread([audio_s / x["wall_s"] for x in row["import"]]),
                "import_over_analyze": spread(row["ratio"]),
                "recordings_mb_per_hour": round(statistics.median(row["mb_per_hour"]), 1),
            } for layout, row in runs.items()
        },
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

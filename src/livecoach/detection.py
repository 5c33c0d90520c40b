"""Per-participant, frame-by-frame speech evidence: webrtcvad, frame energy, and a noise floor.

The detector does not decide who is talking: it measures. Attribution compares the
measurements of both microphones (to remove bleed), and the segmenter turns what is left
into speech segments. Everything here is incremental and gives the same result however the
audio is chunked, so a live call and a file give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat

import _webrtcvad  # webrtcvad's C core: its Python wrapper re-checks every frame's length
import numpy as np
import webrtcvad

from .config import DetectionConfig
from .frames import FRAME_SAMPLES, SAMPLE_RATE
from .windows import running_min

SILENT_DB = -120.0
"""Energy given to digital silence and to frames of an absent participant."""
_FRAME_BYTES = np.dtype((np.void, FRAME_SAMPLES * 2))
"""A whole int16 frame as one item, so that ``tolist()`` gives one bytes object per frame."""


@dataclass
class FrameFeatures:
    """Measurements for consecutive frames of one participant (parallel arrays)."""

    energy_db: np.ndarray  # float64, pre-emphasised frame energy in dBFS
    floor_db: np.ndarray  # float64, the noise floor in force for each frame
    vad: np.ndarray  # bool, webrtcvad's decision
    weak_db: np.ndarray  # float64, the energy a frame must exceed to carry speech on (weak evidence)
    strong_db: np.ndarray  # float64, the energy a frame must exceed to start speech (strong evidence)

    def __len__(self) -> int:
        return int(self.energy_db.size)

    @staticmethod
    def absent(n: int) -> FrameFeatures:
        """Frames of a participant who is muted or not connected: no speech, nothing measured."""
        return FrameFeatures(
            np.full(n, SILENT_DB), np.full(n, SILENT_DB), np.zeros(n, dtype=bool),
            np.full(n, SILENT_DB), np.full(n, SILENT_DB),
        )

    @staticmethod
    def concat(parts: list[FrameFeatures]) -> FrameFeatures:
        if len(parts) == 1:
            return parts[0]
        return FrameFeatures(
            np.concatenate([p.energy_db for p in parts]),
            np.concatenate([p.floor_db for p in parts]),
            np.concatenate([p.vad for p in parts]),
            np.concatenate([p.weak_db for p in parts]),
            np.concatenate([p.strong_db for p in parts]),
        )

    def slice(self, start: int, stop: int) -> FrameFeatures:
        return FrameFeatures(
            self.energy_db[start:stop], self.floor_db[start:stop], self.vad[start:stop],
            self.weak_db[start:stop], self.strong_db[start:stop],
        )


class Detector:
    """Measures one participant's frames. Keep one per participant for the whole session."""

    def __init__(self, config: DetectionConfig | None = None) -> None:
        self.config = config or DetectionConfig()
        self._vad = webrtcvad.Vad(self.config.vad_mode)
        self._last_sample = 0.0
        self._block: list[float] = []  # energies of the current, unfinished block
        self._first_min = np.inf  # running minimum before the first block is complete
        self._history: list[float] = []  # low percentiles of the last finished blocks, oldest first
        self._floor_now = -np.inf  # min(self._history) + the bias, once there is a history

    def process(self, frames: np.ndarray) -> FrameFeatures:
        """Measure frames of shape (n, FRAME_SAMPLES), int16, that follow the previous call's."""
        n = frames.shape[0]
        if n == 0:
            return FrameFeatures(np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0), np.zeros(0))
        energy = self._energy_db(frames)
        floor = self._floor_db(energy)
        weak = floor + self.config.snr_hold_db
        # One bytes object per frame, made by numpy in C, and webrtcvad's C function mapped over
        # them: no slicing or call per frame in Python.
        chunks = np.ascontiguousarray(frames).view(_FRAME_BYTES).ravel().tolist()
        if self.config.vad_skip_quiet:
            # Frames too close to the noise floor can never count as speech, whatever webrtcvad says.
            audible = np.flatnonzero(energy > weak).tolist()
            chunks = [chunks[i] for i in audible]
        vad = repeat(self._vad._vad)
        decisions = list(map(_webrtcvad.process, vad, repeat(SAMPLE_RATE), chunks, repeat(FRAME_SAMPLES)))
        if self.config.vad_skip_quiet:
            flags = np.zeros(n, dtype=bool)
            flags[audible] = decisions
        else:
            flags = np.array(decisions, dtype=bool)
        return FrameFeatures(energy, floor, flags, weak, floor + self.config.snr_margin_db)

    def _energy_db(self, frames: np.ndarray) -> np.ndarray:
        """Mean power of the pre-emphasised signal, in dB relative to full scale."""
        if self.config.preemphasis == 0.0:
            # Without pre-emphasis a frame's energy is a sum of 160 squared int16 values: integers
            # below 2**38, exact in float64 whatever the order they are added in. So this equals the
            # general computation below bit for bit, in a few numpy calls instead of a dozen.
            x = frames.astype(np.float64)
            total = np.einsum("ij,ij->i", x, x)
        else:
            x = frames.astype(np.float32).reshape(-1)
            y = np.empty_like(x)
            y[1:] = x[1:] - self.config.preemphasis * x[:-1]
            y[0] = x[0] - self.config.preemphasis * self._last_sample
            self._last_sample = float(x[-1])
            y = y.reshape(frames.shape)
            total = np.einsum("ij,ij->i", y, y, dtype=np.float64)
        power = total / (FRAME_SAMPLES * 32768.0**2)
        return 10.0 * np.log10(np.maximum(power, 1e-12))

    def _floor_db(self, energy: np.ndarray) -> np.ndarray:
        """The noise floor: the lowest of the recent blocks' low-percentile energies.

        A block's low percentile (not its minimum) sits close to a steady noise's mean, and the
        lowest over a few seconds of blocks finds the pauses between words. Blocks are aligned to
        absolute frame numbers and a block counts once it is complete, so chunking does not change
        the result. Until the first block is complete, the running minimum stands in.
        """
        cfg = self.config
        n = energy.size
        if self._history and len(self._block) + n < cfg.floor_block_frames:
            # A live batch of a few frames: no block completes, the floor in force stays. Adding
            # the bias to the one value is the same IEEE addition as adding it to each frame's.
            self._block.extend(energy.tolist())
            out = np.empty(n)
            out.fill(self._floor_now)
            return out
        out = np.empty_like(energy)
        size = cfg.floor_block_frames
        k = int(cfg.floor_percentile / 100 * (size - 1))
        pos = 0
        while pos < n:
            in_block = len(self._block)
            whole = (n - pos) // size
            if not in_block and self._history and whole:
                # Whole blocks of a file or a long batch: every block's percentile in one call
                # and every block's floor in a few (the same values as one block at a time).
                lows = np.partition(energy[pos : pos + whole * size].reshape(whole, size), k, axis=1)[:, k]
                out[pos : pos + whole * size] = np.repeat(self._blocks_done(lows), size)
                pos += whole * size
                continue
            take = min(size - in_block, n - pos)
            part = energy[pos : pos + take]
            if self._history:
                out[pos : pos + take] = min(self._history)
            else:
                out[pos : pos + take] = np.minimum.accumulate(np.minimum(part, self._first_min))
                self._first_min = float(out[pos + take - 1])
            self._block.extend(part.tolist())
            pos += take
            if len(self._block) == size:
                self._blocks_done(np.partition(np.asarray(self._block), k)[k : k + 1])
                self._block = []
        return out + cfg.floor_bias_db

    def _blocks_done(self, lows: np.ndarray) -> np.ndarray:
        """Blocks are complete with these low percentiles (one, or a file's batch of them): each
        joins the history and the oldest leave. Returns the floor in force during each block (the
        lowest of the history before it), found in a few numpy calls however many blocks."""
        keep = self.config.floor_history_blocks
        values = np.concatenate((np.full(keep - len(self._history), np.inf), self._history, lows))
        floors = running_min(values[:-1], keep)  # block j's: the ``keep`` values before lows[j]
        self._history = [v for v in values[-keep:].tolist() if v != np.inf]  # not the padding
        self._floor_now = min(self._history) + self.config.floor_bias_db
        return floors

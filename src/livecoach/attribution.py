"""Deciding which detected speech is a participant's own and which is the other's voice leaking in.

When the client's speakers play the coach's voice, the client's microphone hears it again,
typically 20-35 dB quieter and 50-250 ms later. Plain per-track detection counts that leak as
the client talking. Here each microphone's energy is compared with the leak that the other
track predicts: the other's loudest frame around the echo delay, lowered by the coupling
between the two. A frame is the participant's own speech only if it rises clearly above that
prediction and above its own noise floor. Real overlap survives, because a voice at its own
microphone is far louder than its echo at the other end.

Delay and coupling are measured as the call goes, from frames where the leak is audible: the
delay as the lag at which the two energy envelopes correlate best, the coupling as a high
quantile of (listener energy - source energy at that lag). Until enough evidence has come, the
whole delay range and a cautious default coupling are used. Estimates change only at block
boundaries, so the result does not depend on how the audio was chunked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .config import AttributionConfig, DetectionConfig
from .detection import SILENT_DB, FrameFeatures

_BIN_DB = 0.5
_LOW_DB = -90.0


class _Path:
    """The echo path from one participant's voice into another's microphone, measured over time."""

    def __init__(self, config: AttributionConfig) -> None:
        self.config = config
        lags = config.max_delay_frames + 1
        self._bins = int(round((config.coupling_cap_db - _LOW_DB) / _BIN_DB))
        self._hist = np.zeros((lags + 1, self._bins))  # one row per lag, the last for the whole range
        self._sums = np.zeros((5, lags))  # n, sum x, sum x^2, sum y_k, sum y_k^2 ...
        self._sxy = np.zeros(lags)
        self.delay: int | None = None
        self.level_db = config.default_coupling_db

    def add(self, listener_db: np.ndarray, lagged_db: np.ndarray, local_ratio: np.ndarray, wide_ratio: np.ndarray) -> None:
        """Evidence frames: listener energy, source energy per lag, and ratios per lag / whole range."""
        if not listener_db.size:
            return
        x = listener_db[:, None]
        self._sums[0] += listener_db.size
        self._sums[1] += listener_db.sum()
        self._sums[2] += (listener_db**2).sum()
        self._sums[3] += lagged_db.sum(axis=0)
        self._sums[4] += (lagged_db**2).sum(axis=0)
        self._sxy += (x * lagged_db).sum(axis=0)
        ratios = np.concatenate((local_ratio, wide_ratio[:, None]), axis=1)
        idx = ((np.clip(ratios, _LOW_DB, self.config.coupling_cap_db - 1e-9) - _LOW_DB) / _BIN_DB).astype(np.int64)
        flat = idx + (np.arange(ratios.shape[1]) * self._bins)[None, :]
        self._hist += np.bincount(flat.ravel(), minlength=self._hist.size).reshape(self._hist.shape)

    def end_block(self) -> None:
        """Fix the delay and level used for the next block, then let old evidence fade."""
        cfg = self.config
        n = self._sums[0][0]
        if n >= cfg.min_evidence_frames:
            mx, my = self._sums[1] / n, self._sums[3] / n
            cov = self._sxy / n - mx * my
            var = np.maximum(self._sums[2] / n - mx**2, 1e-9) * np.maximum(self._sums[4] / n - my**2, 1e-9)
            corr = cov / np.sqrt(var)
            best = int(np.argmax(corr))
            self.delay = best if corr[best] >= cfg.min_delay_correlation else None
            row = self._hist[self.delay] if self.delay is not None else self._hist[-1]
            cum = np.cumsum(row)
            i = int(np.searchsorted(cum, cfg.coupling_quantile * cum[-1]))
            self.level_db = _LOW_DB + (i + 1) * _BIN_DB
        self._hist *= cfg.evidence_decay
        self._sums *= cfg.evidence_decay
        self._sxy *= cfg.evidence_decay


class Attributor:
    """Turns aligned per-participant measurements into per-participant own-speech frame flags."""

    def __init__(
        self,
        participants: Sequence[str],
        config: AttributionConfig | None = None,
        detection: DetectionConfig | None = None,
    ) -> None:
        self.participants = list(participants)
        self.config = config or AttributionConfig()
        self.detection = detection or DetectionConfig()
        self.block_frames = self.detection.floor_block_frames
        self._paths = {
            (src, dst): _Path(self.config) for src in self.participants for dst in self.participants if src != dst
        }
        self._history = self.config.max_delay_frames + self.config.delay_tolerance_frames
        self._tails = {p: np.full(self._history, SILENT_DB) for p in self.participants}
        self._frames_done = 0

    def coupling_db(self, source: str, listener: str) -> float:
        """The leak level from ``source``'s voice into ``listener``'s microphone now in use."""
        return self._paths[(source, listener)].level_db

    def delay_frames(self, source: str, listener: str) -> int | None:
        """The measured echo delay from ``source`` into ``listener``'s microphone, if known."""
        return self._paths[(source, listener)].delay

    def process(self, features: dict[str, FrameFeatures]) -> dict[str, np.ndarray]:
        """Aligned features of equal length for every participant -> own-speech flags per frame."""
        n = len(features[self.participants[0]])
        out = {p: np.zeros(n, dtype=bool) for p in self.participants}
        pos = 0
        while pos < n:
            take = min(self.block_frames - self._frames_done % self.block_frames, n - pos)
            part = {p: f.slice(pos, pos + take) for p, f in features.items()}
            for p, flags in self._process_part(part).items():
                out[p][pos : pos + take] = flags
            pos += take
            self._frames_done += take
            if self._frames_done % self.block_frames == 0:
                for path in self._paths.values():
                    path.end_block()
        return out

    def _lagged(self, p: str, energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per frame, the source's energy at each lag 0..max, and its peak around each lag."""
        cfg = self.config
        lags, tol = cfg.max_delay_frames + 1, cfg.delay_tolerance_frames
        history = np.concatenate((self._tails[p], energy))
        self._tails[p] = history[-self._history :]
        # columns: lag -tol .. max+tol (negative lags are clipped away: no look-ahead)
        window = sliding_window_view(history, self._history + 1)[-energy.size :, ::-1]
        lagged = window[:, :lags]
        padded = np.concatenate((np.full((energy.size, tol), SILENT_DB), window), axis=1)
        local = sliding_window_view(padded, 2 * tol + 1, axis=1).max(axis=2)[:, :lags]
        return lagged, local

    def _process_part(self, features: dict[str, FrameFeatures]) -> dict[str, np.ndarray]:
        cfg = self.config
        lagged = {p: self._lagged(p, f.energy_db) for p, f in features.items()}
        flags = {}
        for dst, f in features.items():
            leak_power = np.zeros(len(f))
            for src, g in features.items():
                if src == dst:
                    continue
                path = self._paths[(src, dst)]
                at_lag, around_lag = lagged[src]
                wide = around_lag.max(axis=1)
                wide_ratio = f.energy_db - wide
                evidence = (
                    (wide > g.floor_db + cfg.source_active_db)
                    & (f.energy_db > f.floor_db + cfg.visible_db)
                    & (wide_ratio < cfg.coupling_cap_db)
                )
                path.add(
                    f.energy_db[evidence],
                    at_lag[evidence],
                    f.energy_db[evidence, None] - around_lag[evidence],
                    wide_ratio[evidence],
                )
                source = around_lag[:, path.delay] if path.delay is not None else wide
                leak_power += 10.0 ** ((source + path.level_db) / 10.0)
            leak_db = 10.0 * np.log10(np.maximum(leak_power, 1e-14))
            flags[dst] = (
                f.vad
                & (f.energy_db > f.floor_db + self.detection.snr_margin_db)
                & (f.energy_db > leak_db + cfg.bleed_margin_db)
            )
        return flags

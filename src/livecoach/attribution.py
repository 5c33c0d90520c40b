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
whole delay range and a default coupling from the middle of the typical range are used. A path
on which no correlated leak shows needs no prediction at all. Estimates are renewed once a
second at fixed media times, so the result does not depend on how the audio was chunked.
See docs/engine.md for the measurements behind these choices.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .config import AttributionConfig, DetectionConfig
from .detection import SILENT_DB, FrameFeatures

_BIN_DB = 0.5
_LOW_DB = -90.0
INAUDIBLE_DB = -200.0
"""The coupling of a path on which no leak can be heard."""


def _windows(x: np.ndarray, width: int) -> np.ndarray:
    """Read-only view of every run of ``width`` consecutive values (numpy's sliding_window_view
    without its argument checks, which cost more than the work on a live 40 ms batch)."""
    n = x.size - width + 1
    return as_strided(x, shape=(n, width), strides=(x.strides[0], x.strides[0]), writeable=False)


class _Path:
    """The echo path from one participant's voice into another's microphone, measured over time."""

    def __init__(self, config: AttributionConfig) -> None:
        self.config = config
        lags = config.max_delay_frames + 1
        self._bins = int(round((config.coupling_cap_db - _LOW_DB) / _BIN_DB))
        self._hist = np.zeros((lags + 1, self._bins))  # one row per lag, the last for the whole range
        self._sums = np.zeros((5, lags))  # n, sum x, sum x^2, sum y_k, sum y_k^2 ...
        self._sxy = np.zeros(lags)
        self._chances = 0.0
        self._visible = 0.0
        self.delay: int | None = None
        self.level_db = config.default_coupling_db

    def add(self, listener_db: np.ndarray, lagged_db: np.ndarray, around_db: np.ndarray, wide_ratio: np.ndarray) -> None:
        """Evidence frames: listener energy, source energy per lag, the source's peak around each
        lag, and the listener's energy relative to the source's peak over the whole range."""
        if not listener_db.size:
            return
        x = listener_db[:, None]
        self._sums[0] += listener_db.size
        self._sums[1] += listener_db.sum()
        self._sums[2] += (listener_db**2).sum()
        self._sums[3] += lagged_db.sum(axis=0)
        self._sums[4] += (lagged_db**2).sum(axis=0)
        self._sxy += (x * lagged_db).sum(axis=0)
        ratios = np.concatenate((listener_db[:, None] - around_db, wide_ratio[:, None]), axis=1)
        idx = ((np.clip(ratios, _LOW_DB, self.config.coupling_cap_db - 1e-9) - _LOW_DB) / _BIN_DB).astype(np.int64)
        flat = idx + (np.arange(ratios.shape[1]) * self._bins)[None, :]
        self._hist += np.bincount(flat.ravel(), minlength=self._hist.size).reshape(self._hist.shape)

    def listened(self, chances: int, visible: int) -> None:
        """The source spoke in ``chances`` frames, and in ``visible`` of them the listener's
        microphone rose above its noise floor (a leak, or the listener speaking)."""
        self._chances += chances
        self._visible += visible

    def end_block(self) -> None:
        """Fix the delay and level used for the next block, then let old evidence fade.

        A leak is trusted only where the listener's energy follows the source's at some lag. If
        the source spoke for long and no such leak showed, the leak is below the listener's noise
        floor and needs no prediction: the floor gate already rejects it.
        """
        cfg = self.config
        n = self._sums[0][0]
        if n >= cfg.min_evidence_frames:
            mx, my = self._sums[1] / n, self._sums[3] / n
            cov = self._sxy / n - mx * my
            var = np.maximum(self._sums[2] / n - mx**2, 1e-9) * np.maximum(self._sums[4] / n - my**2, 1e-9)
            corr = cov / np.sqrt(var)
            best = int(np.argmax(corr))
            if corr[best] >= cfg.min_delay_correlation:
                self.delay = best
                cum = np.cumsum(self._hist[best])
                i = int(np.searchsorted(cum, cfg.coupling_quantile * cum[-1]))
                self.level_db = _LOW_DB + (i + 1) * _BIN_DB
            else:
                self.delay, self.level_db = None, INAUDIBLE_DB
        elif self._chances >= cfg.min_chances_frames and self._visible < cfg.min_visible_share * self._chances:
            self.delay, self.level_db = None, INAUDIBLE_DB
        self._hist *= cfg.evidence_decay
        self._sums *= cfg.evidence_decay
        self._sxy *= cfg.evidence_decay
        self._chances *= cfg.evidence_decay
        self._visible *= cfg.evidence_decay


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
        self._paths = {
            (src, dst): _Path(self.config) for src in self.participants for dst in self.participants if src != dst
        }
        self._span = self.config.max_delay_frames + self.config.delay_tolerance_frames
        self._tails = {p: np.full(self._span, SILENT_DB) for p in self.participants}
        self._own_tails = {p: np.zeros(self._span, dtype=bool) for p in self.participants}
        self._frames_done = 0

    def coupling_db(self, source: str, listener: str) -> float:
        """The leak level from ``source``'s voice into ``listener``'s microphone now in use."""
        return self._paths[(source, listener)].level_db

    def delay_frames(self, source: str, listener: str) -> int | None:
        """The measured echo delay from ``source`` into ``listener``'s microphone, if known."""
        return self._paths[(source, listener)].delay

    def process(self, features: dict[str, FrameFeatures]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Aligned features of equal length for every participant -> per participant, own-speech
        flags per frame and the subset of them with strong evidence (well above the noise floor)."""
        cfg = self.config
        n = len(features[self.participants[0]])
        # Per frame, each participant's energy at lags 0 .. max delay + tolerance (a view, no copy).
        lags = {}
        for p, f in features.items():
            history = np.concatenate((self._tails[p], f.energy_db))
            self._tails[p] = history[-self._span :]
            lags[p] = _windows(history, self._span + 1)[:, ::-1]
        wide = {p: w.max(axis=1) for p, w in lags.items()}
        own = {p: np.zeros(n, dtype=bool) for p in self.participants}
        strong = {p: np.zeros(n, dtype=bool) for p in self.participants}
        pos = 0
        while pos < n:
            end = min(pos + cfg.update_frames - self._frames_done % cfg.update_frames, n)
            self._decide(features, lags, wide, own, strong, pos, end)
            self._measure(features, lags, wide, own, pos, end)
            self._frames_done += end - pos
            pos = end
            if self._frames_done % cfg.update_frames == 0:
                for path in self._paths.values():
                    path.end_block()
        for p in self.participants:
            self._own_tails[p] = np.concatenate((self._own_tails[p], own[p]))[-self._span :]
        return {p: (own[p], strong[p]) for p in self.participants}

    def _decide(self, features, lags, wide, own, strong, a: int, b: int) -> None:
        """Flag frames [a, b) with the path estimates now in force."""
        cfg, det = self.config, self.detection
        tol = cfg.delay_tolerance_frames
        for dst, f in features.items():
            leak_power = np.zeros(b - a)
            for src in features:
                if src == dst:
                    continue
                path = self._paths[(src, dst)]
                if path.delay is None:
                    source = wide[src][a:b]
                else:
                    source = lags[src][a:b, max(0, path.delay - tol) : path.delay + tol + 1].max(axis=1)
                leak_power += 10.0 ** ((source + path.level_db) / 10.0)
            leak_db = 10.0 * np.log10(np.maximum(leak_power, 1e-14))
            e, floor = f.energy_db[a:b], f.floor_db[a:b]
            flags = f.vad[a:b] & (e > floor + det.snr_hold_db) & (e > leak_db + cfg.bleed_margin_db)
            own[dst][a:b] = flags
            strong[dst][a:b] = flags & (e > floor + det.snr_margin_db)

    def _measure(self, features, lags, wide, own, a: int, b: int) -> None:
        """Collect evidence on each echo path from frames [a, b): frames where the source's own
        voice was heard within the delay range and the listener's microphone is well below it.

        Nothing here depends on the path's current estimate or the listener's flags, so a wrong
        estimate cannot keep itself alive (a leak that starts mid-call is still learnt).
        """
        cfg = self.config
        recent = {}
        for p in self.participants:
            # own speech anywhere in the last span + 1 frames, via a running count
            history = np.concatenate((self._own_tails[p], own[p][:b]))[-(self._span + b - a) :]
            counts = np.concatenate(([0], np.cumsum(history)))
            recent[p] = counts[self._span + 1 :] - counts[: b - a] > 0
        for (src, dst), path in self._paths.items():
            f = features[dst]
            e, floor = f.energy_db[a:b], f.floor_db[a:b]
            chance = recent[src]
            visible = chance & (e > floor + cfg.visible_db)
            path.listened(int(chance.sum()), int(visible.sum()))
            wide_ratio = e - wide[src][a:b]
            rows = np.flatnonzero(visible & (wide_ratio < cfg.coupling_cap_db)) + a
            if rows.size:
                at_lag = lags[src][rows]
                path.add(f.energy_db[rows], at_lag[:, : cfg.max_delay_frames + 1], self._around(at_lag), wide_ratio[rows - a])

    def _around(self, at_lag: np.ndarray) -> np.ndarray:
        """Per row, the peak within the tolerance around each lag 0 .. max delay."""
        tol = self.config.delay_tolerance_frames
        lags = self.config.max_delay_frames + 1
        padded = np.concatenate((np.full((at_lag.shape[0], tol), SILENT_DB), at_lag), axis=1)
        out = padded[:, :lags].copy()
        for k in range(1, 2 * tol + 1):
            np.maximum(out, padded[:, k : k + lags], out=out)
        return out

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
on which no correlated leak shows needs no prediction at all. Estimates are renewed every two
seconds at fixed media times, so the result does not depend on how the audio was chunked.
See docs/engine.md for the measurements behind these choices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .config import AttributionConfig
from .detection import SILENT_DB, FrameFeatures
from .windows import running_max

_BIN_DB = 0.5
_LOW_DB = -90.0
INAUDIBLE_DB = -200.0
"""The coupling of a path on which no leak can be heard."""


def _lag_view(energy: np.ndarray, span: int) -> np.ndarray:
    """Read-only view of a (participants, frames) buffer with every frame's energies at lags
    0 .. span: ``[p, i, k]`` is participant p's energy k frames before buffer frame ``i + span``.
    Made once per buffer, so a live batch reads its rows without any setup."""
    participants, frames = energy.shape
    step, frame = energy.strides
    shape = (participants, frames - span, span + 1)
    return as_strided(energy, shape=shape, strides=(step, frame, frame), writeable=False)[:, :, ::-1]


@dataclass(frozen=True)
class _Frames:
    """One path's frames prepared for its evidence (``_Path.prepare``), one row per frame."""

    listener_db: np.ndarray
    lagged: np.ndarray  # per frame the source's energy y at each lag 0 .. max delay, y^2, and listener_db * y
    bins: np.ndarray  # the histogram's bins (flattened): at each lag, then over the whole range


@dataclass(frozen=True)
class _Prepared:
    """Every path's frames of the blocks from buffer frame ``start`` on: (the listener above its
    floor at each, the candidates' buffer frames, the candidates prepared)."""

    start: int
    paths: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, _Frames]]


class _Path:
    """The echo path from one participant's voice into another's microphone, measured over time."""

    def __init__(self, config: AttributionConfig) -> None:
        self.config = config
        lags = config.max_delay_frames + 1
        self._bins = int(round((config.coupling_cap_db - _LOW_DB) / _BIN_DB))
        self._hist = np.zeros((lags + 1, self._bins))  # one row per lag, the last for the whole range
        self._row_start = np.arange(lags + 1) * self._bins  # each row's first bin in the flattened histogram
        # The evidence's sums, for the correlation at each lag: frames n, listener energy x and
        # x^2 (the same at every lag), and per lag k the source's energy y_k, y_k^2 and x * y_k.
        self._n = self._sum_x = self._sum_xx = 0.0
        self._sums = np.zeros((3, lags))
        self._chances = 0.0
        self._visible = 0.0
        self.delay: int | None = None
        self.level_db = config.default_coupling_db

    def prepare(self, listener_db: np.ndarray, lagged_db: np.ndarray, around_db: np.ndarray,
                wide_ratio: np.ndarray) -> _Frames:
        """What ``add`` needs of a run of frames, for all of them at once: listener energy, source
        energy per lag, the source's peak around each lag, and the listener's energy relative to
        the source's peak over the whole range."""
        x = listener_db[:, None]
        # Each ratio's bin in the flattened histogram, clipped to its range; in place.
        ratios = np.empty((listener_db.size, self._hist.shape[0]))
        np.subtract(x, around_db, out=ratios[:, :-1])
        ratios[:, -1] = wide_ratio
        np.maximum(ratios, _LOW_DB, out=ratios)
        np.minimum(ratios, self.config.coupling_cap_db - 1e-9, out=ratios)
        ratios -= _LOW_DB
        ratios /= _BIN_DB
        bins = ratios.astype(np.int64)
        bins += self._row_start
        lagged = np.empty((listener_db.size, 3, lagged_db.shape[1]))
        lagged[:, 0] = lagged_db
        np.multiply(lagged_db, lagged_db, out=lagged[:, 1])
        np.multiply(x, lagged_db, out=lagged[:, 2])
        return _Frames(listener_db, lagged, bins)

    def add(self, frames: _Frames, rows: np.ndarray) -> None:
        """Take the prepared frames ``rows`` as evidence."""
        x = frames.listener_db[rows]
        self._n += x.size
        self._sum_x += x.sum()
        self._sum_xx += (x**2).sum()
        self._sums += frames.lagged[rows].sum(axis=0)  # frame by frame, in order, as each sum alone
        self._hist += np.bincount(frames.bins[rows].ravel(), minlength=self._hist.size).reshape(self._hist.shape)

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
        n = self._n
        if n >= cfg.min_evidence_frames:
            mx = self._sum_x / n
            my, my2, mxy = self._sums / n
            cov = mxy - mx * my
            var = max(self._sum_xx / n - mx * mx, 1e-9) * np.maximum(my2 - my * my, 1e-9)
            corr = cov / np.sqrt(var)
            best = int(corr.argmax())
            if corr[best] >= cfg.min_delay_correlation:
                self.delay = best
                cum = self._hist[best].cumsum()
                i = int(cum.searchsorted(cfg.coupling_quantile * cum[-1]))
                self.level_db = _LOW_DB + (i + 1) * _BIN_DB
            else:
                self.delay, self.level_db = None, INAUDIBLE_DB
        elif self._chances >= cfg.min_chances_frames and self._visible < cfg.min_visible_share * self._chances:
            self.delay, self.level_db = None, INAUDIBLE_DB
        self._hist *= cfg.evidence_decay
        self._n *= cfg.evidence_decay
        self._sum_x *= cfg.evidence_decay
        self._sum_xx *= cfg.evidence_decay
        self._sums *= cfg.evidence_decay
        self._chances *= cfg.evidence_decay
        self._visible *= cfg.evidence_decay


class Attributor:
    """Turns aligned per-participant measurements into per-participant own-speech frame flags.

    Frames are flagged as they come, with the path estimates in force. The evidence on the echo
    paths is collected once a block of ``update_frames`` is complete, over the whole block at once,
    so the floating-point sums behind the estimates are the same however the frames were batched.
    """

    def __init__(self, participants: Sequence[str], config: AttributionConfig | None = None) -> None:
        self.participants = list(participants)
        self.config = config or AttributionConfig()
        self._paths = {
            (src, dst): _Path(self.config) for src in self.participants for dst in self.participants if src != dst
        }
        self._index = {p: i for i, p in enumerate(self.participants)}
        self._span = self.config.max_delay_frames + self.config.delay_tolerance_frames
        self._frames_done = 0
        # The frames of the current block and the span before it (before the first frame: silence,
        # no own speech), one row per participant. Batches are appended in place.
        shape = (len(self.participants), self._span)
        self._energy, self._floor, self._own = np.full(shape, SILENT_DB), np.zeros(shape), np.zeros(shape, dtype=bool)
        self._size = self._span  # frames held
        self._block_at = self._span  # where the current block starts
        self._allocate(self._span + 4 * self.config.update_frames)

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
        at = self._append(features, n)
        own = np.zeros((len(self.participants), n), dtype=bool)
        strong = np.zeros((len(self.participants), n), dtype=bool)
        # The blocks this batch completes (several in a file's batch, seldom one in a live call's),
        # prepared together: what their evidence needs that does not depend on the flags.
        blocks_end = self._block_at + (at + n - self._block_at) // cfg.update_frames * cfg.update_frames
        prepared = self._prepare(self._block_at, blocks_end) if blocks_end > self._block_at else None
        # Only a frame webrtcvad calls speech, with weak evidence (above the detector's threshold
        # over the noise floor), can be own speech.
        frames = slice(at, at + n)
        heard = self._vad[:, frames] & (self._energy[:, frames] > self._weak[:, frames])
        loud = self._energy[:, frames] > self._strong[:, frames]  # strong evidence
        pos = 0
        while pos < n:
            end = min(pos + cfg.update_frames - self._frames_done % cfg.update_frames, n)
            self._decide(own, strong, heard[:, pos:end], loud[:, pos:end], at, pos, end)
            self._own[:, at + pos : at + end] = own[:, pos:end]
            self._frames_done += end - pos
            pos = end
            if self._frames_done % cfg.update_frames == 0:
                self._measure(prepared, self._block_at, at + end)
                self._block_at = at + end
                for path in self._paths.values():
                    path.end_block()
        return {p: (own[i], strong[i]) for i, p in enumerate(self.participants)}

    def _append(self, features: dict[str, FrameFeatures], n: int) -> int:
        """Add a batch of ``n`` frames' measurements to the buffers; return where it starts."""
        if self._size + n > self._energy.shape[1]:
            held = self._size - (self._block_at - self._span)
            self._allocate(max(self._energy.shape[1], 2 * (held + n)))
        at = self._size
        for i, p in enumerate(self.participants):
            self._energy[i, at : at + n] = features[p].energy_db
            self._floor[i, at : at + n] = features[p].floor_db
            self._vad[i, at : at + n] = features[p].vad
            self._weak[i, at : at + n] = features[p].weak_db
            self._strong[i, at : at + n] = features[p].strong_db
        self._size += n
        return at

    def _allocate(self, capacity: int) -> None:
        """New buffers for ``capacity`` frames that start with the current block's span."""
        keep = slice(self._block_at - self._span, self._size)
        held = keep.stop - keep.start
        shape = (len(self.participants), capacity)
        energy, floor, own = np.empty(shape), np.empty(shape), np.empty(shape, dtype=bool)
        energy[:, :held], floor[:, :held] = self._energy[:, keep], self._floor[:, keep]
        own[:, :held] = self._own[:, keep]
        self._energy, self._floor, self._own = energy, floor, own
        self._vad = np.empty(shape, dtype=bool)  # only the batch being decided is read
        self._weak, self._strong = np.empty(shape), np.empty(shape)  # likewise
        self._lags = _lag_view(energy, self._span)
        self._block_at, self._size = self._span, held

    def _decide(self, own: np.ndarray, strong: np.ndarray, heard: np.ndarray, loud: np.ndarray, at: int, a: int,
                b: int) -> None:
        """Flag the batch's frames [a, b) with the path estimates now in force (one row of ``own``
        and ``strong`` per participant, left False where there is no speech), of those ``heard``
        (speech by webrtcvad and the detector's weak threshold); ``strong`` of them those also
        ``loud`` (the detector's strong threshold). The batch starts at buffer frame ``at``."""
        cfg = self.config
        tol = cfg.delay_tolerance_frames
        frames = slice(at + a, at + b)
        rows = slice(at + a - self._span, at + b - self._span)
        e = self._energy[:, frames]
        # The leak is predicted only for a listener with frames heard (a cheap silence, the same flags).
        for d, any_heard in enumerate(heard.any(axis=1).tolist()):
            if not any_heard:
                continue
            dst = self.participants[d]
            leak_power = None
            for s, src in enumerate(self.participants):
                if src == dst:
                    continue
                path = self._paths[(src, dst)]
                if path.delay is None:
                    source = self._lags[s, rows].max(axis=1)
                else:
                    source = self._lags[s, rows, max(0, path.delay - tol) : path.delay + tol + 1].max(axis=1)
                power = 10.0 ** ((source + path.level_db) / 10.0)
                leak_power = power if leak_power is None else leak_power + power
            leak_db = 10.0 * np.log10(np.maximum(leak_power, 1e-14))
            flags = heard[d] & (e[d] > leak_db + cfg.bleed_margin_db)
            own[d, a:b] = flags
            strong[d, a:b] = flags & loud[d]

    def _prepare(self, a: int, b: int) -> _Prepared:
        """Each path's candidate frames among buffer frames [a, b), prepared for its evidence: the
        listener's microphone above its floor and below the cap relative to the source's peak
        over the delay range (``_measure`` keeps those where the source spoke). A sixth of the
        frames or so: only they are prepared."""
        cfg = self.config
        index = self._index
        span = self._span
        wide = running_max(self._energy[:, a - span : b], span + 1)  # the source's peak over the delay range
        energy = self._energy[:, a:b]
        audible = energy > self._floor[:, a:b] + cfg.visible_db
        paths = {}
        for key, path in self._paths.items():
            s, d = index[key[0]], index[key[1]]
            e = energy[d]
            wide_ratio = e - wide[s]
            frames = np.flatnonzero(audible[d] & (wide_ratio < cfg.coupling_cap_db))
            at_lag = self._lags[s][frames + (a - span)]
            prepared = path.prepare(e[frames], at_lag[:, : cfg.max_delay_frames + 1], self._around(at_lag),
                                    wide_ratio[frames])
            paths[key] = (audible[d], frames + a, prepared)
        return _Prepared(a, paths)

    def _measure(self, prepared: _Prepared, a: int, b: int) -> None:
        """Collect evidence on each echo path from the block of buffer frames [a, b): frames where
        the source's own voice was heard within the delay range and the listener's microphone is
        well below it.

        Nothing here depends on the path's current estimate or the listener's flags, so a wrong
        estimate cannot keep itself alive (a leak that starts mid-call is still learnt).
        """
        span, n = self._span, b - a
        # Own speech anywhere in the last span + 1 frames, via running counts (every participant
        # in one numpy call).
        counts = np.zeros((len(self._index), n + span + 1), dtype=np.int64)
        np.cumsum(self._own[:, a - span : b], axis=1, out=counts[:, 1:])
        recent = counts[:, span + 1 :] > counts[:, :n]
        block = slice(a - prepared.start, b - prepared.start)
        for key, path in self._paths.items():
            audible, positions, frames = prepared.paths[key]
            chance = recent[self._index[key[0]]]
            path.listened(np.count_nonzero(chance), np.count_nonzero(chance & audible[block]))
            lo, hi = positions.searchsorted((a, b)).tolist()
            if hi > lo:
                rows = np.flatnonzero(chance[positions[lo:hi] - a])
                if rows.size:
                    path.add(frames, rows + lo)

    def _around(self, at_lag: np.ndarray) -> np.ndarray:
        """Per row, the peak within the tolerance around each lag 0 .. max delay."""
        tol = self.config.delay_tolerance_frames
        padded = np.concatenate((np.full((at_lag.shape[0], tol), SILENT_DB), at_lag), axis=1)
        return running_max(padded, 2 * tol + 1)[:, : self.config.max_delay_frames + 1]

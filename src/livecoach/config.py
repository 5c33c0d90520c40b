"""Every threshold the engine uses, with its default, in one place.

``docs/metrics.md`` publishes the same numbers; a coach's own settings override them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True)
class DetectionConfig:
    """Per-participant speech detection (webrtcvad plus what a real microphone needs)."""

    vad_mode: int = 3
    """webrtcvad aggressiveness 0..3; the energy gates below reject what it lets through."""
    preemphasis: float = 0.0
    """First-order high-pass before measuring energy (0 = none: measured, it lowered the
    speech-to-fan ratio, because voiced speech carries most of its energy low too)."""
    snr_margin_db: float = 6.0
    """Strong evidence: a frame this far above the participant's noise floor can start speech."""
    vad_skip_quiet: bool = False
    """Run webrtcvad only on frames above the weak threshold (the others cannot be speech).
    Off: about 20% faster, but webrtcvad adapts to what it sees and measured a little worse."""
    snr_hold_db: float = 2.0
    """Weak evidence: a frame this far above the floor can continue speech that strong frames began."""
    floor_block_frames: int = 50
    """Noise floor = a low percentile of frame energy in blocks of this many frames (0.5 s) ..."""
    floor_percentile: float = 10.0
    """... this percentile ..."""
    floor_history_blocks: int = 10
    """... the lowest over the last this many blocks (5 s): a rising noise is followed within that time."""
    floor_bias_db: float = 0.0
    """Added to the floor estimate."""


@dataclass(frozen=True)
class AttributionConfig:
    """Removing the other participant's voice leaking into a microphone (echo, bleed)."""

    update_frames: int = 200
    """Echo delay and coupling estimates are renewed every this many frames (2 s). Each renewal
    is a few dozen numpy calls per path, most of the attribution's cost; every 1 s gave the same
    accuracy on the synthetic fixtures and the real-speech evaluation (docs/engine.md)."""
    max_delay_frames: int = 30
    """Bleed arrives up to this many frames (300 ms) after the source speech."""
    delay_tolerance_frames: int = 3
    """Once the echo delay is measured, the leak is predicted from the source within 30 ms of it."""
    min_delay_correlation: float = 0.4
    """The energy envelopes must correlate at least this well for a leak to be trusted
    (measured: 0.68-0.82 for real leaks, under 0.1 where the leak is buried in noise)."""
    bleed_margin_db: float = 8.0
    """A frame counts as own speech only this far above the bleed predicted from the other track."""
    default_coupling_db: float = -28.0
    """Assumed leak level until enough evidence gives a measured one."""
    coupling_quantile: float = 0.9
    """Measured leak level = this quantile of (own energy - other's recent peak) while the other talks."""
    coupling_cap_db: float = -18.0
    """Frames where the listener is louder than this relative to the source are the listener's
    own voice (overlap), not leak, and are kept out of the measurement."""
    visible_db: float = 4.0
    """Only leak this far above the listener's noise floor is measured (below it, the floor gate acts)."""
    min_evidence_frames: int = 150
    """Frames of evidence (1.5 s) before the measured leak level replaces the default."""
    min_chances_frames: int = 500
    """After this much (5 s) of the source talking ...
    """
    min_visible_share: float = 0.1
    """... with the listener's microphone above its floor in under this share of those frames,
    no leak can be heard on the path: it needs no prediction (the floor gate rejects the rest)."""
    evidence_decay: float = 0.9216
    """Per update, old evidence fades (0.96 a second: a time constant of about 25 s) so a changed
    echo path is followed."""


@dataclass(frozen=True)
class SegmentConfig:
    """Turning frame decisions into speech segments."""

    hole_frames: int = 4
    """Gaps of up to 40 ms between speech frames are filled when forming a burst."""
    min_burst_frames: int = 8
    """A burst shorter than 80 ms is a transient (click, tap, knock), never speech on its own."""
    min_strong_frames: int = 4
    """A burst needs this many frames of strong evidence to be speech."""
    bridge_frames: int = 30
    """Gaps shorter than 300 ms inside one participant's speech are bridged."""


@dataclass(frozen=True)
class TimelineConfig:
    """Conversation structure and the metric thresholds of the brief."""

    backchannel_max_s: float = 1.0
    """A segment under 1 s while the other keeps talking is a backchannel ("mm-hm")."""
    backchannel_tolerance_s: float = 0.5
    """The other counts as 'keeps talking' if they speak within this time before and after."""
    turn_pause_s: float = 3.0
    """A silence this long ends a turn even if the same participant speaks next."""
    wait_target_s: float = 3.0
    """Wait-time target: a coach resuming sooner, without the client speaking, fills the silence."""
    filled_silence_min_s: float = 1.0
    """Pauses shorter than this between a coach's sentences are breathing, not silences to fill."""
    interruption_window_s: float = 1.5
    """An interruption: the other stops within this time of the newcomer's start."""
    window_s: float = 300.0
    """The rolling window for 'recent' figures (5 minutes)."""
    silence_report_min_s: float = 2.0
    """Silences at least this long are long silences: counted in the metrics, listed in reports."""


@dataclass(frozen=True)
class EngineConfig:
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    attribution: AttributionConfig = field(default_factory=AttributionConfig)
    segments: SegmentConfig = field(default_factory=SegmentConfig)
    timeline: TimelineConfig = field(default_factory=TimelineConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {f.name: _section_dict(getattr(self, f.name)) for f in fields(self)}

    def with_overrides(self, overrides: dict[str, dict[str, Any]]) -> EngineConfig:
        """A copy with some values changed, e.g. ``{"timeline": {"wait_target_s": 4.0}}``."""
        changed = {}
        for section, values in overrides.items():
            current = getattr(self, section)
            changed[section] = replace(current, **values)
        return replace(self, **changed)


def _section_dict(section: Any) -> dict[str, Any]:
    return {f.name: getattr(section, f.name) for f in fields(section)}

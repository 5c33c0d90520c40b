"""Shared test helpers: the committed fixtures with ground truth, and the real-speech set."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from livecoach.ingest import read_mono

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_NAMES = sorted(p.parent.name for p in FIXTURES.glob("*/truth.json"))
REAL_SPEECH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-speech"


@cache
def truth(name: str) -> dict:
    return json.loads((FIXTURES / name / "truth.json").read_text())


@cache
def track(name: str, who: str) -> np.ndarray:
    """A fixture participant's whole track as 16 kHz int16 (decoded once per test session)."""
    return np.concatenate(list(read_mono(FIXTURES / name / f"{who}.opus")))


def track_path(name: str, who: str) -> Path:
    return FIXTURES / name / f"{who}.opus"


@pytest.fixture(scope="session")
def real_speech() -> Path:
    if not REAL_SPEECH.is_dir():
        pytest.skip(f"the shared real-speech set is not at {REAL_SPEECH}")
    return REAL_SPEECH

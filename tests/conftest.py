"""Shared test helpers: the committed fixtures with ground truth, the real-speech set, and a
new database of each kind the store supports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pytest

import pg
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


@pytest.fixture(scope="session")
def postgresql() -> Iterator[pg.Server]:
    """A throwaway PostgreSQL server for the whole test session (tests/pg.py), started by the
    first test that asks for it; a skip saying why when there is none."""
    try:
        server = pg.start()
    except pg.Unavailable as err:
        pytest.skip(f"no PostgreSQL to test with: {err}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | Path]:
    """A new, empty database, once of each kind: an SQLite file (in a data folder not made yet),
    or a PostgreSQL database of the test's own (its URL), dropped afterwards."""
    if request.param == "sqlite":
        yield tmp_path / "data" / "db.sqlite3"
        return
    server = request.getfixturevalue("postgresql")
    url = server.new_database()
    yield url
    server.drop_database(url)

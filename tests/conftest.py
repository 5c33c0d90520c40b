"""Shared test helpers: the committed fixtures with ground truth, the real-speech set, and a
new database of each kind the store supports, empty or already migrated."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pytest

import pg
from livecoach.ingest import read_mono

COMPUTE = {
    "test_accuracy", "test_cli", "test_coach_api", "test_decoding", "test_engine", "test_engine_chunking",
    "test_exports", "test_growing_timeline", "test_import", "test_ingest", "test_library", "test_library_api",
    "test_live_session", "test_nudges", "test_packaging", "test_packet_time", "test_postgresql", "test_properties", "test_real_speech",
    "test_recording_files", "test_review", "test_review_source", "test_segmenter", "test_static", "test_store",
    "test_timeline", "test_uploads",
}
"""The modules whose tests only compute: no call, browser or clock in real time (a server at most,
asked and answered, with no timing of its own). scripts/test runs them two at a time (marked
``compute``), then the rest one at a time: two real-time tests at once on 2 cores miss their
timing (and the compute pass beside them, even at idle priority, made the cluster's failover
seconds slower: 2026-12-01). A new module is in the serial pass until it is listed here."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.stem in COMPUTE:
            item.add_marker(pytest.mark.compute)


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


@cache
def opus_packets(seconds: float) -> list[bytes]:
    """20 ms Opus packets (48 kHz) of real speech, the clean fixture's coach, as a browser sends."""
    import av

    pcm16 = track("clean", "coach")[: int(seconds * 16000)]
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
    frame = av.AudioFrame.from_ndarray(pcm16[None, :], format="s16", layout="mono")
    frame.sample_rate = 16000
    pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in resampler.resample(frame)])
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format = 48000, "mono", "s16"
    codec.open()
    out = []
    for i in range(0, pcm.size - 960, 960):
        f = av.AudioFrame.from_ndarray(pcm[None, i : i + 960], format="s16", layout="mono")
        f.sample_rate, f.pts = 48000, i
        out += [bytes(p) for p in codec.encode(f)]
    return out


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


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite database migrated to the newest revision once per test session, for
    ``migrated_database`` to copy: all in its one file (closing the store emptied the -wal file)."""
    from livecoach.store import Store

    path = tmp_path_factory.mktemp("migrated") / "data" / "db.sqlite3"
    Store(path).close()
    assert not path.with_name(f"{path.name}-wal").exists()
    return path


@pytest.fixture(scope="session")
def migrated_postgresql(postgresql: pg.Server) -> str:
    """A PostgreSQL database migrated to the newest revision once per test session, the template
    ``migrated_database`` copies (its URL)."""
    from livecoach.store import Store

    url = postgresql.new_database()
    Store(url).close()
    postgresql.make_template(url)
    return url


DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(params=DATABASES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | Path]:
    """A new, empty database, once of each kind: an SQLite file (in a data folder not made yet),
    or a PostgreSQL database of the test's own (its URL), dropped afterwards. What the tests of
    the migrations start from; the others take ``migrated_database``."""
    yield from _new_database(request, tmp_path, migrated=False)


@pytest.fixture(params=DATABASES)
def migrated_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | Path]:
    """A new database already at the newest revision, once of each kind, as ``database`` is after
    a store opened it: a copy of one migrated once per test session (``migrated_sqlite`` copied
    into a new data folder, 0700 and 0600 as the store makes them; a PostgreSQL database made from
    ``migrated_postgresql``), so that the store opens it without migrating."""
    yield from _new_database(request, tmp_path, migrated=True)


def _new_database(request: pytest.FixtureRequest, tmp_path: Path, migrated: bool) -> Iterator[str | Path]:
    if request.param == "sqlite":
        path = tmp_path / "data" / "db.sqlite3"
        if migrated:
            from livecoach.store.database import make_private

            make_private(path)  # the folder 0700 and the file 0600, as the store makes them
            shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        yield path
        return
    server = request.getfixturevalue("postgresql")
    url = server.new_database(template=request.getfixturevalue("migrated_postgresql") if migrated else None)
    yield url
    server.drop_database(url)

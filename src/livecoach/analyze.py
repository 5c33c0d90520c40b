"""Offline analysis: recorded tracks through the same engine a live call uses."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import EngineConfig
from .engine import Engine
from .ingest import AudioError, probe, read_mono, read_stereo
from .metrics import Metrics
from .timeline import CLIENT, COACH, Timeline


CHUNK_SECONDS = 10.0
"""Audio is fed in blocks this long: large blocks keep per-call overhead low, and the engine
gives the same result for any block size."""

Observer = Callable[[np.ndarray | None, np.ndarray | None], None]
"""Sees each block of (coach, client) samples as the engine gets it (None: that track has ended),
so that an import keeps the audio and shows progress from the very pass that analyses it."""


@dataclass
class Analysis:
    sources: dict[str, str]
    file_id: str  # names the session in RTTM: the stereo file's name, or the coach's file's
    duration: float
    timeline: Timeline
    metrics: Metrics
    config: EngineConfig
    couplings_db: dict[str, float]


def analyze_tracks(
    coach: str | os.PathLike, client: str | os.PathLike, config: EngineConfig | None = None,
    observe: Observer | None = None,
) -> Analysis:
    """Analyse a coach's and a client's recording (any format PyAV reads), aligned at their start."""
    if _same_file(coach, client):
        raise AudioError(f"{coach}: the same recording is given for coach and client")
    for path in (coach, client):
        probe(path)
    pairs = itertools.zip_longest(read_mono(coach, CHUNK_SECONDS), read_mono(client, CHUNK_SECONDS))
    return _run(pairs, {COACH: str(coach), CLIENT: str(client)}, file_id(coach), config, observe)


def analyze_stereo(path: str | os.PathLike, config: EngineConfig | None = None, observe: Observer | None = None) -> Analysis:
    """Analyse one stereo recording: left channel the coach, right channel the client."""
    sources = {COACH: f"{path} (left)", CLIENT: f"{path} (right)"}
    return _run(read_stereo(path, CHUNK_SECONDS), sources, file_id(path), config, observe)


def _run(
    pairs: Iterator[tuple[np.ndarray | None, np.ndarray | None]],
    sources: dict[str, str],
    file_id: str,
    config: EngineConfig | None,
    observe: Observer | None = None,
) -> Analysis:
    engine = Engine((COACH, CLIENT), config)
    received = {COACH: 0, CLIENT: 0}
    for coach_chunk, client_chunk in pairs:
        for who, chunk in ((COACH, coach_chunk), (CLIENT, client_chunk)):
            if chunk is not None and chunk.size:
                engine.push(who, chunk)
                received[who] += chunk.size
        if observe is not None:
            observe(coach_chunk, client_chunk)
    for who, n in received.items():
        if n == 0:
            raise AudioError(f"{sources[who]}: the recording has no audio")
    engine.finish()
    return Analysis(
        sources=sources,
        file_id=file_id,
        duration=engine.now,
        timeline=engine.timeline(),
        metrics=engine.metrics(),
        config=engine.config,
        couplings_db={
            "coach_into_client": engine.coupling_db(COACH, CLIENT),
            "client_into_coach": engine.coupling_db(CLIENT, COACH),
        },
    )


def file_id(path: str | os.PathLike) -> str:
    """A file's name without extension, with no spaces (RTTM fields are space-separated): how RTTM
    names the session, here and in the export of an imported session."""
    return Path(path).stem.replace(" ", "_") or "session"


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a) == Path(b)

"""The engine gives bit-identical results however the audio is cut into pushes.

A live call pushes each participant's audio in small pieces, alternating between them; a recorded
file is pushed in large blocks. Both must give exactly the same segments, events (with the media
time each became known) and metrics: one engine, the same numbers on both paths. Equality here is
exact, not approximate, so that an optimisation of the per-push work that changes the order of a
floating-point sum (and so, on hard audio, a decision) is caught.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import track
from livecoach.engine import Engine, SpeechEvent
from livecoach.frames import FRAME_SAMPLES, SAMPLE_RATE
from livecoach.segmenter import Segmenter
from livecoach.timeline import ROLES

FIXTURES = ["bleed", "quiet", "keyboard"]
"""The hard ones (echo, a quiet talker, clicks): all six fixtures were checked when the engine's
batching changed; three keep the suite within its time."""
CHUNKS = [160, 640, 1000, 16000]
"""One frame (which found a start's known_at moving), the live batch, a size that splits frames,
and one second."""


def outcome(engine: Engine, events: list[SpeechEvent]) -> dict:
    """Everything a caller can see of a finished engine, compared with ``==``."""
    return {
        "segments": engine.segments(),
        "events": sorted(events, key=lambda e: (e.known_at, e.participant, e.kind, e.start)),
        "metrics": engine.metrics().to_dict(),
        "echo": engine.echo_paths(),
        "coupling": {(s, d): engine.coupling_db(s, d) for s in ROLES for d in ROLES if s != d},
        "now": engine.now,
    }


def whole(audio: dict[str, np.ndarray]) -> dict:
    """Each participant's whole track in one push."""
    engine, events = Engine(ROLES), []
    for who in ROLES:
        events += engine.push(who, audio[who])
    events += engine.finish()
    return outcome(engine, events)


def in_pieces(audio: dict[str, np.ndarray], chunk: int, lead: int = 0) -> dict:
    """Pieces of ``chunk`` samples, alternating between the participants; the first participant's
    pieces are cut ``lead`` samples ahead of the second's (its first piece is that long)."""
    engine, events = Engine(ROLES), []
    first, second = ROLES
    cuts = {
        first: [0, *range(lead or chunk, audio[first].size, chunk)],
        second: list(range(0, audio[second].size, chunk)),
    }
    for i in range(max(len(c) for c in cuts.values())):
        for who in ROLES:
            if i < len(cuts[who]):
                start = cuts[who][i]
                stop = cuts[who][i + 1] if i + 1 < len(cuts[who]) else audio[who].size
                events += engine.push(who, audio[who][start:stop])
    events += engine.finish()
    return outcome(engine, events)


@pytest.mark.parametrize("name", FIXTURES)
def test_every_chunk_size_gives_exactly_what_one_push_gives(name: str) -> None:
    audio = {who: track(name, who) for who in ROLES}
    expected = whole(audio)
    assert sum(len(s) for s in expected["segments"].values()) > 10
    for chunk in CHUNKS:
        assert in_pieces(audio, chunk) == expected, (name, chunk)
    assert in_pieces(audio, 640, lead=320) == expected, (name, "offset by 320 samples")


def test_pieces_that_are_not_whole_frames_and_uneven_tracks_give_the_same() -> None:
    """Pieces that split frames, and one track ending early (finish fills it with absence)."""
    audio = {"coach": track("bleed", "coach"), "client": track("bleed", "client")[: 40 * SAMPLE_RATE + 77]}
    expected = whole(audio)
    for chunk in (77, 1234):
        assert in_pieces(audio, chunk) == expected, chunk


def test_absence_pushed_in_pieces_gives_the_same_as_in_one() -> None:
    """A participant muted for a while: their absence arrives in 40 ms pieces or at once."""
    audio = {who: track("clean", who)[: 40 * SAMPLE_RATE] for who in ROLES}
    a = 10 * SAMPLE_RATE + 100  # the mute starts inside a frame, which is completed with silence
    absent = 15 * SAMPLE_RATE // FRAME_SAMPLES  # then this many frames of absence
    back = (a // FRAME_SAMPLES + 1 + absent) * FRAME_SAMPLES  # where the client's audio resumes

    reference, events = Engine(ROLES), []
    events += reference.push("coach", audio["coach"])
    events += reference.push("client", audio["client"][:a])
    events += reference.push_absent("client", absent)
    events += reference.push("client", audio["client"][back:])
    events += reference.finish()
    expected = outcome(reference, events)

    engine, events = Engine(ROLES), []
    client_at, coach_at, muted = 0, 0, 0
    while coach_at < audio["coach"].size or client_at < audio["client"].size:
        events += engine.push("coach", audio["coach"][coach_at : coach_at + 640])
        coach_at += 640
        if client_at < a:
            stop = min(client_at + 640, a)
            events += engine.push("client", audio["client"][client_at:stop])
            client_at = stop
        elif muted < absent:
            step = min(4, absent - muted)
            events += engine.push_absent("client", step)
            muted += step
            client_at = back
        else:
            events += engine.push("client", audio["client"][client_at : client_at + 640])
            client_at += 640
    events += engine.finish()
    assert outcome(engine, events) == expected


def test_the_segmenter_gives_the_same_events_and_known_at_for_any_chunking() -> None:
    """Runs of speech split between pushes, with the strong frames late in a burst: a start is
    known at the same frame however the flags arrive."""
    rng = np.random.default_rng(3)
    flags = np.repeat(rng.random(800) < 0.5, rng.integers(1, 30, 800))
    strong = flags & (rng.random(flags.size) < 0.3)

    def run(chunk: int) -> list:
        seg = Segmenter()
        events = []
        for i in range(0, flags.size, chunk):
            events += seg.push(flags[i : i + chunk], strong[i : i + chunk])
        return events + seg.finish()

    expected = run(flags.size)
    assert sum(e.kind == "start" for e in expected) > 20
    for chunk in (1, 2, 3, 4, 7, 50):
        assert run(chunk) == expected, chunk


@pytest.mark.parametrize("name", FIXTURES)
def test_the_detectors_measurements_are_the_same_for_any_chunking(name: str) -> None:
    """A file's batch finds the noise floors of its whole blocks at once (a running minimum over
    the blocks' low percentiles), a live call's few frames one block at a time: the same values,
    and so the same thresholds, frame by frame."""
    from livecoach.detection import Detector, FrameFeatures
    from livecoach.frames import FrameBuffer

    x = track(name, "client")

    def measure(chunk: int) -> FrameFeatures:
        detector, buffer = Detector(), FrameBuffer()
        parts = [detector.process(buffer.push(x[i : i + chunk])) for i in range(0, x.size, chunk)]
        return FrameFeatures.concat([p for p in parts if len(p)])

    expected = measure(x.size)
    for chunk in (160, 640, 16000, 160 * 50 * 7 + 80):
        got = measure(chunk)
        for field in ("energy_db", "floor_db", "vad", "weak_db", "strong_db"):
            assert np.array_equal(getattr(got, field), getattr(expected, field)), (name, chunk, field)

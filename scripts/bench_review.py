#!/usr/bin/env python3
"""Benchmark the review page on a 2-hour session: time to a drawn, playable page, and seeks.

Usage: .venv/bin/python scripts/bench_review.py [--repeat N] [--seeks K] [--work DIR [--fresh]]
           [--seed S] [--quiet-wait SEC] [--profile] [--no-page-seeks] [--dump FILE]

What it checks (the review's contract, docs/review.md and its issue):

- "a 2-hour session with 200 tags and 2,000 speech segments is on screen, playable, in under
  1 s on loopback; a script prints that time and the payload size";
- "in Chromium a 2-hour recording seeks to any point in under 200 ms".

How
---
1. *The session* is made with the project's own code, never by hand-written SQL or fake files:
   a ``Store`` at ``<data>/livecoach.sqlite3``; ``create_session``; 2,000 speech segments logged
   as ``speech`` events the way the live session logs them (``log_events``, written once a
   second of session time with that second's indicator sample, like ``LiveSession``'s store
   exchange), with the ``silence``, ``presence``, ``joined``/``left``, ``topology`` and
   ``recording`` events around them; 200 tags (``put_tag``, a few moved or made in review);
   a few nudges (``add_nudge``, most dismissed); 7,200 indicator samples; and the two
   participants' audio recordings. Each recording is made by ``AudioRecorder`` from real Opus
   packets (the fixtures' tracks encoded once by PyAV's libopus at 20 ms, about 32 kbit/s, then
   looped to 2 hours), with a 60 s recording pause (a gap of filled silence), and finished by
   ``finish_audio`` into WebM with cues; their rows are written as ``recordings/call.py`` does.
   The speech segments are a seeded random turn-taking pattern (coach ~60 %, backchannels,
   overlaps, some long silences), not the looped audio's own speech: the figures measured do
   not depend on the two agreeing. With ``--work DIR`` the packets and the data folder are kept
   and reused by the next run (``--fresh`` makes them again).
2. *The server* is the real one, ``python -m livecoach serve --data DIR --port P --workers 0``,
   on 127.0.0.1, as tests/liveserver.py starts it.
3. *Loading*, ``--repeat`` times, each in a fresh browser context (no HTTP cache) of Debian's
   ``/usr/bin/chromium``, headless (``--autoplay-policy=no-user-gesture-required``), driven by
   Playwright, navigated once the context's new window has loaded its own UI (``settle``: as in a
   coach's browser, whose window is open already): the ms (performance.now()) from navigation start to
   - ``drawn``: the end of the first frame rendered after all 200 ``[data-testid=tag-marker]``
     are in the page (that frame's rendering step lays the page out and draws the canvases);
   - ``playable``: every ``[data-testid=media]`` element has readyState >= 3 (HAVE_FUTURE_DATA,
     ``canplay``);
   - ``ready`` = the later of the two: the contract's "on screen, playable".
   Each run also records where the time went: the HTML, the scripts, the review and settings
   requests (Resource Timing), the page's own ``review-mount`` measure, the media requests and
   each element's ``loadstart``/``loadedmetadata``/``canplay``, the main thread's long tasks
   and Chromium's task, style and layout totals, and the CPU used meanwhile by this benchmark
   (server, browser) and by other programs: on a small shared machine those slow the page as
   much as its own work. ``--profile`` adds one traced and profiled load: what each long
   main-thread task was made of (script, style, layout, paint) and the page's JavaScript
   functions by time. ``--quiet-wait`` waits for an idle machine before measuring.
   The payload, ``GET /api/sessions/<id>/review``, is also fetched from Python each run: its
   size (raw, and gzip level 6; the server gzips it for a browser that accepts it) and the server's time to
   answer on loopback (first byte and last byte). The payload's build is timed in this
   process too, step by step with the same store calls and ``build_review`` as the server, so
   that a slow answer can be pinned on a query, the build or the JSON encoding.
4. *Seeks*, each run: on a plain page (same origin) with one ``<audio preload=auto>`` per
   recording at the signed URL from the payload, each recording seeks (paused) to ``--seeks``
   random points across its 2 hours: performance.now() from ``seeking`` to ``seeked`` (the
   contract's figure), and from setting ``currentTime`` to playable again (readyState >= 3).
   Then on the review page itself: ``--seeks`` clicks at random points of the overview strip
   (the page seeks both recordings and plays): ms from the click's ``pointerdown`` until every
   recording has seeked and can play.
5. A human-readable summary, then, as the LAST line, one JSON object with every figure (load
   p50/max, payload bytes raw/gzip, seek p50/p95/max, the machine: cores, load average, CPU).

The exit status is 0 when the benchmark ran (whether or not the figures hold: see ``holds``
in the JSON), 1 when the harness broke.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from livecoach.coach_settings import DEFAULTS
from livecoach.nudges import KINDS as NUDGE_KINDS, TEXTS as NUDGE_TEXTS
from livecoach.recordings.finalise import finish_audio
from livecoach.recordings.recorder import AudioRecorder
from livecoach.recordings.storage import FolderStorage
from livecoach.review import build_review
from livecoach.review_source import REVIEW_EVENTS, load_review, warm
from livecoach.store import IndicatorSample, Store

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
CHROMIUM = "/usr/bin/chromium"
GENERATION = 2
"""Bump when what is generated changes: a cached data folder of another generation is made again."""

DURATION_S = 7200.0
SEGMENTS = 2000
TAGS = 200
NUDGES = 8
WINDOW_S = 300.0
"""The live talk-balance window (config.EngineConfig's timeline window)."""
RATE = 48000
FRAME = 960
"""20 ms at 48 kHz: what a browser's WebRTC Opus sends."""
BITRATE = 32000
LOOP_FIXTURES = ("realcall", "clean", "bleed")
"""Their tracks, one after another, are the few minutes of audio encoded once and looped."""
STARTS = {"coach": 0.52, "client": 6.84}
"""When each participant's audio first arrived (session seconds): the recordings' start_s."""
PAUSE = (2700.0, 2760.0)
"""The coach pauses the recording for a minute: both files get a gap of filled silence."""
TAG_LEAD_S = 5.0
LOAD_TIMEOUT_S = 30.0
SETTLE_LIMIT_S = 5.0
SETTLE_BELOW_CORES = 0.1
SEEK_TIMEOUT_MS = 10000
BUDGET_LOAD_MS = 1000.0
BUDGET_SEEK_MS = 200.0


# -- the session ---------------------------------------------------------------------------


@dataclass
class Packets:
    """One participant's looped audio: Opus packets of FRAME samples and their sample peaks."""

    packets: list[bytes]
    peaks: list[int]


@dataclass
class Made:
    """What the generation made (kept in ``<work>/session.json`` for the next run)."""

    generation: int
    seed: int
    session: str
    coach_token: str
    segments: int
    tags: int
    nudges: int
    samples: int
    events: int
    recordings: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def decode_48k(path: Path) -> np.ndarray:
    """A file's audio as 48 kHz mono int16."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    out: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            out += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out)


def encode_packets(pcm: np.ndarray) -> Packets:
    """20 ms Opus packets of ``pcm`` (48 kHz mono int16), as libopus makes them for a browser."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format = RATE, "mono", "s16"
    codec.bit_rate = BITRATE
    codec.open()
    packets: list[bytes] = []
    peaks: list[int] = []
    for i in range(0, pcm.size - FRAME + 1, FRAME):
        chunk = pcm[i : i + FRAME]
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="s16", layout="mono")
        frame.sample_rate, frame.pts = RATE, i
        for packet in codec.encode(frame):
            packets.append(bytes(packet))
            peaks.append(int(np.abs(chunk.astype(np.int32)).max()))
    return Packets(packets, peaks)


def looped_audio(work: Path, participant: str) -> Packets:
    """The participant's fixture tracks encoded once (cached in ``work``)."""
    cache = work / f"packets-{participant}-g{GENERATION}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            blob, offsets, peaks = z["blob"].tobytes(), z["offsets"], z["peaks"]
        return Packets([blob[a:b] for a, b in zip(offsets[:-1], offsets[1:])], peaks.tolist())
    pcm = np.concatenate([decode_48k(FIXTURES / name / f"{participant}.opus") for name in LOOP_FIXTURES])
    made = encode_packets(pcm)
    offsets = np.cumsum([0] + [len(p) for p in made.packets])
    np.savez(cache, blob=np.frombuffer(b"".join(made.packets), dtype=np.uint8), offsets=offsets,
             peaks=np.array(made.peaks, dtype=np.int32))
    return made


def speech_segments(rng: random.Random) -> dict[str, list[tuple[float, float]]]:
    """SEGMENTS speech segments of a two-hour coaching call, seeded: turns of one to four
    segments (the coach's longer), backchannels of the listener inside them, gaps of 0.2–2.5 s
    between turns and now and then a silence of 3–15 s; scaled to fill the two hours."""
    out: dict[str, list[list[float]]] = {"coach": [], "client": []}
    t, who, count = 0.0, "coach", 0
    while count < SEGMENTS:
        other = "client" if who == "coach" else "coach"
        for _ in range(rng.choice((1, 1, 2, 2, 3, 4) if who == "coach" else (1, 1, 1, 2, 3))):
            if count >= SEGMENTS:
                break
            length = min(90.0, rng.lognormvariate(1.0 if who == "coach" else 0.8, 0.8))
            out[who].append([t, t + length])
            count += 1
            if length > 4 and count < SEGMENTS and rng.random() < 0.25:  # "mm-hm" from the other
                at = t + rng.uniform(1.0, length - 1.5)
                out[other].append([at, at + rng.uniform(0.3, 0.8)])
                count += 1
            t += length + rng.uniform(0.5, 1.5)
        t += rng.uniform(3.0, 15.0) if rng.random() < 0.08 else rng.uniform(-0.3, 2.5)  # < 0: an overlap
        who = other
    first, last = STARTS["coach"] + 1.0, DURATION_S - 5.0
    end = max(b for spans in out.values() for _, b in spans)
    scale = (last - first) / end
    return {
        p: _merged([(round(first + a * scale, 3), round(first + b * scale, 3)) for a, b in spans])
        for p, spans in out.items()
    }


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """One participant's spans sorted, with any that touch pushed apart (the engine never
    reports two overlapping segments of one participant)."""
    spans = sorted(spans)
    out: list[tuple[float, float]] = []
    for a, b in spans:
        if out and a < out[-1][1] + 0.3:
            a = round(out[-1][1] + 0.3, 3)
            b = max(b, round(a + 0.2, 3))
        out.append((a, b))
    return out


def indicator_samples(segments: dict[str, list[tuple[float, float]]]) -> list[IndicatorSample]:
    """What the coach's sidebar showed each second: who speaks, the coach's share of the talk
    over the session and over the last 5 minutes, the running silence."""
    step = 0.01
    n = int(DURATION_S / step) + 1
    talk = {}
    for p, spans in segments.items():
        marks = np.zeros(n + 1, dtype=np.int32)
        for a, b in spans:
            marks[int(a / step)] += 1
            marks[int(b / step)] -= 1
        talk[p] = np.cumsum(marks)[:n] > 0
    total = {p: np.concatenate([[0.0], np.cumsum(v) * step]) for p, v in talk.items()}
    anyone = talk["coach"] | talk["client"]
    last_end = np.maximum.accumulate(np.where(anyone, np.arange(n), 0)) * step
    out = []
    for second in range(1, int(DURATION_S) + 1):
        now = second + 0.012  # the tick after the second, as the live session samples it
        i = min(n - 1, int(now / step))
        w = max(0, i - int(WINDOW_S / step))
        coach, client = total["coach"][i], total["client"][i]
        wcoach, wclient = coach - total["coach"][w], client - total["client"][w]
        speaking = sorted(p for p in talk if talk[p][i])
        out.append(IndicatorSample(
            round(now, 3), speaking,
            round(coach / (coach + client), 3) if coach + client else None,
            round(wcoach / (wcoach + wclient), 3) if wcoach + wclient else None,
            0.0 if speaking else round(now - last_end[i], 3),
        ))
    return out


def timeline_events(segments: dict[str, list[tuple[float, float]]], rng: random.Random,
                    ) -> list[tuple[float, str, str | None, dict]]:
    """The session's event log as the live session writes it: (session time, kind, participant,
    data), a speech event when a segment has ended and been decided, a silence event when
    nobody speaks any more, and the participants' arrivals, the recording's states, the end."""
    events: list[tuple[float, str, str | None, dict]] = [
        (0.0, "joined", "coach", {}),
        (0.3, "presence", "coach", {"state": "connected"}),
        (0.4, "recording", None, {"state": "on"}),
        (STARTS["client"] - 0.8, "joined", "client", {}),
        (STARTS["client"] - 0.5, "presence", "client", {"state": "connected"}),
        (12.0, "topology", None, {"topology": "direct"}),
        (PAUSE[0], "recording", None, {"state": "paused"}),
        (PAUSE[1], "recording", None, {"state": "on"}),
        (DURATION_S - 0.6, "presence", "client", {"state": "absent"}),
        (DURATION_S - 0.5, "left", "client", {}),
        (DURATION_S - 0.3, "presence", "coach", {"state": "absent"}),
        (DURATION_S - 0.2, "recording", None, {"state": "off"}),
        (DURATION_S - 0.1, "left", "coach", {}),
    ]
    for p, spans in segments.items():
        for a, b in spans:
            events.append((round(b + rng.uniform(0.3, 0.8), 3), "speech", p, {"start": a, "end": b}))
    union: list[list[float]] = []
    for a, b in sorted(s for spans in segments.values() for s in spans):
        if union and a <= union[-1][1]:
            union[-1][1] = max(union[-1][1], b)
        else:
            union.append([a, b])
    events += [(round(b + 0.5, 3), "silence", None, {"since": b}) for _, b in union]
    return sorted(events, key=lambda e: e[0])


def tags_and_nudges(rng: random.Random, kinds: list[dict]) -> tuple[list[dict], list[dict]]:
    """TAGS tags, clustered a little as a coach's are, and NUDGES nudges at least 5 minutes apart."""
    notes = ["", "", "", "follow up next session", "she named the real fear", "commitment: 3 calls by Friday",
             "long pause before answering", "asked for feedback"]
    tags = []
    for _ in range(TAGS):
        if tags and rng.random() < 0.3:
            at = min(DURATION_S - 10, tags[-1]["session_time"] + rng.uniform(5, 60))
        else:
            at = rng.uniform(30.0, DURATION_S - 10)
        kind = rng.choice(kinds)
        tags.append({"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "kind": kind["id"],
                     "label": kind["label"], "session_time": round(at, 3), "clicked_at": round(at + TAG_LEAD_S, 3),
                     "note": rng.choice(notes), "origin": "review" if rng.random() < 0.1 else "live",
                     "moved": round(at + rng.uniform(-8, 8), 3) if rng.random() < 0.05 else None})
    nudges = []
    slots = sorted(rng.sample(range(1, int(DURATION_S // 600)), NUDGES))
    for slot in slots:
        at = round(slot * 600 + rng.uniform(0, 300), 3)
        kind = rng.choice(NUDGE_KINDS)
        dismissed = round(at + rng.uniform(2, 15), 3) if rng.random() < 0.8 else None
        nudges.append({"id": f"n-{rng.getrandbits(40):010x}", "kind": kind, "text": NUDGE_TEXTS[kind],
                       "session_time": at, "dismissed_at": dismissed})
    return tags, nudges


def write_timeline(store: Store, session: str, created: float, segments: dict, rng: random.Random) -> tuple[int, int]:
    """The live session's writes, second by second of session time: that second's indicator
    sample and events in one exchange, nudges and tags as they happen. Returns (events, samples)."""
    events = timeline_events(segments, rng)
    samples = indicator_samples(segments)
    tags, nudges = tags_and_nudges(rng, DEFAULTS["tag_kinds"])
    by_second: dict[int, dict[str, list]] = {}
    for e in events:
        by_second.setdefault(int(e[0]), {"events": [], "samples": [], "tags": [], "nudges": []})["events"].append(e)
    for kind, items, when in (("samples", samples, lambda s: s.session_time), ("tags", tags, lambda t: t["clicked_at"]),
                              ("nudges", nudges, lambda n: n["session_time"])):
        for item in items:
            by_second.setdefault(int(when(item)), {"events": [], "samples": [], "tags": [], "nudges": []})[kind].append(item)
    for second in sorted(by_second):
        due = by_second[second]
        for n in due["nudges"]:
            store.add_nudge(session, n["id"], n["kind"], n["text"], n["session_time"])
            if n["dismissed_at"] is not None:
                store.dismiss_nudge(session, n["id"], n["dismissed_at"])
        for t in due["tags"]:
            store.put_tag(session, t["id"], t["kind"], t["label"], t["session_time"], clicked_at=t["clicked_at"],
                          note=t["note"], origin=t["origin"])
        store.add_indicator_samples(session, due["samples"])
        store.log_events(session, [(created + t, t, kind, who, data) for t, kind, who, data in due["events"]])
    for t in tags:
        if t["moved"] is not None:  # moved in an earlier review
            store.update_tag(session, t["id"], session_time=t["moved"])
    return len(events), len(samples)


def record(store: Store, storage: FolderStorage, session: str, participant: str, audio: Packets) -> dict:
    """A participant's 2-hour recording, as ``recordings/call.py`` makes it: the recorder gets
    every packet at its place on the session clock except while paused, the row is created,
    brought up to date, and the file finished into WebM."""
    start48 = round(STARTS[participant] * RATE)
    end48 = round((DURATION_S - 0.5) * RATE)
    recorder = AudioRecorder(storage, session, participant, start48)
    info = recorder.info
    store.create_recording(session, info.id, participant, "audio", info.name, "audio/ogg", info.start_s)
    n = len(audio.packets)
    pause = (PAUSE[0] * RATE, PAUSE[1] * RATE)
    for k, position in enumerate(range(start48, end48, FRAME)):
        if pause[0] <= position < pause[1]:
            if position - FRAME < pause[0]:
                recorder.flush()  # what set_paused does
            continue
        recorder.add(position, FRAME, audio.packets[k % n], audio.peaks[k % n])
    recorder.close()
    store.update_recording(session, info.id, duration_s=round(recorder.duration_s, 3), bytes=info.bytes, gaps=info.gaps)
    finish_audio(store, storage, session, info.id, info.name, "finished")
    row = store.recording(session, info.id)
    if row is None or row["state"] != "finished":
        raise RuntimeError(f"the {participant}'s recording was not finished: {row}")
    return {"participant": participant, "id": info.id, "duration_s": row["duration_s"], "bytes": row["bytes"],
            "gaps": row["gaps"], "name": row["name"]}


def make_session(work: Path, seed: int, fresh: bool, say: Callable[[str], None]) -> tuple[Path, Made]:
    """The data folder ``<work>/data`` with one 2-hour session in it, made (or reused) here."""
    data, marker = work / "data", work / "session.json"
    if not fresh and marker.is_file() and (data / "livecoach.sqlite3").is_file():
        made = Made(**json.loads(marker.read_text()))
        if made.generation == GENERATION and made.seed == seed:
            say(f"reusing the session in {data} (made in {made.seconds:.1f} s; --fresh makes it again)")
            return data, made
    started = time.perf_counter()
    shutil.rmtree(data, ignore_errors=True)
    marker.unlink(missing_ok=True)
    partial = work / "data.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    rng = random.Random(seed)
    say("encoding the looped audio (once per work folder)...")
    audio = {p: looped_audio(work, p) for p in STARTS}
    store = Store(partial / "livecoach.sqlite3")
    try:
        new = store.create_session("Bench: 2-hour session", video_recording=False)
        created = store.get_session(new.id).created_at
        for role in ("coach", "client"):
            store.record_consent(new.id, role)
        segments = speech_segments(rng)
        say(f"writing the timeline ({sum(map(len, segments.values()))} segments, {TAGS} tags, "
            f"{int(DURATION_S)} samples)...")
        events, samples = write_timeline(store, new.id, created, segments, rng)
        storage = FolderStorage(partial / "recordings")
        recordings = []
        for p in STARTS:
            say(f"recording the {p}'s 2 hours ({int((DURATION_S - STARTS[p]) / 0.02)} packets) and finishing it...")
            recordings.append(record(store, storage, new.id, p, audio[p]))
        warm(store, new.id)  # as the call does when it ends (live/call.py)
        made = Made(GENERATION, seed, new.id, new.coach_token, sum(map(len, segments.values())),
                    len(store.tags(new.id)), len(store.nudges(new.id)), samples, events, recordings)
    finally:
        store.close()
    partial.rename(data)
    made.seconds = round(time.perf_counter() - started, 1)
    marker.write_text(json.dumps(asdict(made), indent=1))
    return data, made


# -- the server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m livecoach serve`` on a free loopback port, as tests/liveserver.py runs it."""

    def __init__(self, data: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "livecoach", "serve", "--data", str(data), "--port", str(self.port),
             "--workers", "0"],
            stdout=self._out, stderr=subprocess.STDOUT, cwd=ROOT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def fetch_payload(url: str, session: str, token: str) -> tuple[bytes, dict[str, Any]]:
    """The review payload as the page asks for it, and how long the server took on loopback."""
    req = urllib.request.Request(f"{url}/api/sessions/{session}/review",
                                 headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=30) as res:
        first = res.read(1)
        t_first = time.perf_counter()
        body = first + res.read()
        t_last = time.perf_counter()
        encoding = res.headers.get("Content-Encoding") or "identity"
    if encoding == "gzip":
        body = gzip.decompress(body)
    return body, {"ttfb_ms": (t_first - t0) * 1000, "total_ms": (t_last - t0) * 1000, "content_encoding": encoding}


def build_breakdown(data: Path, session: str) -> dict[str, float]:
    """The server's payload work in this process: ``load_review`` as review_api answers it (the
    timeline part kept by the store), and, step by step, the same payload built from scratch: ms
    per store query, for build_review and for the encoding."""
    from starlette.responses import JSONResponse

    store = Store(data / "livecoach.sqlite3")
    try:
        ms: dict[str, float] = {}

        def timed(name: str, fn: Callable[[], Any]) -> Any:
            t0 = time.perf_counter()
            value = fn()
            ms[name] = (time.perf_counter() - t0) * 1000
            return value

        timed("load_review_kept", lambda: load_review(store, session, lambda name: f"/media/{session}/{name}?e=0&k=0"))
        stored = timed("get_session", lambda: store.get_session(session))
        recordings = timed("recordings", lambda: store.recordings(session))
        events = timed("events", lambda: store.events(session, REVIEW_EVENTS))
        tags = timed("tags", lambda: store.tags(session))
        nudges = timed("nudges", lambda: store.nudges(session))
        samples = timed("talk_balance", lambda: store.talk_balance(session))
        kinds = timed("coach_settings", lambda: store.coach_settings(store.coach_of(session))["tag_kinds"])
        payload = timed("build_review", lambda: build_review(
            {"id": stored.id, "label": stored.label, "created_at": stored.created_at,
             "video_recording": stored.video_recording},
            events, tags, nudges, samples, recordings, kinds, lambda rid, what: f"/media/{session}/{rid}?e=0&k=0"))
        timed("json_encode", lambda: JSONResponse(payload).body)
        ms["events_rows"] = len(events)
        return ms
    finally:
        store.close()


# -- the browser ---------------------------------------------------------------------------

# Runs before the page's own scripts: times (performance.now(), ms from navigation start) at
# which the tag markers are all in the page, the frame after that, and every media element's
# first loadstart/loadedmetadata/canplay..., and when all of them could play. Once drawn and
# playable it says READY on the console, which the benchmark waits for: no script of
# Playwright's polls in the page while it loads.
READY = "bench-review: drawn and playable"
INSTRUMENT = """
(() => {
  const B = window.__bench = { marks: {}, media: {}, expectTags: %(tags)d, expectMedia: %(media)d };
  const now = () => performance.now();
  const ready = () => {
    if (B.marks.drawn !== undefined && B.marks.playable !== undefined) console.debug('%(ready)s');
  };
  const check = () => {
    const m = B.marks;
    if (m.tags_dom === undefined
        && document.querySelectorAll('[data-testid=tag-marker]').length >= B.expectTags) {
      m.tags_dom = now();
      // The frame after: its rendering step draws the canvases (their ResizeObservers fire
      // after the animation-frame callbacks), and a message posted from it runs after that.
      requestAnimationFrame(() => {
        m.frame = now();
        const ch = new MessageChannel();
        ch.port1.onmessage = () => {
          m.drawn = now();
          ready();
        };
        ch.port2.postMessage(0);
      });
    }
    if (m.playable === undefined) {
      const els = [...document.querySelectorAll('[data-testid=media]')];
      if (els.length >= B.expectMedia && els.every((e) => e.readyState >= 3)) {
        m.playable = now();
        ready();
      }
    }
  };
  new MutationObserver(check).observe(document, { childList: true, subtree: true });
  B.longtasks = [];
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) B.longtasks.push([Math.round(e.startTime), Math.round(e.duration)]);
    }).observe({ type: 'longtask', buffered: true });
  } catch (err) { /* not supported */ }
  for (const type of ['loadstart', 'loadedmetadata', 'loadeddata', 'canplay', 'canplaythrough', 'error', 'stalled']) {
    document.addEventListener(type, (e) => {
      const el = e.target;
      if (!(el instanceof HTMLMediaElement)) return;
      const rec = B.media[el.dataset.recording || el.src] ??= {};
      rec[type] ??= now();
      check();
    }, true);
  }
})();
"""

COLLECT = """
() => {
  const B = window.__bench;
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource').map((r) => ({
    name: new URL(r.name).pathname, type: r.initiatorType, start: r.startTime, sent: r.requestStart, ttfb: r.responseStart,
    end: r.responseEnd, bytes: r.encodedBodySize }));
  const mark = (name) => performance.getEntriesByName(name)[0];
  return {
    marks: B.marks, media: B.media, longtasks: B.longtasks,
    html_end: nav.responseEnd, dom_content_loaded: nav.domContentLoadedEventEnd, load_event: nav.loadEventEnd,
    resources: res,
    review_loaded: mark('review-loaded')?.startTime ?? null,
    mount_ms: mark('review-mount')?.duration ?? null,
    ready_attr: Number(document.body.dataset.ready ?? NaN),
    media_states: [...document.querySelectorAll('[data-testid=media]')].map((e) => ({
      id: e.dataset.recording, readyState: e.readyState, duration: e.duration, error: e.error?.message ?? null })),
  };
}
"""

# Seeks one media element to each target in turn (paused), timing each in the page.
ELEMENT_SEEKS = """
async ({ src, targets, timeout }) => {
  const el = document.createElement('audio');
  el.preload = 'auto';
  document.body.append(el);
  const t0 = performance.now();
  const ready = () => el.readyState >= 3;
  await new Promise((resolve, reject) => {
    el.addEventListener('canplay', resolve, { once: true });
    el.addEventListener('error', () => reject(new Error(el.error?.message || 'media error')), { once: true });
    el.src = src;
  });
  const load_ms = performance.now() - t0;
  const duration = el.duration;
  const out = [];
  for (const target of targets) {
    out.push(await new Promise((resolve) => {
      const r = { target };
      const start = performance.now();
      const types = ['seeking', 'seeked', 'canplay', 'canplaythrough', 'loadeddata', 'progress'];
      const finish = () => {
        clearTimeout(timer);
        for (const t of types) el.removeEventListener(t, on);
        r.position = el.currentTime;
        resolve(r);
      };
      const on = (e) => {
        const at = performance.now();
        if (e.type === 'seeking') r.seeking ??= at - start;
        if (e.type === 'seeked') { r.seeked ??= at - start; r.ready_at_seeked = el.readyState; }
        if (r.seeked !== undefined && !el.seeking && ready()) { r.playable ??= at - start; finish(); }
      };
      const timer = setTimeout(() => { r.timeout = true; finish(); }, timeout);
      for (const t of types) el.addEventListener(t, on);
      el.currentTime = target;
    }));
  }
  el.removeAttribute('src');
  el.load();
  el.remove();
  return { load_ms, duration, seeks: out };
}
"""

# On the review page: the time of each pointerdown on the overview, and of each media
# element's seeked and of its being able to play after it.
PAGE_SEEK_SETUP = """
() => {
  const S = window.__seek = { down: null, els: {}, clicks: 0 };
  document.querySelector('[data-testid=overview]').addEventListener('pointerdown', (e) => {
    S.down = performance.now();
    S.els = {};
    S.clicks += 1;
  }, true);
  const check = (el) => {
    if (S.down === null) return;
    const r = S.els[el.dataset.recording] ??= {};
    if (r.seeked !== undefined && r.playable === undefined && !el.seeking && el.readyState >= 3) {
      r.playable = performance.now() - S.down;
    }
  };
  for (const el of document.querySelectorAll('[data-testid=media]')) {
    el.addEventListener('seeking', () => {
      if (S.down === null) return;
      const r = S.els[el.dataset.recording] ??= {};
      r.seeking ??= performance.now() - S.down;
    });
    el.addEventListener('seeked', () => {
      if (S.down === null) return;
      const r = S.els[el.dataset.recording] ??= {};
      r.seeked ??= performance.now() - S.down;
      check(el);
    });
    for (const t of ['canplay', 'canplaythrough', 'playing', 'progress']) el.addEventListener(t, () => check(el));
  }
}
"""

PAGE_SEEK_DONE = """
({ n, clicks }) => {
  const S = window.__seek;
  const ids = Object.keys(S.els);
  return S.clicks === clicks && ids.length >= n && ids.every((id) => S.els[id].playable !== undefined);
}
"""


@dataclass
class Clicks:
    """Where to click the overview: ``count`` random session times in [low, high] of a session
    of ``duration`` s, each outside the detail view's window on the strip (a press on the
    window drags it instead of seeking)."""

    rng: random.Random
    count: int
    low: float
    high: float
    duration: float


def launch(pw: Any, chromium: str) -> Any:
    return pw.chromium.launch(executable_path=chromium, headless=True,
                              args=["--autoplay-policy=no-user-gesture-required"])


def load_once(browser: Any, url: str, made: Made, clicks: Clicks | None, profile: bool = False) -> dict[str, Any]:
    """One cold load of the review page: its marks, where the time went (Chromium's own task,
    script, style and layout totals up to the moment it is playable, and with ``profile`` a
    JavaScript CPU profile of that time); then the clicks on the overview."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        context.add_init_script(INSTRUMENT % {"tags": made.tags, "media": len(made.recordings), "ready": READY})
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        if profile:
            cdp.send("Profiler.enable")
            cdp.send("Profiler.setSamplingInterval", {"interval": 200})
            cdp.send("Profiler.start")
            browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
        problems: list[str] = []
        page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        media: list[dict] = []
        page.on("response", lambda r: media.append(
            {"path": r.url.split("?")[0].rsplit("/", 1)[-1], "status": r.status, "range": r.request.headers.get("range"),
             "start_epoch_ms": r.request.timing["startTime"]})
            if "/media/" in r.url else None)
        settle()
        cpu = CpuWatch()
        try:
            with page.expect_console_message(lambda m: m.text == READY, timeout=LOAD_TIMEOUT_S * 1000):
                page.goto(f"{url}/s/{made.session}/review#{made.coach_token}")
        except PlaywrightTimeoutError:
            state = page.evaluate(COLLECT)
            raise RuntimeError(f"the review page did not become drawn and playable in {LOAD_TIMEOUT_S:g} s: "
                               f"{json.dumps(state)[:2000]} {problems[:5]}") from None
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        got = page.evaluate(COLLECT)
        got["cpu"] = cpu.stop()
        if profile:
            trace = json.loads(browser.stop_tracing())
            got["profile"] = summarise_profile(cdp.send("Profiler.stop")["profile"])
            got["tasks"] = summarise_trace(trace, got["review_loaded"])
        got["main_thread_ms"] = {k: round(metrics.get(v, 0.0) * 1000, 1) for k, v in (
            ("tasks", "TaskDuration"), ("script", "ScriptDuration"), ("style", "RecalcStyleDuration"),
            ("layout", "LayoutDuration"))}
        origin = page.evaluate("() => performance.timeOrigin")
        got["media_requests"] = [dict(m, start=m["start_epoch_ms"] - origin) for m in media]
        got["seeks"] = page_seeks(page, clicks, len(made.recordings)) if clicks else []
        got["problems"] = problems
        return got
    finally:
        context.close()


def settle(limit_s: float = SETTLE_LIMIT_S, below_cores: float = SETTLE_BELOW_CORES) -> None:
    """Waits, at most ``limit_s``, until this benchmark's own processes are idle. A new browser
    context opens a window, and Chromium then loads that window's own UI (its omnibox popup, a
    WebUI page) for a second or more of CPU; a coach's browser has its window open already, so
    the page is not timed while that loads (on two cores it took a fifth of the CPU of a load)."""
    deadline = time.monotonic() + limit_s
    step = 0.2
    ticks = CpuWatch._tree()
    while time.monotonic() < deadline:
        time.sleep(step)
        now = CpuWatch._tree()
        if (now - ticks) / CpuWatch.TICK / step < below_cores:
            return
        ticks = now


def summarise_profile(profile: dict, top: int = 12) -> dict[str, list[dict]]:
    """A JavaScript CPU profile: self time by function (with its script and line), and the
    inclusive time of the page's own functions, the largest first."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {c: n["id"] for n in profile["nodes"] for c in n.get("children", [])}
    names = {}
    for node_id, node in nodes.items():
        frame = node["callFrame"]
        script = frame["url"].rsplit("/static/", 1)[-1] if frame["url"] else ""
        names[node_id] = (f"{frame['functionName'] or '(anonymous)'} {script}:{frame['lineNumber'] + 1}" if script
                          else frame["functionName"])
    own: dict[str, float] = {}
    total: dict[str, float] = {}
    for node_id, delta in zip(profile["samples"], profile["timeDeltas"]):
        own[names[node_id]] = own.get(names[node_id], 0.0) + delta
        seen = set()
        while node_id is not None:  # every function on the stack, once per sample
            name = names[node_id]
            if name not in seen and "js/" in name:
                total[name] = total.get(name, 0.0) + delta
                seen.add(name)
            node_id = parent.get(node_id)

    def rows(table: dict[str, float]) -> list[dict]:
        return [{"function": k, "ms": round(v / 1000, 1)} for k, v in sorted(table.items(), key=lambda kv: -kv[1])[:top]]

    return {"self": rows(own), "inclusive": rows(total)}


TRACE_CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline", "v8.execute", "blink.user_timing"]
TRACE_PARTS = ("RunMicrotasks", "FunctionCall", "EvaluateScript", "v8.compileModule", "ParseHTML",
               "UpdateLayoutTree", "Layout", "PrePaint", "Paint", "Layerize", "Commit", "MinorGC", "MajorGC",
               "DocumentLoader::CommitNavigation")
"""What a main-thread task is made of: script (microtasks: the awaits of the page's code;
function calls: events and animation frames), style (UpdateLayoutTree), layout, painting, GC."""


def summarise_trace(trace: dict, review_loaded_ms: float | None, longer_than_ms: float = 40.0) -> list[dict]:
    """The renderer main thread's tasks longer than ``longer_than_ms``: when (ms from navigation
    start, by the page's 'review-loaded' mark), how long, and what they were made of."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    threads = {(e["pid"], e["tid"]) for e in events if e.get("name") == "thread_name"
               and e.get("args", {}).get("name") == "CrRendererMain"}
    mine = [e for e in events if (e.get("pid"), e.get("tid")) in threads]
    mark = [e["ts"] for e in mine if e.get("name") == "review-loaded"]
    offset = mark[0] / 1000 - review_loaded_ms if mark and review_loaded_ms is not None else None
    spans = [e for e in mine if e.get("ph") == "X" and "dur" in e]
    out = []
    for task in spans:
        if task["name"] != "RunTask" or task["dur"] < longer_than_ms * 1000:
            continue
        a, b = task["ts"], task["ts"] + task["dur"]
        parts: dict[str, float] = {}
        for e in spans:
            if e["name"] in TRACE_PARTS and a <= e["ts"] < b:
                parts[e["name"]] = parts.get(e["name"], 0.0) + e["dur"] / 1000
        out.append({"at": None if offset is None else round(a / 1000 - offset), "ms": round(task["dur"] / 1000),
                    "parts": {k: round(v) for k, v in sorted(parts.items(), key=lambda kv: -kv[1]) if v >= 1}})
    return sorted(out, key=lambda t: t["at"] if t["at"] is not None else 0)


def page_seeks(page: Any, clicks: Clicks, recordings: int) -> list[dict]:
    """Clicks on the overview strip (play from there): per click, ms from the pointerdown until
    each recording has seeked and can play."""
    page.evaluate(PAGE_SEEK_SETUP)
    canvas = page.locator("[data-testid=overview] canvas")
    out = []
    for i in range(1, clicks.count + 1):
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        y = box["y"] + box["height"] / 2
        for _ in range(50):
            t = clicks.rng.uniform(clicks.low, clicks.high)
            x = box["x"] + box["width"] * t / clicks.duration
            if page.evaluate("([x, y]) => document.elementFromPoint(x, y)?.tagName === 'CANVAS'", [x, y]):
                break
        page.mouse.click(x, y)
        timeout = False
        try:
            page.wait_for_function(PAGE_SEEK_DONE, arg={"n": recordings, "clicks": i}, timeout=SEEK_TIMEOUT_MS,
                                   polling=20)
        except Exception:
            timeout = True
        out.append({"target": round(t, 1), "timeout": timeout, "recordings": page.evaluate("() => window.__seek.els")})
        page.wait_for_timeout(250)  # let it play a moment, as a coach would
    return out


def element_seeks(browser: Any, url: str, payload: dict, targets: dict[str, list[float]]) -> dict[str, Any]:
    """Each recording alone in an <audio> on a same-origin page, seeked to its targets; with the
    number of HTTP requests for its file (the first load's, and every seek's ranges)."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.route(f"{url}/__bench", lambda route: route.fulfill(status=200, content_type="text/html",
                                                                 body="<!doctype html><title>seek bench</title>"))
        page.goto(f"{url}/__bench")
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url) if "/media/" in r.url else None)
        out = {}
        for r in payload["recordings"]:
            requests.clear()
            out[r["participant"]] = page.evaluate(ELEMENT_SEEKS, {"src": url + r["url"], "targets": targets[r["id"]],
                                                                  "timeout": SEEK_TIMEOUT_MS})
            out[r["participant"]]["requests"] = len(requests)
        return out
    finally:
        context.close()


# -- figures -------------------------------------------------------------------------------


def stats(values: Iterable[float], digits: int = 1) -> dict[str, float | int | None]:
    """n, min, p50, p95 (linear interpolation) and max."""
    v = [float(x) for x in values if x is not None]
    if not v:
        return {"n": 0, "min": None, "p50": None, "p95": None, "max": None}
    return {"n": len(v), "min": round(min(v), digits), "p50": round(float(np.percentile(v, 50)), digits),
            "p95": round(float(np.percentile(v, 95)), digits), "max": round(max(v), digits)}


class CpuWatch:
    """The machine's CPU over an interval, split into this benchmark's processes (this one and
    every descendant: the server, Playwright's driver, Chromium) and everything else, in cores.
    Other programs on a small machine slow the page as much as its own work does."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self) -> None:
        self._at = time.monotonic()
        self._busy, self._ours = self._machine(), self._tree()

    @staticmethod
    def _machine() -> int:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return sum(fields) - fields[3] - fields[4]

    @staticmethod
    def _tree() -> int:
        """CPU ticks of this process and its descendants (with their reaped children)."""
        parents: dict[int, int] = {}
        ticks: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
            ticks[int(entry.name)] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        mine, todo = set(), [os.getpid()]
        while todo:
            pid = todo.pop()
            mine.add(pid)
            todo += [child for child, parent in parents.items() if parent == pid and child not in mine]
        return sum(ticks.get(pid, 0) for pid in mine)

    def stop(self) -> dict[str, float]:
        seconds = max(1e-3, time.monotonic() - self._at)
        busy = (self._machine() - self._busy) / self.TICK / seconds
        ours = (self._tree() - self._ours) / self.TICK / seconds
        return {"ours_cores": round(ours, 2), "other_cores": round(max(0.0, busy - ours), 2)}


def busy_cores(seconds: float = 2.0) -> float:
    """How many cores' worth of CPU the whole machine used over the next ``seconds``."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields[:8]) - idle, sum(fields[:8])
    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)


def wait_for_quiet(limit_s: float, below: float, say: Callable[[str], None]) -> float:
    """Wait (at most ``limit_s``) until other programs use less than ``below`` cores; returns
    the last figure."""
    deadline = time.monotonic() + limit_s
    busy = busy_cores()
    while busy >= below and time.monotonic() < deadline:
        say(f"the machine is busy ({busy:.1f} cores in use): waiting for it to calm down...")
        time.sleep(5)
        busy = busy_cores()
    return busy


def machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu_model": model, "loadavg_start": [round(x, 2) for x in load_before],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()]}


def phases(run: dict, session: str) -> dict[str, float | None]:
    """Where one load's time went, ms from navigation start."""
    res = run["resources"]

    def last(pred: Callable[[dict], bool], key: str = "end") -> float | None:
        hits = [r[key] for r in res if pred(r)]
        return max(hits) if hits else None

    review = [r for r in res if r["name"] == f"/api/sessions/{session}/review"]
    media = list(run["media"].values())
    return {
        "html": run["html_end"],
        "scripts": last(lambda r: r["name"].startswith("/static/js/")),
        "load_event": run["load_event"] or None,
        "review_request_start": review[0]["start"] if review else None,
        "review_first_byte": review[0]["ttfb"] if review else None,
        "review_last_byte": review[0]["end"] if review else None,
        "settings_last_byte": last(lambda r: r["name"].endswith("/settings")),
        "review_loaded": run["review_loaded"],
        "mount": run["mount_ms"],
        "markers_in_dom": run["marks"].get("tags_dom"),
        "next_frame": run["marks"].get("frame"),
        "drawn": run["marks"].get("drawn"),
        "media_first_request": min((m["start"] for m in run["media_requests"] if not m["path"].endswith(".peaks")),
                                   default=None),
        "media_loadstart": min((m.get("loadstart") for m in media if m.get("loadstart") is not None), default=None),
        "media_metadata": max((m.get("loadedmetadata") or 0 for m in media), default=None),
        "playable": run["marks"].get("playable"),
        "peaks_last_byte": last(lambda r: r["name"].endswith(".peaks")),
    }


def fmt(x: float | None, unit: str = "ms") -> str:
    return "—" if x is None else f"{x:.0f} {unit}"


@dataclass
class Runs:
    """Every run's raw measurements."""

    loads: list[dict] = field(default_factory=list)
    fetches: list[dict] = field(default_factory=list)
    breakdowns: list[dict] = field(default_factory=list)
    element_seeks: list[dict] = field(default_factory=list)
    payload: bytes = b""
    profiled: dict | None = None
    busy_before: float = 0.0


def measure(args: argparse.Namespace, data: Path, made: Made, work: Path, say: Callable[[str], None]) -> Runs:
    """Steps 2–4: the server, ``--repeat`` cold loads with their seeks, and the payload."""
    from playwright.sync_api import sync_playwright

    runs = Runs(busy_before=wait_for_quiet(args.quiet_wait, 0.5, say))
    server = Server(data, work / "server.log")
    say(f"server at {server.url} (log {work / 'server.log'})")
    click_rng = random.Random(args.seed * 1000 + 1)
    seek_rng = random.Random(args.seed * 1000 + 2)
    try:
        with sync_playwright() as pw:
            browser = launch(pw, args.chromium)
            try:
                for i in range(args.repeat):
                    runs.payload, timing = fetch_payload(server.url, made.session, made.coach_token)
                    runs.fetches.append(timing)
                    payload = json.loads(runs.payload)
                    runs.breakdowns.append(build_breakdown(data, made.session))
                    duration = payload["session"]["duration_s"]
                    latest_start = max(r["start_s"] for r in payload["recordings"])
                    clicks = None if args.no_page_seeks else Clicks(
                        click_rng, args.seeks, latest_start + 2, duration - 10, duration)
                    run = load_once(browser, server.url, made, clicks)
                    runs.loads.append(run)
                    targets = {r["id"]: [round(seek_rng.uniform(0, r["duration_s"] - 1), 3) for _ in range(args.seeks)]
                               for r in payload["recordings"]}
                    runs.element_seeks.append(element_seeks(browser, server.url, payload, targets))
                    say(f"run {i + 1}: drawn {fmt(run['marks']['drawn'])}, playable {fmt(run['marks']['playable'])}, "
                        f"payload answered in {fmt(timing['total_ms'])}")
                if args.profile:
                    say("one more load, traced and with a JavaScript CPU profile...")
                    runs.profiled = load_once(browser, server.url, made, None, profile=True)
            finally:
                browser.close()
    finally:
        server.stop()
    return runs


def figures(runs: Runs, made: Made, args: argparse.Namespace, load_before: tuple[float, float, float]) -> dict:
    """Step 5: every figure, for the JSON line (and the summary made from it)."""
    loads = runs.loads
    payload = json.loads(runs.payload)
    drawn = [r["marks"]["drawn"] for r in loads]
    playable = [r["marks"]["playable"] for r in loads]
    ready = [max(a, b) for a, b in zip(drawn, playable)]
    per_phase = [phases(r, made.session) for r in loads]
    element: dict[str, Any] = {"seeking_to_seeked": [], "set_to_seeked": [], "set_to_playable": [],
                               "initial_canplay": [], "timeouts": 0, "max_position_error_s": 0.0,
                               "requests_per_seek": 0.0}
    for run in runs.element_seeks:
        for rec in run.values():
            element["initial_canplay"].append(rec["load_ms"])
            element["requests_per_seek"] += rec["requests"] / max(1, len(rec["seeks"])) / len(run) / len(runs.element_seeks)
            for seek in rec["seeks"]:
                if seek.get("timeout"):
                    element["timeouts"] += 1
                    continue
                element["seeking_to_seeked"].append(seek["seeked"] - seek.get("seeking", 0.0))
                element["set_to_seeked"].append(seek["seeked"])
                element["set_to_playable"].append(seek["playable"])
                element["max_position_error_s"] = max(element["max_position_error_s"],
                                                      abs(seek["position"] - seek["target"]))
    page: dict[str, Any] = {"click_to_all_seeked": [], "click_to_all_playable": [], "timeouts": 0}
    for run in loads:
        for seek in run["seeks"]:
            recs = list(seek["recordings"].values())
            if seek["timeout"] or len(recs) < len(made.recordings):
                page["timeouts"] += 1
                continue
            page["click_to_all_seeked"].append(max(v["seeked"] for v in recs))
            page["click_to_all_playable"].append(max(v["playable"] for v in recs))

    def median_of(rows: list[dict]) -> dict[str, float | None]:
        return {k: (round(statistics.median(v), 1) if (v := [r[k] for r in rows if r[k] is not None]) else None)
                for k in rows[0]}

    out = {
        "bench": "review",
        "session": {"duration_s": payload["session"]["duration_s"], "segments": made.segments, "tags": made.tags,
                    "nudges": made.nudges, "samples": made.samples, "events": made.events,
                    "recordings": [{k: r[k] for k in ("participant", "duration_s", "bytes", "gaps")}
                                   for r in made.recordings],
                    "generated_in_s": made.seconds},
        "repeat": args.repeat,
        "load_ms": {"drawn": stats(drawn), "playable": stats(playable), "ready": stats(ready),
                    "runs": [{"drawn": round(a, 1), "playable": round(b, 1)} for a, b in zip(drawn, playable)]},
        "phases_p50_ms": median_of(per_phase),
        "main_thread_p50_ms": median_of([r["main_thread_ms"] for r in loads]),
        "cpu_during_loads": {"ours_cores": stats((r["cpu"]["ours_cores"] for r in loads), 2),
                             "other_cores": stats((r["cpu"]["other_cores"] for r in loads), 2)},
        "long_tasks_p50_ms": round(statistics.median(sum(d for _, d in r["longtasks"]) for r in loads), 1),
        "longest_task_p50_ms": round(statistics.median(max((d for _, d in r["longtasks"]), default=0)
                                                       for r in loads), 1),
        "payload": {"bytes_raw": len(runs.payload), "bytes_gzip": len(gzip.compress(runs.payload, 6)),
                    "content_encoding": runs.fetches[-1]["content_encoding"],
                    "server_ttfb_ms": stats(f["ttfb_ms"] for f in runs.fetches),
                    "server_total_ms": stats(f["total_ms"] for f in runs.fetches),
                    "build_breakdown_p50_ms": median_of(runs.breakdowns),
                    "sizes": {k: len(json.dumps(v, separators=(",", ":"))) for k, v in payload.items()}},
        "seek_ms": {
            "element": {k: (stats(v) if isinstance(v, list) else round(v, 3)) for k, v in element.items()},
            "page": {k: (stats(v) if isinstance(v, list) else v) for k, v in page.items()},
        },
        "profile": None if runs.profiled is None else {
            "marks": {k: round(v) for k, v in runs.profiled["marks"].items()},
            "long_tasks": runs.profiled["tasks"], "js": runs.profiled["profile"]},
        "problems": sorted({p for r in loads for p in r["problems"]})[:20],
        "machine": machine(load_before) | {"busy_cores_before": round(runs.busy_before, 2)},
        "chromium": args.chromium,
    }
    worst_seek = out["seek_ms"]["element"]["seeking_to_seeked"]["max"]
    out["holds"] = {
        "load_under_1s": max(ready) < BUDGET_LOAD_MS,
        "seek_under_200ms": worst_seek is not None and worst_seek < BUDGET_SEEK_MS and element["timeouts"] == 0,
    }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="cold loads of the review page (default 5)")
    ap.add_argument("--seeks", type=int, default=20, help="random seeks per recording per run (default 20)")
    ap.add_argument("--work", type=Path, help="folder for the generated data, kept between runs (default: a temp dir)")
    ap.add_argument("--fresh", action="store_true", help="make the session again even if --work has one")
    ap.add_argument("--seed", type=int, default=2, help="the generated session's seed (default 2)")
    ap.add_argument("--chromium", default=CHROMIUM, help=f"the browser (default {CHROMIUM})")
    ap.add_argument("--no-page-seeks", action="store_true", help="skip the clicks on the review page's overview")
    ap.add_argument("--quiet-wait", type=float, default=0.0, metavar="S",
                    help="before measuring, wait up to S seconds for the machine to be idle (other programs "
                         "using under half a core); default: do not wait, only report how busy it was")
    ap.add_argument("--profile", action="store_true",
                    help="one more load, traced and profiled: its long main-thread tasks and the JavaScript in them")
    ap.add_argument("--dump", type=Path, help="also write every run's raw measurements to this JSON file")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if not os.access(args.chromium, os.X_OK):
        print(f"no browser at {args.chromium} (apt-get install chromium)", file=sys.stderr)
        return 1
    load_before = os.getloadavg()

    def say(text: str) -> None:
        print(text, flush=True)

    temporary = args.work is None
    work = Path(tempfile.mkdtemp(prefix="bench-review-")) if temporary else args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        data, made = make_session(work, args.seed, args.fresh or temporary, say)
        say(f"session {made.session}: {made.segments} segments, {made.tags} tags, {made.nudges} nudges, "
            f"{made.samples} samples, {made.events} events; recordings "
            + ", ".join(f"{r['participant']} {r['duration_s']:.0f} s {r['bytes'] / 1e6:.1f} MB" for r in made.recordings))
        runs = measure(args, data, made, work, say)
    except Exception as err:  # the harness broke: say where, exit 1
        import traceback

        traceback.print_exc()
        print(f"bench_review: {err}", file=sys.stderr)
        return 1
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)
    out = figures(runs, made, args, load_before)
    if args.dump:
        args.dump.write_text(json.dumps(asdict(runs) | {"payload": len(runs.payload)}, indent=1))
    report(out)
    print(json.dumps(out, separators=(",", ":")))
    return 0


def report(f: dict) -> None:
    """The summary for people (the JSON line after it has everything)."""
    s, load, pay, seek, mach = f["session"], f["load_ms"], f["payload"], f["seek_ms"], f["machine"]

    def line(name: str, st: dict, keys: tuple[str, ...] = ("p50", "max")) -> str:
        return f"  {name:<28}" + "  ".join(f"{k} {fmt(st[k])}" for k in keys) + f"  (n={st['n']})"

    print()
    print(f"Review of a {s['duration_s'] / 3600:.2f}-hour session: {s['segments']} segments, {s['tags']} tags, "
          f"{s['nudges']} nudges, {s['samples']} samples, {len(s['recordings'])} recordings "
          "(" + ", ".join(f"{r['bytes'] / 1e6:.1f} MB" for r in s["recordings"]) + ")")
    print(f"Machine: {mach['cores']} cores, {mach['cpu_model']}, load average {mach['loadavg_start']} -> "
          f"{mach['loadavg_end']}, {mach['busy_cores_before']} cores busy just before measuring")
    print(f"Load, {f['repeat']} cold runs (ms from navigation start; budget {BUDGET_LOAD_MS:.0f} ms):")
    print(line("timeline drawn", load["drawn"]))
    print(line("all media playable", load["playable"]))
    print(line("drawn and playable", load["ready"]))
    print("  runs: " + ", ".join(f"{r['drawn']:.0f}/{r['playable']:.0f}" for r in load["runs"]) + "  (drawn/playable)")
    cpu = f["cpu_during_loads"]
    print(f"  CPU during the loads (cores, p50/max): this benchmark {cpu['ours_cores']['p50']}/"
          f"{cpu['ours_cores']['max']}, other programs {cpu['other_cores']['p50']}/{cpu['other_cores']['max']}")
    print("Where the time goes (p50, ms from navigation start):")
    for k, v in f["phases_p50_ms"].items():
        print(f"  {k:<28}{fmt(v)}")
    mt = f["main_thread_p50_ms"]
    print(f"  main thread until then (p50): tasks {mt['tasks']:.0f} ms (script {mt['script']:.0f}, style "
          f"{mt['style']:.0f}, layout {mt['layout']:.0f}); long tasks {f['long_tasks_p50_ms']:.0f} ms, the longest "
          f"{f['longest_task_p50_ms']:.0f} ms")
    if f["profile"]:
        prof = f["profile"]
        print(f"  One traced and profiled load (slower for it): marks {prof['marks']}; main-thread tasks over 40 ms:")
        for task in prof["long_tasks"]:
            print(f"    at {task['at']} ms, {task['ms']} ms: " + ", ".join(f"{k} {v}" for k, v in task["parts"].items()))
        print("  JavaScript, inclusive time of the page's functions: " + "; ".join(
            f"{r['function']} {r['ms']:.0f}" for r in prof["js"]["inclusive"][:8]))
        print("  JavaScript, self time: " + "; ".join(f"{r['function']} {r['ms']:.0f}" for r in prof["js"]["self"][:8]))
    print(f"Payload: {pay['bytes_raw']:,} bytes raw, {pay['bytes_gzip']:,} gzip (sent {pay['content_encoding']})")
    print(line("server first byte", pay["server_ttfb_ms"]))
    print(line("server last byte", pay["server_total_ms"]))
    print("  build in this process (p50): " + ", ".join(
        f"{k} {v:.1f}" for k, v in pay["build_breakdown_p50_ms"].items() if k != "events_rows")
        + f" ms ({pay['build_breakdown_p50_ms']['events_rows']:.0f} event rows)")
    print("  largest parts: " + ", ".join(f"{k} {v:,}" for k, v in sorted(pay["sizes"].items(), key=lambda kv: -kv[1])[:4]))
    e, p = seek["element"], seek["page"]
    keys = ("p50", "p95", "max")
    print(f"Seeks, <audio> alone, paused (budget {BUDGET_SEEK_MS:.0f} ms; {e['timeouts']} timed out, "
          f"position off by at most {e['max_position_error_s']} s, {e['requests_per_seek']:.2f} HTTP requests a seek):")
    print(line("seeking -> seeked", e["seeking_to_seeked"], keys))
    print(line("currentTime set -> seeked", e["set_to_seeked"], keys))
    print(line("currentTime set -> playable", e["set_to_playable"], keys))
    print(line("first canplay after src", e["initial_canplay"], keys))
    print(f"Seeks on the review page, a click on the overview ({p['timeouts']} timed out):")
    print(line("click -> all seeked", p["click_to_all_seeked"], keys))
    print(line("click -> all playable", p["click_to_all_playable"], keys))
    if f["problems"]:
        print("Page problems: " + "; ".join(f["problems"]))
    print(f"Holds: load under 1 s {f['holds']['load_under_1s']}, seek under 200 ms {f['holds']['seek_under_200ms']}")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark the live path: N concurrent two-party calls against one real server on loopback.

Usage: scripts/bench_live.py --calls N --topology direct|relay --seconds S
           [--no-p2p] [--source opus|pcm] [--pin] [--quiet-wait SEC --retries K]
The last line printed is JSON with every figure; the table above it is for people. The exit
status is 0 whether or not the run holds (``holds`` in the JSON); 1 only if the harness broke.

Processes
---------
- this process: writes the audio, starts the server, measures it from /proc, prints;
- the server: ``python -m livecoach serve --ice-address 127.0.0.1 [--topology relay]``;
- the *peers* process: every call's coach and client ``SimPeer`` (2N aiortc peers, plus the
  N direct peer-to-peer connections in direct topology), one asyncio loop;
- the *readers* process: every call's coach ``IndicatorReader`` (the coach's websocket),
  kept apart from the peers so that a busy peers loop does not delay the arrival timestamps.

All of them share the machine's cores: the peers process (2N senders to the server, and in
direct topology N peer-to-peer connections, with SRTP and, with ``--source pcm``, an Opus
encoding per frame and connection) competes with the server for CPU. Its CPU is reported
beside the server's, with its own health: frames it released late or lost before sending, and
its event loop's lag (``harness_ok``). ``--pin`` puts the server on CPU 0 and the others on
CPU 1. Other programs on the machine are measured too (``other_busy_cores``); with
``--retries`` a run they disturbed is repeated, after ``--quiet-wait`` for a quiet machine.

Each call plays S seconds of a fixture (tests/fixtures/*, an excerpt per call; fixtures and
start positions rotate over the calls), written once under the work folder. By default
(``--source opus``) the excerpt is an Ogg/Opus file (48 kHz mono, 32 kbit/s, 20 ms packets) and
the peers play its packets without decoding (aiortc's ``MediaPlayer(decode=False)``): the
server receives the same RTP as from a browser, while the peers process no longer encodes every
frame once per connection, which on 2 cores otherwise costs more CPU than the server itself.
``--source pcm`` plays 16 kHz WAV through SimPeer's default path (aiortc encodes). In direct
topology the participants also run their peer-to-peer connection (``--no-p2p`` leaves it out:
it never touches the server, but it costs the peers process CPU on the same cores).

A call's two participants wait on one ``start`` event, as in tests/test_live.py; all calls are
set up first, then their events are set one after the other within a millisecond, and the audio
plays for S seconds in every call at once. The players' file reading starts at setup, so that
its burst is over before the audio starts. The indicator stream is read from before the
participants join until S + tail seconds after the start.

Clocks and the onset latency
----------------------------
Three clocks are involved:

1. *wall time*, ``time.time()``: one clock for all processes on this machine;
2. *file time*: a position in a participant's audio file;
3. *session time*: the server's media time for the session, counted in samples. Its zero is the
   moment the call was opened (the first hello); a participant's first audio frame is placed at
   the session clock of its arrival at the tap, and every later sample by count. So a
   participant's audio sits at ``session = file + offset[participant]``, one constant per
   participant and call, which includes the first frame's transit to the tap.

A message's ``session_time`` is not that clock either: it is the media time up to which the
engine has decided. Before the audio it trails the clock by up to a tick (250 ms), and the
first frame is placed later still, by its transit (~20 ms on loopback).
So ``arrival - (T0 + start - session_time_at_T0)``, with ``session_time_at_T0`` from the
snapshot nearest the start event, comes out 0.1-0.35 s too small, sometimes negative. It is
computed only as a cross-check (``latency_naive_s``).

What is used:

- **played time.** aiortc's player releases the frame (or packet) with timestamp ``t`` at
  wall time ``origin + t``, ``origin`` being fixed when it released the first one (right after
  the start event; an Opus file's first packet has t = -6.5 ms, its pre-skip). The benchmark
  wraps ``simpeer.MutableAudio`` in the peers process to record ``origin`` per participant, and
  how late each later frame was released against ``origin + t`` (``sender_late``: the peers'
  own lateness). A sound at file time ``f`` is played at wall time ``origin + f``. (A browser
  sends a 20 ms frame when it has been captured, i.e. up to 20 ms after the sound; the player
  releases it at its start. Real calls add that packetization, 10 ms on average.)
- **onsets.** The same two files are analysed offline with ``analyze_tracks``; each
  participant's segment starts ``f_j`` (file time) are the onsets (those in
  [0.1 s, S - 0.3 s]).
- **matching.** The live ``speech``/``start`` messages carry ``start`` in session time. The
  constant ``offset`` is found per participant as the shift that lines up the most live starts
  with offline starts (within 0.15 s), refined to the median of the matched differences, and
  searched only in [origin - opened - 0.05 s, origin - opened + 1.5 s] (file time 0 cannot
  reach the server before it is played). Each live start is matched to the nearest offline
  start within 0.3 s. The offset only decides the matching; it does not enter the latency.
- **latency** = wall time the coach's websocket received the message (in the readers process)
  - (origin + f_j). It contains the sending, the network stack, the server's receive, aiortc's
  receiver (no jitter buffer: live/decoding.py passes each packet on), decoding, the tap's 40 ms batches, the detector's
  80 ms confirmation, the decision waiting for the other participant's audio, the indicator
  hub and the websocket. ``latency_live_start`` is the same with the live segment's own start
  mapped to file time (``start - offset``) in place of ``f_j``; the two differ only by where the
  live and the offline detectors put the onset.

Checks that the method is right: every latency must be positive and at least the 80 ms
confirmation (a run with one below is flagged); ``transit_first_frame`` =
offset - (origin - opened) + 20 ms, the time from the first frame's release to its arrival at
the server's tap, must be small and positive (``opened``, the wall time of session time 0, is
estimated from the snapshots before the audio as min(arrival - session_time)).

Other figures
-------------
- CPU: utime + stime from /proc/<pid>/stat (all threads) over the S seconds the audio plays in
  every call, divided by that wall time (1.0 = one core), for the server (its front process
  and its call workers together), the peers and the readers, and the whole machine from
  /proc/stat. Per call = the server's share / N.
- Memory: the server's VmHWM (peak RSS) and VmRSS at the end of the audio, and after the calls
  closed, summed over the front and the workers.
- Dropped audio: ``audio.<role>.dropped_s`` in the last snapshot received before the tail ends;
  ``received_s`` against the audio sent (about S; the last ~120 ms stay in aiortc's jitter
  buffer and the tap's batch until the track ends, so ``sent - received`` is ~0.12 s when
  nothing is lost; a run holds with a shortfall up to 0.2 s). Audio lost before the tap, e.g. UDP buffers overflowing while the
  server is busy, shows as received_s < S, not as dropped_s; /proc/net/snmp's UDP
  RcvbufErrors are reported for the run too).
- Real time: a snapshot's lag = how far the media time decided is behind the sound being
  played, max over the two participants of (arrival - origin) - (session_time - offset), file
  time against file time. Reported at the end of the audio and as the maximum over the audio
  (after its first second). It includes the ~90 ms transit. (The plain session clock,
  (arrival - opened) - session_time, is not used: the engine's media time runs *ahead* of it
  by as much as a participant's first frame was delayed, because each track is anchored at the
  arrival of its first frame.)
- Alignment: ``alignment_error`` = the client's first-frame transit minus the coach's, i.e. how
  far the client's track is misplaced against the coach's on the session clock.

A run *holds* when every call came up in the requested topology, no audio was dropped,
sent - received_s <= 0.2 s for every participant, the maximum lag stayed <= 1 s, and the onset
latency p95 <= 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from hard_audio import HARD_NOISES, make_hard, write_opus  # noqa: E402  (the test suite's, shared)

FIXTURES = ROOT / "tests" / "fixtures"
FIXTURE_ORDER = ["realcall", "bleed", "quiet", "fan", "keyboard", "clean"]
OFFSETS = [0.0, 28.0, 56.0]
SAMPLE_RATE = 16_000
MARK = "@@"  # children's protocol lines on stdout start with this
LATENCY_TARGET = 0.25
LAG_LIMIT = 1.0
RECEIVED_TOLERANCE = 0.2
"""received_s may fall short of what was sent by this much: at the end of a stream the tap's
40 ms batch (and the resampler's delay) still hold the last audio, which reaches the engine only
when the track ends."""


# ---------------------------------------------------------------------------------------------
# audio and offline onsets (main process, before the server starts)


def prepare_audio(calls: int, seconds: float, folder: Path, source: str, hard: bool = False) -> list[dict]:
    """One excerpt pair per call (fixtures and offsets rotate), the files cached. The offline
    analysis reads the very files the peers play."""
    from livecoach.analyze import analyze_tracks
    from livecoach.ingest import read_mono, write_wav
    from livecoach.scoring import silences

    folder.mkdir(parents=True, exist_ok=True)
    decoded: dict[tuple[str, str], np.ndarray] = {}
    out = []
    for i in range(calls):
        # a hard call starts from the clean fixture, so that what it adds is all its trouble
        name = "clean" if hard else FIXTURE_ORDER[i % len(FIXTURE_ORDER)]
        duration = json.loads((FIXTURES / name / "truth.json").read_text())["duration"]
        offset = OFFSETS[(i // (len(HARD_NOISES) if hard else len(FIXTURE_ORDER))) % len(OFFSETS)]
        offset = max(0.0, min(offset, duration - seconds - 0.05))
        stem = f"{name}-{offset:g}-{seconds:g}-{source}" + (f"-hard{i % len(HARD_NOISES)}" if hard else "")
        paths = {who: folder / f"{stem}-{who}.{'opus' if source == 'opus' else 'wav'}" for who in ("coach", "client")}
        if not all(path.exists() for path in paths.values()):
            excerpts = {}
            for who in ("coach", "client"):
                if (name, who) not in decoded:
                    decoded[(name, who)] = np.concatenate(list(read_mono(FIXTURES / name / f"{who}.opus")))
                excerpts[who] = decoded[(name, who)][int(offset * SAMPLE_RATE): int((offset + seconds) * SAMPLE_RATE)]
            if hard:
                excerpts["coach"], excerpts["client"] = make_hard(excerpts["coach"], excerpts["client"], i)
            for who, path in paths.items():
                tmp = path.with_name("tmp-" + path.name)
                (write_opus if source == "opus" else write_wav)(tmp, excerpts[who])
                tmp.rename(path)
        files = {who: str(path) for who, path in paths.items()}
        # analysed afresh each run (a second or two): a cached result would outlive a change of the engine
        result = analyze_tracks(files["coach"], files["client"])
        spans = [(s.start, s.end) for segs in result.timeline.segments.values() for s in segs]
        offline = {
            "segments": {role: [[round(s.start, 3), round(s.end, 3)] for s in segs]
                         for role, segs in result.timeline.segments.items()},
            "talk_share_coach": result.metrics.talk_share_coach,
            "long_silences": [[round(a, 3), round(b, 3)] for a, b in silences(spans, result.duration)
                              if b - a >= 2.0 and a > 0 and b < result.duration],
        }
        out.append({"index": i, "fixture": name, "offset": offset, "files": files, "segments": offline["segments"],
                    "offline": offline, "noise": HARD_NOISES[i % len(HARD_NOISES)] if hard else None})
    return out


# ---------------------------------------------------------------------------------------------
# /proc


CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int, tid: int | None = None) -> list[str] | None:
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        return Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cpu_seconds(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def children_of() -> dict[int, list[int]]:
    """Every process's children, from one pass over /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def process_tree(pid: int, children: dict[int, list[int]] | None = None) -> list[int]:
    """A process and its descendants: the server is a front process and its call workers."""
    children = children_of() if children is None else children
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def proc_cpu(pid: int, children: dict[int, list[int]] | None = None) -> float | None:
    """CPU seconds (user + system, all threads) of a process and its children so far."""
    total = None
    for p in process_tree(pid, children):
        fields = _stat(p)
        if fields is not None:
            total = (total or 0.0) + _cpu_seconds(fields)
    return total


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of a process tree's threads by process and thread name: 'front main' is the
    server's main thread, 'workers main' the call workers' main threads summed, and so on."""
    out: dict[str, float] = {}
    for p in process_tree(pid):
        who = "front" if p == pid else "workers"
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            fields = _stat(p, int(tid))
            if fields is None:
                continue
            try:
                comm = Path(f"/proc/{p}/task/{tid}/comm").read_text().strip()
            except OSError:
                continue
            name = "main" if tid == str(p) else comm
            if name == "python":
                name = "other threads"  # Python does not name OS threads: aiortc decoders, executors
            key = f"{who} {name}"
            out[key] = out.get(key, 0.0) + _cpu_seconds(fields)
    return out


def proc_mem(pid: int, children: dict[int, list[int]] | None = None) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) in MiB, summed over the process and its children."""
    out: dict[str, float] = {}
    for p in process_tree(pid, children):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    out[key] = out.get(key, 0.0) + int(value.split()[0]) / 1024
        except OSError:
            pass
    return out


def system_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return total - idle, total


def udp_counters() -> dict[str, int]:
    lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines() if ln.startswith("Udp:")]
    return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:])}


def machine_busy(seconds: float = 1.0) -> float:
    """Cores the whole machine kept busy over the next ``seconds``."""
    b0, t0 = system_cpu()
    time.sleep(seconds)
    b1, t1 = system_cpu()
    return (b1 - b0) / max(1, t1 - t0) * (os.cpu_count() or 1)


def wait_quiet(limit: float, max_wait: float) -> tuple[float, float]:
    """Wait (at most ``max_wait`` s) for 3 s in a row with the machine under ``limit`` busy
    cores: other work on a shared machine competes with the server. Returns (load, waited)."""
    t = time.time()
    quiet = 0
    load = machine_busy()
    while time.time() - t < max_wait:
        quiet = quiet + 1 if load < limit else 0
        if quiet >= 3:
            break
        load = machine_busy()
    return load, time.time() - t


class Sampler(threading.Thread):
    """Samples the CPU of the processes every half second, to find the busiest second."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float | None]]] = []
        self.stop_flag = threading.Event()

    def take(self) -> tuple[float, dict[str, float | None]]:
        busy, total = system_cpu()
        children = children_of()  # one pass over /proc for every figure of this sample
        values: dict[str, float | None] = {name: proc_cpu(pid, children) for name, pid in self.pids.items()}
        nodes = [v for name, v in values.items() if name.startswith("node:")]
        if nodes:  # several servers (scripts/bench_cluster.py): "server" is all of them together
            values["server"] = None if None in nodes else sum(nodes)
        values["_sys_busy"], values["_sys_total"] = busy, total
        values["_server_rss"] = sum(proc_mem(pid, children).get("VmRSS") or 0.0 for name, pid in self.pids.items()
                                    if name == "server" or name.startswith("node:"))
        return time.time(), values

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.samples.append(self.take())
            self.stop_flag.wait(self.interval)

    def rss_growth(self, t0: float, t1: float) -> float | None:
        """The server's RSS growth during [t0, t1], MiB per minute (least squares)."""
        pts = [(t, v["_server_rss"]) for t, v in self.samples if t0 <= t <= t1 and v.get("_server_rss") is not None]
        if len(pts) < 4:
            return None
        t, m = np.array(pts).T
        return float(np.polyfit(t - t[0], m, 1)[0] * 60)

    def peak_share(self, name: str, t0: float, t1: float, width: float = 1.0) -> float | None:
        pts = [(t, v[name]) for t, v in self.samples if t0 <= t <= t1 and v.get(name) is not None]
        best = None
        for i, (ta, ca) in enumerate(pts):
            for tb, cb in pts[i + 1:]:
                if tb - ta >= width:
                    share = (cb - ca) / (tb - ta)
                    best = share if best is None else max(best, share)
                    break
        return best


# ---------------------------------------------------------------------------------------------
# the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, data: bytes | None = None, cookie: str = "") -> dict:
    headers = {"Content-Type": "application/json"} | ({"Cookie": cookie} if cookie else {})
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET", headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


BENCH_COACH = ("bench@example.com", "the benchmark's coach")


def add_bench_coach(data: Path) -> None:
    """The coach who creates the benchmark's sessions (only a logged-in coach may)."""
    from livecoach import accounts
    from livecoach.store import Store

    data.mkdir(parents=True, exist_ok=True)
    store = Store(data / "livecoach.sqlite3")
    try:
        accounts.add_coach(store, BENCH_COACH[0], "Bench", BENCH_COACH[1])
    finally:
        store.close()


def login(url: str, coach: tuple[str, str] = BENCH_COACH) -> str:
    """The coach's login cookie (by default the bench coach's), as a ``Cookie`` header value."""
    body = json.dumps({"email": coach[0], "password": coach[1]}).encode()
    req = urllib.request.Request(url + "/api/login", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers["Set-Cookie"].split(";", 1)[0]


def folder_bytes(folder: Path) -> int:
    """Bytes of the files below a folder (the recordings a run wrote)."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0


def pinned(cpu: int | None) -> list[str]:
    """A command prefix that keeps a process (and its threads) on one CPU."""
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


def start_server(run_dir: Path, topology: str, cpu: int | None, workers: str | None,
                 recording: bool = True, packet_ms: int | None = None) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = run_dir / "server.log"
    add_bench_coach(run_dir / "data")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*pinned(cpu), sys.executable, "-m", "livecoach", "serve", "--port", str(port),
             "--data", str(run_dir / "data"), "--ice-address", "127.0.0.1", "--topology", topology]
            + ([] if workers is None else ["--workers", workers]) + ([] if recording else ["--no-recording"])
            + ([] if packet_ms is None else ["--tap-packet-ms", str(packet_ms)]),
            stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT),
        )
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()}")
        try:
            http_json(url + "/healthz")
            return proc, url, log
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the server did not start: {log.read_text()}")


@dataclass
class Servers:
    """What a run measures: the one server ``start_server`` starts, or (scripts/bench_cluster.py)
    a cluster's nodes behind its proxy."""

    url: str
    """Where the coach logs in and makes sessions (each session's links say where its calls go)."""
    pids: dict[str, int]
    """``{"server": pid}``, or ``{"node:NAME": pid, ...}``: each with its worker processes."""
    logs: list[Path]
    health_urls: list[str]
    services: tuple[str, ...] = ()
    """Names in ``pids`` that are not livecoach but serve it (a database, a proxy): measured beside it."""
    coach: tuple[str, str] = BENCH_COACH
    """Who logs in to make the sessions (email, password)."""
    recordings: Path | None = None
    """A recordings folder whose size is reported (None: the recordings are elsewhere)."""
    session_urls: tuple[str, ...] = ()
    """Servers that do not share a database (scripts/bench_cluster.py's standalone servers): the
    sessions are made on each in turn, each call going to its own. Empty: all on ``url``."""
    stop: Callable[[], None] = field(default=lambda: None)

    def rss(self) -> dict[str, float]:
        """VmRSS and VmHWM over all the servers' processes, MiB."""
        total: dict[str, float] = {}
        for pid in self.pids.values():
            for key, value in proc_mem(pid).items():
                total[key] = total.get(key, 0.0) + value
        return total


def one_server(run_dir: Path, args: argparse.Namespace, cpu: int | None) -> Servers:
    proc, url, log = start_server(run_dir, args.topology, cpu, args.workers, args.recording, args.tap_packet_ms)
    return Servers(url, {"server": proc.pid}, [log], [url + "/healthz"], recordings=run_dir / "data" / "recordings",
                   stop=lambda: stop_process(proc))


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------
# child processes


class LoopLag:
    """How late the event loop wakes a 50 ms sleep: a busy process shows here."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        async def run() -> None:
            while True:
                t = time.perf_counter()
                await asyncio.sleep(0.05)
                self.lags.append(time.perf_counter() - t - 0.05)

        self.task = asyncio.get_running_loop().create_task(run())

    def summary(self) -> dict:
        if self.task is not None:
            self.task.cancel()
        return pct_summary(self.lags)


def pct_summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    a = np.asarray(values)
    return {"n": int(a.size), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max()), "min": float(a.min())}


def compact(msg: dict) -> dict:
    if msg.get("type") != "snapshot":
        return msg
    out = {k: msg[k] for k in ("type", "seq", "session_time", "speaking", "participants", "topology", "audio") if k in msg}
    if "metrics" in msg:
        out["metrics"] = {"talk_share_coach": msg["metrics"].get("talk_share_coach")}
    return out


async def delaying_proxy(target_url: str, delay_s: float) -> str:
    """A TCP relay on loopback to the server that holds every chunk ``delay_s`` in each direction
    (in order), as a network with a round trip of twice that would: the coach windows' path to
    the server over a real network. Returns the base URL to use instead of ``target_url``."""
    host, port = target_url.removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held: asyncio.Queue = asyncio.Queue()

        async def release() -> None:
            while (item := await held.get()) is not None:
                at, data = item
                await asyncio.sleep(max(0.0, at - loop.time()))
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = loop.create_task(release())
        try:
            while data := await reader.read(65536):
                held.put_nowait((loop.time() + delay_s, data))
        except ConnectionError:
            pass
        held.put_nowait(None)
        await sender

    async def connected(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pump(client_r, server_w), pump(server_r, client_w), return_exceptions=True)

    proxy = await asyncio.start_server(connected, "127.0.0.1", 0)
    return f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}"


async def readers_main(cfg: dict, out_path: Path) -> None:
    from livecoach.live.simpeer import IndicatorReader

    lag = LoopLag()
    lag.start()
    url = cfg["url"]
    if cfg.get("reader_delay_ms"):
        url = await delaying_proxy(url, cfg["reader_delay_ms"] / 1000)
    if cfg.get("reader_delay_ms"):
        readers = [IndicatorReader(url, c["session"], c["coach_token"]) for c in cfg["calls"]]
    else:  # each session's own address (on a cluster: its node's)
        readers = [IndicatorReader(c.get("url", url), c["session"], c["coach_token"]) for c in cfg["calls"]]
    await asyncio.gather(*(r.open() for r in readers))
    print(MARK, "READY", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # STOP
    await asyncio.gather(*(r.close() for r in readers), return_exceptions=True)
    result = {
        "loop_lag": lag.summary(),
        "calls": [[(t, compact(m)) for t, m in r.messages] for r in readers],
    }
    out_path.write_text(json.dumps(result))
    print(MARK, "DONE", flush=True)


async def peers_main(cfg: dict, out_path: Path) -> None:
    from livecoach.live import simpeer
    from livecoach.live.ice import restrict_host_addresses
    from livecoach.live.simpeer import Jitter, SimPeer

    restrict_host_addresses(["127.0.0.1"])

    class TimedMic(simpeer.MutableAudio):
        """Records when the player released its first frame, and how late each later one was."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.origin: float | None = None
            self.late: list[float] = []
            self.frames = 0
            # start the player's reading thread now, not at the start event: reading a file
            # without decoding queues all of its packets at once (aiortc does not throttle
            # that), a burst of callbacks that would otherwise hit this loop just as the
            # audio starts. The pacing is unaffected: it starts at the first frame taken.
            player = getattr(self.source, "_player", None)
            if player is not None:
                player._start(self.source)

        async def recv(self):
            frame = await super().recv()
            now = time.time()
            t = float(frame.pts * frame.time_base) if frame.pts is not None else self.frames * 0.02
            self.frames += 1
            if self.origin is None:
                self.origin = now - t
            else:
                self.late.append(now - (self.origin + t))
            return frame

    simpeer.MutableAudio = TimedMic  # SimPeer.join() builds its microphone from this name
    # --source opus: play the Opus packets as they are (SimPeer's ``packets``): the server receives
    # the same RTP as from a browser, and the peers process is spared decoding the file and
    # encoding every frame once per connection
    packets = cfg["source"] == "opus"
    if not cfg["p2p"]:

        async def no_peer_offer(self) -> None:  # the peer-to-peer media never touches the server
            return None

        SimPeer._offer_peer = no_peer_offer

    lag = LoopLag()
    lag.start()
    url, topology, seconds, tail = cfg["url"], cfg["topology"], cfg["seconds"], cfg["tail"]
    sem = asyncio.Semaphore(cfg["setup_concurrency"])
    calls: list[dict] = []

    async def setup(c: dict) -> dict:
        start = asyncio.Event()
        entry = {"index": c["index"], "start": start, "peers": {}, "error": None}
        async with sem:
            t = time.time()
            try:
                jitter = {who: Jitter(cfg["jitter_ms"], seed=2 * c["index"] + n) if cfg.get("jitter_ms") else None
                          for n, who in enumerate(("coach", "client"))}
                coach = SimPeer(c.get("url", url), c["session"], c["coach_token"], c["files"]["coach"], start=start,
                                packets=packets, jitter=jitter["coach"])
                client = SimPeer(c.get("url", url), c["session"], c["client_token"], c["files"]["client"], start=start,
                                 packets=packets, jitter=jitter["client"])
                entry["peers"] = {"coach": coach, "client": client}
                await asyncio.gather(coach.join(), client.join())
                await asyncio.gather(coach.server_connected(30), client.server_connected(30))
                if topology == "direct" and cfg["p2p"]:
                    await asyncio.wait_for(asyncio.gather(coach.peer_connected.wait(), client.peer_connected.wait()), 30)
            except Exception as err:  # noqa: BLE001 - a call that does not come up is reported, not fatal
                entry["error"] = f"{type(err).__name__}: {err}"
            entry["setup_s"] = time.time() - t
        return entry

    t_setup = time.time()
    calls = await asyncio.gather(*(setup(c) for c in cfg["calls"]))
    setup_s = time.time() - t_setup
    print(MARK, "SETUP_DONE", sum(1 for c in calls if c["error"] is None), f"{setup_s:.2f}", flush=True)
    await asyncio.sleep(1.0)  # let the handshakes' work settle before the measured stretch

    t_start = time.time()
    print(MARK, "AUDIO_START", f"{t_start:.6f}", flush=True)
    for c in calls:
        c["t0"] = time.time()
        c["start"].set()
    await asyncio.sleep(seconds - (time.time() - t_start))
    print(MARK, "AUDIO_END", f"{time.time():.6f}", flush=True)
    await asyncio.sleep(tail)
    print(MARK, "TAIL_END", f"{time.time():.6f}", flush=True)

    async def packets_sent(pc) -> int | None:
        if pc is None:
            return None
        total = 0
        for sender in pc.getSenders():
            if sender.kind != "audio":
                continue
            for stats in (await sender.getStats()).values():
                if getattr(stats, "type", None) == "outbound-rtp":
                    total += stats.packetsSent
        return total

    sent_to_server = {}
    for c in calls:
        for role, p in c["peers"].items():
            try:
                sent_to_server[(c["index"], role)] = (await packets_sent(p.server_pc)
                                                      + getattr(p.server_audio, "joined", 0))  # in frames
            except Exception:  # noqa: BLE001 - a figure we can do without
                sent_to_server[(c["index"], role)] = None

    result_calls = []
    for c in calls:
        info = {"index": c["index"], "t0": c["t0"], "error": c["error"], "setup_s": c["setup_s"], "peers": {}}
        for role, p in c["peers"].items():
            mic = p._mic
            info["peers"][role] = {
                "origin": getattr(mic, "origin", None),
                "frames_sent": getattr(mic, "frames", 0),
                "packets_to_server": sent_to_server.get((c["index"], role)),
                "late": pct_summary(getattr(mic, "late", [])),
                "topology": p.topology,
                "peer_connected": p.peer_connected.is_set(),
                "received_frames": p.received_frames,
                "errors": p.errors,
                "server_pc": p.server_pc.connectionState if p.server_pc is not None else None,
            }
        result_calls.append(info)
    all_late = [x for c in calls for p in c["peers"].values() for x in getattr(p._mic, "late", [])]
    closing = [p.close() for c in calls for p in c["peers"].values()]
    try:
        await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 30)
    except TimeoutError:
        pass
    out_path.write_text(json.dumps({"setup_s": setup_s, "loop_lag": lag.summary(),
                                    "sender_late": pct_summary(all_late), "calls": result_calls}))
    print(MARK, "DONE", flush=True)


def child_main(role: str, cfg_path: Path, out_path: Path) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    cfg = json.loads(cfg_path.read_text())
    main = readers_main if role == "readers" else peers_main
    try:
        asyncio.run(main(cfg, out_path))
    except Exception:  # noqa: BLE001 - tell the parent, with the traceback in the log
        traceback.print_exc()
        print(MARK, "FAILED", flush=True)
        sys.exit(1)


def spawn(role: str, cfg_path: Path, run_dir: Path, cpu: int | None) -> subprocess.Popen:
    with open(run_dir / f"{role}.log", "w") as err:
        return subprocess.Popen(
            [*pinned(cpu), sys.executable, str(Path(__file__).resolve()), "--child", role,
             "--config", str(cfg_path), "--out", str(run_dir / f"{role}.json")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, cwd=str(ROOT),
        )


def read_mark(proc: subprocess.Popen, deadline: float) -> list[str]:
    """The next protocol line of a child (other output is ignored)."""
    while True:
        if time.time() > deadline:
            raise TimeoutError("a child process took too long")
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"child exited (code {proc.poll()}) before finishing")
        if line.startswith(MARK):
            return line.split()[1:]


# ---------------------------------------------------------------------------------------------
# analysis of one call


def estimate_offset(live: list[float], offline: list[float], lo: float, hi: float) -> tuple[float | None, int]:
    """The shift (session time - file time) in [lo, hi] lining up the most live starts with
    offline ones."""
    if not live or not offline:
        return None, 0
    best: tuple[int, float, float] | None = None  # (matches, -spread, offset)
    for a in live:
        for b in offline:
            d = a - b
            if not lo <= d <= hi:
                continue
            diffs = [x - min(offline, key=lambda y: abs(x - d - y)) for x in live]
            close = [m for m in diffs if abs(m - d) <= 0.15]
            refined = statistics.median(close)
            spread = sum(abs(m - refined) for m in close) / len(close)
            key = (len(close), -spread, refined)
            if best is None or key[:2] > best[:2]:
                best = key
    return (None, 0) if best is None else (best[2], best[0])


def scoring_silences(spans, duration):
    from livecoach.scoring import silences

    return silences(spans, duration)


def analyse_call(spec: dict, peers: dict, msgs: list, seconds: float, tail: float) -> dict:
    t0 = peers["t0"]
    t_end_audio = t0 + seconds
    t_end = t0 + seconds + tail
    snaps = [(t, m) for t, m in msgs if m["type"] == "snapshot"]
    pre = [t - m["session_time"] for t, m in snaps if t < t0]
    opened = min(pre) if pre else (min(t - m["session_time"] for t, m in snaps) if snaps else None)
    out: dict = {"index": spec["index"], "fixture": spec["fixture"], "offset": spec["offset"],
                 "setup_s": round(peers["setup_s"], 2), "error": peers["error"]}
    during = [(t, m) for t, m in snaps if t0 + 1.0 <= t <= t_end_audio]
    last = [m for t, m in snaps if t <= t_end]
    last = last[-1] if last else None
    out["topology"] = last.get("topology") if last else None
    out["audio"] = last.get("audio") if last else None
    # audio dropped in the first 2 s: a participant's first frame is anchored one frame before
    # the clock, which tick() or the other participant may already have filled as absence
    early = [m for t, m in snaps if t <= t0 + 2.0]
    out["dropped_at_start_s"] = ({r: a["dropped_s"] for r, a in early[-1].get("audio", {}).items()}
                                 if early else {})
    out["participants"] = last.get("participants") if last else None
    out["session_time_end"] = last["session_time"] if last else None
    out["wall_since_open_end"] = round(t_end - opened, 3) if opened is not None else None
    seqs = sorted(m["seq"] for t, m in msgs if "seq" in m and t <= t_end)
    out["seq_gaps"] = int(sum(b - a - 1 for a, b in itertools.pairwise(seqs) if b > a + 1))
    out["peer_media_frames"] = {r: p["received_frames"] for r, p in peers["peers"].items()}
    out["sender_topology"] = {r: p["topology"] for r, p in peers["peers"].items()}
    out["sent_s"] = {r: round(p["frames_sent"] * 0.02, 3) for r, p in peers["peers"].items()}
    # frames the player released but the peer never sent to the server (its sender fell behind:
    # SimPeer's unbuffered MediaRelay keeps only the newest frame): a loss of the harness
    out["lost_at_sender_s"] = {r: round((p["frames_sent"] - p["packets_to_server"]) * 0.02, 3)
                               for r, p in peers["peers"].items() if p.get("packets_to_server") is not None}

    lat, lat_live, unmatched, onsets, missed, transit, detect, naive = [], [], 0, 0, 0, {}, [], []
    before = [m["session_time"] for t, m in snaps if t <= t0]
    session_at_t0 = before[-1] if before else None
    offsets = {}
    for role in ("coach", "client"):
        origin = peers["peers"].get(role, {}).get("origin")
        offline = [s for s, e in spec["segments"][role] if 0.1 <= s <= seconds - 0.3]
        starts = [(t, m) for t, m in msgs if m["type"] == "speech" and m["state"] == "start"
                  and m["participant"] == role and t0 <= t <= t_end]
        onsets += len(offline)
        # the clocks bound the offset: file time 0 reaches the server after the first frame's release
        # at ``origin``, never before it and, unless the server is swamped, within ~1.5 s
        expected = origin - opened if origin is not None and opened is not None else None
        offset, matched_n = (None, 0) if expected is None else estimate_offset(
            [m["start"] for _, m in starts], offline, expected - 0.05, expected + 1.5)
        offsets[role] = offset
        if origin is None or offset is None:
            missed += len(offline)
            unmatched += len(starts)
            continue
        if opened is not None and matched_n >= 3:  # fewer onsets pin the offset down too loosely
            transit[role] = round(offset - (origin - opened) + 0.02, 3)
        hit = set()
        for t, m in starts:
            f_live = m["start"] - offset
            j = min(range(len(offline)), key=lambda k: abs(offline[k] - f_live))
            if abs(offline[j] - f_live) > 0.3 or j in hit:
                unmatched += 1
                continue
            hit.add(j)
            lat.append(t - (origin + offline[j]))
            lat_live.append(t - (origin + f_live))
            detect.append(m["session_time"] - m["start"])
            if session_at_t0 is not None:
                naive.append(t - (t0 + m["start"] - session_at_t0))
        missed += len(offline) - len(hit)
    out["offsets"] = offsets
    out["transit_first_frame_s"] = transit
    if len(transit) == 2:
        # the two tracks are aligned by their first frames' arrival: a difference in those
        # transits misplaces the client against the coach on the session clock by this much
        out["alignment_error_s"] = round(transit["client"] - transit["coach"], 3)

    # how far the decided media time is behind the sound being played, per participant:
    # (t - origin) is the file time playing at wall time t, (session_time - offset) the file
    # time decided. Independent of where the first frame was anchored. Without an offset (no
    # onset matched), the session clock stands in: (t - opened) - session_time.
    origins = {r: p.get("origin") for r, p in peers["peers"].items()}
    lags = []
    for t, m in during:
        per = [(t - origins[r]) - (m["session_time"] - offsets[r]) for r in ("coach", "client")
               if offsets.get(r) is not None and origins.get(r) is not None]
        if per:
            lags.append(max(per))
        elif opened is not None:
            lags.append(t - opened - m["session_time"])
    out["lag_max_s"] = round(max(lags), 3) if lags else None
    out["lag_end_s"] = round(lags[-1], 3) if lags else None
    # live = offline: the final talk share, and the long silences with each participant's live
    # segments put back on file time by their own offset
    offline_fig = spec["offline"]
    out["noise"] = spec.get("noise")
    share_live = (last or {}).get("metrics", {}).get("talk_share_coach")
    share_off = offline_fig["talk_share_coach"]
    out["share_live"], out["share_offline"] = share_live, share_off
    out["share_diff_pp"] = (round(100 * (share_live - share_off), 2)
                            if share_live is not None and share_off is not None else None)
    if all(offsets.get(r) is not None for r in ("coach", "client")):
        spans = [(m["start"] - offsets[m["participant"]], m["end"] - offsets[m["participant"]])
                 for t, m in msgs if m["type"] == "speech" and m["state"] == "end" and t <= t_end]
        live_long = [(a, b) for a, b in scoring_silences(spans, seconds) if b - a >= 2.0 and a > 0 and b < seconds]
        errors = []
        for a, b in offline_fig["long_silences"]:
            near = [(x, y) for x, y in live_long if min(y, b) - max(x, a) > 0]
            errors.append(max(abs(near[0][0] - a), abs(near[0][1] - b)) if len(near) == 1 else None)
        out["long_silences_offline"] = len(offline_fig["long_silences"])
        out["long_silences_live"] = len(live_long)
        out["long_silence_errors_s"] = [None if e is None else round(e, 3) for e in errors]
    out["onsets"] = onsets
    out["matched"] = len(lat)
    out["missed_onsets"] = missed
    out["unmatched_live_starts"] = unmatched
    out["latencies"] = lat
    out["latencies_live_start"] = lat_live
    out["detect_media_s"] = detect
    out["latencies_naive"] = naive
    out["latency_p50"] = float(np.percentile(lat, 50)) if lat else None
    out["latency_p95"] = float(np.percentile(lat, 95)) if lat else None
    out["sender_late_p95"] = max((p["late"].get("p95", 0) for p in peers["peers"].values()), default=None)
    out["sender_late_max_s"] = {role: p["late"].get("max") for role, p in peers["peers"].items()}
    return out


def call_problems(c: dict, topology: str, seconds: float, p2p: bool) -> list[str]:
    from livecoach.live.session import STALL_SECONDS

    problems = []
    if c["error"]:
        problems.append("setup: " + c["error"])
    if c["topology"] != topology:
        problems.append(f"topology {c['topology']}")
    for role in ("coach", "client"):
        a = (c["audio"] or {}).get(role)
        if a is None:
            problems.append(f"{role}: no audio figures")
            continue
        if a["dropped_s"] > 0:
            at_start = c["dropped_at_start_s"].get(role, 0.0)
            where = " (all in the first 2 s)" if at_start == a["dropped_s"] else f" ({at_start} s in the first 2 s)"
            late = c.get("sender_late_max_s", {}).get(role) or 0.0
            if late > STALL_SECONDS:
                # The server drops audio that comes more than its stall limit after the other
                # participant's (issue 10: a stalled participant holds the other up 0.1 s at
                # most): a simulated participant sent that late, so the harness, not the server.
                problems.append(f"harness: {role} dropped {a['dropped_s']} s{where}, its sender up to "
                                f"{late * 1000:.0f} ms late (the server's stall limit: {STALL_SECONDS * 1000:.0f} ms)")
            else:
                problems.append(f"{role} dropped {a['dropped_s']} s{where}")
        lost = c["lost_at_sender_s"].get(role, 0.0)
        if lost > 0.1:
            problems.append(f"harness: {role}'s peer lost {lost} s before sending")
        to_server = c["sent_s"].get(role, seconds) - lost
        if to_server - a["received_s"] > RECEIVED_TOLERANCE:
            problems.append(f"{role} received {a['received_s']} s of {to_server:.2f} sent")
    if c["lag_max_s"] is None or c["lag_max_s"] > LAG_LIMIT:
        problems.append(f"lag {c['lag_max_s']} s")
    if (p2p or topology == "relay") and min(c["peer_media_frames"].values(), default=0) < 0.9 * seconds / 0.02:
        problems.append(f"media between participants {c['peer_media_frames']}")
    return problems


# ---------------------------------------------------------------------------------------------
# main


def fmt(x, digits=2, unit="") -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f}{unit}"


def ms(x) -> str:
    return "-" if x is None else f"{x * 1000:.0f}"


def source_version() -> dict:
    """The commit the server ran, and whether src/ had changes not committed (read-only git)."""
    out: dict = {}
    try:
        out["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, check=False,
                                       text=True, timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, check=False,
                               text=True, timeout=10).stdout.strip()
        out["src_changed"] = bool(dirty)
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def session_base(coach_url: str, url: str) -> str:
    """The address a session's calls and windows use: its coach link up to ``/s/`` (on a cluster,
    with the owning node's prefix; a link behind the proxy is a path on ``url``)."""
    base = coach_url.split("/s/", 1)[0]
    return url + base if base.startswith("/") or not base else base


def run(args: argparse.Namespace, servers: Servers | None = None) -> dict:
    """One run against ``servers``, or (None) a server of its own."""
    work = Path(args.workdir)
    run_dir = work / f"run-{args.topology}-{args.calls}-{time.strftime('%H%M%S')}-{os.getpid()}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    specs = prepare_audio(args.calls, args.seconds, work / "audio", args.source, args.hard)

    background, waited = wait_quiet(args.quiet_limit, args.quiet_wait)
    server_cpu = 0 if args.pin else None
    child_cpu = 1 if args.pin else None
    if servers is None:
        servers = one_server(run_dir, args, server_cpu)
    url = servers.url
    main_pid = next(iter(servers.pids.values()))  # its threads are reported
    procs: list[subprocess.Popen] = []
    try:
        time.sleep(1.0)
        mem_idle = servers.rss()
        sessions = []
        bases = servers.session_urls or (url,)
        cookies = {base: login(base, servers.coach) for base in bases}
        for n, spec in enumerate(specs):
            base = bases[n % len(bases)]
            s = http_json(base + "/api/sessions", b"{}", cookies[base])
            sessions.append({**spec, "session": s["session"], "url": session_base(s["coach_url"], base),
                             "coach_token": s["coach_url"].split("#", 1)[1],
                             "client_token": s["client_url"].split("#", 1)[1]})
        cfg = {"url": url, "topology": args.topology, "seconds": args.seconds, "tail": args.tail,
               "source": args.source, "p2p": args.p2p, "jitter_ms": args.jitter, "reader_delay_ms": args.reader_delay,
               "setup_concurrency": args.setup_concurrency, "calls": sessions}
        cfg_path = run_dir / "config.json"
        cfg_path.write_text(json.dumps(cfg))

        deadline = time.time() + 60 + 3 * args.calls + args.seconds + args.tail
        readers = spawn("readers", cfg_path, run_dir, child_cpu)
        procs.append(readers)
        if read_mark(readers, deadline)[0] != "READY":
            raise RuntimeError("the readers did not start")
        peers = spawn("peers", cfg_path, run_dir, child_cpu)
        procs.append(peers)
        pids = {**servers.pids, "peers": peers.pid, "readers": readers.pid}
        sampler = Sampler(pids)
        sampler.start()

        marks: dict[str, tuple[float, dict]] = {}
        udp0 = udp1 = None
        while True:
            mark = read_mark(peers, deadline)
            if mark[0] == "FAILED":
                raise RuntimeError(f"the peers process failed: {(run_dir / 'peers.log').read_text()[-3000:]}")
            now = sampler.take()
            marks[mark[0]] = now
            if mark[0] == "SETUP_DONE":
                setup_ok = int(mark[1])
            if mark[0] == "AUDIO_START":
                udp0 = udp_counters()
                threads0 = thread_cpu(main_pid)
            if mark[0] == "AUDIO_END":
                udp1 = udp_counters()
                threads1 = thread_cpu(main_pid)
                mem_end = servers.rss()
            if mark[0] == "DONE":
                break
        # the calls are closed: does the server let go of everything?
        leak_deadline = time.time() + 10
        def health_now() -> dict:
            each = [http_json(h) for h in servers.health_urls]
            return each[0] if len(each) == 1 else {"peers": sum(h.get("peers") or 0 for h in each), "nodes": each}

        health = health_now()
        while health.get("peers") and time.time() < leak_deadline:
            time.sleep(0.5)
            health = health_now()
        mem_after = servers.rss()
        readers.stdin.write("STOP\n")
        readers.stdin.flush()
        read_mark(readers, time.time() + 30)
        sampler.stop_flag.set()
        peers.wait(30)
        readers.wait(30)
    finally:
        for p in procs:
            stop_process(p)
        servers.stop()

    log_text = "".join(log.read_text() for log in servers.logs)
    peers_res = json.loads((run_dir / "peers.json").read_text())
    readers_res = json.loads((run_dir / "readers.json").read_text())

    # CPU over the audio
    (ta, va), (tb, vb) = marks["AUDIO_START"], marks["AUDIO_END"]
    wall = tb - ta
    cpu = {name: (vb[name] - va[name]) / wall if va.get(name) is not None and vb.get(name) is not None else None
           for name in ("server", "peers", "readers", *servers.pids)}
    ncpu = os.cpu_count() or 1
    machine = (vb["_sys_busy"] - va["_sys_busy"]) / max(1, vb["_sys_total"] - va["_sys_total"]) * ncpu
    (tsa, vsa), (tsb, vsb) = marks.get("SETUP_DONE", marks["AUDIO_START"]), marks["AUDIO_START"]

    calls = []
    for spec, peer_info, msgs in zip(specs, peers_res["calls"], readers_res["calls"]):
        c = analyse_call(spec, peer_info, msgs, args.seconds, args.tail)
        c["problems"] = call_problems(c, args.topology, args.seconds, args.p2p)
        calls.append(c)
    lat = [x for c in calls for x in c["latencies"]]
    lat_live = [x for c in calls for x in c["latencies_live_start"]]
    naive = [x for c in calls for x in c["latencies_naive"]]
    detect = [x for c in calls for x in c["detect_media_s"]]
    transit = [v for c in calls for v in c["transit_first_frame_s"].values()]
    dropped = sum(a["dropped_s"] for c in calls for a in (c["audio"] or {}).values())
    lat_p95 = float(np.percentile(lat, 95)) if lat else None
    realtime = all(not any(p.startswith(("lag", "coach received", "client received")) for p in c["problems"]) for c in calls)
    problems = [f"call {c['index']}: {p}" for c in calls for p in c["problems"]]
    if lat_p95 is None or lat_p95 > LATENCY_TARGET:
        problems.append(f"onset latency p95 {ms(lat_p95)} ms > {LATENCY_TARGET * 1000:.0f} ms")
    # Measured from the live start, a latency can't be under the 80 ms confirmation less one
    # packet (a 20 ms packet is released at its start, holding 20 ms of later sound) unless the
    # clocks are wrong.
    if lat_live and min(lat_live) < 0.06:
        problems.append(f"a latency of {min(lat_live) * 1000:.0f} ms from the live start is below the 80 ms "
                        "confirmation less one 20 ms packet: the clocks are wrong")
    tracebacks = log_text.count("Traceback")

    result = {
        "topology": args.topology, "calls": args.calls, "seconds": args.seconds, "pinned": bool(args.pin),
        "source": args.source, "p2p": args.p2p if args.topology == "direct" else None, "jitter_ms": args.jitter,
        "reader_delay_ms": args.reader_delay,
        **source_version(),
        "cpus": ncpu, "calls_up": setup_ok, "setup_s": round(peers_res["setup_s"], 2),
        "holds": not problems, "realtime": realtime, "problems": problems,
        "cpu": {
            "server": cpu["server"], "server_per_call": cpu["server"] / args.calls if cpu["server"] is not None else None,
            "server_peak_1s": sampler.peak_share("server", ta, tb),
            "peers": cpu["peers"], "readers": cpu["readers"], "machine_busy_cores": machine,
            "by_process": {name: cpu[name] for name in servers.pids},
            # threads that ended during the audio are missing from the end count (the decoder threads live as
            # long as their track, so this is the whole audio for them)
            "server_threads": {k: round((v - threads0.get(k, 0.0)) / wall, 3) for k, v in sorted(threads1.items())},
            "other_busy_cores": machine - sum(v for name, v in cpu.items() if v is not None and name in
                                              ("server", "peers", "readers", *servers.services)),
            "background_before": background, "waited_for_quiet_s": round(waited, 1),
            "setup_server": (vsb["server"] - vsa["server"]) / max(1e-6, tsb - tsa) if tsb > tsa else None,
            "audio_wall_s": wall,
        },
        "memory_mib": {"server_idle_rss": mem_idle.get("VmRSS"), "server_rss_end_audio": mem_end.get("VmRSS"),
                       "server_peak_hwm": mem_end.get("VmHWM"), "server_rss_after_close": mem_after.get("VmRSS"),
                       "server_peak_hwm_after_close": mem_after.get("VmHWM"),
                       "server_rss_growth_mib_per_min": sampler.rss_growth(ta, tb)},
        "dropped_s_total": round(dropped, 3),
        "dropped_at_start_s_total": round(sum(v for c in calls for v in c["dropped_at_start_s"].values()), 3),
        "received_s_min": min((a["received_s"] for c in calls for a in (c["audio"] or {}).values()), default=None),
        "lag_max_s": max((c["lag_max_s"] for c in calls if c["lag_max_s"] is not None), default=None),
        "lag_end_max_s": max((c["lag_end_s"] for c in calls if c["lag_end_s"] is not None), default=None),
        "latency_s": pct_summary(lat),
        "latency_live_start_s": pct_summary(lat_live),
        "latency_naive_s": {**pct_summary(naive), "note": "T0 + start - snapshot session_time at T0: wrong, see the docstring"},
        "detect_media_s": pct_summary(detect),
        "transit_first_frame_s": pct_summary(transit),
        "alignment_error_abs_s": pct_summary([abs(c["alignment_error_s"]) for c in calls if "alignment_error_s" in c]),
        "onsets": sum(c["onsets"] for c in calls), "onsets_matched": len(lat),
        "missed_onsets": sum(c["missed_onsets"] for c in calls),
        "unmatched_live_starts": sum(c["unmatched_live_starts"] for c in calls),
        "seq_gaps": sum(c["seq_gaps"] for c in calls),
        "share_diff_pp_abs": pct_summary([abs(c["share_diff_pp"]) for c in calls if c.get("share_diff_pp") is not None]),
        "long_silences": {
            "offline": sum(c.get("long_silences_offline", 0) for c in calls),
            "live": sum(c.get("long_silences_live", 0) for c in calls),
            "edge_error_s": pct_summary([e for c in calls for e in c.get("long_silence_errors_s", []) if e is not None]),
            "not_found": sum(1 for c in calls for e in c.get("long_silence_errors_s", []) if e is None),
        },
        "udp_delta": {k: udp1[k] - udp0[k] for k in ("InErrors", "RcvbufErrors", "SndbufErrors", "InDatagrams") if k in udp0},
        "sender_late_s": peers_res["sender_late"], "peers_loop_lag_s": peers_res["loop_lag"],
        "readers_loop_lag_s": readers_res["loop_lag"],
        "server_after_close": health, "server_log_tracebacks": tracebacks,
        "per_call": [{k: v for k, v in c.items() if k not in ("latencies", "latencies_live_start", "detect_media_s", "latencies_naive")}
                     | {"latency_p50": c["latency_p50"], "latency_p95": c["latency_p95"]} for c in calls],
        "run_dir": str(run_dir),
        "tap_packet_ms": args.tap_packet_ms,
        "recording": {"on": args.recording,
                      "bytes_on_disk": folder_bytes(servers.recordings) if servers.recordings else None},
    }
    if tracebacks:
        result["problems"].append(f"{tracebacks} traceback(s) in {', '.join(map(str, servers.logs))}")
        result["holds"] = False
    harness = [p for p in problems if "harness" in p]
    # the same verdict, forgiving audio dropped only in the first 2 s (a start-up glitch of the
    # server's anchoring, see dropped_at_start_s)
    result["holds_but_start_drops"] = not result["holds"] and all(
        "(all in the first 2 s)" in p for p in result["problems"] if " dropped " in p) and not any(
        " dropped " not in p for p in result["problems"])
    result["lost_at_sender_s_total"] = round(sum(v for c in calls for v in c["lost_at_sender_s"].values()), 3)
    result["harness_ok"] = not harness and (r := result["peers_loop_lag_s"].get("p99")) is not None and r < 0.1
    result["background_ok"] = result["cpu"]["other_busy_cores"] <= args.max_other
    return result


def print_report(r: dict) -> None:
    print(f"livecoach live benchmark: {r['calls']} call(s), {r['topology']}, {r['seconds']:g} s of audio, "
          f"{r['cpus']} CPUs{', pinned (server CPU 0, peers/readers CPU 1)' if r['pinned'] else ''}")
    p2p = {True: ", with the peer-to-peer media", False: ", without the peer-to-peer media", None: ""}[r["p2p"]]
    print(f"participants send {'pre-encoded Opus' if r['source'] == 'opus' else 'PCM encoded by aiortc'}{p2p}")
    print(f"calls up {r['calls_up']}/{r['calls']} (setup {r['setup_s']} s); server at commit {r.get('commit')}"
          f"{' with changes in src/' if r.get('src_changed') else ''}")
    print()
    head = (f"{'call':>4} {'fixture':<9} {'topo':<6} {'drop c/cl s':>11} {'recv c/cl s':>13} {'lag max/end ms':>15} "
            f"{'onsets':>7} {'lat p50/p95 ms':>15} {'transit c/cl ms':>15} {'send late p95':>13}  problems")
    print(head)
    print("-" * len(head))
    for c in r["per_call"]:
        a = c["audio"] or {}
        drop = "/".join(fmt(a.get(x, {}).get("dropped_s"), 2) for x in ("coach", "client"))
        recv = "/".join(fmt(a.get(x, {}).get("received_s"), 2) for x in ("coach", "client"))
        tr = "/".join(ms(v) for v in c["transit_first_frame_s"].values()) or "-"
        print(f"{c['index']:>4} {c['fixture']:<9} {c['topology']!s:<6} {drop:>11} {recv:>13} "
              f"{ms(c['lag_max_s']) + '/' + ms(c['lag_end_s']):>15} {str(c['matched']) + '/' + str(c['onsets']):>7} "
              f"{ms(c['latency_p50']) + '/' + ms(c['latency_p95']):>15} {tr:>15} {ms(c['sender_late_p95']):>13}  "
              f"{'; '.join(c['problems']) or 'ok'}")
    print()
    print("live vs offline (livecoach analyze of the same files): talk share, long silences (>= 2 s)")
    for c in r["per_call"]:
        errs = [e for e in c.get("long_silence_errors_s", []) if e is not None]
        print(f"{c['index']:>4} {c['fixture']:<9} {c.get('noise') or '':<27} share live {fmt(c['share_live'], 4)} "
              f"offline {fmt(c['share_offline'], 4)} diff {fmt(c['share_diff_pp'], 2)} pp; silences live "
              f"{c.get('long_silences_live', '-')} offline {c.get('long_silences_offline', '-')}, found "
              f"{len(errs)}, worst edge error {ms(max(errs)) if errs else '-'} ms")
    diffs = [abs(c["share_diff_pp"]) for c in r["per_call"] if c.get("share_diff_pp") is not None]
    if diffs:
        print(f"     |live - offline| talk share: mean {np.mean(diffs):.2f} pp, max {max(diffs):.2f} pp")
    cpu, mem, lat = r["cpu"], r["memory_mib"], r["latency_s"]
    print()
    print(f"server CPU        {fmt(cpu['server'], 2)} cores over the audio ({fmt(cpu['server_per_call'], 3)} per call; "
          f"busiest second {fmt(cpu['server_peak_1s'], 2)}; during setup {fmt(cpu['setup_server'], 2)})")
    print(f"server threads    {', '.join(f'{k} {v:.2f}' for k, v in cpu['server_threads'].items())} cores "
          "(the main thread runs the event loop: aiortc's transport, the taps, the engine, the websockets)")
    print(f"participants CPU  peers {fmt(cpu['peers'], 2)} cores, readers {fmt(cpu['readers'], 2)} cores "
          f"(same machine: they compete with the server)")
    print(f"machine           busy {fmt(cpu['machine_busy_cores'], 2)} of {r['cpus']} cores during the audio, of which "
          f"{fmt(cpu['other_busy_cores'], 2)} by other programs (before the run: {fmt(cpu['background_before'], 2)})")
    print(f"server memory     peak {fmt(mem['server_peak_hwm'], 0)} MiB (VmHWM), RSS idle {fmt(mem['server_idle_rss'], 0)} "
          f"-> end of audio {fmt(mem['server_rss_end_audio'], 0)} -> after close {fmt(mem['server_rss_after_close'], 0)} MiB; "
          f"growth during the audio {fmt(mem['server_rss_growth_mib_per_min'], 1)} MiB/min")
    print(f"dropped audio     {r['dropped_s_total']} s in total ({r['dropped_at_start_s_total']} s in the first 2 s); least received {fmt(r['received_s_min'], 2)} s of {r['seconds']:g}; "
          f"UDP {r['udp_delta']}")
    print(f"real time         lag max {ms(r['lag_max_s'])} ms, at the end of the audio max {ms(r['lag_end_max_s'])} ms "
          f"(limit {LAG_LIMIT * 1000:.0f} ms)")
    print(f"onset latency     p50 {ms(lat.get('p50'))} ms, p95 {ms(lat.get('p95'))} ms, min {ms(lat.get('min'))}, "
          f"max {ms(lat.get('max'))} ms over {r['onsets_matched']} onsets ({r['missed_onsets']} missed, "
          f"{r['unmatched_live_starts']} live starts unmatched); from the live start: p50 "
          f"{ms(r['latency_live_start_s'].get('p50'))}, p95 {ms(r['latency_live_start_s'].get('p95'))} ms")
    print(f"  parts           confirmation in media time p50 {ms(r['detect_media_s'].get('p50'))} ms; first-frame transit "
          f"p50 {ms(r['transit_first_frame_s'].get('p50'))} ms (coach/client misaligned by max {ms(r['alignment_error_abs_s'].get('max'))} ms); sender frame lateness p95 "
          f"{ms(r['sender_late_s'].get('p95'))} ms; loop lag p99 peers {ms(r['peers_loop_lag_s'].get('p99'))} / readers "
          f"{ms(r['readers_loop_lag_s'].get('p99'))} ms")
    print(f"after close       {r['server_after_close']}; server log tracebacks: {r['server_log_tracebacks']}")
    if not r["background_ok"]:
        print(f"WARNING: other programs used {r['cpu']['other_busy_cores']:.2f} cores during the audio; the figures are disturbed")
    if not r["harness_ok"]:
        print("WARNING: the peers process fell behind (frames lost before sending, or its loop lagged over 100 ms at p99):"
              " it, not the server, limits this run")
    if r["holds_but_start_drops"]:
        print("(it would hold but for a few ms of audio dropped at the start of some calls: see dropped_at_start_s)")
    print(f"HOLDS: {'yes' if r['holds'] else 'no'}" + ("" if r["holds"] else " - " + "; ".join(r["problems"][:8])
                                                     + (" ..." if len(r["problems"]) > 8 else "")))


def arguments(description: str = __doc__.split("\n\n")[0]) -> argparse.ArgumentParser:
    """The options of a run (scripts/bench_cluster.py takes the same)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--calls", type=int, default=1)
    p.add_argument("--topology", choices=("direct", "relay"), default="direct")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--tail", type=float, default=2.0, help="seconds the stream is read after the audio (default 2)")
    p.add_argument("--setup-concurrency", type=int, default=4, help="calls set up at once (default 4)")
    p.add_argument("--source", choices=("opus", "pcm"), default="opus",
                   help="opus: the peers send pre-encoded Opus packets (default); pcm: 16 kHz WAV, encoded by "
                   "aiortc once per connection as SimPeer does by default (costs the peers far more CPU)")
    p.add_argument("--no-p2p", dest="p2p", action="store_false",
                   help="direct topology without the participants' peer-to-peer connection (it never touches "
                   "the server; skipping it spares the peers process, which shares the CPUs with the server)")
    p.add_argument("--workers", default=None, metavar="N",
                   help="the server's worker processes (default: the server's own default, one per core)")
    p.add_argument("--no-recording", dest="recording", action="store_false",
                   help="the server records nothing (to measure what recording costs)")
    p.add_argument("--tap-packet-ms", type=int, default=None, metavar="MS",
                   help="the server's --tap-packet-ms: the Opus packet length the participants are asked to send it "
                   "in a direct call (default: the server's default)")
    p.add_argument("--hard", action="store_true",
                   help="make every call hard: the client 10 dB quieter, echo both ways, real noise under both "
                   "(fan, keyboard, cafe chatter, HVAC in turn), to compare live with offline where they differ")
    p.add_argument("--jitter", type=float, default=0.0, metavar="MS",
                   help="network jitter on what each participant sends the server: held a random time of this "
                   "mean, one packet in 100 held 80 ms more, never reordered (simpeer.Jitter; default 0: none)")
    p.add_argument("--reader-delay", type=float, default=0.0, metavar="MS",
                   help="the coach windows reach the server through a relay that holds everything MS "
                        "each way (a round trip of 2 x MS): what the indicator stream's pong wait costs")
    p.add_argument("--pin", action="store_true", help="server on CPU 0, participants and readers on CPU 1")
    p.add_argument("--quiet-wait", type=float, default=0.0,
                   help="wait up to this many seconds for the machine to be quiet before starting (default 0)")
    p.add_argument("--quiet-limit", type=float, default=0.3, help="busy cores that count as quiet (default 0.3)")
    p.add_argument("--max-other", type=float, default=0.25,
                   help="other programs' busy cores during the audio above which the run is repeated (default 0.25)")
    p.add_argument("--retries", type=int, default=0, help="runs repeated at most this often for background load (default 0)")
    p.add_argument("--workdir", default="/tmp/livecoach-bench")
    p.add_argument("--child", choices=("readers", "peers"), help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p


def main() -> int:
    args = arguments().parse_args()
    if args.child:
        child_main(args.child, Path(args.config), Path(args.out))
        return 0
    attempts = []
    for attempt in range(args.retries + 1):
        result = run(args)
        if result["background_ok"] or attempt == args.retries:
            break
        attempts.append({"other_busy_cores": result["cpu"]["other_busy_cores"], "holds": result["holds"],
                         "run_dir": result["run_dir"]})
        print(f"other programs kept {result['cpu']['other_busy_cores']:.2f} cores busy during the audio: "
              f"run again ({attempt + 2}/{args.retries + 1})", flush=True)
    result["discarded_attempts"] = attempts
    print_report(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

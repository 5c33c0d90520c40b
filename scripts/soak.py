#!/usr/bin/env python3
"""Soak the live path: K calls that reconnect, round after round, against one real server for
N minutes, watching the server's memory and open files over time.

Usage: scripts/soak.py --minutes N --calls K [--round-seconds S] [--workers W]
           [--topology direct|relay] [--no-p2p] [--tags-per-minute R] [--workdir DIR]

A benchmark asks how much the server can carry; a soak asks whether it lets go of what it took.
So the load is small (default 4 calls, well within the 2-core machine) and the run is long.
The last line printed is JSON with every figure; the text above it is for people. The whole
series is also written to ``soak.json`` in the run's folder. The exit status is 0 when the soak
ran to its end, whatever it found (``memory_flat`` in the JSON says whether memory held); 1 when
it could not: the harness broke (a child process failed three rounds in a row, an exception
here) or the server died.

What runs
---------
It reuses ``bench_live.py`` (imported, not copied): ``start_server`` starts one server for the
whole soak in a fresh folder under ``--workdir``; the bench coach logs in and makes K sessions
once. Then, in rounds of S seconds (default 60):

- the *readers* process opens the K coaches' indicator streams (a new coach window), and the
  *peers* process joins both participants of each call to the SAME K sessions and plays
  S - 10 s of fixture audio (``bench_live.peers_main``), then closes them. Every round after the
  first is thus a rejoin of both participants and a new coach window on a call the server still
  holds open (an empty call is closed only after 60 s): the reconnect of a dropped call;
- while the audio plays this process PUTs tags as the coach's sidebar does (R per minute and
  session, default 2; ids from ``uuid4`` as the browser's ``crypto.randomUUID()``; every third
  one sent twice, as the sidebar's queue retries), with the coach's bearer token;
- after the round it lists each session's tags (stored vs attempted), opens the review payload
  of two sessions (``GET /api/sessions/<id>/review``, gzipped, as the review page does after a
  call), and waits (up to 10 s) for ``/healthz`` to show no server peer connection left.

Rounds start every S seconds from the soak's start (at once, if the previous one ran over), so
the participants are away for a few seconds between rounds. After the last round the soak waits
(``--idle-after``, default 75 s) for the server to close the empty calls, and samples once more.

What is measured
----------------
- Every ``--sample-seconds`` (default 10), and at each round's start and end: VmRSS (from
  /proc/<pid>/status), open file descriptors (entries of /proc/<pid>/fd) and threads of the
  server's front process and of each worker (the server's children, named by their
  ``--index``; a worker that restarts shows as a new pid), and the machine's busy cores from
  /proc/stat since the previous periodic sample.
- Per round, as bench_live measures them (``analyse_call``, ``call_problems``): dropped audio
  (``audio.<role>.dropped_s`` of the last snapshot; the server counts it per call, not per
  connection, so each round's figures are taken relative to the last snapshot before its audio
  started), the onset latency (the coach's websocket receiving ``speech start`` minus the wall
  time the onset was played) p50/p95, onsets matched; the server's CPU over the round, and the
  peers' and readers' (the harness's cost on the same cores).
- The curve: for each server process, RSS and fds at the start of the second round (round 1 is
  warm-up: code paths imported, caches and pools filled) and when a round after the last would
  start (the same phase: between calls), and the least-squares slope per hour over all samples
  in between (whole rounds, so the rise and fall within a round does not tilt it), and over the
  round starts alone. ``memory_flat`` is true when every process's RSS slope (all samples) is
  under RSS_SLOPE_LIMIT MiB/h; ``fds_flat`` when the fd count at the round starts grows less
  than FD_SLOPE_LIMIT per hour. A short soak extrapolates a few minutes to an hour: its slopes
  are noisy, and they include the warm-up that round 1 did not finish.

The soak's own cost is kept low: one sample every 10 s (a pass over /proc), a tag every few
seconds, one analysis per round; the peers process (aiortc, pre-encoded Opus as in bench_live)
is the main cost of the harness and is reported per round.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import resource
import sys
import threading
import time
import itertools
import traceback
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_live as bl  # noqa: E402  (the scripts folder is not a package)

ROUND_OVERHEAD_S = 10.0
"""Seconds of a round that are not audio: the peers process starting (importing aiortc), the
calls' setup, a settling second, the 2 s tail, closing, the readers' output and the analysis."""
TAIL_S = 2.0
RSS_SLOPE_LIMIT = 5.0
"""MiB per hour, per server process, after warm-up: the ``memory_flat`` threshold."""
FD_SLOPE_LIMIT = 2.0
"""Open files per hour, per server process, at the round starts: the ``fds_flat`` threshold."""
SERIES_POINTS = 120
"""Samples kept in the JSON line (the file has all of them)."""
REVIEWS_PER_ROUND = 2
TAG_KINDS = [("breakthrough", "Breakthrough"), ("resistance", "Resistance"),
             ("action_commitment", "Action commitment"), ("goal_clarity", "Goal clarity"),
             ("emotional_shift", "Emotional shift"), ("confidence", "Confidence")]
TAG_LEAD_S = 5.0
MAX_ROUND_FAILURES = 3
"""Rounds failing in a row before the soak gives up (the harness, not the server, is broken)."""
TAG_NUMBERS = itertools.count()
"""Every tag of the soak numbered, so that every third one is retried whatever the round's size."""


class HarnessBroken(RuntimeError):
    """The soak cannot go on for a reason of its own (not a finding about the server)."""


# ---------------------------------------------------------------------------------------------
# /proc: the server's processes over time


def proc_facts(pid: int) -> dict[str, float | int] | None:
    """RSS (MiB), open file descriptors and threads of one process; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    out: dict[str, float | int] = {"pid": pid, "fds": fds}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key == "VmRSS":
            out["rss_mib"] = round(int(value.split()[0]) / 1024, 2)
        elif key == "Threads":
            out["threads"] = int(value)
    return out


def process_name(pid: int) -> str:
    """``worker<index>`` for a call worker (so a restarted worker keeps its name), else child-<pid>."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"child-{pid}"
    if b"livecoach.workers" in argv and b"--index" in argv:
        i = argv.index(b"--index")
        if i + 1 < len(argv):
            return "worker" + argv[i + 1].decode(errors="replace")
    return f"child-{pid}"


class ProcSampler(threading.Thread):
    """Samples the server's processes every ``interval`` seconds, and on demand at the round
    boundaries, so that memory and fds can be compared at the same phase of every round."""

    def __init__(self, server_pid: int, interval: float, t0: float) -> None:
        super().__init__(daemon=True, name="sampler")
        self.server_pid = server_pid
        self.interval = interval
        self.t0 = t0
        self.round = 0
        self.samples: list[dict[str, Any]] = []
        self.stop_flag = threading.Event()
        self._lock = threading.Lock()
        self._last_sys = (time.monotonic(), *bl.system_cpu())
        self._ncpu = os.cpu_count() or 1

    def processes(self) -> dict[str, int]:
        children = bl.children_of()
        out = {"front": self.server_pid}
        for pid in sorted(children.get(self.server_pid, [])):
            out[process_name(pid)] = pid
        return out

    def take(self, label: str | None = None) -> dict[str, Any]:
        """One sample; a labelled one (a round boundary) leaves the busy-cores series alone."""
        with self._lock:
            busy_cores = None
            if label is None:
                now, (busy, total) = time.monotonic(), bl.system_cpu()
                m0, b0, t0 = self._last_sys
                if now - m0 >= 1.0:  # jiffies over a shorter time say little
                    self._last_sys = (now, busy, total)
                    busy_cores = round((busy - b0) / max(1, total - t0) * self._ncpu, 3)
            procs = {name: facts for name, pid in self.processes().items() if (facts := proc_facts(pid)) is not None}
            sample = {"t": round(time.time() - self.t0, 2), "round": self.round, "label": label,
                      "busy_cores": busy_cores, "procs": procs}
            self.samples.append(sample)
            return sample

    def run(self) -> None:
        while not self.stop_flag.wait(self.interval):
            self.take()


# ---------------------------------------------------------------------------------------------
# the coach's HTTP calls


def api(url: str, method: str, token: str, body: dict | None = None, gzip_ok: bool = False,
        timeout: float = 10.0) -> tuple[int, bytes, float]:
    """(status, body, seconds) of one coach request; an HTTP error is an answer, not an exception."""
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if gzip_ok:
        headers["Accept-Encoding"] = "gzip"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), time.perf_counter() - t
    except urllib.error.HTTPError as err:
        return err.code, err.read(), time.perf_counter() - t


class Tagger(threading.Thread):
    """The coaches' tag clicks while the audio plays, spread evenly over it per session, with a
    browser's retry of the same id now and then (the server must store it once)."""

    def __init__(self, url: str, sessions: list[dict], per_minute: float, seconds: float,
                 start: float, opened: dict[str, float], round_no: int) -> None:
        super().__init__(daemon=True, name="tagger")
        self.url = url
        self.sessions = sessions
        self.opened = opened
        self.round_no = round_no
        self.stop_flag = threading.Event()
        self.attempted: dict[str, set[str]] = {s["session"]: set() for s in sessions}
        self.requests = 0
        self.failed: list[str] = []  # non-2xx answers and errors, as "status on PUT"
        self.seconds: list[float] = []
        self.retries_ok = 0
        n = max(1, round(per_minute * seconds / 60)) if per_minute > 0 else 0
        k = len(sessions)
        self.plan = sorted((start + (j + (i + 1) / (k + 1)) * seconds / n, i)
                           for i in range(k) for j in range(n)) if n else []

    def run(self) -> None:
        for at, i in self.plan:
            if self.stop_flag.wait(max(0.0, at - time.time())):
                return
            count = next(TAG_NUMBERS)
            s = self.sessions[i]
            clicked = max(0.0, time.time() - self.opened.get(s["session"], at))
            kind, label = TAG_KINDS[count % len(TAG_KINDS)]
            body = {"kind": kind, "label": label, "session_time": round(max(0.0, clicked - TAG_LEAD_S), 2),
                    "clicked_at": round(clicked, 2), "note": f"soak round {self.round_no}" if count % 2 else ""}
            tag_id = str(uuid.uuid4())
            self.attempted[s["session"]].add(tag_id)
            for attempt in range(2 if count % 3 == 2 else 1):
                try:
                    status, _, secs = api(f"{self.url}/api/sessions/{s['session']}/tags/{tag_id}", "PUT",
                                          s["coach_token"], body)
                except OSError as err:
                    self.failed.append(f"{type(err).__name__} on PUT")
                    continue
                self.requests += 1
                self.seconds.append(secs)
                if not 200 <= status < 300:
                    self.failed.append(f"{status} on PUT")
                elif attempt == 1 and status == 200:
                    self.retries_ok += 1  # the repeat answered as a repeat: stored once


def stored_tags(url: str, session: dict) -> set[str] | None:
    """The ids of a session's tags as the server lists them (None if it would not answer)."""
    try:
        status, body, _ = api(f"{url}/api/sessions/{session['session']}/tags", "GET", session["coach_token"])
    except OSError:
        return None
    if status != 200:
        return None
    return {t["id"] for t in json.loads(body)["tags"]}


def open_review(url: str, session: dict) -> dict[str, Any]:
    """The review payload as the review page asks for it after a call (gzip)."""
    try:
        status, body, secs = api(f"{url}/api/sessions/{session['session']}/review", "GET",
                                 session["coach_token"], gzip_ok=True, timeout=30)
    except OSError as err:
        return {"session": session["index"], "error": f"{type(err).__name__}: {err}"}
    out: dict[str, Any] = {"session": session["index"], "status": status, "ms": round(secs * 1000, 1),
                           "bytes": len(body)}
    if status == 200:
        try:
            payload = json.loads(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)
            out["json_bytes"] = len(json.dumps(payload))
        except ValueError as err:
            out["error"] = f"not JSON: {err}"
    return out


def health(url: str) -> dict | None:
    try:
        return bl.http_json(url + "/healthz")
    except (OSError, ValueError):
        return None


def wait_health(url: str, key: str, timeout: float) -> dict | None:
    """/healthz once ``key`` (peers, calls) is down to 0, or at the timeout: what the server
    still holds."""
    deadline = time.time() + timeout
    h = health(url)
    while (h is None or h.get(key)) and time.time() < deadline:
        time.sleep(0.5)
        h = health(url)
    return h


# ---------------------------------------------------------------------------------------------
# one round


def rebase_audio(msgs: list, t0: float) -> list:
    """The server counts received and dropped audio per call, and the call outlives a round:
    make each snapshot's counts relative to the last snapshot before this round's audio."""
    base: dict = {}
    for t, m in msgs:
        if t >= t0:
            break
        if m.get("type") == "snapshot" and m.get("audio"):
            base = m["audio"]
    if not base:
        return msgs
    out = []
    for t, m in msgs:
        if m.get("type") == "snapshot" and m.get("audio"):
            m = {**m, "audio": {role: {k: round(v - base.get(role, {}).get(k, 0.0), 3) for k, v in a.items()}
                                for role, a in m["audio"].items()}}
        out.append((t, m))
    return out


def log_errors(path: Path) -> int:
    """Tracebacks and ERROR lines in a log."""
    if not path.exists():
        return 0
    text = path.read_text(errors="replace")
    return text.count("Traceback") + sum(1 for line in text.splitlines() if "ERROR" in line)


class Soak:
    """One server, K sessions, and the rounds against them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.audio_s = args.round_seconds - ROUND_OVERHEAD_S
        self.run_dir = Path(args.workdir) / f"soak-{args.calls}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        self.run_dir.mkdir(parents=True)
        self.rounds: list[dict[str, Any]] = []
        self.latencies: list[float] = []
        self.opened: dict[str, float] = {}  # each session's clock zero (wall time), for the tags' times
        self.server = None
        self.url = ""
        self.sessions: list[dict] = []
        self.cfg_path = self.run_dir / "config.json"
        self.sampler: ProcSampler | None = None

    def start(self) -> None:
        a = self.args
        specs = bl.prepare_audio(a.calls, self.audio_s, Path(a.workdir) / "audio", "opus")
        self.server, self.url, self.server_log = bl.start_server(self.run_dir, a.topology, None, a.workers)
        cookie = bl.login(self.url)
        for spec in specs:
            s = bl.http_json(self.url + "/api/sessions", json.dumps({"label": f"soak call {spec['index']}"}).encode(),
                             cookie)
            self.sessions.append({**spec, "session": s["session"], "coach_token": s["coach_url"].split("#", 1)[1],
                                  "client_token": s["client_url"].split("#", 1)[1]})
        cfg = {"url": self.url, "topology": a.topology, "seconds": self.audio_s, "tail": TAIL_S, "source": "opus",
               "p2p": a.p2p, "setup_concurrency": 4, "calls": self.sessions}
        self.cfg_path.write_text(json.dumps(cfg))

    def run_round(self, r: int) -> dict[str, Any]:
        """Round ``r`` (1-based): both participants of every call join, play, leave; tags meanwhile."""
        a = self.args
        round_dir = self.run_dir / f"round-{r:03d}"
        round_dir.mkdir()
        rec: dict[str, Any] = {"round": r, "t_start": round(time.time() - self.sampler.t0, 1)}
        deadline = time.time() + 60 + 3 * a.calls + self.audio_s + TAIL_S
        procs = []
        tagger: Tagger | None = None
        try:
            readers = bl.spawn("readers", self.cfg_path, round_dir, None)
            procs.append(readers)
            if bl.read_mark(readers, deadline)[0] != "READY":
                raise RuntimeError("the readers did not start")
            t_a, cpu_a = time.time(), bl.proc_cpu(self.server.pid)
            peers = bl.spawn("peers", self.cfg_path, round_dir, None)
            procs.append(peers)
            peers_cpu = None
            while True:
                mark = bl.read_mark(peers, deadline)
                if mark[0] == "FAILED":
                    raise RuntimeError(f"the peers process failed: {(round_dir / 'peers.log').read_text()[-2000:]}")
                if mark[0] == "SETUP_DONE":
                    rec["calls_up"], rec["setup_s"] = int(mark[1]), float(mark[2])
                elif mark[0] == "AUDIO_START":
                    t_audio = float(mark[1])
                    if r == 1:  # until the first round's analysis knows better: the hellos came at setup
                        self.opened = {s["session"]: t_audio - rec.get("setup_s", 0.0) - 1.0 for s in self.sessions}
                    tagger = Tagger(self.url, self.sessions, a.tags_per_minute, self.audio_s, t_audio, self.opened, r)
                    tagger.start()
                elif mark[0] == "DONE":
                    peers_cpu = bl.proc_cpu(peers.pid)
                    break
            if tagger is None:
                raise RuntimeError("the peers process never started the audio")
            tagger.stop_flag.set()
            tagger.join(15)
            t_b, cpu_b = time.time(), bl.proc_cpu(self.server.pid)
            readers.stdin.write("STOP\n")
            readers.stdin.flush()
            bl.read_mark(readers, time.time() + 30)
            readers_cpu = bl.proc_cpu(readers.pid)
            peers.wait(30)
            readers.wait(30)
        finally:
            if tagger is not None:
                tagger.stop_flag.set()
            for p in procs:
                bl.stop_process(p)
        wall = max(1e-6, t_b - t_a)
        rec["cpu_cores"] = {"server": None if cpu_a is None or cpu_b is None else round((cpu_b - cpu_a) / wall, 3),
                            "peers": None if peers_cpu is None else round(peers_cpu / wall, 3),
                            "readers": None if readers_cpu is None else round(readers_cpu / wall, 3)}

        # the calls, as bench_live reads them
        peers_res = json.loads((round_dir / "peers.json").read_text())
        readers_res = json.loads((round_dir / "readers.json").read_text())
        calls = []
        for spec, info, msgs in zip(self.sessions, peers_res["calls"], readers_res["calls"]):
            c = bl.analyse_call(spec, info, rebase_audio(msgs, info["t0"]), self.audio_s, TAIL_S)
            c["problems"] = bl.call_problems(c, a.topology, self.audio_s, a.p2p)
            calls.append(c)
            if c.get("wall_since_open_end") is not None:  # the session's clock zero, for the next tags
                self.opened[spec["session"]] = info["t0"] + self.audio_s + TAIL_S - c["wall_since_open_end"]
        if not a.keep_round_files:  # the readers' messages: a few MB a round
            (round_dir / "readers.json").unlink()
        lat = [x for c in calls for x in c["latencies"]]
        self.latencies.extend(lat)
        audio = [x for c in calls for x in (c["audio"] or {}).values()]
        rec.update({
            "audio_s": self.audio_s,
            "dropped_s": round(sum(x["dropped_s"] for x in audio), 3),
            "dropped_at_start_s": round(sum(v for c in calls for v in c["dropped_at_start_s"].values()), 3),
            "received_s_min": min((x["received_s"] for x in audio), default=None),
            "latency_p50_s": round(float(np.percentile(lat, 50)), 4) if lat else None,
            "latency_p95_s": round(float(np.percentile(lat, 95)), 4) if lat else None,
            "onsets": sum(c["onsets"] for c in calls), "onsets_matched": len(lat),
            "lag_max_s": max((c["lag_max_s"] for c in calls if c["lag_max_s"] is not None), default=None),
            "topology": sorted({str(c["topology"]) for c in calls}),
            "sender_late_p95_s": round(peers_res["sender_late"].get("p95") or 0.0, 4),
            "peers_loop_lag_p99_s": round(peers_res["loop_lag"].get("p99") or 0.0, 4),
            "problems": [f"call {c['index']}: {p}" for c in calls for p in c["problems"]],
            "harness_log_errors": log_errors(round_dir / "peers.log") + log_errors(round_dir / "readers.log"),
        })

        # the coach after the call: tags stored, the review opened, the server letting go
        stored = 0
        unreadable = 0
        for s in self.sessions:
            ids = stored_tags(self.url, s)
            if ids is None:
                unreadable += 1
            else:
                stored += len(ids & tagger.attempted[s["session"]])
        put_ms = [x * 1000 for x in tagger.seconds]
        rec["tags"] = {"attempted": sum(len(v) for v in tagger.attempted.values()), "stored": stored,
                       "requests": tagger.requests, "failed": len(tagger.failed),
                       "failures": sorted(set(tagger.failed))[:5], "retries_answered_200": tagger.retries_ok,
                       "lists_unreadable": unreadable,
                       "put_ms_p95": round(float(np.percentile(put_ms, 95)), 1) if put_ms else None}
        k = len(self.sessions)
        rec["reviews"] = [open_review(self.url, self.sessions[(REVIEWS_PER_ROUND * (r - 1) + j) % k])
                          for j in range(min(REVIEWS_PER_ROUND, k))]
        h = wait_health(self.url, "peers", 10)
        rec["after_round"] = None if h is None else {
            "calls": h.get("calls"), "peers": h.get("peers"),
            "workers_started": [w.get("started") for w in h.get("workers", [])]}
        rec["data_mib"] = round(bl.folder_bytes(self.run_dir / "data") / 2**20, 2)
        return rec

    def run(self) -> dict[str, Any]:
        a = self.args
        n_rounds = int(a.minutes * 60 // a.round_seconds)
        background = bl.machine_busy(1.0)
        t_begin = time.time()
        self.start()
        self.sampler = ProcSampler(self.server.pid, a.sample_seconds, time.time())
        self.sampler.take()
        self.sampler.start()
        failures_in_a_row = 0
        stopped: str | None = None
        try:
            for r in range(1, n_rounds + 1):
                delay = self.sampler.t0 + (r - 1) * a.round_seconds - time.time()
                if delay > 0:
                    time.sleep(delay)
                if self.server.poll() is not None:
                    stopped = f"the server exited with {self.server.returncode} before round {r}"
                    break
                self.sampler.round = r
                self.sampler.take(f"round {r} start")
                try:
                    rec = self.run_round(r)
                    failures_in_a_row = 0
                except Exception as err:  # noqa: BLE001 - a round that breaks is reported; three in a row end the soak
                    rec = {"round": r, "error": f"{type(err).__name__}: {err}"[:2000]}
                    traceback.print_exc()
                    failures_in_a_row += 1
                self.sampler.take(f"round {r} end")
                rec["server"] = {name: {k: v for k, v in f.items() if k != "pid"}
                                 for name, f in self.sampler.samples[-1]["procs"].items()}
                self.rounds.append(rec)
                print(round_line(rec), flush=True)
                if failures_in_a_row >= MAX_ROUND_FAILURES:
                    raise HarnessBroken(f"{failures_in_a_row} rounds in a row failed; the last: {rec['error']}")
            after_idle = None
            if stopped is None:
                # sampled when the next round would start: the same phase as the round starts
                time.sleep(max(0.0, self.sampler.t0 + n_rounds * a.round_seconds - time.time()))
                self.sampler.round = n_rounds + 1
                self.sampler.take("after the rounds")
            if stopped is None and a.idle_after > 0:
                # the calls are empty: the server should close them (60 s) and give back their memory
                after_idle = wait_health(self.url, "calls", a.idle_after)
                self.sampler.take("after the calls closed")
        finally:
            self.sampler.stop_flag.set()
            if self.server is not None:
                bl.stop_process(self.server)
        return self.result(n_rounds, background, t_begin, stopped, after_idle)

    def result(self, n_rounds: int, background: float, t_begin: float, stopped: str | None,
               after_idle: dict | None) -> dict[str, Any]:
        a = self.args
        samples = self.sampler.samples
        names = sorted({n for s in samples for n in s["procs"]}, key=lambda n: (n != "front", n))
        t_from = next((s["t"] for s in samples if s["label"] == "round 2 start"), None)
        t_to = next((s["t"] for s in samples if s["label"] == "after the rounds"), None)
        curves = {}
        for name in names:
            pids = list(dict.fromkeys(s["procs"][name]["pid"] for s in samples if name in s["procs"]))
            cur: dict[str, Any] = {"pids": pids, "restarted": len(pids) > 1}
            if t_from is not None and t_to is not None:
                cur["rss_mib"] = curve(samples, name, "rss_mib", t_from, t_to)
                cur["fds"] = curve(samples, name, "fds", t_from, t_to)
                cur["threads"] = curve(samples, name, "threads", t_from, t_to)
                # between the calls, the same phase every round
                starts = [s for s in samples if s["label"] and s["label"].endswith((" start", "after the rounds"))]
                cur["rss_mib_at_round_starts"] = curve(starts, name, "rss_mib", t_from, t_to)
                cur["fds_at_round_starts"] = curve(starts, name, "fds", t_from, t_to)
            last = next((s for s in reversed(samples) if s["label"] == "after the calls closed"), None)
            if last is not None and name in last["procs"]:
                cur["after_calls_closed"] = {k: v for k, v in last["procs"][name].items() if k != "pid"}
            curves[name] = cur
        slopes = [c["rss_mib"].get("slope_per_hour") for c in curves.values() if "rss_mib" in c]
        fd_slopes = [c["fds_at_round_starts"].get("slope_per_hour") for c in curves.values()
                     if "fds_at_round_starts" in c]
        judged = bool(slopes) and all(x is not None for x in slopes)
        ok_rounds = [r for r in self.rounds if "error" not in r]
        reviews = [v for r in ok_rounds for v in r["reviews"]]
        log_text = self.server_log.read_text(errors="replace") if self.server_log.exists() else ""
        error_lines = [ln.strip()[:200] for ln in log_text.splitlines() if "ERROR" in ln or "Traceback" in ln]
        busy = [s["busy_cores"] for s in samples if s["busy_cores"] is not None and 1 <= s["round"] <= n_rounds]
        ru = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.time() - t_begin
        return {
            "tool": "soak", "completed": stopped is None and len(self.rounds) == n_rounds,
            "stopped": stopped,
            "machine": {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "mem_total_mib": mem_total_mib(),
                        "python": platform.python_version(), "kernel": platform.release(),
                        "busy_cores_before": round(background, 3), **bl.source_version()},
            "minutes": a.minutes, "calls": a.calls, "round_seconds": a.round_seconds, "audio_s_per_round": self.audio_s,
            "topology": a.topology, "p2p": a.p2p if a.topology == "direct" else None,
            "workers": len([n for n in names if n.startswith("worker")]),
            "tags_per_minute_per_session": a.tags_per_minute,
            "rounds_planned": n_rounds, "rounds": len(self.rounds), "rounds_failed": len(self.rounds) - len(ok_rounds),
            "wall_s": round(wall, 1),
            "memory_flat": judged and all(x < RSS_SLOPE_LIMIT for x in slopes),
            "memory_flat_rule": f"every server process's RSS slope, least squares over the samples from round 2's "
                                f"start to the end of the last round's period, under {RSS_SLOPE_LIMIT:g} MiB/hour",
            "fds_flat": bool(fd_slopes) and all(x is not None and x < FD_SLOPE_LIMIT for x in fd_slopes),
            "fds_flat_rule": f"every server process's open-fd count at the round starts (between calls), "
                             f"slope under {FD_SLOPE_LIMIT:g} per hour from round 2 on",
            "curve": curves,
            "dropped_s_total": round(sum(r["dropped_s"] for r in ok_rounds), 3),
            "dropped_at_start_s_total": round(sum(r["dropped_at_start_s"] for r in ok_rounds), 3),
            "latency_s": {k: round(v, 4) for k, v in bl.pct_summary(self.latencies).items()
                          if k in ("n", "p50", "p95", "max")},
            "tags": {"attempted": sum(r["tags"]["attempted"] for r in ok_rounds),
                     "stored": sum(r["tags"]["stored"] for r in ok_rounds),
                     "failed": sum(r["tags"]["failed"] for r in ok_rounds),
                     "requests": sum(r["tags"]["requests"] for r in ok_rounds)},
            "reviews": {"opened": sum(1 for v in reviews if v.get("status") == 200 and "error" not in v),
                        "failed": sum(1 for v in reviews if v.get("status") != 200 or "error" in v),
                        "ms_max": max((v["ms"] for v in reviews if "ms" in v), default=None)},
            "problems_total": sum(len(r["problems"]) for r in ok_rounds),
            "after_calls_closed": None if after_idle is None else {"calls": after_idle.get("calls"),
                                                                   "peers": after_idle.get("peers")},
            "busy_cores": {"mean": round(float(np.mean(busy)), 3) if busy else None,
                           "max": round(max(busy), 3) if busy else None},
            "soak_driver_cores": round((ru.ru_utime + ru.ru_stime) / max(1e-6, wall), 4),
            "server_log": {"path": str(self.server_log), "error_lines": len(error_lines),
                           "tracebacks": log_text.count("Traceback"), "examples": list(dict.fromkeys(error_lines))[:5]},
            "per_round": self.rounds,
            "series_file": str(self.run_dir / "soak.json"),
            "run_dir": str(self.run_dir),
        }


def curve(samples: list[dict], name: str, key: str, t_from: float, t_to: float) -> dict[str, Any]:
    """First, last, range and least-squares slope per hour of one figure of one process."""
    pts = [(s["t"], s["procs"][name][key]) for s in samples
           if t_from <= s["t"] <= t_to and name in s["procs"] and s["procs"][name].get(key) is not None]
    if not pts:
        return {"n": 0}
    t, v = np.array(pts, dtype=float).T
    out: dict[str, Any] = {"n": len(pts), "start": pts[0][1], "end": pts[-1][1], "min": float(v.min()),
                           "max": float(v.max())}
    out["slope_per_hour"] = round(float(np.polyfit(t, v, 1)[0]) * 3600, 3) if len(pts) >= 3 and t[-1] > t[0] else None
    return out


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def mem_total_mib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def thinned(samples: list[dict], points: int) -> list[dict]:
    """At most about ``points`` samples for the JSON line, compact: {t, round, busy, name: [rss, fds, threads]}."""
    step = max(1, math.ceil(len(samples) / points))
    keep = samples[::step] + ([samples[-1]] if samples and (len(samples) - 1) % step else [])
    return [{"t": s["t"], "round": s["round"], "busy": s["busy_cores"],
             **{n: [f.get("rss_mib"), f.get("fds"), f.get("threads")] for n, f in s["procs"].items()}} for s in keep]


# ---------------------------------------------------------------------------------------------
# output


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.0f}"


def round_line(rec: dict) -> str:
    if "error" in rec:
        return f"round {rec['round']:>3}: FAILED {rec['error'][:300]}"
    mem = " ".join(f"{n} {f.get('rss_mib', 0):.0f}M/{f.get('fds')}fd" for n, f in rec.get("server", {}).items())
    t = rec["tags"]
    return (f"round {rec['round']:>3} t={rec['t_start']:>6.0f}s up {rec.get('calls_up')}  "
            f"dropped {rec['dropped_s']:.2f}s  "
            f"lat p50/p95 {ms(rec['latency_p50_s'])}/{ms(rec['latency_p95_s'])} ms  tags {t['stored']}/{t['attempted']}"
            f"{' FAILED ' + str(t['failed']) if t['failed'] else ''}  server {rec['cpu_cores']['server']} cores "
            f"(peers {rec['cpu_cores']['peers']})  {mem}"
            + (f"  problems: {'; '.join(rec['problems'][:3])}" if rec["problems"] else ""))


def print_report(r: dict) -> None:
    m = r["machine"]
    print()
    print(f"livecoach soak: {r['calls']} call(s), {r['topology']}, {r['rounds']}/{r['rounds_planned']} rounds of "
          f"{r['round_seconds']:g} s ({r['audio_s_per_round']:g} s of audio), {r['wall_s'] / 60:.1f} min; "
          f"{m['cpus']} CPUs, server at {m.get('commit')}{' with changes in src/' if m.get('src_changed') else ''}")
    if r["stopped"]:
        print(f"STOPPED: {r['stopped']}")
    print(f"{'process':<10} {'RSS MiB r2 -> end':>18} {'MiB/h':>7} {'(starts)':>8} {'fds r2 -> end':>14} "
          f"{'fds/h (starts)':>15} {'threads':>9} {'after calls closed':>20}")
    for name, c in r["curve"].items():
        rss, rs, fds, st = (c.get(k, {}) for k in ("rss_mib", "rss_mib_at_round_starts", "fds", "fds_at_round_starts"))
        th = c.get("threads", {})
        after = c.get("after_calls_closed") or {}
        print(f"{name:<10} {str(rss.get('start')) + ' -> ' + str(rss.get('end')):>18} "
              f"{str(rss.get('slope_per_hour')):>7} {str(rs.get('slope_per_hour')):>8} "
              f"{str(fds.get('start')) + ' -> ' + str(fds.get('end')):>14} {str(st.get('slope_per_hour')):>15} "
              f"{str(th.get('start')) + '->' + str(th.get('end')):>9} "
              f"{(str(after.get('rss_mib')) + ' MiB, ' + str(after.get('fds')) + ' fds') if after else '-':>20}"
              f"{'  RESTARTED ' + str(c['pids']) if c['restarted'] else ''}")
    lat = r["latency_s"]
    print(f"memory flat: {'yes' if r['memory_flat'] else 'no'} ({r['memory_flat_rule']}); "
          f"fds flat: {'yes' if r['fds_flat'] else 'no'}")
    print(f"dropped audio {r['dropped_s_total']} s ({r['dropped_at_start_s_total']} s in the first 2 s of a round); "
          f"onset latency p50 {ms(lat.get('p50'))} ms, p95 {ms(lat.get('p95'))} ms over {lat.get('n')} onsets; "
          f"problems {r['problems_total']}")
    print(f"tags stored {r['tags']['stored']}/{r['tags']['attempted']} ({r['tags']['failed']} failed answers of "
          f"{r['tags']['requests']} requests); reviews opened {r['reviews']['opened']} ({r['reviews']['failed']} failed, "
          f"slowest {r['reviews']['ms_max']} ms)")
    print(f"machine busy {r['busy_cores']['mean']} cores on average during the rounds "
          f"(max {r['busy_cores']['max']}), "
          f"{r['machine']['busy_cores_before']} before; this driver {r['soak_driver_cores']} cores")
    print(f"after the calls closed {r['after_calls_closed']}; "
          f"server log: {r['server_log']['error_lines']} error lines, "
          f"{r['server_log']['tracebacks']} tracebacks ({r['server_log']['path']})")
    for line in r["server_log"]["examples"]:
        print(f"  {line}")
    print(f"series: {r['series_file']}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, required=True)
    p.add_argument("--calls", type=int, default=4, help="calls in every round (default 4)")
    p.add_argument("--round-seconds", type=float, default=60.0,
                   help=f"a round's length; its audio is {ROUND_OVERHEAD_S:g} s shorter (default 60)")
    p.add_argument("--workers", default=None, metavar="W", help="the server's worker processes (default: its own)")
    p.add_argument("--topology", choices=("direct", "relay"), default="direct")
    p.add_argument("--no-p2p", dest="p2p", action="store_false",
                   help="direct topology without the participants' own peer-to-peer connection")
    p.add_argument("--tags-per-minute", type=float, default=2.0, help="tags per minute and session (default 2)")
    p.add_argument("--sample-seconds", type=float, default=10.0, help="seconds between samples (default 10)")
    p.add_argument("--idle-after", type=float, default=75.0,
                   help="after the last round, wait up to this long for the server to close the empty calls "
                   "and sample once more (default 75; 0 skips)")
    p.add_argument("--keep-round-files", action="store_true", help="keep each round's readers.json")
    p.add_argument("--workdir", default="/tmp/livecoach-soak")
    args = p.parse_args()
    longest = min(json.loads((bl.FIXTURES / n / "truth.json").read_text())["duration"] for n in bl.FIXTURE_ORDER)
    if not 10 <= args.round_seconds - ROUND_OVERHEAD_S <= longest - 1:
        p.error(f"--round-seconds must be from {ROUND_OVERHEAD_S + 10:g} to {ROUND_OVERHEAD_S + longest - 1:.0f} "
                "(the audio is a fixture excerpt)")
    if args.minutes * 60 // args.round_seconds < 2:
        p.error("a soak needs at least 2 rounds (the first is warm-up)")
    if args.calls < 1:
        p.error("--calls must be at least 1")

    soak = Soak(args)
    try:
        result = soak.run()
    except Exception as err:  # noqa: BLE001 - the harness broke: say so, with what was measured
        traceback.print_exc()
        print(json.dumps({"tool": "soak", "completed": False, "harness_error": f"{type(err).__name__}: {err}"[:2000],
                          "rounds": len(soak.rounds), "per_round": soak.rounds, "run_dir": str(soak.run_dir)}))
        return 1
    full = dict(result, series=soak.sampler.samples)
    (soak.run_dir / "soak.json").write_text(json.dumps(full, indent=1))
    result["series"] = thinned(soak.sampler.samples, SERIES_POINTS)
    print_report(result)
    print(json.dumps(result))
    return 0 if result["completed"] else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark the live calls' exchange with the store (live/storing.py): the CPU that writing a
call's rows and reading its coach's settings every two seconds costs the server's process and
the database, with a process's calls in one transaction ("together", as now) and with each call
in its own two transactions ("apart": its timeline's and its recording's, as before).

Each exchange is what a live call hands in every ``--interval`` seconds (live/storing.py's
``STORE_INTERVAL``; 2 when measured first): an indicator sample a second, a speech
event, its two recordings' growth, and its coach's settings read back; ``--calls`` calls a
process. SQLite in a temporary file, and PostgreSQL (Debian's, started as tests/pg.py starts it
for the tests) unless ``--no-postgresql``. CPU is the process's own (``time.process_time``) and,
on PostgreSQL, that of the server's processes (from /proc), each a call a second, over
``--exchanges`` exchanges a round and ``--rounds`` rounds alternating the two ways.

    .venv/bin/python scripts/bench_exchange.py --calls 4 --rounds 7

Prints a line per database and way, and the figures as JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from livecoach.live.storing import STORE_INTERVAL  # noqa: E402
from livecoach.store import IndicatorSample, LiveRows, NewRecording, Store  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def server_cpu(postmaster: int | None) -> float:
    """CPU seconds of the PostgreSQL server ``postmaster`` and its processes (0 without one)."""
    if postmaster is None:
        return 0.0
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(pid) == postmaster or int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def call_rows(session_id: str, n: int, interval: int) -> tuple[LiveRows, LiveRows]:
    """A call's exchange ``n``: its timeline's rows (with the settings read) and its recording's."""
    t = float(interval * n)
    timeline = LiveRows(session_id, [IndicatorSample(t + k, ["coach"], 0.6, 0.6, 0.4 * k) for k in range(interval)],
                        [(time.time(), t + 1.2, "speech", "coach", {"start": t - 3.0, "end": t + 1.2})], settings=True)
    growth = [(f"{role}-audio", {"duration_s": t, "bytes": 4000 * int(t), "gaps": []}) for role in ("coach", "client")]
    return timeline, LiveRows(session_id, growth=growth)


def measure(store: Store, sessions: list[str], way: str, exchanges: int, start: int, postmaster: int | None,
            interval: int) -> dict:
    c0, s0 = time.process_time(), server_cpu(postmaster)
    for n in range(start, start + exchanges):
        rows = [call_rows(sid, n, interval) for sid in sessions]
        if way == "together":
            store.exchange_live([part for pair in rows for part in pair])
        else:
            for timeline, recording in rows:
                store.exchange_live([timeline])
                store.exchange_live([recording])
    per = exchanges * interval * len(sessions) / 1000  # ms a call a second
    return {"process_ms": (time.process_time() - c0) / per, "database_ms": (server_cpu(postmaster) - s0) / per}


def bench(store: Store, label: str, args, postmaster: int | None) -> dict:
    sessions = []
    for k in range(args.calls):
        sid = store.create_session(f"bench {k}").id
        for role in ("coach", "client"):
            store.create_recording(sid, f"{role}-audio", role, "audio", f"{role}-audio.ogg", "audio/ogg", 0.0)
        sessions.append(sid)
    store.exchange_live([LiveRows(sid, recordings=[NewRecording("x", "coach", "audio", "x.ogg", "audio/ogg", 0.0)])
                         for sid in sessions[:1]])  # warm: statements prepared, caches filled
    n = 1
    runs: dict[str, list[dict]] = {"apart": [], "together": []}
    for _ in range(args.rounds):
        for way in runs:
            runs[way].append(measure(store, sessions, way, args.exchanges, n, postmaster, args.interval))
            n += args.exchanges
    out = {}
    for way, rs in runs.items():
        out[way] = {key: {"median": round(statistics.median(r[key] for r in rs), 3),
                          "min": round(min(r[key] for r in rs), 3), "max": round(max(r[key] for r in rs), 3)}
                    for key in ("process_ms", "database_ms")}
        print(f"{label:10s} {way:8s} process {out[way]['process_ms']['median']:.3f} ms "
              f"({out[way]['process_ms']['min']:.3f}-{out[way]['process_ms']['max']:.3f}), database "
              f"{out[way]['database_ms']['median']:.3f} ms a call a second", flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=4, help="calls of one process (default 4: a node's share of 12 calls)")
    p.add_argument("--exchanges", type=int, default=200, help="exchanges a round (default 200)")
    p.add_argument("--interval", type=int, default=round(STORE_INTERVAL),
                   help=f"seconds between a call's exchanges (default {STORE_INTERVAL:g}, as live/storing.py)")
    p.add_argument("--rounds", type=int, default=7, help="rounds, alternating the two ways (default 7)")
    p.add_argument("--no-postgresql", dest="postgresql", action="store_false")
    args = p.parse_args()
    figures: dict = {"calls": args.calls, "exchanges": args.exchanges, "rounds": args.rounds, "interval": args.interval,
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.sqlite3")
        try:
            figures["sqlite"] = bench(store, "SQLite", args, None)
        finally:
            store.close()
    if args.postgresql:
        import pg

        server = pg.start()
        try:
            postmaster = int((server.folder / "data" / "postmaster.pid").read_text().split()[0])
            store = Store(server.new_database())
            try:
                figures["postgresql"] = bench(store, "PostgreSQL", args, postmaster)
            finally:
                store.close()
        finally:
            server.stop()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

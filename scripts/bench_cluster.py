#!/usr/bin/env python3
"""Benchmark several nodes against one: the same calls (scripts/bench_live.py's) first on a single
server (SQLite, a data folder), then on a local cluster (scripts/cluster.py: PostgreSQL,
SeaweedFS for the recordings, ``--nodes`` nodes behind HAProxy), alternating ``--repeats`` times.

What it shows (issue 13): the calls held, the onset latency (sound sent -> the coach's window has
the message, as bench_live measures it; the coach windows reach their node through the proxy),
and the CPU of each node and of the services, against the single server: what the routing and
the shared store add per call. All on this one machine: the nodes, the services and the
simulated participants share its cores, so the CPU per call is the figure to compare, not the
calls a node could hold.

Two baselines: one server with all ``--calls`` ("single"), and ``--nodes`` servers of their own
at once, each with its SQLite and data folder and the calls one node holds ("singles"). On this
one machine the cluster's nodes share the cores, and each node's fixed costs (its processes idle)
are spread over fewer calls: three nodes with 2 calls each against one server with 6 measure that
as much as the routing and the store. Against as many standalone servers with the same calls, on
the same cores at the same time, the difference is what the routing and the shared store add per
call. Both comparisons are printed.

``--parts`` runs the cluster also with SQLite (one file the nodes share) and/or a recordings
folder in place of PostgreSQL and S3, and prints the nodes' own CPU per call for each kind: what
the database and the object store cost a node, apart from their services.

    scripts/bench_cluster.py --nodes 3 --calls 6 --seconds 40 --repeats 2

Prints a summary per run and the figures as JSON on the last line.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_live  # noqa: E402
import cluster  # noqa: E402


def postmaster_pid(folder: str) -> int | None:
    try:
        return int((Path(folder) / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


PARTS = ("pg+folder", "sqlite+s3", "sqlite+folder")
"""``--parts``: the cluster again with its database, its recordings' storage or both swapped for
the single server's (one SQLite file that the nodes share, a recordings folder): which part
costs what."""


def cluster_servers(args, run_dir: Path, parts: str = "pg+s3") -> bench_live.Servers:
    """A cluster in ``run_dir`` as bench_live measures servers: the nodes' processes together are
    "server"; PostgreSQL, SeaweedFS and HAProxy are services, measured beside. ``parts``: the
    database and the recordings' storage the nodes use (PARTS; the services run either way)."""
    database, recordings = parts.split("+")
    extra = [] if args.recording else ["--no-recording"]
    coach = None
    if database == "sqlite":
        bench_live.add_bench_coach(run_dir / "sqlite")
        extra += ["--database", str(run_dir / "sqlite" / "livecoach.sqlite3")]
        coach = bench_live.BENCH_COACH
    if recordings == "folder":
        extra += ["--recordings", str(run_dir / "recordings")]
    c = cluster.start(run_dir / "cluster", args.nodes, workers=int(args.workers or 1),
                      proxy_port=bench_live.free_port(), node_port=bench_live.free_port(), extra=extra)
    pids = {f"node:{i}": pid for i, pid in c.node_pids().items()}
    services = {"svc:postgresql": postmaster_pid(c.postgresql["folder"]), "svc:seaweedfs": c.seaweedfs["pid"],
                "svc:haproxy": c.haproxy_pid}
    pids |= {name: pid for name, pid in services.items() if pid is not None}
    return bench_live.Servers(
        c.url, pids, [Path(n["log"]) for n in c.nodes.values()], [n["url"] + "/healthz" for n in c.nodes.values()],
        services=tuple(name for name in services if name in pids),
        stop=lambda: cluster.stop(run_dir / "cluster", keep=True), coach=coach or (c.coach["email"], c.coach["password"]))


def standalone_servers(args, run_dir: Path) -> bench_live.Servers:
    """``--nodes`` servers of their own (SQLite, a data folder each, no proxy), started together
    and measured as the cluster's nodes are: the calls go to each in turn."""
    started = []
    try:
        for n in range(1, args.nodes + 1):
            (run_dir / f"s{n}").mkdir(parents=True)
            started.append(bench_live.start_server(run_dir / f"s{n}", args.topology, None, args.workers, args.recording))
    except Exception:
        for proc, _, _ in started:
            bench_live.stop_process(proc)
        raise
    urls = tuple(url for _, url, _ in started)

    def stop() -> None:
        for proc, _, _ in started:
            bench_live.stop_process(proc)

    return bench_live.Servers(urls[0], {f"node:s{n}": proc.pid for n, (proc, _, _) in enumerate(started, 1)},
                              [log for _, _, log in started], [url + "/healthz" for url in urls],
                              session_urls=urls, stop=stop)


def summary(r: dict) -> dict:
    cpu = r["cpu"]
    by = cpu.get("by_process") or {}
    services = sum(v for k, v in by.items() if k.startswith("svc:") and v is not None)
    server = cpu["server"]
    return {
        "calls_up": r["calls_up"], "calls": r["calls"], "holds": r["holds"], "problems": r["problems"][:6],
        "latency_p50_ms": _ms(r["latency_s"].get("p50")), "latency_p95_ms": _ms(r["latency_s"].get("p95")),
        "onsets_matched": r["onsets_matched"], "dropped_s": r["dropped_s_total"],
        "server_cores": _r(server), "services_cores": round(services, 3),
        # four places: a call's share is about 0.04 cores, which three would round by up to 1.3%
        "per_call_cores": round((server + services) / r["calls"], 4) if server is not None else None,
        "nodes_cores": {k.removeprefix("node:"): _r(v) for k, v in by.items() if k.startswith("node:")},
        "services_by_process": {k.removeprefix("svc:"): _r(v) for k, v in by.items() if k.startswith("svc:")},
        "machine_busy_cores": _r(cpu["machine_busy_cores"]), "other_busy_cores": _r(cpu["other_busy_cores"]),
        "harness_ok": r["harness_ok"], "tracebacks": r["server_log_tracebacks"], "run_dir": r["run_dir"],
    }


def _ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 1)


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def main() -> int:
    p = bench_live.arguments(__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=3, help="nodes of the cluster (default 3)")
    p.add_argument("--repeats", type=int, default=1, help="single/cluster pairs run, alternating (default 1)")
    p.add_argument("--parts", action="store_true",
                   help="also the cluster with SQLite and/or a recordings folder instead of PostgreSQL and S3")
    args = p.parse_args()
    if args.child:
        bench_live.child_main(args.child, Path(args.config), Path(args.out))
        return 0
    args.workers = args.workers or "1"  # the same on the single server and on each node
    work = Path(args.workdir)
    kinds = ("single", "singles", "cluster") if args.nodes > 1 else ("single", "cluster")
    if args.parts:
        kinds += tuple(f"cluster:{parts}" for parts in PARTS)
    runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for repeat in range(args.repeats):
        # Every other repeat in the reverse order: should a run cost more for coming later in a
        # repeat (the machine's state after minutes of load), no kind always pays for it.
        for kind in kinds if repeat % 2 == 0 else kinds[::-1]:
            print(f"== {kind} ({repeat + 1}/{args.repeats}): {args.calls} calls of {args.seconds:g} s", flush=True)
            if kind == "single":
                result = bench_live.run(args)
            elif kind == "singles":
                result = bench_live.run(args, standalone_servers(args, work / f"singles-{time.strftime('%H%M%S')}"))
            else:
                parts = kind.partition(":")[2] or "pg+s3"
                run_dir = work / f"cluster-{parts}-{time.strftime('%H%M%S')}"
                result = bench_live.run(args, cluster_servers(args, run_dir, parts))
            s = summary(result)
            runs[kind].append(s)
            print(json.dumps(s), flush=True)

    def med(kind: str, key: str) -> float | None:
        values = [r[key] for r in runs[kind] if r[key] is not None]
        return statistics.median(values) if values else None

    def added(single: float | None, several: float | None) -> float | None:
        return None if single is None or several is None else round(several - single, 3)

    compare = {}
    for key in ("latency_p50_ms", "latency_p95_ms", "per_call_cores"):
        single, several = med("single", key), med("cluster", key)
        compare[key] = {"single": single, "cluster": several, "added": added(single, several)}
    cpu = compare["per_call_cores"]
    if cpu["single"] and cpu["cluster"] is not None:
        cpu["added_share"] = round(cpu["cluster"] / cpu["single"] - 1, 3)  # not from "added", which is rounded
    if "singles" in runs:
        cpu["singles"] = med("singles", "per_call_cores")
        if cpu["singles"] and cpu["cluster"] is not None:
            cpu["added_share_singles"] = round(cpu["cluster"] / cpu["singles"] - 1, 3)
        # Each cluster run against the standalone servers' run next to it (before it, or after it
        # in a reversed repeat), on the machine as it was then: the machine's drift between
        # repeats cancels, its noise within a pair does not.
        pairs = [(s["per_call_cores"], c["per_call_cores"]) for s, c in zip(runs["singles"], runs["cluster"])
                 if s["per_call_cores"] and c["per_call_cores"] is not None]
        if pairs:
            cpu["added_shares_paired"] = [round(c / s - 1, 3) for s, c in pairs]
            cpu["added_share_singles_paired"] = round(statistics.median(cpu["added_shares_paired"]), 3)
    if args.parts:
        # the nodes alone (services apart: they run in every kind), a call's share, by kind
        compare["nodes_per_call_cores"] = {
            kind: _r(statistics.median([r["server_cores"] / r["calls"] for r in rs if r["server_cores"] is not None]))
            for kind, rs in runs.items() if any(r["server_cores"] is not None for r in rs)}
    share = cpu.get("added_share_singles", cpu.get("added_share"))
    verdict = {
        "latency_added_ms_ok": compare["latency_p50_ms"]["added"] is not None and compare["latency_p50_ms"]["added"] <= 10,
        "cpu_added_share_ok": share is not None and share <= 0.10,
        "cpu_added_share_ok_run_by_run": cpu.get("added_share_singles_paired") is not None
        and cpu["added_share_singles_paired"] <= 0.10,
        "cpu_added_share_ok_against_one_server": cpu.get("added_share") is not None and cpu["added_share"] <= 0.10,
        "all_calls_held": all(r["holds"] for rs in runs.values() for r in rs),
    }
    print(f"\nonset latency p50 single {compare['latency_p50_ms']['single']} ms, cluster "
          f"{compare['latency_p50_ms']['cluster']} ms (+{compare['latency_p50_ms']['added']}); p95 single "
          f"{compare['latency_p95_ms']['single']}, cluster {compare['latency_p95_ms']['cluster']} ms")
    print(f"CPU per call (nodes + services) single {cpu['single']}, cluster {cpu['cluster']} cores "
          f"({cpu.get('added_share')} added); {args.nodes} standalone servers {cpu.get('singles')} "
          f"({cpu.get('added_share_singles')} added; run by run {cpu.get('added_shares_paired')}, "
          f"median {cpu.get('added_share_singles_paired')})")
    print(json.dumps({"nodes": args.nodes, "calls": args.calls, "seconds": args.seconds, "repeats": args.repeats,
                      **bench_live.source_version(), "runs": runs, "compare": compare, "verdict": verdict}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

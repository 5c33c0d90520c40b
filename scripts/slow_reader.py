#!/usr/bin/env python3
"""A coach window that reads one indicator message every 2 s, for 2 minutes (issue 10).

Usage: scripts/slow_reader.py [--seconds 120] [--every 2]
Starts two real servers, one with a worker process behind the front and one running the calls
in the front itself, opens a session on each and reads its indicator stream with the test
suite's RawReader (no client-side queue, a 4 KB receive buffer; tests/test_indicators.py). For
each read: how far the message was behind the session clock. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]

import test_indicators  # noqa: E402
from liveserver import Server  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--every", type=float, default=2.0)
    args = p.parse_args()
    test_indicators.READ_EVERY = args.every
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        servers = {"through-front-and-worker": Server(Path(tmp) / "a", workers=1),
                   "one-process": Server(Path(tmp) / "b", workers=0)}

        def run(name: str, server: Server) -> None:
            sid, token, _ = server.new_session()
            got = test_indicators.slow_reader(server.url, sid, token, args.seconds)
            behind = test_indicators.lags(got)
            seqs = [m["seq"] for _, m in got]
            results[name] = {"reads": len(got), "behind_s_max": round(max(behind), 3),
                             "behind_s_last_30s_max": round(max(behind[-int(30 / args.every):]), 3),
                             "behind_s": [round(x, 2) for x in behind], "seq_increasing": seqs == sorted(set(seqs)),
                             "coalesced_events": sum(m.get("coalesced", 0) for _, m in got)}

        try:
            threads = [threading.Thread(target=run, args=item) for item in servers.items()]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            logs = {name: server.stop() for name, server in servers.items()}
    for name, r in results.items():
        print(f"{name:<26} reads {r['reads']}, behind max {r['behind_s_max']} s, in the last 30 s max "
              f"{r['behind_s_last_30s_max']} s; seq increasing: {r['seq_increasing']}")
    results["tracebacks"] = sum(log.count("Traceback") for log in logs.values())
    print(json.dumps({"seconds": args.seconds, "every_s": args.every, **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

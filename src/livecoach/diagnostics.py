"""Where a long-running process's memory goes, for an operator chasing growth.

With ``LIVECOACH_TRACEMALLOC=FOLDER`` in the environment, the front and each worker trace their
allocations (tracemalloc, 12 frames) and every ``INTERVAL_S`` write to ``FOLDER/memory-<pid>.txt``
the 30 places whose allocations grew most since the first minute. Tracing slows a process by
about a third: use it for a soak (scripts/soak.py), never in production.
"""

from __future__ import annotations

import os
import threading
import time
import tracemalloc
from pathlib import Path

_NOT_OURS = (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__))
"""Leave out what tracing itself allocates."""
INTERVAL_S = 60.0
WARM_UP_S = 60.0


def start_if_asked() -> None:
    folder = os.environ.get("LIVECOACH_TRACEMALLOC")
    if not folder:
        return
    tracemalloc.start(12)
    threading.Thread(target=_watch, args=(Path(folder),), daemon=True, name="memory-watch").start()


def _watch(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    time.sleep(WARM_UP_S)
    first = tracemalloc.take_snapshot().filter_traces(_NOT_OURS)
    started = time.time()
    while True:
        time.sleep(INTERVAL_S)
        now = tracemalloc.take_snapshot().filter_traces(_NOT_OURS)
        stats = now.compare_to(first, "traceback")
        lines = [f"{(time.time() - started) / 60:.1f} min after the first snapshot; traced now "
                 f"{tracemalloc.get_traced_memory()[0] / 2**20:.1f} MiB"]
        for stat in stats[:30]:
            lines.append(f"{stat.size_diff / 1024:+.0f} KiB in {stat.count_diff:+d} blocks")
            lines += [f"    {frame.filename}:{frame.lineno}" for frame in stat.traceback[-8:]]
        (folder / f"memory-{os.getpid()}.txt").write_text("\n".join(lines) + "\n")

"""Where a long-running process's memory goes, for an operator chasing growth.

Two switches, both environment variables naming a folder:

- ``LIVECOACH_HEAP=FOLDER``: the front and each worker append, every ``INTERVAL_S``, a line of
  their resident size, Python's count of allocated objects' blocks and the C heap's own account
  (glibc's ``mallinfo2``: bytes in use, bytes free inside the heap, bytes in mmapped blocks),
  with the resident size of what is mapped without a file, to ``FOLDER/heap-<pid>.txt``. It
  costs next to nothing, and tells a leak (in use grows) from a heap that holds freed memory
  (free grows, in use stays; heap.py gives it back every minute).
- ``LIVECOACH_TRACEMALLOC=FOLDER``: also trace Python's allocations (tracemalloc, 12 frames) and
  write to ``FOLDER/memory-<pid>.txt`` the 30 places whose allocations grew most since the first
  minute. Tracing slows a process by about a third and its own tables grow all along: use it for
  a soak (scripts/soak.py), never in production.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

from . import heap

_NOT_OURS = (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__))
"""Leave out what tracing itself allocates."""
INTERVAL_S = 60.0
WARM_UP_S = 60.0


def anonymous_mib() -> float | None:
    """Resident MiB of memory mapped without a file: the C heap, pymalloc's arenas (1 MiB each,
    merged by the kernel into larger mappings when adjacent), thread stacks and anything a
    library maps itself. The rest of the resident size is code and data of files."""
    try:
        text = Path("/proc/self/smaps").read_text()
    except OSError:
        return None
    total, anonymous = 0, False
    for line in text.splitlines():
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            anonymous = len(fields) < 6 or fields[5].startswith("[")
        elif fields[0] == "Rss:" and anonymous:
            total += int(fields[1])
    return total / 1024


def rss_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def start_if_asked() -> None:
    heap_folder = os.environ.get("LIVECOACH_HEAP")
    if heap_folder:
        threading.Thread(target=_watch_heap, args=(Path(heap_folder),), daemon=True, name="heap-watch").start()
    folder = os.environ.get("LIVECOACH_TRACEMALLOC")
    if folder:
        tracemalloc.start(12)
        threading.Thread(target=_watch, args=(Path(folder),), daemon=True, name="memory-watch").start()


def _watch_heap(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"heap-{os.getpid()}.txt"
    started = time.time()
    with path.open("a") as out:
        out.write("minutes rss_mib python_blocks anonymous_mib heap_in_use_mib heap_free_mib heap_mmapped_mib\n")
        while True:
            figures = heap.stats() or {}
            rss = rss_mib()
            out.write(" ".join([f"{(time.time() - started) / 60:.1f}", f"{rss or 0:.1f}", str(sys.getallocatedblocks()),
                                f"{anonymous_mib() or 0:.1f}",
                                *(f"{figures.get(k, 0):.2f}" for k in ("in_use", "free", "mmapped"))]) + "\n")
            out.flush()
            time.sleep(INTERVAL_S)


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

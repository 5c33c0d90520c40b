"""The C heap of a long-running server process: its own account, and giving back what it holds.

A live call frees and allocates in C all along (packets, decoded frames, numpy buffers, SQLite
pages) from the event loop and from helper threads. glibc keeps freed memory inside its heaps
for reuse, and memory freed in the middle of a heap is not returned on its own: over an hour of
calls the soak saw the heap's free part grow by megabytes while what the program had in use
stayed flat, and with it the resident size. Python's own allocator (pymalloc) does the same with
its 1 MiB arenas, which it returns only when every object in them is gone: a few long-lived
objects pin each one (the soak: Python's count of blocks flat, its arenas growing). So the
server's processes run with ``PYTHONMALLOC=malloc`` (``use_system_malloc``): Python's objects
then live in glibc's heap too, where trimming returns free memory page by page. ``start`` sets
the allocator up for a long-running server before any thread starts: two heaps instead of up to
sixteen (``M_ARENA_MAX``;
each thread that allocates gets a heap of its own, each fragmenting on its own), and blocks of
64 KiB or more mapped on their own and unmapped when freed (a fixed ``M_MMAP_THRESHOLD``:
glibc's default threshold rises after each such block is freed, after which big transient
buffers land in the heap and leave holes). Then it has glibc hand the free pages back
(``malloc_trim(0)``, which also releases whole free pages inside the heap) every minute, from a
thread of its own: a call of a few milliseconds that takes no Python lock. Without glibc it does
nothing. (It slows the growth, it does not stop it: the README's soak says what grows still.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
import time

M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # mallopt's parameters (malloc.h)
MMAP_THRESHOLD = 64 * 1024
ARENAS = 2
TRIM_INTERVAL_S = 60.0
"""How often the heap is trimmed; ``LIVECOACH_HEAP_TRIM_S`` overrides it (0: neither the set-up
nor the trimming, to measure without)."""


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (since 2.33): every field a size_t."""

    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


_LIBC = _libc()


def stats() -> dict[str, float] | None:
    """The C heap in MiB: ``in_use`` (allocated by the program), ``free`` (freed but kept by the
    allocator), ``mmapped`` (large blocks, given back when freed); None without glibc 2.33+."""
    fn = getattr(_LIBC, "mallinfo2", None)
    if fn is None:
        return None
    fn.restype = _MallInfo2
    info = fn()
    mib = 2**20
    return {"in_use": (info.uordblks + info.hblkhd) / mib, "free": info.fordblks / mib,
            "mmapped": info.hblkhd / mib}


def trim() -> bool:
    """Give the heap's free pages back to the system now; False where there is no glibc."""
    fn = getattr(_LIBC, "malloc_trim", None)
    if fn is None:
        return False
    fn.argtypes = [ctypes.c_size_t]
    fn(0)
    return True


_started = threading.Event()  # set by ``start``: the heap's care is on in this process


def after_big_job() -> None:
    """A job whose memory grows with a session's size has just finished (a call's review and
    figures kept as it ends): give its pages back now rather than at the next minute, so that the
    resident size falls back at once. Nothing when the heap's care is off (``start``)."""
    if _started.is_set():
        trim()


def _trim_interval() -> float:
    return float(os.environ.get("LIVECOACH_HEAP_TRIM_S", TRIM_INTERVAL_S))


def use_system_malloc(argv: list[str]) -> None:
    """Run this process again (same pid, same arguments: ``python -m livecoach ARGV``) with
    ``PYTHONMALLOC=malloc``, unless it already has it or ``LIVECOACH_HEAP_TRIM_S=0`` turns the
    heap's care off. Python reads the variable only at start, hence the exec; call it before
    anything else starts. The worker processes inherit the environment."""
    if os.environ.get("PYTHONMALLOC") or _trim_interval() <= 0:
        return
    os.environ["PYTHONMALLOC"] = "malloc"
    os.execv(sys.executable, [sys.executable, "-m", "livecoach", *argv])


def start() -> threading.Thread | None:
    """Set the allocator up (call it before starting threads) and trim every ``TRIM_INTERVAL_S``
    for as long as the process lives."""
    interval = _trim_interval()
    if interval <= 0 or getattr(_LIBC, "malloc_trim", None) is None:
        return None
    _LIBC.mallopt(M_ARENA_MAX, ARENAS)
    _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    _started.set()

    def run() -> None:
        while True:
            time.sleep(interval)
            trim()

    thread = threading.Thread(target=run, daemon=True, name="heap-trim")
    thread.start()
    return thread

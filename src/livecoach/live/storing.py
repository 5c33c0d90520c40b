"""What a live session keeps for the review, written without holding the event loop.

Timeline events and one indicator sample per second of session time are buffered and written in
batches from a worker thread every two seconds (``STORE_INTERVAL``), so that the loop never waits
for the database and a worker that dies loses at most about two seconds of the timeline.
The same exchange reads the coach's settings back, so that a change made in the sidebar reaches
the live call's nudge rules, and takes the call's recording rows (recordings/call.py). A nudge
is written at once: it is rare, and the coach may dismiss it as soon as it shows.

A process's calls share one exchange (``StoreExchange``): their exchanges fall due together, at
each turn of the wall clock's ``STORE_INTERVAL``, and what they hand in within ``GATHER_S`` goes
in one transaction from one worker thread. With two transactions a call (its timeline's, its
recording's) every two seconds, a process spent about 1.2 ms of CPU a call on PostgreSQL and
the database 0.4 ms; four calls together cost 0.4 and 0.2 ms a call (scripts/bench_exchange.py;
on SQLite 0.7 and 0.3 ms).

What was kept is also what a call opened again goes on from (``read_past``): after a killed worker
the session's clock, talk and timeline continue, with the time nobody was measured marked as a gap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..nudges import Nudge
from ..store import IndicatorSample, LiveRows, Store, StoredClock
from ..store.queries import RESUMED
from ..timeline import stored_segments

log = logging.getLogger(__name__)

STORE_INTERVAL = 2.0
"""Seconds (wall clock) between a call's store exchanges. Each turn is a transaction for the
process's calls (a few round trips on PostgreSQL) and a hop to a worker thread, whose Python
holds the interpreter lock the calls' event loop needs. A killed process loses up to a turn of
its timeline; its recordings' files (written every second) may hold up to a turn more audio than
their stored rows, and a call that goes on reads where they end (``read_past``). A turn a second
would halve what is lost, and costs a call about 0.15 ms of CPU a second more in its process
(scripts/bench_exchange.py --interval) and PostgreSQL 0.0055 cores against 0.003-0.004 at 12
calls on three nodes (scripts/bench_cluster.py, 2026-12-02): small, but the cluster's CPU a call
is at its target's edge (+10%), and its sets vary more than that (+3.8% to +13.8% at either
interval). The hard call of tests/test_live.py dropped as much audio as late either way (five
runs each)."""
GATHER_S = 0.1
"""How long an exchange waits for the other calls of its process: each call hands in its session's
and its recording's rows just after the same turn of the wall clock (live/call.py's recording
tick), so a longer wait (0.3 s, for the sessions' own ticks 0.25 s apart) would only delay what a
killed process keeps."""
MAX_GAP_S = 600.0
"""A call opened again goes on at most this long after its stored end: a killed worker's call is
back within seconds, but a session whose call is opened again hours or days later would
otherwise have a timeline that long (and tags past the API's one-week limit)."""


@dataclass(frozen=True)
class Past:
    """What earlier runs of a session's call stored, which a call opened again goes on from."""

    clock: StoredClock
    segments: dict[str, list[tuple[float, float]]]
    """Each participant's speech segments (seconds), as the ``speech`` events logged them."""
    present: tuple[str, ...]
    """Participants still in the call when the last run stopped (joined, never left): its
    process was killed."""

    def resume_at(self, wall: float) -> float:
        """The session time at wall time ``wall``: the stored clock run on over the time since
        (at most ``MAX_GAP_S`` past what is stored), and never before what is stored."""
        return max(self.clock.end, min(wall + self.clock.offset, self.clock.end + MAX_GAP_S))


def read_past(store: Store, session_id: str, recorded_until: Callable[[], float | None] | None = None) -> Past | None:
    """The session's stored past; None if its call never ran. ``recorded_until``: where the
    session's recordings that were still growing hold audio up to (recordings/call.py's), which
    a killed process's files may hold past its last rows: the past ends there if later."""
    clock = store.stored_clock(session_id)
    if clock is None:
        return None
    recorded = recorded_until() if recorded_until is not None else None
    if recorded is not None and recorded > clock.end:
        clock = clock._replace(end=recorded)
    events = store.events(session_id, ("speech", "joined", "left"))
    inside = {e["participant"]: e["kind"] == "joined" for e in events if e["kind"] in ("joined", "left")}
    return Past(clock, stored_segments(events), tuple(who for who, there in inside.items() if there))


class StoreExchange:
    """A process's live calls' exchanges with the store (see the module). Use it from the event loop."""

    def __init__(self, store: Store, gather_s: float = GATHER_S) -> None:
        self.store = store
        self.gather_s = gather_s
        self._waiting: list[tuple[LiveRows, asyncio.Future]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._writing: set[asyncio.Task] = set()

    async def submit(self, rows: LiveRows) -> dict | None:
        """Hand in one call's rows; once they are written, its coach's settings if it asked
        (``rows.settings``). Raises what the store raised. Rows handed in are written even if
        the caller stops waiting."""
        loop = asyncio.get_running_loop()
        written = loop.create_future()
        self._waiting.append((rows, written))
        if self._timer is None:
            self._timer = loop.call_later(self.gather_s, self._write_waiting)
        return await written

    def _write_waiting(self) -> None:
        self._timer = None
        batch, self._waiting = self._waiting, []
        task = asyncio.get_running_loop().create_task(self._write(batch))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    async def _write(self, batch: list[tuple[LiveRows, asyncio.Future]]) -> None:
        try:
            results = await asyncio.to_thread(self._exchange, [rows for rows, _ in batch])
        except Exception as err:  # no thread to run it in (the process is stopping)
            results = [err] * len(batch)
        for (rows, written), result in zip(batch, results):
            if written.done():
                continue
            if isinstance(result, Exception):
                written.set_exception(result)
            else:
                written.set_result(result.get(rows.session_id) if rows.settings else None)

    def _exchange(self, calls: list[LiveRows]) -> list[dict | Exception]:
        """In a worker thread: all calls in one transaction; should it fail, each call in its
        own, so that one call's rows the store refuses (its session deleted mid-call) cost no
        other call its rows."""
        try:
            return [self.store.exchange_live(calls)] * len(calls)
        except Exception as err:
            if len(calls) == 1:
                return [err]
        results: list[dict | Exception] = []
        for call in calls:
            try:
                results.append(self.store.exchange_live([call]))
            except Exception as err:
                results.append(err)
        return results


def exchange_slot(wall: float) -> int:
    """The turn of the wall clock an exchange at ``wall`` belongs to: a call exchanges once a turn."""
    return int(wall // STORE_INTERVAL)


class SessionWriter:
    """The store's side of one live session. Use it from the event loop."""

    def __init__(self, store: Store, session_id: str, on_settings: Callable[[dict], None],
                 wall_clock: Callable[[], float] = time.time, exchange: StoreExchange | None = None) -> None:
        """``exchange``: the process's, shared with its other calls; without it, one of its own
        that writes at once."""
        self.store = store
        self.session_id = session_id
        self._wall = wall_clock
        self._on_settings = on_settings
        self._store_exchange = exchange or StoreExchange(store, gather_s=0.0)
        self._events: list[tuple[float, float, str, str | None, dict]] = []  # not yet written
        self._samples: list[IndicatorSample] = []  # not yet written
        self._slot: int | None = None  # the wall clock's turn of the last exchange
        self._settings: dict | None = None  # the last read
        self._exchange: asyncio.Task | None = None

    def event(self, session_time: float, kind: str, participant: str | None, data: dict) -> None:
        self._events.append((self._wall(), session_time, kind, participant, data))

    def sample(self, sample: IndicatorSample) -> None:
        self._samples.append(sample)

    def nudge(self, nudge: Nudge) -> None:
        """Written now; the coach gets the nudge even if the database fails."""
        try:
            self.store.add_nudge(self.session_id, nudge.id, nudge.kind, nudge.text, nudge.session_time)
        except Exception:
            log.exception("session %s: nudge %s not stored", self.session_id, nudge.id)

    def resumed(self, past: Past, session_time: float) -> None:
        """Mark the gap from the past's end to ``session_time`` now, before any new join is
        logged: whoever was still in the call left at its start, and the clock resumed at its end."""
        wall, since = self._wall(), past.clock.end
        marks = [(wall, since, "left", role, {}) for role in past.present]
        marks.append((wall, session_time, RESUMED, None, {"since": since}))
        try:
            self.store.log_events(self.session_id, marks)
        except Exception:
            log.exception("session %s: the gap since %.3f s not marked", self.session_id, since)

    def exchange_if_due(self) -> None:
        """At once the first time, then at each turn of the wall clock's ``STORE_INTERVAL``."""
        if exchange_slot(self._wall()) == self._slot:
            return
        if self._exchange is None or self._exchange.done():
            self._exchange = asyncio.get_running_loop().create_task(self.exchange())

    async def exchange(self) -> None:
        """Write what is buffered and read the coach's settings (the process's exchange)."""
        self._slot = exchange_slot(self._wall())
        samples, self._samples = self._samples, []
        events, self._events = self._events, []
        try:
            settings = await self._store_exchange.submit(LiveRows(self.session_id, samples, events, settings=True))
        except Exception:  # the database is shared: a failed exchange must not end the call's analysis
            log.exception("session %s: store exchange failed (%d samples, %d events lost)",
                          self.session_id, len(samples), len(events))
            return
        if settings is not None and settings != self._settings:
            self._settings = settings
            self._on_settings(settings)

    async def close(self) -> None:
        """The last exchange, after any still running."""
        if self._exchange is not None:
            await self._exchange
        await self.exchange()

"""What a live session keeps for the review, written without holding the event loop.

Timeline events and one indicator sample per second of session time are buffered and written in
batches from a worker thread every two seconds (``STORE_INTERVAL``), so that the loop never
waits for the database and a worker that dies loses at most about two seconds of the timeline.
The same exchange reads the coach's settings back, so that a change made in the sidebar reaches
the live call's nudge rules. A nudge is written at once: it is rare, and the coach may dismiss it as soon
as it shows.

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
from ..store import IndicatorSample, Store, StoredClock
from ..store.queries import RESUMED
from ..timeline import stored_segments

log = logging.getLogger(__name__)

STORE_INTERVAL = 2.0
"""Seconds (wall clock) between the store exchanges. Each is a transaction (a few round trips on
PostgreSQL) and a hop to a worker thread, whose Python holds the interpreter lock the call's
event loop needs. Every second, it was a measurable part of what a cluster node costs a call
more than a single server (scripts/bench_cluster.py, README), for a second less of the timeline
lost when a process is killed."""
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


def read_past(store: Store, session_id: str) -> Past | None:
    """The session's stored past; None if its call never ran."""
    clock = store.stored_clock(session_id)
    if clock is None:
        return None
    events = store.events(session_id, ("speech", "joined", "left"))
    inside = {e["participant"]: e["kind"] == "joined" for e in events if e["kind"] in ("joined", "left")}
    return Past(clock, stored_segments(events), tuple(who for who, there in inside.items() if there))


class SessionWriter:
    """The store's side of one live session. Use it from the event loop."""

    def __init__(self, store: Store, session_id: str, clock: Callable[[], float],
                 on_settings: Callable[[dict], None], wall_clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.session_id = session_id
        self._clock = clock
        self._wall = wall_clock
        self._on_settings = on_settings
        self._events: list[tuple[float, float, str, str | None, dict]] = []  # not yet written
        self._samples: list[IndicatorSample] = []  # not yet written
        self._stored_at = float("-inf")  # wall clock of the last exchange
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
        if self._clock() - self._stored_at < STORE_INTERVAL:
            return
        if self._exchange is None or self._exchange.done():
            self._exchange = asyncio.get_running_loop().create_task(self.exchange())

    async def exchange(self) -> None:
        """Write what is buffered and read the coach's settings, in a worker thread."""
        self._stored_at = self._clock()
        samples, self._samples = self._samples, []
        events, self._events = self._events, []
        try:
            settings = await asyncio.to_thread(self._io, samples, events)
        except Exception:  # the database is shared: a failed exchange must not end the call's analysis
            log.exception("session %s: store exchange failed (%d samples, %d events lost)",
                          self.session_id, len(samples), len(events))
            return
        self._on_settings(settings)

    def _io(self, samples: list[IndicatorSample], events: list) -> dict:
        return self.store.exchange_live(self.session_id, samples, events)

    async def close(self) -> None:
        """The last exchange, after any still running."""
        if self._exchange is not None:
            await self._exchange
        await self.exchange()

"""Fan-out of a session's indicator messages to the coach's connections, never waiting for them.

Each subscriber keeps only the latest snapshot and a short queue of events: a slow or stalled
coach connection costs at most that much memory and never slows the analysis. The format is
documented in docs/indicators.md.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

MAX_PENDING_EVENTS = 64


class Subscriber:
    """One coach connection's mailbox."""

    def __init__(self) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_PENDING_EVENTS)
        self.snapshot: dict[str, Any] | None = None
        self.wake = asyncio.Event()
        self.dropped = 0

    def offer_event(self, message: dict[str, Any]) -> None:
        if len(self.events) == self.events.maxlen:
            self.dropped += 1
        self.events.append(message)
        self.wake.set()

    def offer_snapshot(self, message: dict[str, Any]) -> None:
        self.snapshot = message
        self.wake.set()

    async def next_batch(self) -> list[dict[str, Any]]:
        """Wait for something new; return the pending events, then the latest snapshot."""
        await self.wake.wait()
        self.wake.clear()
        batch = list(self.events)
        self.events.clear()
        if self.snapshot is not None:
            batch.append(self.snapshot)
            self.snapshot = None
        return batch


class IndicatorHub:
    """Numbers every message of a session and hands it to each subscriber."""

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        self.seq = 0

    def subscribe(self, first_snapshot: dict[str, Any] | None = None) -> Subscriber:
        """A new mailbox; ``first_snapshot`` goes to it at once, so a new window is never blank."""
        sub = Subscriber()
        self.subscribers.add(sub)
        if first_snapshot is not None:
            sub.offer_snapshot(self._stamp(first_snapshot))
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def event(self, message: dict[str, Any]) -> None:
        message = self._stamp(message)
        for sub in self.subscribers:
            sub.offer_event(message)

    def snapshot(self, message: dict[str, Any]) -> None:
        message = self._stamp(message)
        for sub in self.subscribers:
            sub.offer_snapshot(message)

    def _stamp(self, message: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        return {**message, "seq": self.seq}

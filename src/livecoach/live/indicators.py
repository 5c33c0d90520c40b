"""Fan-out of a session's indicator messages to the coach's connections, never waiting for them.

Each connection has a :class:`Mailbox`: the messages made for it and not yet sent, in the order
they were made. A connection that keeps up gets every message. One that falls behind (its bytes
have not left the server when the next message is due, see ``backpressure.py``) gets the newest
state instead of a backlog: a snapshot made while it is behind replaces everything still waiting,
since it carries the whole state those messages changed. So a slow or stalled coach connection
costs at most one snapshot and a short queue of events, never slows the analysis, and is never
more than a snapshot interval behind when it reads. Each connection numbers what it sends
itself (``seq``, without gaps); the format is documented in docs/indicators.md.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

MAX_PENDING_EVENTS = 64
"""Events kept for a connection that is behind before the oldest are dropped (a snapshot
replaces them all anyway, at least 4 times a second)."""

SNAPSHOT, EVENT, REPLY = "snapshot", "event", "reply"
"""What a message is to a mailbox: the whole state, a change, or an answer to the reader (a
pong, an error), which is never dropped."""


def kind_of(message: dict[str, Any]) -> str:
    kind = message.get("type")
    if kind == "snapshot":
        return SNAPSHOT
    return REPLY if kind in ("pong", "error") else EVENT


class Mailbox:
    """One coach connection's pending messages."""

    def __init__(self) -> None:
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._wake = asyncio.Event()
        self._closed = False
        self.behind = False
        """Set while the connection's last messages have not left: a new snapshot then replaces
        whatever is still waiting."""
        self.coalesced = 0  # events left out since the last message sent

    def offer(self, message: dict[str, Any]) -> None:
        kind = kind_of(message)
        if kind == SNAPSHOT:
            # An older snapshot waiting is out of date: it goes. Events go too if the connection
            # is behind: the snapshot carries the state they changed.
            dropped = (SNAPSHOT, EVENT) if self.behind else (SNAPSHOT,)
            self.coalesced += sum(k == EVENT for k, _ in self._pending) if self.behind else 0
            self._pending = [(k, m) for k, m in self._pending if k not in dropped]
        elif kind == EVENT and sum(k == EVENT for k, _ in self._pending) >= MAX_PENDING_EVENTS:
            oldest = next(i for i, (k, _) in enumerate(self._pending) if k == EVENT)
            del self._pending[oldest]
            self.coalesced += 1
        self._pending.append((kind, message))
        self._wake.set()

    def close(self) -> None:
        """No more messages: what is pending is still delivered."""
        self._closed = True
        self._wake.set()

    async def take(self) -> list[dict[str, Any]] | None:
        """Wait for messages; all pending ones, oldest first (None once closed and empty)."""
        while not self._pending:
            if self._closed:
                return None
            await self._wake.wait()
            self._wake.clear()
        batch = [m for _, m in self._pending]
        self._pending.clear()
        return batch


async def deliver(
    mailbox: Mailbox,
    send: Callable[[str], Awaitable[None]],
    drained: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Send what the mailbox gets, numbered for this connection, until it is closed.

    ``drained`` waits until what was sent has left (backpressure.py); while it waits, the mailbox
    is ``behind``. The first message after a coalescing says how many events were left out."""
    seq = 0
    while (batch := await mailbox.take()) is not None:
        for message in batch:
            seq += 1
            extra = {"seq": seq}
            if mailbox.coalesced:
                extra["coalesced"], mailbox.coalesced = mailbox.coalesced, 0
            await send(json.dumps({**message, **extra}))
        if drained is not None:
            mailbox.behind = True
            try:
                await drained()
            finally:
                mailbox.behind = False


class IndicatorHub:
    """Hands each message of a session to every coach connection's mailbox."""

    def __init__(self) -> None:
        self.subscribers: set[Mailbox] = set()

    def subscribe(self, first_snapshot: dict[str, Any] | None = None) -> Mailbox:
        """A new mailbox; ``first_snapshot`` goes to it at once, so a new window is never blank."""
        box = Mailbox()
        self.subscribers.add(box)
        if first_snapshot is not None:
            box.offer(first_snapshot)
        return box

    def unsubscribe(self, box: Mailbox) -> None:
        self.subscribers.discard(box)
        box.close()

    def event(self, message: dict[str, Any]) -> None:
        for box in self.subscribers:
            box.offer(message)

    def snapshot(self, message: dict[str, Any]) -> None:
        self.event(message)

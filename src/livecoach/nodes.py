"""Several servers (nodes) sharing one PostgreSQL database: the registry, which node owns each
session, and a node's drain when it is stopped (docs/deploy.md, "Several nodes").

- ``livecoach serve --node-url URL`` makes the server a node: it writes its row in the ``nodes``
  table when it starts and every ``HEARTBEAT_S`` after, with its load (the calls it holds, its
  machine's CPU load per core). A node whose row is older than ``ALIVE_S`` is dead (LiveKit's
  rule); a node that stops cleanly takes its row away. Heartbeats are written, and judged, by the
  database's clock (the nodes' own clocks play no part), on a connection of the registry's own
  that takes no turn behind the store's other writes (Store.node_heartbeat).
- A node's id is held by one process at a time: one started with the id of a live node (a
  heartbeat within ``ALIVE_S``, by another process) refuses to start (``NodeIdTaken``); one
  restarted after a crash takes its old row over once that row is dead.
- Each session has an owner, the node that runs its calls (``sessions.node_id``). It is chosen
  when the session is created, and again when the session is asked for while its owner is dead,
  or while its owner is draining and holds no call of it: the least-loaded live node gets it,
  under the session row's lock (``Store.assign_session``). It stays there while that node lives.
  When the registry has no live node at all (every heartbeat late: a stalled database), a session
  stays with its owner: nothing moves until some node is alive again.
- A node that still holds a call of a session the registry gave to another node (its heartbeats
  were late) says so in a warning, and goes on serving that session's requests itself while it
  holds the call, so that the call is not cut: ownership is not taken back (two nodes would take
  it from each other); once its call has ended the session is the other node's.
- SIGTERM drains a node (``Node.drain``): it is marked "draining" at once, gets no new sessions,
  keeps serving the calls it holds, and ends when the last has ended.

How requests reach the owner is node_routing.py. Without ``--node-url`` none of this exists: no
registry, no prefix, no redirect.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from .store import NodeRow, Store

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
"""How often a node writes its row."""
ALIVE_S = 5.0
"""A node whose last heartbeat is older than this is dead: its sessions go elsewhere when next asked for."""
DRAIN_POLL_S = 0.2
"""How often a draining node looks whether its calls have ended."""
NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A node's id: it is a path segment (``/n/<id>/``) and an HAProxy backend name."""
REGISTER_POLL_S = 0.25
"""How often a node starting with the id of a live row looks whether that row's heartbeats go on."""


class NodeError(Exception):
    """A node's URL or id that cannot be used (the message says why)."""


class NodeIdTaken(NodeError):
    """Another process runs as this node (its id's row has live heartbeats)."""


def node_identity(url: str, node_id: str | None = None) -> tuple[str, str]:
    """The node's URL as stored (``scheme://host[:port]``, no path) and its id: ``node_id`` if
    given, else one made from the URL's host and port (``http://10.0.0.5:8080``: ``10-0-0-5-8080``)."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username or parts.password:
        raise NodeError(f"--node-url is http(s)://HOST[:PORT], where the browsers or the proxy reach this node, "
                        f"not {url!r}")
    if node_id is None:
        port = port or (443 if parts.scheme == "https" else 80)
        node_id = re.sub(r"[^a-z0-9]+", "-", f"{parts.hostname}-{port}".lower()).strip("-")[:64]
    if not NODE_ID.fullmatch(node_id):
        raise NodeError(f"a node's id is 1 to 64 letters, digits, '-' or '_', not {node_id!r}")
    return f"{parts.scheme}://{parts.netloc}", node_id


def cpu_load() -> float | None:
    """The machine's load average over the last minute, per core (cheap: one system call)."""
    try:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return round(os.getloadavg()[0] / max(cores, 1), 3)
    except OSError:
        return None


class Node:
    """This server as a node: its registry row, the calls it holds, who owns a session."""

    def __init__(self, store: Store, node_id: str, url: str) -> None:
        self.store = store
        self.id = node_id
        self.url = url
        self.state = "live"
        self.instance = secrets.token_hex(8)
        """This process, in the registry: the id's row is held by one process at a time."""
        self.calls: dict[str, int] = {}
        """Signalling connections open on this node now, by session: its live calls."""
        self._registered = False
        self._held_elsewhere = False
        self._warned: set[tuple[str, str | None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._beating: asyncio.Task | None = None
        self._draining: asyncio.Task | None = None
        self._registry_thread = ThreadPoolExecutor(1, thread_name_prefix="node-registry")
        """The registry's writes run here, not in the loop's shared pool, where other work (a
        recording finished against a stalled bucket) could hold every thread for minutes and
        stop the heartbeats: the other nodes would take this one for dead."""

    # -- the registry ------------------------------------------------------------------------

    def register(self) -> None:
        """Write this node's row (blocking: before serving). NodeIdTaken when another process
        holds the id: a row of another instance whose heartbeats go on. A row whose heartbeats
        have stopped (this node's earlier run, crashed just now) is taken over once it is dead,
        within ``ALIVE_S``."""
        held = self.store.register_node(self.id, self.url, cpu_load(), self.instance, ALIVE_S)
        deadline = time.monotonic() + ALIVE_S + HEARTBEAT_S
        while held is not None:
            time.sleep(REGISTER_POLL_S)
            again = self.store.register_node(self.id, self.url, cpu_load(), self.instance, ALIVE_S)
            if again is not None and (again.heartbeat_at != held.heartbeat_at or time.monotonic() > deadline):
                raise NodeIdTaken(
                    f"another process is running as node {self.id} (at {again.url}, its last heartbeat "
                    f"{max(again.clock - again.heartbeat_at, 0.0):.1f} s ago): give this one another --node-id, "
                    "or stop that one first")
            held = again
        self._registered = True
        log.info("node %s registered at %s", self.id, self.url)

    def start(self) -> None:
        """Register, if ``register`` was not called yet, and start the heartbeat (from the event
        loop, before serving)."""
        self._loop = asyncio.get_running_loop()
        if not self._registered:
            self.register()
        self._beating = self._loop.create_task(self._beat())

    async def stop(self) -> None:
        """The node ends: no more heartbeats, and its row goes (its sessions move when next asked for)."""
        if self._beating is not None:
            self._beating.cancel()
            await asyncio.gather(self._beating, return_exceptions=True)
        try:
            await self._in_registry_thread(self.store.remove_node, self.id, self.instance)
        except Exception:
            log.exception("node %s: its row could not be removed (it is dead in %.0f s anyway)", self.id, ALIVE_S)
        self._registry_thread.shutdown(wait=False)

    async def _beat(self) -> None:
        while True:
            try:
                await self._in_registry_thread(self.heartbeat)
            except Exception:  # the database may be back at the next one; meanwhile others take us for dead
                log.exception("node %s: heartbeat failed", self.id)
            await asyncio.sleep(HEARTBEAT_S)

    async def _in_registry_thread(self, fn: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(self._registry_thread, fn, *args)

    def heartbeat(self) -> None:
        held = self.store.node_heartbeat(self.id, self.url, self.state, len(self.calls), cpu_load(), self.instance)
        if not held and not self._held_elsewhere:
            log.error("node %s: another process runs as node %s now (it started while this one's heartbeats "
                      "were late): this one's row is no longer written; stop one of them", self.id, self.id)
        self._held_elsewhere = not held

    def row(self) -> NodeRow:
        """This node as the registry has it (from memory)."""
        now = time.time()
        return NodeRow(self.id, self.url, self.state, len(self.calls), None, now, now)

    # -- calls -------------------------------------------------------------------------------

    def call_opened(self, session_id: str) -> None:
        self.calls[session_id] = self.calls.get(session_id, 0) + 1

    def call_closed(self, session_id: str) -> None:
        left = self.calls.get(session_id, 0) - 1
        if left > 0:
            self.calls[session_id] = left
        else:
            self.calls.pop(session_id, None)
            self._warned = {w for w in self._warned if w[0] != session_id}

    # -- ownership ---------------------------------------------------------------------------

    def owner(self, session_id: str) -> NodeRow | None:
        """The session's owner as the registry has it, dead or alive (None: none, or no such session)."""
        found = self.store.session_node(session_id)
        return found[1] if found else None

    def place(self, session_id: str) -> NodeRow | None:
        """The node that serves the session now, after moving it if it must move (see the
        module); None when there is no such session (this node answers that). Blocking: call it
        from a thread."""
        found = self.store.session_node(session_id)
        if found is None:
            return None
        owner_id, row = found
        if owner_id == self.id:
            if self.state == "draining" and session_id not in self.calls:
                moved = self.store.assign_session(session_id, ALIVE_S, exclude=self.id)
                if moved is not None and moved.id != self.id and moved.alive(ALIVE_S):
                    log.info("node %s (draining): session %s goes to node %s", self.id, session_id, moved.id)
                    return moved
            return self.row()
        if session_id in self.calls:  # given to another node while its call runs here (see the module)
            if owner_id is not None and (session_id, owner_id) not in self._warned:
                self._warned.add((session_id, owner_id))
                log.warning("node %s: session %s has a call here, but the registry gave it to node %s (this node's "
                            "heartbeats were late?): this node goes on serving it while the call lasts",
                            self.id, session_id, owner_id)
            return self.row()
        if row is not None and row.alive(ALIVE_S):
            return row
        moved = self.store.assign_session(session_id, ALIVE_S, exclude=self.id if self.state == "draining" else None)
        if moved is not None and moved.alive(ALIVE_S):
            if owner_id is not None:
                log.info("node %s: session %s of dead node %s goes to node %s", self.id, session_id, owner_id,
                         moved.id)
            return moved
        # No live node to take it (every heartbeat late: the database stalled?; or only this one,
        # draining): nothing moves. It stays with its owner; here only if it has none to send it to.
        return moved if moved is not None and moved.id != self.id else self.row()

    def assign_new(self, session_id: str) -> NodeRow:
        """A session just created gets its owner: the least-loaded live node (never a draining
        one); this node if the registry has none. Blocking."""
        chosen = self.store.assign_session(session_id, ALIVE_S, exclude=self.id if self.state == "draining" else None)
        return chosen if chosen is not None and chosen.alive(ALIVE_S) else self.row()

    # -- draining ----------------------------------------------------------------------------

    def drain(self, then: Callable[[], None]) -> None:
        """Stop taking new sessions, and call ``then`` once the calls held here have ended. Safe
        from a signal handler."""
        self.state = "draining"
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._start_drain, then)
        else:
            then()

    def _start_drain(self, then: Callable[[], None]) -> None:
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(self._drain(then))

    async def _drain(self, then: Callable[[], None]) -> None:
        print(f"livecoach: node {self.id} is draining: {len(self.calls)} calls go on, no new ones; "
              "it stops when they have ended", flush=True)
        try:
            await self._in_registry_thread(self.heartbeat)  # the others know at once
        except Exception:
            log.exception("node %s: its draining state could not be written", self.id)
        while self.calls:
            await asyncio.sleep(DRAIN_POLL_S)
        print(f"livecoach: node {self.id} has no call left: stopping", flush=True)
        then()

"""Knowing when a websocket's messages have been read, so that a slow reader is sent the newest
state rather than a growing backlog.

Sending on a websocket returns as soon as the bytes are handed to the transport: uvicorn buffers
up to 64 KiB before it waits, and the kernel's send buffer holds far more (megabytes on
loopback). A coach window that reads slowly therefore had two minutes of messages queued for it
inside the server. So after each batch the indicator stream sends a websocket ping and waits for
its pong before it sends again: RFC 6455 has the reader answer a ping when it reads it, which is
after the messages before it. One batch is thus in flight at a time, and what is made meanwhile
is coalesced (indicators.py): a reader is at most the snapshot interval plus its own read time
behind, and on a fast connection the wait is one round trip. The ping goes through uvicorn's
sans-I/O websocket protocol (``conn.send_ping``; its ``handle_pong`` is wrapped to hear our
pongs and pass on its own keepalive's).

Where that protocol is not there, the older way stands in: wait until the bytes are out of the
process, out of the kernel's queue of unsent bytes, and mostly read by the reader (its advertised
TCP window has reopened), polling every 20 ms (Linux ``TCP_INFO``). That leaves a reader behind
by what its kernel receive buffer holds. What a client library reads ahead into its own queue
(and answers pings for) is beyond the server's sight: docs/indicators.md says so.

The protocol and transport are reached through uvicorn's objects behind the ASGI ``send``
callable (pyproject.toml pins uvicorn to the range tests/test_indicators.py checks); where they
cannot be found, nothing waits and the stream behaves as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket

log = logging.getLogger(__name__)

POLL_S = 0.02
WINDOW_SLACK = 4096
"""Bytes the reader may hold unread (about two snapshots; half its window if that is smaller)
before the next message waits."""
WINDOW_WAIT_S = 4.0
PONG_WAIT_S = 4.0
"""A pong that has not come by then is given up on and the next batch goes: a reader that does
not answer pings then gets a message every so often instead of nothing."""


def protocol_of(ws: WebSocket) -> Any | None:
    """uvicorn's protocol object (the one holding the asyncio transport) under a starlette
    websocket, or None.

    ``ws._send`` is uvicorn's protocol's ``send`` method, or a function of starlette's (or a
    middleware's) that closes over it: a short search of bound methods and closures finds it."""
    todo: list[Any] = [getattr(ws, "_send", None)]
    for _ in range(16):
        if not todo:
            break
        obj = todo.pop(0)
        if isinstance(getattr(obj, "transport", None), asyncio.WriteTransport):
            return obj
        if hasattr(obj, "__self__"):
            todo.append(obj.__self__)
        todo += [cell.cell_contents for cell in getattr(obj, "__closure__", None) or () if _filled(cell)]
    return None


def transport_of(ws: WebSocket) -> asyncio.WriteTransport | None:
    """The asyncio transport under a starlette websocket served by uvicorn, or None."""
    protocol = protocol_of(ws)
    return None if protocol is None else protocol.transport


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:  # an empty cell
        return False
    return True


def tcp_queues(sock: Any) -> tuple[int, int] | None:
    """(bytes not yet sent, the peer's advertised receive window) of a TCP socket, from Linux's
    ``TCP_INFO`` (``tcpi_notsent_bytes``, ``tcpi_snd_wnd``); None where it is not there."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    except (OSError, AttributeError, ValueError):
        return None
    if len(info) < _TCP_INFO_SIZE:
        return None
    return struct.unpack_from("I", info, _NOTSENT)[0], struct.unpack_from("I", info, _SND_WND)[0]


_NOTSENT, _SND_WND, _TCP_INFO_SIZE = 144, 228, 232
"""Offsets in ``struct tcp_info`` (linux/tcp.h; tcpi_snd_wnd since Linux 5.4)."""


def unsent_bytes(transport: asyncio.WriteTransport) -> int:
    """Bytes written but not yet on the wire: the transport's buffer and the kernel's."""
    queues = tcp_queues(transport.get_extra_info("socket"))
    return transport.get_write_buffer_size() + (queues[0] if queues else 0)


def pong_waiter(ws: WebSocket) -> Callable[[], Awaitable[None]] | None:
    """A coroutine function that sends a ping on ``ws`` and returns when its pong has come (or
    after ``PONG_WAIT_S``, or when the connection closes). None: uvicorn's sans-I/O protocol,
    whose ``conn`` makes the ping and whose ``handle_pong`` hears the answer, is out of reach."""
    protocol = protocol_of(ws)
    conn = getattr(protocol, "conn", None)
    if not (callable(getattr(conn, "send_ping", None)) and callable(getattr(conn, "data_to_send", None))
            and callable(getattr(protocol, "handle_pong", None))):
        return None
    waiting: dict[bytes, asyncio.Future] = {}
    theirs = protocol.handle_pong

    def handle_pong(event: Any) -> None:
        future = waiting.pop(bytes(event.data), None)
        if future is None:
            theirs(event)  # uvicorn's keepalive ping
        elif not future.done():
            future.set_result(None)

    protocol.handle_pong = handle_pong  # an instance attribute: handle_events calls self.handle_pong
    transport = protocol.transport

    async def answered() -> None:
        loop = asyncio.get_running_loop()
        if transport.is_closing():
            return
        payload = os.urandom(4)
        try:
            conn.send_ping(payload)
        except Exception:  # the connection is closing: nothing to wait for
            return
        future = loop.create_future()
        waiting[payload] = future
        transport.write(b"".join(conn.data_to_send()))
        deadline = loop.time() + PONG_WAIT_S
        try:
            # a closed connection never answers: look again every half second
            while not future.done() and not transport.is_closing() and loop.time() < deadline:
                await asyncio.wait([future], timeout=min(0.5, deadline - loop.time()))
        finally:
            waiting.pop(payload, None)

    return answered


def drain_waiter(ws: WebSocket) -> Callable[[], Awaitable[None]] | None:
    """What the indicator stream waits on after each batch: its pong (``pong_waiter``) where
    uvicorn's protocol allows, else ``tcp_drain_waiter``."""
    return pong_waiter(ws) or tcp_drain_waiter(ws)


def tcp_drain_waiter(ws: WebSocket) -> Callable[[], Awaitable[None]] | None:
    """A coroutine function that returns once what was sent on ``ws`` has left the server and
    the reader has taken most of it: its advertised window is back within ``WINDOW_SLACK`` (or
    half) of the widest it has been (or, if its window stays narrow although nothing is left to send,
    after ``WINDOW_WAIT_S``: a receiver need not announce a reopened window at once). None: the
    transport is out of reach."""
    transport = transport_of(ws)
    if transport is None:
        log.warning("the indicator stream's transport is out of reach: a slow reader gets a backlog")
        return None
    first = tcp_queues(transport.get_extra_info("socket"))
    widest = first[1] if first else 0  # the reader's window before anything was sent

    async def drained() -> None:
        nonlocal widest
        sock = transport.get_extra_info("socket")
        sent_at: float | None = None
        while not transport.is_closing():
            queues = tcp_queues(sock)
            if queues is None:  # not Linux TCP: what our process holds is all we can see
                if transport.get_write_buffer_size() == 0:
                    return
            else:
                notsent, window = queues
                widest = max(widest, window)
                if transport.get_write_buffer_size() == 0 and notsent == 0:
                    now = time.monotonic()
                    sent_at = now if sent_at is None else sent_at
                    if window + min(WINDOW_SLACK, widest // 2) >= widest or now - sent_at >= WINDOW_WAIT_S:
                        return
            await asyncio.sleep(POLL_S)

    return drained

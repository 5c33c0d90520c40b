"""Knowing when a websocket's bytes have left, so that a slow reader is sent the newest state
rather than a growing backlog.

Sending on a websocket returns as soon as the bytes are handed to the transport: uvicorn buffers
up to 64 KiB before it waits, and the kernel's send buffer holds far more (megabytes on
loopback). A coach window that reads slowly therefore had two minutes of messages queued for it
inside the server. So after each batch the indicator stream waits until its bytes are out of the
process, out of the kernel's queue of unsent bytes, and mostly read by the reader (its
advertised TCP window has reopened), polling every 20 ms (Linux ``TCP_INFO``); what is made
meanwhile is coalesced (indicators.py). What a client library reads ahead into its own queue is
beyond the server's sight: docs/indicators.md says so.

The transport is reached through uvicorn's protocol object behind the ASGI ``send`` callable
(pyproject.toml pins uvicorn to the range tests/test_indicators.py checks); where it cannot be
found, nothing waits and the stream behaves as before.
"""

from __future__ import annotations

import asyncio
import logging
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


def transport_of(ws: WebSocket) -> asyncio.WriteTransport | None:
    """The asyncio transport under a starlette websocket served by uvicorn, or None.

    ``ws._send`` is uvicorn's protocol's ``send`` method, or a function of starlette's (or a
    middleware's) that closes over it: a short search of bound methods and closures finds it."""
    todo: list[Any] = [getattr(ws, "_send", None)]
    for _ in range(16):
        if not todo:
            break
        obj = todo.pop(0)
        transport = getattr(obj, "transport", None)
        if isinstance(transport, asyncio.WriteTransport):
            return transport
        if hasattr(obj, "__self__"):
            todo.append(obj.__self__)
        todo += [cell.cell_contents for cell in getattr(obj, "__closure__", None) or () if _filled(cell)]
    return None


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


def drain_waiter(ws: WebSocket) -> Callable[[], Awaitable[None]] | None:
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

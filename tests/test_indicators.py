"""The coach's indicator stream as a reader sees it: per-connection numbering without gaps, the
order messages were made in, and a slow reader that gets the newest state instead of a backlog,
through the front process and through a worker (docs/indicators.md)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from liveserver import Server, free_port
from livecoach.live.backpressure import pong_waiter, transport_of, unsent_bytes
from livecoach.live.indicators import Mailbox, deliver


# -- the mailbox and its delivery ------------------------------------------------------------


async def test_each_connection_numbers_its_own_messages_without_gaps():
    box = Mailbox()
    sent: list[dict] = []

    async def send(text: str) -> None:
        sent.append(json.loads(text))

    release = asyncio.Event()

    async def drained() -> None:  # the first batch stays "on the wire" until released
        await release.wait()

    task = asyncio.create_task(deliver(box, send, drained))
    box.offer({"type": "snapshot", "n": 0})
    await asyncio.sleep(0.01)
    assert box.behind  # waiting for the first message to leave
    for i in range(1, 30):  # made while the reader is behind: coalesced into the newest snapshot
        box.offer({"type": "speech", "n": i})
        box.offer({"type": "snapshot", "n": i})
    box.offer({"type": "pong", "id": 7})
    release.set()
    box.close()
    await asyncio.wait_for(task, 5)
    assert [m["seq"] for m in sent] == [1, 2, 3]
    assert [m["type"] for m in sent] == ["snapshot", "snapshot", "pong"]
    assert sent[1]["n"] == 29 and sent[1]["coalesced"] == 29  # the 29 events it stands for
    assert "coalesced" not in sent[2]


async def test_uvicorns_transport_is_found_and_its_unsent_bytes_counted_and_pings_answered():
    """backpressure.py reaches into uvicorn (pinned in pyproject.toml): this fails if a new
    uvicorn hides the transport or its protocol's ping and pong, instead of slow readers quietly
    getting backlogs again."""
    found: dict = {}

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        transport = transport_of(ws)
        found["transport"] = transport
        found["unsent"] = unsent_bytes(transport) if transport else None
        answered = pong_waiter(ws)
        found["pong_waiter"] = answered is not None
        await ws.send_text("ok")
        if answered is not None:
            loop = asyncio.get_running_loop()
            started = loop.time()
            await answered()  # the client library answers as it reads
            found["pong_after"] = loop.time() - started
        await ws.send_text("done")
        await ws.close()

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[WebSocketRoute("/ws", endpoint)]), port=port,
                                           host="127.0.0.1", log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(100):
            if server.started:
                break
            await asyncio.sleep(0.05)
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            assert await ws.recv() == "ok"
            assert await ws.recv() == "done"
        assert isinstance(found["transport"], asyncio.WriteTransport)
        assert found["unsent"] == 0
        assert found["pong_waiter"] and found["pong_after"] < 1.0  # the pong came, not the 4 s give-up
    finally:
        server.should_exit = True
        await serving


# -- slow readers against a real server ------------------------------------------------------

READ_EVERY = 2.0
SLOW_READ_SECONDS = 20.0  # scripts/slow_reader.py runs the 2-minute version


class RawReader:
    """A websocket client with no buffer of its own: the handshake by hand, then exactly one
    frame's bytes read from the socket when asked. So what is behind is what the server (and a
    small kernel receive buffer) kept, nothing a client library read ahead."""

    def __init__(self, url: str, path: str) -> None:
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1400)  # an Ethernet's, not loopback's 64 KiB
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Origin: {url.rstrip('/')}\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, message: dict) -> None:
        self.sock.sendall(self._frame(0x1, json.dumps(message).encode()))

    def _exactly(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            assert chunk, "the server closed the connection"
            out += chunk
        return out

    def _frame(self, opcode: int, data: bytes) -> bytes:
        mask = os.urandom(4)
        assert len(data) < 126
        return bytes([0x80 | opcode, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    def receive(self) -> dict:
        """The next text message; pings on the way are answered, as RFC 6455 asks."""
        while True:
            first, second = self._exactly(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack(">H", self._exactly(2))[0]
            elif size == 127:
                size = struct.unpack(">Q", self._exactly(8))[0]
            data = self._exactly(size)
            if first & 0x0F == 0x9:
                self.sock.sendall(self._frame(0xA, data))
                continue
            assert first & 0x0F == 0x1, first  # a text frame
            return json.loads(data)

    def close(self) -> None:
        self.sock.close()


def slow_reader(url: str, session: str, token: str, seconds: float) -> list[tuple[float, dict]]:
    """Reads one message every READ_EVERY seconds: what it reads, with when."""
    reader = RawReader(url, "/ws/indicators")
    try:
        reader.send({"type": "hello", "session": session, "token": token})
        got = [(time.time(), reader.receive())]
        end = time.time() + seconds
        while time.time() < end:
            time.sleep(READ_EVERY)
            got.append((time.time(), reader.receive()))
        return got
    finally:
        reader.close()


def lags(got: list[tuple[float, dict]]) -> list[float]:
    """How far behind the session clock each message was when read (0 for the first)."""
    t0, first = got[0]
    return [(t - t0) - (m["session_time"] - first["session_time"]) for t, m in got]


@pytest.fixture(scope="module")
def slow_reads(tmp_path_factory) -> dict[int, list[tuple[float, dict]]]:
    """What a slow reader read, per number of workers: the two servers read at the same time
    (their readers mostly sleep), so the suite waits once."""
    folder = tmp_path_factory.mktemp("slow-readers")
    servers = {workers: Server(folder / f"workers-{workers}", workers=workers) for workers in (1, 0)}
    try:
        sessions = {workers: server.new_session() for workers, server in servers.items()}
        with ThreadPoolExecutor(len(servers)) as pool:
            reads = {workers: pool.submit(slow_reader, servers[workers].url, sid, coach_token, SLOW_READ_SECONDS)
                     for workers, (sid, coach_token, _) in sessions.items()}
            got = {workers: read.result() for workers, read in reads.items()}
    finally:
        logs = [server.stop() for server in servers.values()]
    for log in logs:
        assert "Traceback" not in log, log
    return got


@pytest.mark.parametrize("workers", [1, 0], ids=["through-front-and-worker", "one-process"])
def test_a_reader_that_reads_every_2_s_stays_current(slow_reads, workers):
    got = slow_reads[workers]
    behind = lags(got)
    assert len(got) >= SLOW_READ_SECONDS / READ_EVERY - 2
    assert [m["seq"] for _, m in got] == sorted({m["seq"] for _, m in got})  # in order, never repeated
    # before backpressure the lag grew by ~1.9 s per 2 s read (121 s after 2 minutes): every
    # message was queued in the server. Waiting for the bytes to leave and the TCP window to
    # reopen left what the reader's 4 KB receive buffer holds: about 9 s. Now each batch waits
    # for its ping's pong, so a reader is at most the snapshot interval plus its read time behind.
    assert max(behind) <= 0.25 + READ_EVERY, behind
    third = len(behind) // 3
    assert max(behind[-third:]) <= max(behind[:-third]), behind  # and it does not grow

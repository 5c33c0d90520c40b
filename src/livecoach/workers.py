"""Calls spread over worker processes, so that one server uses every core.

One Python process stops near one core (the GIL), and a call's media path (SRTP, RTP, Opus
decoding, the tap, the engine) costs about 5% of one. So ``livecoach serve`` runs a *front*
process, which serves the pages and the HTTP API and owns no call, and ``--workers N`` worker
processes (default: one per core), each running the calls of the sessions given to it.

- The front listens on the public address. Each worker serves the same application on a
  loopback socket that the front opened and handed down.
- A websocket to ``/ws/signal`` or ``/ws/indicators`` is accepted by the front, which reads the
  first message (the hello), picks the session's worker and then passes every message through
  in both directions, unchanged. The worker validates everything, as it would alone.
- A session stays on its worker while the server runs: the worker holds its clock and its
  engine. A new session goes to the worker with the fewest connected sessions.
- Media does not pass through the front: each worker's WebRTC peers have their own UDP ports.
- A worker that dies is started again; its calls' browsers reconnect as after any drop, and
  each session's clock goes on from what the dead worker stored (live/storing.py).

``--workers 0`` runs the calls in the front process itself (one process, as small installs
and tests may prefer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from . import diagnostics, heap, jsontext
from .live.backpressure import drain_waiter
from .live.indicators import Mailbox, deliver
from .live.signalling import HELLO_TIMEOUT, payload
from .settings import Settings
from .store import Store

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0
"""Seconds before a dead worker is started again (a crash loop stays cheap)."""


@dataclass
class Worker:
    """One worker process and the loopback socket it serves on."""

    index: int
    sock: socket.socket
    proc: subprocess.Popen | None = None
    connections: dict[str, int] = field(default_factory=dict)
    """Connections open through this worker now, by session (a session with none is absent)."""
    started: int = 0

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class WorkerPool:
    """The front's worker processes, and which session runs on which."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.workers = [Worker(i, _listening_socket()) for i in range(count)]
        self._home: dict[str, Worker] = {}
        self._watcher: asyncio.Task | None = None

    def start(self) -> None:
        for worker in self.workers:
            self._spawn(worker)
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def _spawn(self, worker: Worker) -> None:
        fd = worker.sock.fileno()
        worker.proc = subprocess.Popen(
            [sys.executable, "-m", "livecoach.workers", "--fd", str(fd), "--index", str(worker.index)],
            pass_fds=[fd],
            env=os.environ | {"LIVECOACH_WORKER_SETTINGS": self.settings.to_json()},
        )
        worker.started += 1

    async def _watch(self) -> None:
        """Start again any worker that died."""
        while True:
            await asyncio.sleep(RESTART_DELAY)
            for worker in self.workers:
                if worker.proc is not None and not worker.alive:
                    log.error("worker %d (pid %d) ended with %s; starting it again",
                              worker.index, worker.proc.pid, worker.proc.returncode)
                    self._spawn(worker)

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        for worker in self.workers:
            if worker.alive:
                worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for worker in self.workers:
            while worker.alive and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if worker.alive:
                worker.proc.kill()
            if worker.proc is not None:
                worker.proc.wait()
            worker.sock.close()

    def worker_for(self, session_id: str | None) -> Worker:
        """The session's worker; a new session gets the one with the fewest sessions open."""
        if session_id is None:
            return self.workers[0]
        home = self._home.get(session_id)
        if home is None:
            home = min(self.workers, key=lambda w: (len(w.connections), w.index))
            self._home[session_id] = home
        return home

    @staticmethod
    def opened(worker: Worker, session_id: str) -> None:
        worker.connections[session_id] = worker.connections.get(session_id, 0) + 1

    @staticmethod
    def closed(worker: Worker, session_id: str) -> None:
        worker.connections[session_id] -= 1
        if worker.connections[session_id] == 0:
            del worker.connections[session_id]

    @property
    def running(self) -> bool:
        """Every worker's process runs: what the front knows without asking them (``/livez``)."""
        return all(w.alive for w in self.workers)

    async def health(self) -> dict[str, Any]:
        """Every worker's /healthz, summed: calls, server peer connections, and each worker."""
        reports = await asyncio.gather(*(_get_json(w.port, "/healthz") for w in self.workers))
        workers = [
            {"index": w.index, "pid": w.proc.pid if w.proc else None, "alive": w.alive and r is not None,
             "sessions_open": len(w.connections), "started": w.started, **(r or {})}
            for w, r in zip(self.workers, reports)
        ]
        for w in workers:
            w.pop("ok", None)
        return {
            "ok": all(w["alive"] for w in workers),
            "calls": sum(w.get("calls", 0) for w in workers),
            "peers": sum(w.get("peers", 0) for w in workers),
            "workers": workers,
        }

    async def proxy(self, ws: WebSocket, path: str, store: Store) -> None:
        """Pass a browser's websocket through to its session's worker, both ways, unchanged.

        Only sessions in the store get a home: any other hello goes to the first worker, which
        refuses it, so made-up session ids leave nothing behind here."""
        await ws.accept()
        try:
            first = await asyncio.wait_for(ws.receive(), HELLO_TIMEOUT)
        except TimeoutError:
            await _refuse(ws, "timeout", f"no hello within {HELLO_TIMEOUT:.0f} s")
            return
        if first["type"] == "websocket.disconnect":
            return
        data = payload(first)
        session_id = _session_of(data)
        if session_id is not None and store.get_session(session_id) is None:
            session_id = None
        worker = self.worker_for(session_id)
        if session_id is not None:
            self.opened(worker, session_id)  # at once: sessions arriving together spread out
        try:
            try:
                upstream = await connect(
                    f"ws://127.0.0.1:{worker.port}{path}", max_size=1 << 20, open_timeout=10,
                    ping_interval=None, compression=None,
                )
            except (OSError, InvalidHandshake, TimeoutError) as err:
                log.warning("worker %d unreachable: %s", worker.index, err)
                await _refuse(ws, "unavailable", "the call server is starting again; try again in a moment")
                return
            try:
                await upstream.send(data)
                await _pipe(ws, upstream, indicators=path == "/ws/indicators")
            finally:
                await upstream.close()
        finally:
            if session_id is not None:
                self.closed(worker, session_id)


async def _pipe(ws: WebSocket, upstream: ClientConnection, indicators: bool = False) -> None:
    """Messages both ways until either side ends; the other side is then closed too.

    The indicator stream is read from the worker as fast as it comes and goes to the browser
    through a mailbox (live/indicators.py), as the worker itself would send it: a slow coach
    window then gets the newest state from here too, not a backlog kept in this process."""

    async def down() -> None:
        with contextlib.suppress(ConnectionClosed):
            if indicators:
                await _indicators_down(ws, upstream)
            else:
                async for message in upstream:
                    if isinstance(message, bytes):
                        await ws.send_bytes(message)
                    else:
                        await ws.send_text(message)
        code = upstream.close_code
        if code in (None, 1005, 1006, 1015):  # the worker went away without a closing handshake
            code = 1012  # service restart: the browser reconnects
        if ws.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, OSError):
                await ws.close(code)

    async def up() -> None:
        while True:
            event = await ws.receive()
            if event["type"] == "websocket.disconnect":
                return
            await upstream.send(payload(event))

    tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except (WebSocketDisconnect, ConnectionClosed, RuntimeError, OSError):
        pass
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _indicators_down(ws: WebSocket, upstream: ClientConnection) -> None:
    box = Mailbox()
    sender = asyncio.get_running_loop().create_task(deliver(box, ws.send_text, drain_waiter(ws)))
    try:
        async for message in upstream:
            try:
                box.offer(json.loads(message))
            except (ValueError, TypeError, AttributeError):
                log.warning("a worker sent an indicator message that is not a JSON object")
    finally:
        box.close()
        await asyncio.wait([sender], timeout=1.0)  # what is pending (an error, say) still goes
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)  # a browser gone first is no error


def _session_of(data: str | bytes) -> str | None:
    """The session a hello names; None for anything else (the worker then says what is wrong)."""
    try:
        msg = jsontext.loads(data)
    except jsontext.BadJson:
        return None
    session = msg.get("session") if isinstance(msg, dict) else None
    return session if isinstance(session, str) and 0 < len(session) <= 64 else None


async def _refuse(ws: WebSocket, code: str, message: str) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await ws.send_text(json.dumps({"type": "error", "code": code, "message": message}))
        await ws.close()


async def _get_json(port: int, path: str, timeout: float = 2.0) -> dict | None:
    """A GET on a worker's loopback socket (HTTP/1.0, so the body ends with the connection)."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
                raw = await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return None
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _exit_with_parent(parent: int) -> None:
    """A worker whose front is gone (even killed) ends: nobody could reach its calls."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def worker_main(argv: list[str] | None = None) -> int:
    """``python -m livecoach.workers --fd N``: serve calls on the socket the front handed down."""
    import argparse

    import uvicorn

    from .app import create_app

    parser = argparse.ArgumentParser(prog="livecoach-worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--index", type=int, default=0)
    args = parser.parse_args(argv)
    settings = Settings.from_json(os.environ["LIVECOACH_WORKER_SETTINGS"])
    heap.start()  # before any thread
    diagnostics.start_if_asked()
    sock = socket.socket(fileno=args.fd)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True, name="parent-watch").start()
    app = create_app(settings, worker=True)
    config = uvicorn.Config(app, ws_max_size=1 << 20, ws_per_message_deflate=False, log_level="warning", lifespan="on",
                            loop="asyncio")  # as the front's (app.serve): --udp-ports needs asyncio's loop
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())

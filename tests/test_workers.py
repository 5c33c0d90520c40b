"""Calls spread over worker processes: routing by session, a worker's death, the front's death."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import websockets

from liveserver import Server, excerpt
from livecoach.live.ice import restrict_host_addresses
from livecoach.live.simpeer import IndicatorReader, SimPeer
from livecoach.settings import IceServer, Settings
from livecoach.workers import WorkerPool


@pytest.fixture(autouse=True)
def loopback_only():
    restrict_host_addresses(["127.0.0.1"])
    yield
    restrict_host_addresses([])


def running(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def until(predicate, timeout: float = 10.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(step)
    raise AssertionError("the condition did not come true in time")


def test_settings_reach_a_worker_unchanged_but_for_tls(tmp_path):
    settings = Settings(
        host="0.0.0.0", port=9000, data=tmp_path, tls_cert=tmp_path / "c.pem", tls_key=tmp_path / "k.pem",
        ice_servers=[IceServer(["stun:a:3478"]), IceServer(["turn:b:3478"], "u", "p")],
        ice_addresses=["127.0.0.1"], topology="relay", workers=3,
    )
    back = Settings.from_json(settings.to_json())
    assert back.tls_cert is None and back.tls_key is None  # the front terminates TLS
    assert back == Settings(**{**settings.__dict__, "tls_cert": None, "tls_key": None})


async def test_sessions_spread_over_workers_and_a_dead_worker_comes_back(tmp_path):
    server = Server(tmp_path / "data", workers=2)
    try:
        sessions = [server.new_session() for _ in range(4)]
        readers = [IndicatorReader(server.url, sid, coach) for sid, coach, _ in sessions]
        await asyncio.gather(*(reader.open() for reader in readers))  # arriving together, they still spread
        await until(lambda: all(r.latest() for r in readers))
        health = server.get("/healthz")
        assert [w["sessions_open"] for w in health["workers"]] == [2, 2]
        assert [w["calls"] for w in health["workers"]] == [2, 2]
        assert health["calls"] == 4 and health["ok"] is True
        victim = next(w for w in health["workers"] if w["index"] == 0)["pid"]

        # the same session's second connection goes to the same worker
        second = IndicatorReader(server.url, readers[0].session, readers[0].token)
        await second.open()
        await until(lambda: second.latest())
        assert [w["calls"] for w in server.get("/healthz")["workers"]] == [2, 2]
        readers.append(second)

        # kill a worker: its sessions' websockets close, the other worker's calls go on
        victim = health["workers"][0]["pid"]
        os.kill(victim, signal.SIGKILL)
        await until(lambda: len({r.session for r in readers if r._task.done()}) == 2)
        lost = [r for r in readers if r._task.done()]
        kept = [r for r in readers if not r._task.done()]
        assert all(r._ws.close_code == 1012 for r in lost)  # "service restart": a browser reconnects
        assert not {r.session for r in lost} & {r.session for r in kept}
        seq_before = kept[0].latest()["seq"]
        await until(lambda: kept[0].latest()["seq"] > seq_before + 4)

        def restarted():
            try:
                report = server.get("/healthz")
            except OSError:  # 503 while the worker is down
                return None
            return report if report["workers"][0]["started"] == 2 and report["ok"] else None

        report = await until(restarted, timeout=15)
        assert report["workers"][0]["pid"] != victim and not running(victim)

        # a lost session carries on in the new worker 0: the coach's stream and the client rejoin
        sid, coach_token, client_token = next(t for t in sessions if t[0] == lost[0].session)
        again = IndicatorReader(server.url, sid, coach_token)
        await again.open()
        client = SimPeer(server.url, sid, client_token, str(excerpt("clean", "client", 6, tmp_path)))
        await client.join()
        await client.server_connected()
        await until(lambda: (again.latest() or {}).get("participants", {}).get("client") == "connected")
        assert [w["sessions_open"] for w in server.get("/healthz")["workers"]] == [1, 2]
        await client.close()
        for reader in (*readers, again):
            await reader.close()
    finally:
        log = server.stop()
    assert log.count("Traceback") == 0, log


async def test_the_front_knows_whether_its_workers_run_without_asking_them(tmp_path):
    """``/livez`` (the proxy's check every two seconds) is the pool's ``running``: the workers'
    processes, looked at by the front alone."""
    pool = WorkerPool(Settings(data=tmp_path / "data"), 2)
    try:
        assert not pool.running  # not started yet
        for worker in pool.workers:
            worker.proc = subprocess.Popen(["sleep", "60"])
        assert pool.running
        pool.workers[1].proc.kill()
        pool.workers[1].proc.wait()
        assert not pool.running
    finally:
        await pool.stop()


async def test_a_worker_ends_when_its_server_is_killed(tmp_path):
    server = Server(tmp_path / "data", workers=2)
    try:
        pids = [w["pid"] for w in server.get("/healthz")["workers"]]
        assert all(running(pid) for pid in pids)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(5)
        await until(lambda: not any(running(pid) for pid in pids), timeout=10)
    finally:
        server.stop()


async def test_without_workers_the_server_runs_calls_itself(tmp_path):
    server = Server(tmp_path / "data", workers=0)
    try:
        health = server.get("/healthz")
        assert "workers" not in health and health["ok"] is True
        sid, coach_token, _ = server.new_session()
        async with websockets.connect(server.url.replace("http", "ws") + "/ws/signal") as ws:
            await ws.send(json.dumps({"type": "hello", "session": sid, "token": coach_token}))
            welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome" and welcome["role"] == "coach"
        assert server.get("/healthz")["calls"] == 1
    finally:
        server.stop()


async def test_a_hello_naming_no_session_is_refused_by_a_worker(tmp_path):
    server = Server(tmp_path / "data", workers=2)
    try:
        url = server.url.replace("http", "ws") + "/ws/signal"
        for first, code in [("not json", "bad-hello"), (json.dumps({"type": "hello", "session": "x" * 100, "token": "t"}),
                                                         "unknown-session")]:
            async with websockets.connect(url) as ws:
                await ws.send(first)
                msg = json.loads(await ws.recv())
                assert msg["type"] == "error" and msg["code"] == code
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
        assert server.get("/healthz")["peers"] == 0
    finally:
        server.stop()

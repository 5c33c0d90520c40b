"""A real livecoach server in a child process on a free loopback port, for the live tests."""

from __future__ import annotations

import asyncio
import atexit
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from conftest import track
from ports import free_port  # noqa: F401  (tests and scripts take it from here)
from livecoach.ingest import write_wav
from livecoach.live.ice import restrict_host_addresses
from livecoach.settings import DATABASE_FILE


ROOT = Path(__file__).resolve().parents[1]
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
"""Debian's HAProxy (scripts/test installs it; /usr/sbin may not be on a user's PATH)."""
needs_haproxy = pytest.mark.skipif(not Path(HAPROXY).exists(),
                                   reason="HAProxy is not installed (Debian: apt-get install haproxy; scripts/test installs it)")


def start_haproxy(folder: Path, nodes: dict[str, "Server"], timeout: float = 10.0) -> tuple[subprocess.Popen, str, Path]:
    """HAProxy in front of ``nodes`` with deploy/haproxy_config.py's configuration, once every
    node's health check passed through it: (the process, its address, its configuration file)."""
    port = free_port()
    config = folder / "haproxy.cfg"
    made = subprocess.run([sys.executable, str(ROOT / "deploy" / "haproxy_config.py"), "--listen",
                           f"127.0.0.1:{port}", *(f"{i}={n.url}" for i, n in nodes.items())],
                          capture_output=True, text=True, check=True)
    config.write_text(made.stdout)
    proxy = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                             stderr=open(folder / "haproxy.log", "w"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            for i in nodes:
                urllib.request.urlopen(f"{base}/n/{i}/healthz", timeout=2).close()  # an error status raises
            return proxy, base, config
        except OSError:
            pass
        if time.monotonic() > deadline:
            proxy.kill()
            raise RuntimeError(f"HAProxy did not pass every node's health check: {(folder / 'haproxy.log').read_text()[-2000:]}")
        time.sleep(0.1)


COACH_EMAIL = "coach@example.com"
COACH_PASSWORD = "a test coach's password"
COACH_NAME = "Test Coach"

_coach_database: Path | None = None
"""A database at the newest revision with the test coach's account, made at the first
``add_coach`` of the test session (migrating and hashing the password once, not once per server)
and copied into every new data folder."""


def add_coach(data: Path, email: str = COACH_EMAIL, password: str = COACH_PASSWORD, name: str = COACH_NAME) -> None:
    """A coach account in the data folder's database (kept if it is there already). The test
    coach in a folder with no database yet: a copy of ``_coach_database``, 0600 in a 0700 folder
    as the store makes them."""
    from livecoach.store import database as db

    data.mkdir(parents=True, exist_ok=True)
    path = data / DATABASE_FILE
    if (email, password, name) == (COACH_EMAIL, COACH_PASSWORD, COACH_NAME) and not path.exists():
        shutil.copyfile(_test_coach_database(), path)
        db.make_private(path)
        return
    _add_coach(path, email, password, name)


def _add_coach(path: Path, email: str, password: str, name: str) -> None:
    from livecoach import accounts
    from livecoach.store import CoachExists, Store

    store = Store(path)
    try:
        accounts.add_coach(store, email, name, password)
    except CoachExists:
        pass
    finally:
        store.close()


_coach_database_lock = threading.Lock()  # servers started in threads at once (``together``)


def _test_coach_database() -> Path:
    global _coach_database
    with _coach_database_lock:
        if _coach_database is None:
            folder = Path(tempfile.mkdtemp(prefix="livecoach-coach-"))
            atexit.register(shutil.rmtree, folder, True)
            path = folder / DATABASE_FILE
            _add_coach(path, COACH_EMAIL, COACH_PASSWORD, COACH_NAME)
            assert not path.with_name(f"{path.name}-wal").exists()  # all in the one file
            _coach_database = path
        return _coach_database


class Server:
    def __init__(self, data: Path, topology: str = "direct", workers: int | None = None,
                 prefix: list[str] | None = None, extra: list[str] | None = None, coach: bool = True,
                 port: int | None = None, log_name: str = "server.log") -> None:
        """``workers``: worker processes for the calls; None takes the server's default (one per core).
        ``prefix``: a command the server runs under (e.g. unshare, for a namespace of its own).
        ``extra``: more arguments of ``livecoach serve``. ``coach``: whether the data folder gets
        the test coach's account first (without: the server's first run). ``port``: where it
        listens (default: a free one); ``log_name``: its log's file in the data folder (several
        servers sharing a data folder: tests/test_cluster.py)."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data / log_name
        data.mkdir(parents=True, exist_ok=True)
        if coach:
            add_coach(data)
        self.cookie = ""  # the test coach's login, made at the first create_session
        self._out = open(self.log, "w")
        self.proc = subprocess.Popen(
            (prefix or []) + [sys.executable, "-m", "livecoach", "serve", "--port", str(self.port), "--data", str(data),
             "--ice-address", "127.0.0.1", "--topology", topology]
            + ([] if workers is None else ["--workers", str(workers)]) + (extra or []),
            stdout=self._out, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                self.get("/healthz")
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not start: {self.log.read_text()}")

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=5) as r:
            return json.loads(r.read())

    def create_session(self, video: bool = True) -> dict:
        """POST /api/sessions: {session, coach_url, client_url}, the links with their tokens.
        ``video``: whether the browsers record their cameras (two Chromiums encoding video twice
        over load a 2-core machine; runs that test something else leave it off)."""
        body = json.dumps({"video_recording": video}).encode()
        req = urllib.request.Request(self.url + "/api/sessions", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Cookie": self.login()})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def login(self, email: str = COACH_EMAIL, password: str = COACH_PASSWORD) -> str:
        """The ``Cookie`` header of the test coach's login (POST /api/login once)."""
        if not self.cookie:
            body = json.dumps({"email": email, "password": password}).encode()
            req = urllib.request.Request(self.url + "/api/login", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                self.cookie = r.headers["Set-Cookie"].split(";", 1)[0]
        return self.cookie

    def new_session(self) -> tuple[str, str, str]:
        """A session's id, the coach's token and the client's token."""
        s = self.create_session()
        return s["session"], s["coach_url"].split("#", 1)[1], s["client_url"].split("#", 1)[1]

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._out.close()
        return self.log.read_text()


def excerpt(name: str, who: str, seconds: float, folder: Path, start: float = 0.0) -> Path:
    """A fixture track cut to ``seconds`` and written as 16 kHz WAV (what the peer will play)."""
    audio = track(name, who)[int(start * 16000) : int((start + seconds) * 16000)]
    return write_wav(folder / f"{name}-{who}-{start:g}-{seconds:g}.wav", audio)


def together(folders: pytest.TempPathFactory, **scenarios: Callable[[Path], Awaitable[None]]) -> dict[str, BaseException | None]:
    """Run async test scenarios at the same moment in one event loop, each given a folder of its
    own, on loopback; returns what each raised (None: it held). Scenarios that mostly wait on
    real time (a call played at real speed, a killed worker's recordings going stale) share the
    wait, and the suite takes one scenario's time, not their sum. Each test then calls
    ``held`` on its own. A scenario must not block the loop, where the others' calls run: it
    starts its server (``asyncio.to_thread(Server, ...)``) and decodes files in a thread."""
    async def all_of() -> dict[str, BaseException | None]:
        names = list(scenarios)
        outcomes = await asyncio.gather(*(scenarios[name](folders.mktemp(name)) for name in names),
                                        return_exceptions=True)
        return dict(zip(names, outcomes))

    restrict_host_addresses(["127.0.0.1"])
    try:
        return asyncio.run(all_of())
    finally:
        restrict_host_addresses([])


def held(outcome: BaseException | None) -> None:
    """A scenario of ``together``: its failure raised again, with its own traceback."""
    if isinstance(outcome, BaseException):
        raise outcome

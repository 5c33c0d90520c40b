"""A real livecoach server in a child process on a free loopback port, for the live tests."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import track
from livecoach.ingest import write_wav


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


COACH_EMAIL = "coach@example.com"
COACH_PASSWORD = "a test coach's password"


def add_coach(data: Path, email: str = COACH_EMAIL, password: str = COACH_PASSWORD, name: str = "Test Coach") -> None:
    """A coach account in the data folder's database (kept if it is there already)."""
    from livecoach import accounts
    from livecoach.store import CoachExists, Store

    data.mkdir(parents=True, exist_ok=True)
    store = Store(data / "livecoach.sqlite3")
    try:
        accounts.add_coach(store, email, name, password)
    except CoachExists:
        pass
    finally:
        store.close()


class Server:
    def __init__(self, data: Path, topology: str = "direct", workers: int | None = None,
                 prefix: list[str] | None = None, extra: list[str] | None = None, coach: bool = True) -> None:
        """``workers``: worker processes for the calls; None takes the server's default (one per core).
        ``prefix``: a command the server runs under (e.g. unshare, for a namespace of its own).
        ``extra``: more arguments of ``livecoach serve``. ``coach``: whether the data folder gets
        the test coach's account first (without: the server's first run)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data / "server.log"
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

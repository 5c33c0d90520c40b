"""Several nodes sharing one PostgreSQL database (nodes.py, node_routing.py, docs/deploy.md).

Real processes: a throwaway PostgreSQL (tests/pg.py) and two or three ``livecoach serve
--node-url`` nodes on 127.0.0.1, each with a data folder of its own, as on separate hosts, and
one recordings folder (``--recordings``), as nodes on several machines share the database and
the recordings' storage. Calls are made by the project's simulated participants
(live/simpeer.py) with real WebRTC on loopback. One test goes through HAProxy (Debian's
haproxy) with a configuration made by deploy/haproxy_config.py.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import websockets

from browser_run import CHROMIUM
from liveserver import (COACH_EMAIL, COACH_NAME, COACH_PASSWORD, HAPROXY, Server, _add_coach, excerpt, free_port,
                        needs_haproxy, start_haproxy)
from livecoach.live.ice import restrict_host_addresses
from livecoach.live.simpeer import IndicatorReader, SimPeer
from livecoach.live.storing import STORE_INTERVAL
from livecoach.node_routing import MOVED

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def loopback_only():
    restrict_host_addresses(["127.0.0.1"])
    yield
    restrict_host_addresses([])


class Cluster:
    """Nodes on loopback sharing a PostgreSQL database and a recordings folder; each node has a
    data folder of its own (``data(id)``)."""

    def __init__(self, folder: Path, database: str) -> None:
        self.folder = folder
        self.database = database
        self.recordings = folder / "recordings"
        self.nodes: dict[str, Server] = {}
        self.cookie = ""

    def data(self, node_id: str) -> Path:
        return self.folder / f"node-{node_id}"

    def command(self, node_id: str, port: int) -> list[str]:
        """What ``livecoach serve`` is given besides its port and data folder."""
        return ["--database", self.database, "--recordings", str(self.recordings),
                "--node-url", f"http://127.0.0.1:{port}", "--node-id", node_id]

    def start(self, *ids: str, workers: int = 0) -> list[Server]:
        """Start nodes at once (each waits for its /healthz)."""
        def one(node_id: str) -> Server:
            port = free_port()
            return Server(self.data(node_id), workers=workers, coach=False, port=port, log_name=f"node-{node_id}.log",
                          extra=self.command(node_id, port))

        with ThreadPoolExecutor(len(ids)) as pool:
            started = list(pool.map(one, ids))
        self.nodes.update(zip(ids, started))
        return started

    def node_of(self, url: str) -> str:
        """The id of the node a link points at (``http://127.0.0.1:PORT/…``)."""
        return next(i for i, n in self.nodes.items() if url.startswith(n.url + "/"))

    def new_session(self, via: str) -> dict:
        """POST /api/sessions on node ``via``, as the test coach (logged in once, on any node)."""
        node = self.nodes[via]
        if not self.cookie:
            self.cookie = node.login()
        node.cookie = self.cookie
        return node.create_session(video=False)

    def stop(self) -> str:
        return "".join(n.stop() for n in self.nodes.values())


def _cluster(tmp_path: Path, postgresql, migrated_postgresql, coach: bool):
    database = postgresql.new_database(template=migrated_postgresql)
    if coach:
        _add_coach(database, COACH_EMAIL, COACH_PASSWORD, COACH_NAME)
    c = Cluster(tmp_path / "cluster", database)
    yield c
    logs = c.stop()
    postgresql.drop_database(database)
    assert "Traceback" not in logs, logs


@pytest.fixture
def cluster(tmp_path, postgresql, migrated_postgresql):
    """Nodes to start, on a database with the test coach's account."""
    yield from _cluster(tmp_path, postgresql, migrated_postgresql, coach=True)


@pytest.fixture
def new_cluster(tmp_path, postgresql, migrated_postgresql):
    """Nodes to start, on a database without a coach: the first run."""
    yield from _cluster(tmp_path, postgresql, migrated_postgresql, coach=False)


def fetch(base: str, path: str, method: str = "GET", headers: dict | None = None,
         body: dict | None = None) -> tuple[int, dict, bytes]:
    """One request, redirects not followed: (status, headers lower-cased, body)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    h = dict(headers or {})
    data = None
    if body is not None:
        data, h["Content-Type"] = json.dumps(body).encode(), "application/json"
    try:
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


async def first_message(url: str, session: str, token: str) -> tuple[dict, int | None, str]:
    """Open an indicator stream: its first message, and the close code and reason if it closed
    right after (None while it stays open)."""
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "hello", "session": session, "token": token}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        try:
            await asyncio.wait_for(ws.recv(), 1.0)
        except websockets.ConnectionClosed:
            return message, ws.close_code, ws.close_reason
        except TimeoutError:
            pass
        return message, None, ""


def listening_only(port: int, pid: int) -> bool:
    """Whether the process ``pid`` is now the only one listening on TCP ``port`` (by its
    sockets' inodes in /proc: no ``ss`` needed)."""
    inodes = set()
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(fields[9])
    if not inodes:
        return False
    mine = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            mine.add(target[len("socket:["):-1])
    return inodes <= mine


def tokens(created: dict) -> tuple[str, str, str]:
    return created["session"], created["coach_url"].split("#", 1)[1], created["client_url"].split("#", 1)[1]


async def start_call(node: Server, tmp_path: Path, session: str, coach_token: str, client_token: str,
                     seconds: float = 30) -> tuple[SimPeer, SimPeer]:
    files = {who: excerpt("clean", who, seconds, tmp_path) for who in ("coach", "client")}
    start = asyncio.Event()
    coach = SimPeer(node.url, session, coach_token, str(files["coach"]), start=start)
    client = SimPeer(node.url, session, client_token, str(files["client"]), start=start)
    welcomes = await asyncio.gather(coach.join(), client.join())
    assert [w["type"] for w in welcomes] == ["welcome", "welcome"], welcomes
    await asyncio.gather(coach.server_connected(), client.server_connected())
    start.set()
    return coach, client


async def test_sessions_spread_over_the_nodes_and_each_is_served_by_its_owner(cluster):
    cluster.start("a", "b", "c")
    created = [cluster.new_session(via="a") for _ in range(6)]
    owners = [cluster.node_of(s["coach_url"]) for s in created]
    assert Counter(owners) == {"a": 2, "b": 2, "c": 2}, owners  # consecutive new sessions spread
    assert all(cluster.node_of(s["client_url"]) == o for s, o in zip(created, owners))

    session, coach_token, _ = tokens(created[0])
    owner = cluster.nodes[owners[0]]
    other_id = next(i for i in cluster.nodes if i != owners[0])
    other = cluster.nodes[other_id]
    bearer = {"Authorization": f"Bearer {coach_token}"}
    # A page and an API request on the wrong node: 307 to the owner's own URL (no proxy here).
    status, headers, _ = fetch(other.url, f"/s/{session}/coach")
    assert (status, headers["location"]) == (307, f"{owner.url}/s/{session}/coach")
    status, headers, _ = fetch(other.url, f"/api/sessions/{session}/report?format=article", headers=bearer)
    assert (status, headers["location"]) == (307, f"{owner.url}/api/sessions/{session}/report?format=article")
    assert fetch(owner.url, f"/s/{session}/coach")[0] == 200
    assert fetch(owner.url, f"/api/sessions/{session}/tags", headers=bearer)[0] == 200
    # Under a node prefix, or with the proxy's header: 307 to the owner's prefix.
    status, headers, _ = fetch(other.url, f"/n/{other_id}/s/{session}/coach")
    assert (status, headers["location"]) == (307, f"/n/{owners[0]}/s/{session}/coach")
    status, headers, _ = fetch(other.url, f"/s/{session}/join", headers={"X-Livecoach-Proxy": "1"})
    assert (status, headers["location"]) == (307, f"/n/{owners[0]}/s/{session}/join")
    assert fetch(owner.url, f"/n/{owners[0]}/api/sessions/{session}/tags", headers=bearer)[0] == 200
    # The owner's prefix on another node: the proxy could not reach the owner, which the
    # registry still has alive. Sending it back would loop: try again in a moment.
    status, headers, _ = fetch(other.url, f"/n/{owners[0]}/s/{session}/coach")
    assert status == 503 and headers["retry-after"] == "1"
    # Store-only requests are served by any node; so are the pages' files.
    cookie = {"Cookie": cluster.cookie}
    assert fetch(other.url, "/api/library", headers=cookie)[0] == 200
    assert fetch(other.url, f"/n/{other_id}/static/js/node.js")[0] == 200
    # The indicator stream on the wrong node is told where to go, in a message and the close.
    ws_path = "/ws/indicators"
    message, code, reason = await first_message(other.url.replace("http", "ws") + ws_path, session, coach_token)
    assert (message["type"], message["code"], message["to"], code, reason) == (
        "error", "moved", owner.url, MOVED, owner.url)
    message, code, reason = await first_message(f"{other.url.replace('http', 'ws')}/n/{other_id}{ws_path}",
                                                session, coach_token)
    assert (message["code"], code, reason) == ("moved", MOVED, f"/n/{owners[0]}")
    message, code, _ = await first_message(owner.url.replace("http", "ws") + ws_path, session, coach_token)
    assert message["type"] == "snapshot" and code is None  # the owner passes the hello on
    # A session that does not exist is answered by the node asked.
    assert fetch(other.url, "/api/sessions/no-such-session/tags", headers=bearer)[0] in (401, 404)
    health = json.loads(fetch(owner.url, "/healthz")[2])
    assert health["node"] == {"id": owners[0], "state": "live", "calls": 0}


async def test_a_node_stopped_with_sigterm_keeps_its_call_and_stops_after_it(cluster, tmp_path):
    """SIGTERM: the node is draining at once. Its call goes on (this test's nodes run their calls
    in a worker process, as by default); its session that has no call, and every new session,
    go to the other node; once the call has ended the node stops, with status 0."""
    cluster.start("a", "b", workers=1)
    created = cluster.new_session(via="a")
    first, owner_id = tokens(created), cluster.node_of(created["coach_url"])
    draining = cluster.nodes[owner_id]
    live_id = next(i for i in cluster.nodes if i != owner_id)
    live = cluster.nodes[live_id]
    idle = None  # another session of the draining node, whose call has not started
    while idle is None:
        made = cluster.new_session(via=live_id)
        if cluster.node_of(made["coach_url"]) == owner_id:
            idle = made["session"]
    session, coach_token, client_token = first
    coach, client = await start_call(draining, tmp_path, session, coach_token, client_token)
    reader = IndicatorReader(draining.url, session, coach_token)
    await reader.open()
    try:
        await asyncio.sleep(2.0)
        draining.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.0)
        assert draining.proc.poll() is None
        health = json.loads(fetch(draining.url, "/healthz")[2])
        assert health["node"] == {"id": owner_id, "state": "draining", "calls": 1}
        # New sessions go to the live node, whichever node is asked.
        for via in (owner_id, live_id, owner_id):
            assert cluster.node_of(cluster.new_session(via=via)["coach_url"]) == live_id
        # The draining node's session without a call moves: asked for, it is the live node's.
        status, headers, _ = fetch(draining.url, f"/s/{idle}/coach")
        assert (status, headers["location"]) == (307, f"{live.url}/s/{idle}/coach")
        assert fetch(live.url, f"/s/{idle}/coach")[0] == 200
        # The call goes on there: its page, its analysis, its signalling.
        assert fetch(draining.url, f"/s/{session}/coach")[0] == 200
        before = reader.latest()["session_time"]
        await coach._send({"type": "ping", "id": "still-there"})
        await asyncio.sleep(2.0)
        assert reader.latest()["session_time"] >= before + 1.5
        assert {"type": "pong", "id": "still-there"} in coach.messages
        assert draining.proc.poll() is None
    finally:
        await reader.close()
        await asyncio.gather(coach.leave(), client.leave())
    ended = time.monotonic()
    code = await asyncio.to_thread(draining.proc.wait, 20)
    assert code == 0, draining.log.read_text()
    stopped_after = time.monotonic() - ended
    assert stopped_after < 10, stopped_after
    assert "has no call left: stopping" in draining.log.read_text()
    # Its row is gone: its sessions go to live nodes when next asked for.
    from livecoach.store import Store

    store = Store(cluster.database)
    try:
        assert [n.id for n in store.nodes()] == [live_id]
        # Its worker finished the call's recordings as it stopped.
        assert {r["state"] for r in store.recordings(session)} == {"finished"}
    finally:
        store.close()
    status, headers, _ = fetch(live.url, f"/s/{session}/review")
    assert status == 200


async def test_a_killed_nodes_session_goes_to_a_live_node_within_10_s_and_goes_on(cluster, tmp_path):
    """SIGKILL mid-call: asked for on the other node, the session is that node's within 10 s of
    the death. The coach's page rejoins there: the session's clock goes on from its stored
    timeline plus the time it was down (a ``resumed`` event marks the gap), and the tags
    acknowledged before the kill are all there."""
    from livecoach.store import Store
    from livecoach.store.queries import RESUMED

    cluster.start("a", "b")
    created = cluster.new_session(via="a")
    session, coach_token, client_token = tokens(created)
    owner_id = cluster.node_of(created["coach_url"])
    survivor_id = next(i for i in cluster.nodes if i != owner_id)
    doomed, survivor = cluster.nodes[owner_id], cluster.nodes[survivor_id]
    assert fetch(doomed.url, f"/s/{session}/coach")[0] == 200
    coach, client = await start_call(doomed, tmp_path, session, coach_token, client_token)
    reader = IndicatorReader(doomed.url, session, coach_token)
    await reader.open()
    bearer = {"Authorization": f"Bearer {coach_token}"}
    peers = [coach, client]
    try:
        await asyncio.sleep(4.0)
        acknowledged = []
        for i in range(2):
            tag_id = f"before-the-kill-{i}"
            status, _, body = await asyncio.to_thread(
                fetch, doomed.url, f"/api/sessions/{session}/tags/{tag_id}", "PUT", bearer,
                {"kind": "breakthrough", "label": "Breakthrough", "session_time": reader.latest()["session_time"]})
            assert status == 201, body
            acknowledged.append(tag_id)
        await asyncio.sleep(1.5)  # the timeline is stored about once a second
        last_seen = reader.latest()["session_time"]
        doomed.proc.kill()
        killed = time.monotonic()
        await asyncio.gather(reader.close(), *(p.close() for p in peers))
        # Asked for on the live node: first the owner is still alive in the registry (307 there),
        # then it is dead and the session is given to the live node (200).
        while True:
            status, _, _ = await asyncio.to_thread(fetch, survivor.url, f"/s/{session}/coach")
            if status == 200:
                break
            assert status == 307 and time.monotonic() - killed < 10
            await asyncio.sleep(0.2)
        moved_after = time.monotonic() - killed
        assert moved_after < 10, moved_after
        # The coach's page rejoins on the new owner.
        files = {who: excerpt("clean", who, 8, tmp_path, start=10) for who in ("coach", "client")}
        peers = [SimPeer(survivor.url, session, coach_token, str(files["coach"]))]
        welcome = await peers[0].join()
        rejoined = time.monotonic()
        assert welcome["type"] == "welcome", welcome
        gap = rejoined - killed
        # The clock went on over the time it was down (within 1.5 s: what the dead node had not
        # stored yet, and the time between the last snapshot and the kill).
        assert last_seen + gap - 1.5 <= welcome["session_time"] <= last_seen + gap + 1.5, (welcome, last_seen, gap)
        status, _, body = await asyncio.to_thread(fetch, survivor.url, f"/api/sessions/{session}/tags", "GET", bearer)
        assert status == 200 and {t["id"] for t in json.loads(body)["tags"]} >= set(acknowledged)
        store = Store(cluster.database)
        try:
            resumed = store.events(session, (RESUMED,))
            # What the dead node had not stored yet is lost: at most one exchange's worth, and
            # the time between the last snapshot and the kill.
            lost = STORE_INTERVAL + 0.5
            assert len(resumed) == 1 and last_seen - lost <= resumed[0]["since"] <= last_seen + 0.5, resumed
            # Both participants were still in the call when it stopped: they left at the gap's start.
            gap_start = [e for e in store.events(session, ("left",)) if e["session_time"] == resumed[0]["since"]]
            assert sorted(e["participant"] for e in gap_start) == ["client", "coach"], gap_start
            assert store.session_node(session)[0] == survivor_id
            # What the dead node recorded is kept (the recordings' rows are written every two seconds).
            assert all(r["bytes"] > 0 for r in store.recordings(session) if r["kind"] == "audio")
        finally:
            store.close()
    finally:
        await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)


@needs_haproxy
async def test_through_haproxy_requests_reach_the_owner_and_a_dead_nodes_prefix_moves(cluster, tmp_path):
    a, b = cluster.start("a", "b")
    proxy, base, config = start_haproxy(tmp_path, {"a": a, "b": b})
    proxies = [proxy]
    port = int(base.rsplit(":", 1)[1])
    try:
        status, headers, _ = fetch(base, "/api/login", "POST", body={"email": COACH_EMAIL, "password": COACH_PASSWORD})
        assert status == 200
        cookie = {"Cookie": headers["set-cookie"].split(";", 1)[0]}
        status, _, body = fetch(base, "/api/sessions", "POST", cookie, {"video_recording": False})
        created = json.loads(body)
        session, coach_token, _ = tokens(created)
        owner = created["coach_url"].split("/")[2]
        assert status == 201 and created["coach_url"].startswith(f"/n/{owner}/s/{session}/coach#")
        other = "b" if owner == "a" else "a"
        # Its prefix reaches the owner; without one, round-robin lands on either node, and the
        # other one redirects to the owner's prefix.
        assert fetch(base, f"/n/{owner}/s/{session}/coach")[0] == 200
        answers = {fetch(base, f"/s/{session}/coach")[:2][0] for _ in range(4)}
        assert answers == {200, 307}, answers
        status, headers, _ = fetch(base, f"/n/{other}/s/{session}/coach")
        assert (status, headers["location"]) == (307, f"/n/{owner}/s/{session}/coach")
        ws = base.replace("http", "ws")
        message, code, reason = await first_message(f"{ws}/n/{other}/ws/indicators", session, coach_token)
        assert (message["code"], code, reason) == ("moved", MOVED, f"/n/{owner}")
        message, code, _ = await first_message(f"{ws}/n/{owner}/ws/indicators", session, coach_token)
        assert message["type"] == "snapshot" and code is None
        # A reload (docs/deploy.md: `systemctl reload haproxy`): a new HAProxy takes the port and
        # the old one (-sf) stops listening but carries its connections to their end. An open
        # stream goes on through it; new requests reach the new one; the old ends with the stream.
        async with websockets.connect(f"{ws}/n/{owner}/ws/indicators") as stream:
            await stream.send(json.dumps({"type": "hello", "session": session, "token": coach_token}))
            seqs = [json.loads(await asyncio.wait_for(stream.recv(), 5))["seq"]]
            old, proxy = proxy, subprocess.Popen([HAPROXY, "-db", "-f", str(config), "-sf", str(proxy.pid)],
                                                 stdout=subprocess.DEVNULL, stderr=open(tmp_path / "haproxy-2.log", "w"))
            proxies.append(proxy)
            deadline = time.monotonic() + 10
            while not listening_only(port, proxy.pid):  # the old one has let go of the port
                assert time.monotonic() < deadline and proxy.poll() is None, (tmp_path / "haproxy-2.log").read_text()
                await asyncio.sleep(0.1)
            assert old.poll() is None  # still carrying the stream
            for _ in range(4):
                seqs.append(json.loads(await asyncio.wait_for(stream.recv(), 5))["seq"])
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            assert fetch(base, f"/n/{owner}/s/{session}/coach")[0] == 200
        old.wait(10)
        # The owner dies: HAProxy answers 502 or 503 until it has the node down (at the first
        # request that cannot connect, or after two failed checks: 4 s at most), then sends the prefix to the live node, which says "try again" (503) while
        # the registry has the owner alive, then takes the session and sends the page to its own
        # prefix, all within 10 s of the death.
        cluster.nodes[owner].proc.kill()
        killed = time.monotonic()
        seen = []
        while True:
            status, headers, _ = await asyncio.to_thread(fetch, base, f"/n/{owner}/s/{session}/coach")
            seen.append(status)
            if status == 307:
                break
            assert status in (502, 503) and time.monotonic() - killed < 10, seen
            await asyncio.sleep(0.2)
        assert headers["location"] == f"/n/{other}/s/{session}/coach"
        assert time.monotonic() - killed < 10
        assert fetch(base, f"/n/{other}/s/{session}/coach")[0] == 200
    finally:
        for running in proxies:
            running.terminate()
            running.wait(5)


@needs_haproxy
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_the_first_run_in_a_browser_through_haproxy(new_cluster, tmp_path):
    """An operator's first run through the proxy, in Chromium: the start page sends to the first
    run's page, the code one node printed makes the account whichever node takes the request,
    the login holds on every node (the start page loaded again and again, round-robin), and the
    new session's links are under its owner's prefix on the proxy's address, where the coach's
    page opens. No call: the browser runs here directly."""
    from playwright.sync_api import sync_playwright

    a, b = new_cluster.start("a", "b")
    printed = re.search(r"http://\S+/setup#(\S+)", a.log.read_text())
    assert printed, a.log.read_text()
    code = printed.group(1)
    proxy, base, _ = start_haproxy(tmp_path, {"a": a, "b": b})
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda err: errors.append(str(err)))
                page.goto(base + "/")
                page.wait_for_url(base + "/setup")
                page.goto(f"{base}/setup#{code}")
                assert page.get_by_test_id("setup-code").input_value() == code
                page.get_by_test_id("name").fill(COACH_NAME)
                page.get_by_test_id("email").fill(COACH_EMAIL)
                page.get_by_test_id("password").fill(COACH_PASSWORD)
                page.get_by_test_id("create-account").click()
                page.wait_for_url(base + "/")
                for _ in range(4):  # each load's requests go round-robin over both nodes
                    page.reload()
                    page.get_by_test_id("account").wait_for(state="visible")
                    assert page.get_by_test_id("coach-name").text_content() == COACH_NAME
                page.get_by_test_id("label").fill("Alex")
                page.get_by_test_id("new-session").click()
                page.get_by_test_id("created").wait_for(state="visible")
                client_link = page.get_by_test_id("client-link").input_value()
                coach_link = page.get_by_test_id("coach-link").input_value()
                owner = coach_link.removeprefix(base + "/n/").split("/", 1)[0]
                assert owner in ("a", "b") and coach_link.startswith(f"{base}/n/{owner}/s/"), coach_link
                assert client_link.startswith(f"{base}/n/{owner}/s/") and "/join#" in client_link, client_link
                page.goto(coach_link)
                page.get_by_test_id("join").wait_for(state="visible")
                assert page.url.startswith(f"{base}/n/{owner}/s/")
                assert errors == []
            finally:
                browser.close()
    finally:
        proxy.terminate()
        proxy.wait(5)
    # the account is in the shared database: no node asks for a first run any more
    for node in (a, b):
        assert json.loads(fetch(node.url, "/api/setup")[2]) == {"needed": False}


def test_the_setup_code_and_the_media_links_of_one_node_work_on_another(new_cluster):
    """Each node has its own data folder, as on separate hosts. The first run's code one node
    printed is taken by another (through a proxy, POST /api/setup lands on any node); a media
    link signed by a session's owner opens on the node the session moved to (the secret is kept
    in the database, not in a node's folder)."""
    from livecoach.store import Store

    a, b = new_cluster.start("a", "b")
    codes = {i: (new_cluster.data(i) / "setup-code").read_text().strip() for i in ("a", "b")}
    assert codes["a"] != codes["b"]
    account = {"email": COACH_EMAIL, "name": COACH_NAME, "password": COACH_PASSWORD}
    assert fetch(b.url, "/api/setup", "POST", body=account | {"code": "not-the-code"})[0] == 403
    status, headers, body = fetch(b.url, "/api/setup", "POST", body=account | {"code": codes["a"]})
    assert status == 201, body
    assert json.loads(fetch(a.url, "/api/setup")[2]) == {"needed": False}
    assert fetch(a.url, "/api/setup", "POST", body=account | {"code": codes["b"]})[0] == 409
    new_cluster.cookie = headers["set-cookie"].split(";", 1)[0]

    created = new_cluster.new_session(via="a")
    session, coach_token, _ = tokens(created)
    owner_id = new_cluster.node_of(created["coach_url"])
    owner = new_cluster.nodes[owner_id]
    other = next(n for i, n in new_cluster.nodes.items() if i != owner_id)
    media = b"\x1aE\xdf\xa3 the bytes of a recording"
    folder = new_cluster.recordings / session
    folder.mkdir(mode=0o700, parents=True)
    (folder / "coach-audio-1.webm").write_bytes(media)
    store = Store(new_cluster.database)
    try:
        store.create_recording(session, "coach-audio-1", "coach", "audio", "coach-audio-1.webm", "audio/webm", 0.0)
        store.update_recording(session, "coach-audio-1", state="finished", duration_s=1.0, bytes=len(media))
    finally:
        store.close()
    status, _, body = fetch(owner.url, f"/api/sessions/{session}/review", headers={"Authorization": f"Bearer {coach_token}"})
    assert status == 200, body
    link = json.loads(body)["recordings"][0]["url"]
    assert fetch(owner.url, link)[::2] == (200, media)
    owner.proc.send_signal(signal.SIGTERM)  # no call: it stops at once, and the session moves when next asked for
    assert owner.proc.wait(20) == 0
    assert fetch(other.url, link)[::2] == (200, media)
    assert not any((new_cluster.data(i) / "secret.key").exists() for i in ("a", "b"))


def test_a_second_process_with_a_live_nodes_id_refuses_to_start_and_a_restart_after_a_crash_starts(cluster):
    from livecoach.store import Store

    (first,) = cluster.start("a")
    port = free_port()
    second = subprocess.run([sys.executable, "-m", "livecoach", "serve", "--port", str(port),
                             "--data", str(cluster.data("a-again")), *cluster.command("a", port)],
                            capture_output=True, text=True, timeout=30)
    assert second.returncode != 0
    assert second.stderr.strip().splitlines() == [
        f"livecoach: another process is running as node a (at {first.url}, its last heartbeat "
        f"{second.stderr.split('its last heartbeat ')[1].split(' s ago')[0]} s ago): give this one another "
        "--node-id, or stop that one first"], second.stderr
    assert fetch(first.url, "/healthz")[0] == 200
    store = Store(cluster.database)
    try:
        assert [(n.id, n.url) for n in store.nodes()] == [("a", first.url)]
        # A crash leaves the row; the node started again at once takes it over once it is dead.
        first.proc.kill()
        first.proc.wait(10)
        first.stop()
        port = free_port()
        again = Server(cluster.data("a"), workers=0, coach=False, port=port, log_name="node-a-again.log",
                       extra=cluster.command("a", port))
        cluster.nodes["a"] = again
        assert [(n.id, n.url) for n in store.nodes()] == [("a", again.url)]
    finally:
        store.close()


def test_the_pages_use_the_prefix_they_were_loaded_under(tmp_path):
    """web/js/node.js and link.js, run by Node.js with a made-up ``location``."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    script = tmp_path / "check.mjs"
    script.write_text(f"""
const replaced = [];
const shown = [];
globalThis.location = {{ pathname: '/n/b-2/s/abc/coach', search: '?x=1', hash: '#tok',
                         replace: (url) => replaced.push(url) }};
globalThis.history = {{ state: null, replaceState: (state, title, url) => shown.push(url) }};
const node = await import('{(ROOT / "web/js/node.js").as_uri()}');
const link = await import('{(ROOT / "web/js/link.js").as_uri()}');
const out = {{
  prefix: node.nodePrefix(), page: node.pagePath, api: node.at('/api/sessions/abc'), link: link.readLink(),
  proxied: node.goToNode('/n/c'), api_after: node.at('/ws/signal'), prefix_after: node.nodePrefix(),
  direct: node.goToNode('https://node3.example.org:8443'),
  refused: [node.goToNode('/n/c/../x'), node.goToNode('javascript:alert(1)'), node.goToNode('')],
  replaced, shown,
}};
console.log(JSON.stringify(out));
""")
    done = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "prefix": "/n/b-2", "page": "/s/abc/coach", "api": "/n/b-2/api/sessions/abc",
        "link": {"session": "abc", "token": "tok"},
        # behind the same proxy the page stays and goes on under the new prefix; another origin is opened
        "proxied": "here", "api_after": "/n/c/ws/signal", "prefix_after": "/n/c", "direct": "away",
        "refused": [False, False, False],
        "shown": ["/n/c/s/abc/coach?x=1#tok"], "replaced": ["https://node3.example.org:8443/s/abc/coach?x=1#tok"],
    }


# -- the registry in the store, on both databases ----------------------------------------------


@pytest.fixture
def store(migrated_database):
    from livecoach.store import Store

    s = Store(migrated_database)
    yield s
    s.close()


def test_sessions_go_to_the_least_loaded_live_node_and_stay_while_it_lives(store):
    from livecoach.nodes import ALIVE_S

    for node_id in ("a", "b", "c"):
        store.register_node(node_id, f"http://{node_id}.example.org")
    store.node_heartbeat("c", "http://c.example.org", "live", 2, 0.5)  # c holds two calls
    sessions = [store.create_session().id for _ in range(4)]
    # Equal loads take turns (the one given a session longest ago first); the loaded one waits.
    assert [store.assign_session(s, ALIVE_S).id for s in sessions] == ["a", "b", "a", "b"]
    assert store.session_node(sessions[0])[0] == "a" and store.session_node("no-such-session") is None
    # A live owner keeps its session; excluded (it is draining), the session goes elsewhere.
    assert store.assign_session(sessions[0], ALIVE_S).id == "a"
    store.node_heartbeat("a", "http://a.example.org", "draining", 1, None)
    assert store.assign_session(sessions[0], ALIVE_S, exclude="a").id == "b"
    # A draining node gets no new session; a dead one (no heartbeat within ALIVE_S) neither,
    # and its sessions go to a live node.
    with store._transaction(write=True) as conn:  # b's last heartbeat 6 s ago
        from livecoach.store import queries as q

        conn.execute(q.UPDATE_NODE, {"node": "b", "heartbeat_at": time.time() - ALIVE_S - 1})
    assert store.assign_session(sessions[1], ALIVE_S).id == "c"
    assert store.assign_session(store.create_session().id, ALIVE_S).id == "c"
    # A node that stopped took its row away: its sessions have an owner with no row, then a new one.
    store.remove_node("c")
    assert store.session_node(sessions[1]) == ("c", None)
    assert store.assign_session(sessions[1], ALIVE_S) is None  # nobody live to take it: it stays
    assert [n.id for n in store.nodes()] == ["a", "b"]


def test_of_nodes_asking_at_once_one_takes_a_jobs_turn_and_the_next_turn_comes_after_every_s(migrated_database):
    """The retention purge (app.py) runs on one node an hour, not on each: eight processes ask
    at the same moment and one gets the turn; nobody gets it again until ``every_s`` has passed."""
    from livecoach.store import Store

    stores = [Store(migrated_database) for _ in range(8)]  # as eight processes have
    try:
        at_once = threading.Barrier(len(stores))

        def ask(store) -> bool:
            at_once.wait(10)
            return store.take_turn("purge", 3600)

        with ThreadPoolExecutor(len(stores)) as pool:
            assert sorted(pool.map(ask, stores)) == [False] * 7 + [True]
        assert not stores[0].take_turn("purge", 3600)
        assert stores[1].take_turn("another-job", 3600)  # each job its own turns
        time.sleep(0.05)
        assert stores[2].take_turn("purge", 0.01) and not stores[3].take_turn("purge", 3600)
    finally:
        for store in stores:
            store.close()


def test_sessions_made_within_a_millisecond_still_take_turns(store):
    """Equal loads take turns by when each node was last given a session; on SQLite the
    database's clock has a millisecond's resolution, and two sessions given within one went to
    the same node (2 in 300 in a row; test_sessions_go_to_the_least_loaded… failed so under
    load): each assignment is later than the last one. (Without that, 600 assignments here
    failed in 2 runs of 3: a tie is a matter of timing.) The nodes count as alive for the whole
    loop: on a slow machine 600 assignments on PostgreSQL outlasted ALIVE_S since the nodes'
    registration, and then no node was live (CI-like run: None instead of a node)."""
    for node_id in ("a", "b"):
        store.register_node(node_id, f"http://{node_id}.example.org")
    picks = [store.assign_session(store.create_session().id, 3600.0).id for _ in range(600)]
    assert [p for p, q in zip(picks, picks[1:]) if p == q] == []


def test_a_node_id_and_url_are_checked():
    from livecoach.nodes import NodeError, node_identity

    assert node_identity("http://10.0.0.5:8080/") == ("http://10.0.0.5:8080", "10-0-0-5-8080")
    assert node_identity("https://Node2.example.org", "n2") == ("https://Node2.example.org", "n2")
    assert node_identity("https://node2.example.org")[1] == "node2-example-org-443"
    for url, node_id in [("ftp://x", None), ("http://x/path", None), ("http://x:99999", None),
                         ("http://u:p@x", None), ("http://x", "no/slash"), ("http://x", "")]:
        with pytest.raises(NodeError):
            node_identity(url, node_id)


def stale(store, *node_ids: str) -> None:
    """The nodes' last heartbeats were more than ALIVE_S ago."""
    from livecoach.nodes import ALIVE_S
    from livecoach.store import queries as q

    long_ago = store.database_clock() - ALIVE_S - 1
    with store._transaction(write=True) as conn:
        for node_id in node_ids:
            conn.execute(q.UPDATE_NODE, {"node": node_id, "heartbeat_at": long_ago})


def test_heartbeats_are_written_and_judged_by_the_databases_clock(store, monkeypatch):
    """The nodes' own clocks play no part: a node whose clock is a minute slow is alive to one
    whose clock is a minute fast."""
    from livecoach.nodes import ALIVE_S, Node

    real = time.time
    session = store.create_session().id
    monkeypatch.setattr(time, "time", lambda: real() - 60)
    slow = Node(store, "a", "http://a.example.org")
    slow.register()
    slow.heartbeat()
    assert store.assign_session(session, ALIVE_S).id == "a"
    monkeypatch.setattr(time, "time", lambda: real() + 60)
    fast = Node(store, "b", "http://b.example.org")
    fast.register()
    assert fast.place(session).id == "a"
    assert store.session_node(session)[0] == "a"
    monkeypatch.undo()
    assert abs(store.node("a").heartbeat_at - time.time()) < 2


def test_with_no_live_node_a_session_stays_with_its_owner(store):
    """Every heartbeat late (a long write held the database up, say): nobody is alive by the
    registry, this node neither. A session is not served everywhere then: it is sent to its
    owner, and served where it is asked for only when it has none to be sent to."""
    from livecoach.nodes import ALIVE_S, Node

    for node_id in ("a", "b"):
        store.register_node(node_id, f"http://{node_id}.example.org")
    owned, unowned = store.create_session().id, store.create_session().id
    assert store.assign_session(owned, ALIVE_S).id == "a"
    stale(store, "a", "b")
    here = Node(store, "b", "http://b.example.org")
    placed = here.place(owned)
    assert (placed.id, placed.url) == ("a", "http://a.example.org")
    assert store.session_node(owned)[0] == "a"
    assert here.place(unowned).id == "b" and store.session_node(unowned)[0] is None
    store.remove_node("a")  # an owner that stopped: no row, no address to send the session to
    assert here.place(owned).id == "b"


def test_a_node_holding_a_call_of_a_session_given_to_another_says_so_and_goes_on_serving_it(store, caplog):
    from livecoach.nodes import ALIVE_S, Node

    a, b = Node(store, "a", "http://a.example.org"), Node(store, "b", "http://b.example.org")
    a.register()
    b.register()
    session = store.create_session().id
    assert store.assign_session(session, ALIVE_S).id == "a"
    a.call_opened(session)
    stale(store, "a")  # a's heartbeats were late: asked for on b, the session is b's
    assert b.place(session).id == "b"
    a.heartbeat()
    with caplog.at_level(logging.WARNING, logger="livecoach.nodes"):
        assert a.place(session).id == "a" and a.place(session).id == "a"  # its call goes on here
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and session in warnings[0] and "node b" in warnings[0], warnings
    assert store.session_node(session)[0] == "b"  # not taken back
    a.call_closed(session)
    assert a.place(session).id == "b"


def test_a_node_id_held_by_a_live_process_is_refused_and_a_dead_ones_is_taken_over(store):
    from livecoach.nodes import Node, NodeIdTaken

    first = Node(store, "a", "http://a.example.org")
    first.register()
    stop = threading.Event()

    def beating():
        while not stop.wait(0.2):
            first.heartbeat()

    beater = threading.Thread(target=beating)
    beater.start()
    try:
        second = Node(store, "a", "http://elsewhere.example.org")
        started = time.monotonic()
        with pytest.raises(NodeIdTaken, match="another process is running as node a"):
            second.register()
        assert time.monotonic() - started < 2
    finally:
        stop.set()
        beater.join()
    assert [(n.id, n.url) for n in store.nodes()] == [("a", "http://a.example.org")]
    # The first one crashed: its row is left. Started again, the node takes it over once it is dead.
    stale(store, "a")
    again = Node(store, "a", "http://a2.example.org")
    started = time.monotonic()
    again.register()
    assert time.monotonic() - started < 1
    assert [(n.id, n.url) for n in store.nodes()] == [("a", "http://a2.example.org")]
    # The first one, back, writes nothing over it; stopping, it does not take the row away.
    before = store.node("a").heartbeat_at
    first.heartbeat()
    store.remove_node("a", first.instance)
    assert store.node("a").heartbeat_at == before and store.node("a").url == "http://a2.example.org"
    again.heartbeat()
    assert store.node("a").heartbeat_at > before


def test_a_heartbeat_goes_through_while_a_long_write_holds_the_write_lock(postgresql, migrated_postgresql):
    """Another node's write holds the advisory write lock, and an operation of this process holds
    the store's connection, both for longer than ALIVE_S: the heartbeats go on, each at once, and
    to another node the node stays alive (its session stays)."""
    from livecoach.nodes import ALIVE_S, Node
    from livecoach.store import Store

    database = postgresql.new_database(template=migrated_postgresql)
    here, elsewhere, observer = Store(database), Store(database), Store(database)
    release = threading.Event()
    threads = []
    try:
        node, other = Node(here, "a", "http://a.example.org"), Node(observer, "b", "http://b.example.org")
        node.register()
        session = here.create_session().id
        assert here.assign_session(session, ALIVE_S).id == "a"
        other.register()
        holding = [threading.Event(), threading.Event()]

        def hold(store, write, held):
            with store._transaction(write=write):
                held.set()
                release.wait(ALIVE_S + 10)

        threads = [threading.Thread(target=hold, args=(elsewhere, True, holding[0])),
                   threading.Thread(target=hold, args=(here, False, holding[1]))]
        for t in threads:
            t.start()
        assert all(h.wait(5) for h in holding)
        started = time.monotonic()
        beats = []
        while time.monotonic() - started < ALIVE_S + 1:
            t0 = time.monotonic()
            node.heartbeat()
            assert time.monotonic() - t0 < 1.0
            beats.append(observer.node("a").heartbeat_at)
            assert other.place(session).id == "a"
            time.sleep(0.5)
        assert beats == sorted(beats) and beats[-1] - beats[0] >= ALIVE_S
    finally:
        release.set()
        for t in threads:
            t.join()
        for s in (here, elsewhere, observer):
            s.close()
        postgresql.drop_database(database)

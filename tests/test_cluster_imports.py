"""Imports and the review's media when several nodes serve behind the proxy (nodes.py,
node_routing.py, import_api.py, web/js/importer.js, web/js/review/load.js).

Two real ``livecoach serve --node-url`` nodes on 127.0.0.1 sharing one data folder (its SQLite
database, its recordings), as nodes share the database and the recordings' storage. ``Proxy``
routes as deploy/haproxy.cfg.in does: a path under ``/n/<node>/`` to that node, any other by
turns, each request with the ``X-Livecoach-Proxy`` header. An import lives in the memory of the
node that answered its POST, so its URLs must carry that node's prefix; its upload folder is
named after that node, so that another node's clean-up leaves it alone. The pages' side (the
import form's and the review's URLs under the prefix) runs in Node.js with a made-up ``location``.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from liveserver import Server, excerpt, free_port

ROOT = Path(__file__).resolve().parents[1]
HOUR = 3600.0


class Proxy:
    """HAProxy's routing, in the test: ``/n/<id>/…`` goes to node ``id``, the rest round-robin."""

    def __init__(self, nodes: dict[str, Server], cookie: str) -> None:
        self.nodes, self.cookie = nodes, cookie
        self._turns = itertools.cycle(sorted(nodes))

    def node_for(self, path: str) -> str:
        match = re.match(r"/n/([A-Za-z0-9_-]+)/", path)
        return match.group(1) if match else next(self._turns)

    def request(self, method: str, path: str, body: dict | None = None, raw: bytes | None = None,
                headers: dict | None = None, node: str | None = None) -> tuple[int, dict, bytes]:
        """(status, headers lower-cased, body) of one request, redirects not followed; ``node``:
        sent straight to that node (not through the proxy, so no proxy header)."""
        server = self.nodes[node or self.node_for(path)]
        sent = {"Cookie": self.cookie} | ({} if node else {"X-Livecoach-Proxy": "1"}) | (headers or {})
        data = raw
        if body is not None:
            data, sent["Content-Type"] = json.dumps(body).encode(), "application/json"
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.request(method, path, body=data, headers=sent)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: dict | None = None, raw: bytes | None = None, **kw):
        status, _, data = self.request(method, path, body, raw, **kw)
        return status, json.loads(data)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """Nodes "a" and "b" sharing a data folder, and the proxy in front of them."""
    data = tmp_path_factory.mktemp("data")
    started: dict[str, Server] = {}
    try:
        for node_id in ("a", "b"):  # one after the other: the first makes the database
            port = free_port()
            started[node_id] = Server(data, workers=0, port=port, log_name=f"node-{node_id}.log",
                                      extra=["--node-url", f"http://127.0.0.1:{port}", "--node-id", node_id])
        yield Proxy(started, started["a"].login()), data
    finally:
        logs = "".join(s.stop() for s in started.values())
    assert "Traceback" not in logs, logs


def announce(files: dict[str, Path]) -> dict:
    return {"label": "Alex", "layout": "tracks", "recorded_at": 1795000000.0,
            "files": {part: {"name": p.name, "size": p.stat().st_size} for part, p in files.items()}}


def test_an_imports_urls_carry_the_prefix_of_the_node_that_holds_it(nodes, tmp_path):
    proxy, _ = nodes
    files = {who: excerpt("clean", who, 4, tmp_path) for who in ("coach", "client")}
    # Through the proxy, under a node's prefix or not: the URLs name the node that answered.
    for path, node in [("/n/a/api/imports", "a"), ("/n/b/api/imports", "b")]:
        status, job = proxy.json("POST", path, announce(files))
        assert status == 201, job
        assert job["url"] == f"/n/{node}/api/imports/{job['import']}"
        assert job["upload"] == {part: f"/n/{node}/api/imports/{job['import']}/files/{part}" for part in files}
        assert proxy.json("DELETE", job["url"])[1]["state"] == "cancelled"
    # A node reached at its own address (no proxy): no prefix, its own address is the way back.
    status, job = proxy.json("POST", "/api/imports", announce(files), node="b")
    assert status == 201 and job["url"] == f"/api/imports/{job['import']}"
    assert job["upload"]["coach"] == f"/api/imports/{job['import']}/files/coach"
    assert proxy.json("DELETE", job["url"], node="b")[0] == 200

    # A whole import through the proxy, which balances the POST and every unprefixed request:
    # the files and the questions reach the node that holds the job.
    status, job = proxy.json("POST", "/api/imports", announce(files))
    assert status == 201
    holder = proxy.node_for(job["url"])
    other = next(n for n in proxy.nodes if n != holder)
    assert proxy.json("GET", f"/api/imports/{job['import']}", node=other)[0] == 404  # why the prefix is needed
    for part, path in files.items():
        status, answer = proxy.json("PUT", job["upload"][part], raw=path.read_bytes())
        assert status == 200 and answer["files"][part]["received"] == path.stat().st_size, answer
    deadline = time.monotonic() + 60
    while True:
        status, answer = proxy.json("GET", job["url"])
        assert status == 200, answer
        if answer["state"] in ("done", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, answer
        time.sleep(0.2)
    assert answer["state"] == "done", answer
    session, token = answer["session"], answer["review"].split("#", 1)[1]

    # The review's media links work under the prefix of the session's node (the signature is
    # checked on the path without it); without the prefix, the node that is not the owner
    # answers a redirect first: the extra round trip web/js/review/load.js saves.
    status, headers, body = proxy.request("GET", f"/api/sessions/{session}/review",
                                          headers={"Authorization": f"Bearer {token}"}, node=None)
    if status == 307:
        status, headers, body = proxy.request("GET", headers["location"], headers={"Authorization": f"Bearer {token}"})
    assert status == 200, body
    review = json.loads(body)
    status, headers, _ = proxy.request("GET", f"/api/sessions/{session}/review",
                                       headers={"Authorization": f"Bearer {token}"}, node="a")
    owner = "a" if status == 200 else "b"
    rec = review["recordings"][0]
    assert rec["url"].startswith(f"/media/{session}/")
    status, headers, part = proxy.request("GET", f"/n/{owner}{rec['url']}", headers={"Range": "bytes=0-99"})
    assert status == 206 and len(part) == 100 and headers["content-range"].startswith("bytes 0-99/")
    status, _, peaks = proxy.request("GET", f"/n/{owner}{rec['peaks_url']}")
    assert status == 200 and peaks
    not_owner = next(n for n in proxy.nodes if n != owner)
    status, headers, _ = proxy.request("GET", rec["url"], headers={"X-Livecoach-Proxy": "1"}, node=not_owner)
    assert status == 307 and headers["location"] == f"/n/{owner}{rec['url']}"


def test_a_nodes_clean_up_leaves_another_nodes_upload_folder_alone(nodes, tmp_path):
    """Upload folders are named after their node: a node removes the old ones it made and knows
    nothing of (left by its own stop), never another node's import waiting its turn."""
    proxy, data = nodes
    recordings = data / "recordings"
    files = {"stereo": excerpt("clean", "coach", 2, tmp_path)}
    body = announce(files) | {"layout": "stereo"}
    status, job = proxy.json("POST", "/n/a/api/imports", body)
    assert status == 201
    (queued,) = [p for p in recordings.iterdir() if re.fullmatch(r"upload-a-[0-9a-f]{16}", p.name)]
    leftovers = {name: recordings / name for name in (
        f"upload-b-{secrets.token_hex(8)}",  # b's own, from before it restarted: b removes it
        f"upload-a-{secrets.token_hex(8)}",  # a's, unknown to b: a removes it, b does not
        f"upload-{secrets.token_hex(8)}",  # no node's (a single server's): no node removes it
    )}
    old = time.time() - 2 * HOUR
    for folder in [queued, *leftovers.values()]:
        folder.mkdir(mode=0o700, exist_ok=True)
        os.utime(folder, (old, old))  # unchanged for two hours (a long queue)
    by_b = proxy.json("POST", "/n/b/api/imports", body)[1]  # an import on b: b's clean-up runs
    kept = {p.name for p in recordings.iterdir()}
    assert queued.name in kept, "node b removed node a's upload folder"
    assert [name for name in leftovers if name not in kept] == [next(iter(leftovers))]
    by_a = proxy.json("POST", "/n/a/api/imports", body)[1]  # and on a: a's leftover goes, its own job stays
    kept = {p.name for p in recordings.iterdir()}
    assert queued.name in kept and list(leftovers)[1] not in kept and list(leftovers)[2] in kept
    for made in (job, by_b, by_a):
        assert proxy.json("DELETE", made["url"])[1]["state"] == "cancelled"
    assert queued.name not in {p.name for p in recordings.iterdir()}
    shutil.rmtree(leftovers[list(leftovers)[2]])


def run_node(tmp_path: Path, pathname: str, body: str) -> dict:
    """``body`` (an async module's code that prints JSON) in Node.js, with ``location`` at ``pathname``."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    script = tmp_path / f"check-{secrets.token_hex(4)}.mjs"
    script.write_text(f"globalThis.location = {{ pathname: {json.dumps(pathname)}, search: '', hash: '#tok' }};\n"
                      f"const web = {json.dumps((ROOT / 'web').as_uri())};\n{body}")
    done = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


PAGES_JS = """
const { jobUrl } = await import(`${web}/js/importer.js`);
const { loadReview } = await import(`${web}/js/review/load.js`);
const { requestClip } = await import(`${web}/js/review/clips.js`);
const payload = { version: 1, session: { id: 'abc' }, segments: [], summary: {}, recordings: [
  { id: 'r1', url: '/media/abc/r1.webm?e=1&k=x', peaks_url: '/media/abc/r1.peaks?e=1&k=y' },
  { id: 'r2', url: null, peaks_url: null } ] };
const api = { get: async () => ({ ok: true, data: payload }),
              request: async () => ({ ok: true, status: 201, data: { url: '/media/abc/clip-audio-1.webm?e=1&k=z' } }) };
const loaded = await loadReview(api);
const clip = await requestClip(api, 't1', 'audio');
// The inline script of review.html, as the browser runs it while parsing the page.
const html = (await import('node:fs')).readFileSync(new URL(`${web}/review.html`), 'utf8');
const inline = /<script>([\\s\\S]*?)<\\/script>/.exec(html)[1];
const fetched = [];
globalThis.fetch = (url, init) => { fetched.push([url, init.headers]); return Promise.resolve({}); };
new Function(inline)();
console.log(JSON.stringify({
  job: jobUrl({ import: 'j1', url: '/n/a/api/imports/j1' }), oldJob: jobUrl({ import: 'j/1' }),
  recordings: loaded.data.recordings.map((r) => [r.url, r.peaks_url]), clip: clip.url,
  early: fetched, earlyPath: globalThis.livecoachEarly?.path ?? null,
}));
"""


@pytest.mark.parametrize("pathname, prefix", [("/n/b-2/s/abc/review", "/n/b-2"), ("/s/abc/review", "")])
def test_the_review_and_the_import_form_reach_the_node_of_their_urls(tmp_path, pathname, prefix):
    """The review's media links (load.js), its clips' (clips.js) and its early request (the
    inline script of review.html) go under the prefix the page was loaded under; the import form
    asks for its import where the server's answer said (importer.js)."""
    out = run_node(tmp_path, pathname, PAGES_JS)
    assert out == {
        "job": "/n/a/api/imports/j1", "oldJob": "/api/imports/j%2F1",
        "recordings": [[f"{prefix}/media/abc/r1.webm?e=1&k=x", f"{prefix}/media/abc/r1.peaks?e=1&k=y"], [None, None]],
        "clip": f"{prefix}/media/abc/clip-audio-1.webm?e=1&k=z",
        "early": [[f"{prefix}/api/sessions/abc/review", {"Authorization": "Bearer tok"}]], "earlyPath": pathname,
    }
    assert run_node(tmp_path, "/library", PAGES_JS)["early"] == []  # not a review page: nothing asked

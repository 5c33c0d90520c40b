"""The web files and pages as served (static.py): from memory, gzipped, revalidated, fresh after
an edit, never outside the folder; pages with a CSP that allows exactly their inline scripts."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import os
import re
import urllib.request
from pathlib import Path

import pytest

from livecoach.static import StaticFiles

from liveserver import Server

WEB = Path(__file__).resolve().parents[1] / "web"


def call(app, path: str, headers: dict[str, str] | None = None, method: str = "GET", root: str = "/static"):
    """One request to the ASGI app, as starlette's Mount passes it: (status, headers, body)."""
    scope = {"type": "http", "method": method, "path": root + path, "root_path": root,
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, body = sent[0], sent[1]
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body["body"]


@pytest.fixture
def folder(tmp_path):
    web = tmp_path / "web"
    (web / "js").mkdir(parents=True)
    (web / "js" / "a.js").write_text("export const a = 1;\n" * 100)
    (tmp_path / "secret.txt").write_text("not for the web")
    return web


def test_a_file_is_served_gzipped_with_its_type_and_revalidated(folder):
    app = StaticFiles(folder)
    status, headers, body = call(app, "/js/a.js", {"Accept-Encoding": "gzip, br"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == (folder / "js" / "a.js").read_bytes()
    assert headers["content-type"].startswith("text/javascript") and headers["cache-control"] == "no-cache"
    status, plain_headers, plain = call(app, "/js/a.js")
    assert status == 200 and "content-encoding" not in plain_headers and plain == (folder / "js" / "a.js").read_bytes()
    assert int(plain_headers["content-length"]) == len(plain)
    status, _, body = call(app, "/js/a.js", {"If-None-Match": headers["etag"]})
    assert (status, body) == (304, b"")
    status, _, body = call(app, "/js/a.js", method="HEAD")
    assert (status, body) == (200, b"")


def test_an_edited_file_is_served_as_it_is_now(folder):
    app = StaticFiles(folder)
    _, first_headers, _ = call(app, "/js/a.js")
    path = folder / "js" / "a.js"
    path.write_text("export const a = 2;\n")
    os.utime(path, ns=(path.stat().st_mtime_ns + 1_000_000, path.stat().st_mtime_ns + 1_000_000))
    status, headers, body = call(app, "/js/a.js", {"If-None-Match": first_headers["etag"]})
    assert status == 200 and body == b"export const a = 2;\n" and headers["etag"] != first_headers["etag"]


@pytest.mark.parametrize("path", ["/../secret.txt", "/js/../../secret.txt", "/js/a.js\x00", "/js", "/nothing.js",
                                  "/" + "/".join([".."] * 20) + "/etc/passwd"])
def test_nothing_outside_the_folder_or_missing_is_served(folder, path):
    status, _, body = call(StaticFiles(folder), path)
    assert status == 404 and b"not for the web" not in body


def test_a_link_out_of_the_folder_is_not_followed(folder):
    (folder / "js" / "out.txt").symlink_to(folder.parent / "secret.txt")
    assert call(StaticFiles(folder), "/js/out.txt")[0] == 404


def test_only_get_and_head(folder):
    assert call(StaticFiles(folder), "/js/a.js", method="POST")[0] == 405


def test_the_review_page_allows_its_inline_script_by_hash_and_nothing_else(tmp_path):
    server = Server(tmp_path / "data")
    try:
        session = server.create_session()
        with urllib.request.urlopen(f"{server.url}/s/{session['session']}/review") as res:
            html, csp = res.read(), res.headers["Content-Security-Policy"]
            assert res.headers["Cache-Control"] == "no-store"
        scripts = re.findall(rb"<script>(.*?)</script>", html, re.S)
        assert len(scripts) == 1
        digest = base64.b64encode(hashlib.sha256(scripts[0]).digest()).decode()
        sources = re.search(r"script-src ([^;]*)", csp).group(1).split()
        assert sources == ["'self'", f"'sha256-{digest}'"]
        assert "'unsafe-inline'" not in csp
        with urllib.request.urlopen(f"{server.url}/s/{session['session']}/coach") as res:
            assert re.search(r"script-src ([^;]*)", res.headers["Content-Security-Policy"]).group(1) == "'self'"
    finally:
        server.stop()

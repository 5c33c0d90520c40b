"""Who may do what on a running server (docs/security.md): coach accounts and their logins,
sessions only for a logged-in coach and only their own, the client's invite that expires and can
be revoked, and the findings of the attack on the server before accounts existed (each of these
tests fails on that server)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websockets

from liveserver import COACH_EMAIL, COACH_PASSWORD, Server, add_coach

OTHER_EMAIL, OTHER_PASSWORD = "other@example.com", "the other coach's password"


def call(server: Server, method: str, path: str, body=None, headers: dict | None = None,
         raw: bytes | None = None) -> tuple[int, dict, dict | None]:
    """(status, headers, JSON body or None) of one request; errors are answers too."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    sent = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(server.url + path, data=data, method=method, headers=sent | (headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            status, head, text = r.status, r.headers, r.read()
    except urllib.error.HTTPError as err:
        status, head, text = err.code, err.headers, err.read()
    try:
        return status, head, json.loads(text)
    except ValueError:
        return status, head, None


def login(server: Server, email: str, password: str) -> str:
    status, head, body = call(server, "POST", "/api/login", {"email": email, "password": password})
    assert status == 200, body
    return head["Set-Cookie"].split(";", 1)[0]


def code(answer) -> tuple[int, str | None]:
    status, _, body = answer
    return status, (body or {}).get("error", {}).get("code")


HEADER_TIMEOUT_S = 3.0
"""This module's server waits this long for a request's headers (15 s by default): the slowloris
test waits for it."""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("access")
    add_coach(data, OTHER_EMAIL, OTHER_PASSWORD, "Other Coach")
    srv = Server(data, extra=["--header-timeout", str(HEADER_TIMEOUT_S)])
    yield srv
    srv.stop()


@pytest.fixture
def mine(server):
    """A session of the test coach: (id, coach token, client token), and the coach's cookie."""
    cookie = login(server, COACH_EMAIL, COACH_PASSWORD)
    status, head, body = call(server, "POST", "/api/sessions", {"label": "Alex"}, {"Cookie": cookie})
    assert status == 201, body
    return body["session"], body["coach_url"].split("#")[1], body["client_url"].split("#")[1], cookie


# -- logging in -----------------------------------------------------------------------------


def test_only_a_logged_in_coach_creates_sessions(server):
    assert code(call(server, "POST", "/api/sessions", {})) == (401, "not-logged-in")
    cookie = login(server, COACH_EMAIL, COACH_PASSWORD)
    status, head, body = call(server, "POST", "/api/sessions", {}, {"Cookie": cookie})
    assert status == 201 and head["Cache-Control"] == "no-store"  # the answer carries both tokens


def test_the_login_cookie_is_httponly_samesite_and_not_secure_on_http(server):
    status, head, _ = call(server, "POST", "/api/login", {"email": COACH_EMAIL, "password": COACH_PASSWORD})
    attributes = {a.strip().split("=")[0].lower() for a in head["Set-Cookie"].split(";")[1:]}
    assert status == 200 and {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "samesite=lax" in head["Set-Cookie"].lower() and "secure" not in attributes


def test_a_wrong_password_or_email_is_refused_the_same_way(server):
    assert code(call(server, "POST", "/api/login", {"email": COACH_EMAIL, "password": "not it at all"})) == (
        401, "bad-login")
    assert code(call(server, "POST", "/api/login", {"email": "nobody@example.com", "password": "x" * 12})) == (
        401, "bad-login")


def test_failed_logins_are_rate_limited_per_email(server):
    email = "target@example.com"
    answers = [code(call(server, "POST", "/api/login", {"email": email, "password": f"guess {i}"}))
               for i in range(6)]
    assert answers[:5] == [(401, "bad-login")] * 5 and answers[5] == (429, "too-many-attempts")
    status, head, _ = call(server, "POST", "/api/login", {"email": email, "password": "guess"})
    assert status == 429 and int(head["Retry-After"]) > 0
    # Another coach is not locked out by it.
    assert login(server, OTHER_EMAIL, OTHER_PASSWORD)


def test_logout_ends_the_login_on_the_server(server):
    cookie = login(server, COACH_EMAIL, COACH_PASSWORD)
    assert call(server, "GET", "/api/me", headers={"Cookie": cookie})[0] == 200
    assert call(server, "POST", "/api/logout", {}, {"Cookie": cookie})[0] == 200
    assert code(call(server, "GET", "/api/me", headers={"Cookie": cookie})) == (401, "not-logged-in")
    assert code(call(server, "POST", "/api/sessions", {}, {"Cookie": cookie})) == (401, "not-logged-in")


def test_a_password_change_ends_the_other_logins(tmp_path):
    server = Server(tmp_path / "data")
    try:
        here, there = login(server, COACH_EMAIL, COACH_PASSWORD), login(server, COACH_EMAIL, COACH_PASSWORD)
        assert code(call(server, "POST", "/api/password", {"current": "wrong one!!", "new": "n" * 12},
                         {"Cookie": here})) == (403, "bad-password")
        assert code(call(server, "POST", "/api/password", {"current": COACH_PASSWORD, "new": "short"},
                         {"Cookie": here})) == (400, "bad-message")
        assert call(server, "POST", "/api/password", {"current": COACH_PASSWORD, "new": "a brand new one"},
                    {"Cookie": here})[0] == 200
        assert call(server, "GET", "/api/me", headers={"Cookie": here})[0] == 200
        assert call(server, "GET", "/api/me", headers={"Cookie": there})[0] == 401
        assert code(call(server, "POST", "/api/login", {"email": COACH_EMAIL, "password": COACH_PASSWORD})) == (
            401, "bad-login")
        assert login(server, COACH_EMAIL, "a brand new one")
    finally:
        server.stop()


# -- each coach their own -------------------------------------------------------------------


def test_a_coach_reaches_their_session_by_cookie_and_never_another_coachs(server, mine):
    session, coach_token, _, cookie = mine
    assert call(server, "GET", f"/api/sessions/{session}/tags", headers={"Cookie": cookie})[0] == 200
    other = login(server, OTHER_EMAIL, OTHER_PASSWORD)
    for method, path, body in [("GET", "/tags", None), ("GET", "/settings", None), ("GET", "/review", None),
                               ("PUT", "/settings", {"tag_lead_s": 0}), ("DELETE", "/invite", None),
                               ("PUT", "/tags/tag-00000001", {"kind": "k", "label": "K", "session_time": 1})]:
        assert code(call(server, method, f"/api/sessions/{session}{path}", body, {"Cookie": other})) == (
            403, "forbidden"), path
    # The coach link still works on its own (a second device of the coach).
    assert call(server, "GET", f"/api/sessions/{session}/tags",
                headers={"Authorization": f"Bearer {coach_token}"})[0] == 200


def test_settings_are_each_coachs_own(server, mine):
    session, _, _, cookie = mine
    other = login(server, OTHER_EMAIL, OTHER_PASSWORD)
    status, _, theirs = call(server, "POST", "/api/sessions", {}, {"Cookie": other})
    before = call(server, "GET", f"/api/sessions/{theirs['session']}/settings", headers={"Cookie": other})[2]
    settings = call(server, "GET", f"/api/sessions/{session}/settings", headers={"Cookie": cookie})[2]
    changed = settings | {"tag_kinds": [{"id": "mine", "label": "Mine"}]}
    assert call(server, "PUT", f"/api/sessions/{session}/settings", changed, {"Cookie": cookie})[0] == 200
    after = call(server, "GET", f"/api/sessions/{theirs['session']}/settings", headers={"Cookie": other})[2]
    assert after == before and after["tag_kinds"] != changed["tag_kinds"]


# -- the client's invite --------------------------------------------------------------------


def test_the_coach_revokes_the_invite_and_makes_a_new_one(server, mine):
    session, _, client_token, cookie = mine
    notice = f"/api/sessions/{session}/notice"
    assert call(server, "GET", notice, headers={"Authorization": f"Bearer {client_token}"})[0] == 200
    assert call(server, "DELETE", f"/api/sessions/{session}/invite", headers={"Cookie": cookie})[2] == {
        "active": False, "expires_at": None}
    assert call(server, "GET", notice, headers={"Authorization": f"Bearer {client_token}"})[0] == 401
    status, _, new = call(server, "POST", f"/api/sessions/{session}/invite", {}, {"Cookie": cookie})
    assert status == 201 and new["client_url"].startswith(f"/s/{session}/join#")
    token = new["client_url"].split("#")[1]
    assert call(server, "GET", notice, headers={"Authorization": f"Bearer {token}"})[0] == 200
    assert call(server, "GET", notice, headers={"Authorization": f"Bearer {client_token}"})[0] == 401
    # The client cannot do it themselves.
    assert code(call(server, "DELETE", f"/api/sessions/{session}/invite",
                     headers={"Authorization": f"Bearer {token}"})) == (403, "forbidden")


def test_the_invite_expires_after_the_calls_last_activity(tmp_path):
    server = Server(tmp_path / "data", extra=["--invite-hours", str(2 / 3600)])  # 2 s
    try:
        session, coach_token, client_token = server.new_session()
        notice = f"/api/sessions/{session}/notice"
        assert call(server, "GET", notice, headers={"Authorization": f"Bearer {client_token}"})[0] == 200
        status, _, invite = call(server, "GET", f"/api/sessions/{session}/invite",
                                 headers={"Authorization": f"Bearer {coach_token}"})
        assert invite["active"] and invite["expires_at"] <= time.time() + 2.5
        # the invite stops admitting the client within 2.5 s (a client's GET is no activity)
        deadline = time.time() + 2.5
        while call(server, "GET", notice, headers={"Authorization": f"Bearer {client_token}"})[0] == 200:
            if time.time() > deadline:
                break
            time.sleep(0.1)
        assert call(server, "GET", notice, headers={"Authorization": f"Bearer {client_token}"})[0] == 401
        assert call(server, "GET", notice, headers={"Authorization": f"Bearer {coach_token}"})[0] == 200
    finally:
        server.stop()


# -- the first run --------------------------------------------------------------------------


def test_the_first_run_needs_the_setup_code_and_happens_once(tmp_path):
    data = tmp_path / "data"
    server = Server(data, coach=False)
    try:
        assert call(server, "GET", "/api/setup")[2] == {"needed": True}
        assert "setup#" in server.log.read_text()
        setup_code = (data / "setup-code").read_text().strip()
        assert (data / "setup-code").stat().st_mode & 0o077 == 0
        account = {"email": "first@example.com", "name": "First", "password": "the first password"}
        assert code(call(server, "POST", "/api/setup", account | {"code": "guessed"})) == (403, "bad-code")
        assert code(call(server, "POST", "/api/sessions", {})) == (401, "not-logged-in")
        status, head, body = call(server, "POST", "/api/setup", account | {"code": setup_code})
        assert status == 201 and body["coach"]["email"] == "first@example.com"
        cookie = head["Set-Cookie"].split(";", 1)[0]
        assert call(server, "POST", "/api/sessions", {}, {"Cookie": cookie})[0] == 201
        assert code(call(server, "POST", "/api/setup", account | {"email": "second@example.com",
                                                               "code": setup_code})) == (409, "set-up")
        assert not (data / "setup-code").exists()
        assert call(server, "GET", "/api/setup")[2] == {"needed": False}
    finally:
        server.stop()


# -- the findings ---------------------------------------------------------------------------


def test_a_cross_site_request_is_refused_even_with_the_cookie(server):
    cookie = login(server, COACH_EMAIL, COACH_PASSWORD)
    assert code(call(server, "POST", "/api/sessions", {}, {"Cookie": cookie, "Origin": "https://evil.example"})) == (
        403, "bad-origin")
    # A text/plain form (the one kind of cross-site POST without a preflight) is not JSON to us.
    assert code(call(server, "POST", "/api/sessions", raw=b'{"label": "x"}',
                     headers={"Cookie": cookie, "Content-Type": "text/plain"})) == (415, "bad-media-type")
    assert call(server, "POST", "/api/sessions", {}, {"Cookie": cookie, "Origin": server.url})[0] == 201


def test_websockets_from_another_sites_page_are_refused(server, mine):
    session, coach_token, _, _ = mine
    ws_url = server.url.replace("http", "ws") + "/ws/indicators"

    async def hello(origin: str | None) -> dict:
        async with websockets.connect(ws_url, origin=origin) as ws:
            await ws.send(json.dumps({"type": "hello", "session": session, "token": coach_token}))
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    with pytest.raises(websockets.InvalidStatus):
        asyncio.run(hello("https://evil.example"))
    assert asyncio.run(hello(server.url))["type"] != "error"


def test_a_huge_body_is_refused_before_it_is_read(server):
    cookie = login(server, COACH_EMAIL, COACH_PASSWORD)
    huge = b'{"label": "' + b"x" * (50 * 1024 * 1024) + b'"}'
    started = time.monotonic()
    try:
        status = code(call(server, "POST", "/api/sessions", raw=huge, headers={"Cookie": cookie}))
    except (ConnectionError, urllib.error.URLError):
        status = (413, "too-big")  # the server answered and closed while the body was still going out
    assert status == (413, "too-big") and time.monotonic() - started < 10


def test_a_body_without_length_is_cut_off_at_the_limit(server):
    cookie = login(server, COACH_EMAIL, COACH_PASSWORD)
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Cookie: " + cookie.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 8192
        answer = b""
        try:
            for _ in range(64):
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass
        s.settimeout(10)
        try:
            while b"\r\n\r\n" not in answer:
                part = s.recv(4096)
                if not part:
                    break
                answer += part
        except OSError:
            pass
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


@pytest.mark.parametrize("body", [
    '{"tag_kinds": [{"id": "x", "label": "\\ud800"}]}',
    "[" * 5000 + "]" * 5000,  # within the body limit, 5000 deep
    '{"tag_lead_s": NaN}',
])
def test_bad_text_and_deep_json_get_a_clear_400_and_store_nothing(server, mine, body):
    session, _, _, cookie = mine
    before = call(server, "GET", f"/api/sessions/{session}/settings", headers={"Cookie": cookie})
    assert code(call(server, "PUT", f"/api/sessions/{session}/settings", raw=body.encode(),
                     headers={"Cookie": cookie})) == (400, "bad-message")
    after = call(server, "GET", f"/api/sessions/{session}/settings", headers={"Cookie": cookie})
    assert after[0] == 200 and after[2] == before[2]


def test_a_deep_or_broken_hello_gets_an_error_not_a_crash(server, mine):
    session, coach_token, _, _ = mine
    ws_url = server.url.replace("http", "ws") + "/ws/signal"

    async def send(text: str) -> dict:
        async with websockets.connect(ws_url) as ws:
            await ws.send(text)
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    for text in ["[" * 100_000 + "]" * 100_000, "[" * 10_000 + "]" * 10_000, '{"type": "hello", "session": "\\ud800", "token": "x"}']:
        answer = asyncio.run(send(text))
        assert answer["type"] == "error" and answer["code"] in ("bad-hello", "bad-message", "too-big"), answer


def asgi_get(app, path: str, client: str) -> tuple[int, dict]:
    """GET ``path`` from the app as if from ``client`` (an address), by the ASGI interface."""
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": b"", "headers": [(b"host", b"coach.example")], "client": (client, 50000),
             "server": ("127.0.0.1", 8080), "scheme": "http", "http_version": "1.1"}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


def test_healthz_says_only_up_or_down_to_anyone_else(tmp_path):
    """From another machine the health check says only whether the server is up; from this
    machine it also gives its calls and peers."""
    from livecoach.app import create_app
    from livecoach.settings import Settings

    app = create_app(Settings(data=tmp_path / "data"))
    assert asgi_get(app, "/healthz", "203.0.113.5") == (200, {"ok": True})
    status, details = asgi_get(app, "/healthz", "127.0.0.1")
    assert status == 200 and details == {"ok": True, "calls": 0, "peers": 0}
    # the proxy's check (deploy/haproxy.cfg.in): up or down only, to anyone
    assert asgi_get(app, "/livez", "203.0.113.5") == (200, {"ok": True})
    assert asgi_get(app, "/livez", "127.0.0.1") == (200, {"ok": True})


def test_unfinished_headers_do_not_hold_a_connection(server):
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the end of the head
        started = time.monotonic()
        s.settimeout(30)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
        assert HEADER_TIMEOUT_S - 0.5 < time.monotonic() - started < HEADER_TIMEOUT_S + 7


def test_the_header_timeout_is_15_s_unless_set(monkeypatch):
    import argparse

    from livecoach.settings import add_server_arguments, settings_from

    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    assert settings_from(parser.parse_args([])).header_timeout_s == 15.0
    monkeypatch.setenv("LIVECOACH_HEADER_TIMEOUT", "4")
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    assert settings_from(parser.parse_args([])).header_timeout_s == 4.0


def test_a_rejoin_adds_no_consent_row(server, mine):
    from livecoach.store import Store

    session, coach_token, _, _ = mine
    ws_url = server.url.replace("http", "ws") + "/ws/signal"

    async def join_and_leave() -> None:
        async with websockets.connect(ws_url) as ws:
            await ws.send(json.dumps({"type": "hello", "session": session, "token": coach_token}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "welcome"

    for _ in range(3):
        asyncio.run(join_and_leave())
    store = Store(Path(server.log).parent / "livecoach.sqlite3")
    try:
        assert [role for role, _, _ in store.consents(session)] == ["coach"]
    finally:
        store.close()

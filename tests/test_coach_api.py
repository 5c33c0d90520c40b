"""The sidebar's HTTP API (docs/sidebar.md) on a real server in a thread, over a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware

from liveserver import free_port
from livecoach.coach_api import coach_routes
from livecoach.coach_settings import DEFAULTS
from livecoach.guards import Guards
from livecoach.store import Store

TAG = {"kind": "breakthrough", "label": "Breakthrough", "session_time": 312.4, "clicked_at": 317.4, "note": ""}


class ThreadServer:
    """uvicorn serving ``app`` on a free loopback port, from a thread of this process."""

    def __init__(self, app) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        port = int(self.url.rsplit(":", 1)[1])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Client:
    def __init__(self, url: str, session: str, token: str | None) -> None:
        self.url, self.session, self.token = url, session, token

    def call(self, method: str, path: str, body=None, raw: bytes | None = None, token: str | None = ...):
        """(status, decoded JSON body) of a request to ``/api/sessions/<session><path>``."""
        token = self.token if token is ... else token
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
        req = urllib.request.Request(f"{self.url}/api/sessions/{self.session}{path}", data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "db.sqlite3")
    yield s
    s.close()


@pytest.fixture
def server(store):
    # With the guards every request of the real server passes first (the body limit is theirs).
    srv = ThreadServer(Starlette(routes=coach_routes(store), middleware=[Middleware(Guards)]))
    yield srv
    srv.stop()


@pytest.fixture
def session(store):
    return store.create_session("Alex")


@pytest.fixture
def coach(server, session):
    return Client(server.url, session.id, session.coach_token)


def error_code(answer) -> tuple[int, str]:
    status, body = answer
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"} and body["error"]["message"]
    return status, body["error"]["code"]


# -- tags -------------------------------------------------------------------------------


def test_a_tag_put_twice_is_stored_once_and_the_repeat_gets_the_first(coach, store, session):
    status, first = coach.call("PUT", "/tags/tag-0001", TAG)
    assert status == 201
    assert first["id"] == "tag-0001" and first["kind"] == "breakthrough" and first["session_time"] == 312.4
    assert first["clicked_at"] == 317.4 and first["note"] == "" and first["deleted_at"] is None
    assert first["created_at"] == pytest.approx(time.time(), abs=60)
    status, again = coach.call("PUT", "/tags/tag-0001", TAG | {"kind": "resistance", "label": "Other", "note": "x"})
    assert status == 200 and again == first
    assert store.tags(session.id) == [first]


def test_concurrent_retries_of_one_tag_store_it_once(coach, store, session):
    def put(i: int):
        return coach.call("PUT", "/tags/retry-me-1", TAG | {"note": f"attempt {i}"})

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(put, range(24)))
    assert sorted(status for status, _ in answers) == [200] * 23 + [201]
    bodies = {json.dumps(body, sort_keys=True) for _, body in answers}
    assert len(bodies) == 1
    assert len(store.tags(session.id)) == 1


def test_concurrent_puts_from_several_processes_connections_store_a_tag_once(tmp_path, store, session):
    """Each Store is its own connection, as each worker process has one: the database decides."""
    stores = [Store(store.path) for _ in range(6)]
    try:
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(
                lambda s: s.put_tag(session.id, "many-conn-1", "resistance", "Resistance", 10.0, None, ""), stores
            ))
    finally:
        for s in stores:
            s.close()
    assert sorted(created for _, created in results) == [False] * 5 + [True]
    assert len({json.dumps(tag) for tag, _ in results}) == 1
    assert [t["id"] for t in store.tags(session.id)] == ["many-conn-1"]


def test_a_tag_is_committed_before_the_answer(coach, store, session):
    assert coach.call("PUT", "/tags/durable-1", TAG)[0] == 201
    other = sqlite3.connect(store.path)  # another connection sees it at once: nothing left uncommitted
    try:
        assert other.execute("SELECT id FROM tags WHERE session_id = ?", (session.id,)).fetchall() == [("durable-1",)]
    finally:
        other.close()


def test_patch_changes_the_note(coach):
    coach.call("PUT", "/tags/patch-me-1", TAG)
    status, tag = coach.call("PATCH", "/tags/patch-me-1", {"note": "she named the goal herself"})
    assert status == 200 and tag["note"] == "she named the goal herself" and tag["kind"] == "breakthrough"
    assert coach.call("GET", "/tags")[1]["tags"][0]["note"] == "she named the goal herself"
    assert error_code(coach.call("PATCH", "/tags/never-put-1", {"note": "x"})) == (404, "unknown-tag")
    assert error_code(coach.call("PATCH", "/tags/patch-me-1", {"note": "x" * 501})) == (400, "bad-message")
    assert error_code(coach.call("PATCH", "/tags/patch-me-1", {})) == (400, "bad-message")


def test_delete_undoes_a_tag_idempotently_and_keeps_it_marked(coach, store, session):
    coach.call("PUT", "/tags/keep-me-01", TAG | {"session_time": 50})
    coach.call("PUT", "/tags/undo-me-01", TAG)
    status, undone = coach.call("DELETE", "/tags/undo-me-01")
    assert status == 200 and undone["id"] == "undo-me-01" and undone["deleted_at"] is not None
    status, again = coach.call("DELETE", "/tags/undo-me-01")
    assert status == 200 and again == undone  # the first time is kept
    assert coach.call("DELETE", "/tags/never-put-1") == (200, None)
    assert [t["id"] for t in coach.call("GET", "/tags")[1]["tags"]] == ["keep-me-01"]
    rows = sqlite3.connect(store.path).execute("SELECT id, deleted_at FROM tags ORDER BY id").fetchall()
    assert rows == [("keep-me-01", None), ("undo-me-01", undone["deleted_at"])]
    assert coach.call("PUT", "/tags/undo-me-01", TAG) == (200, undone)  # a late retry of the put revives nothing


def test_tags_are_listed_by_session_time(coach):
    for tag_id, t in [("third-tag", 90.0), ("first-tag", 10), ("second-tag", 45.5)]:
        coach.call("PUT", f"/tags/{tag_id}", TAG | {"session_time": t, "clicked_at": None})
    tags = coach.call("GET", "/tags")[1]["tags"]
    assert [(t["id"], t["session_time"]) for t in tags] == [("first-tag", 10), ("second-tag", 45.5), ("third-tag", 90)]
    assert all(t["clicked_at"] is None for t in tags)


def test_tags_belong_to_their_session(coach, store, server):
    other = store.create_session()
    coach.call("PUT", "/tags/shared-id-1", TAG)
    status, tag = Client(server.url, other.id, other.coach_token).call("PUT", "/tags/shared-id-1", TAG | {"note": "b"})
    assert status == 201 and tag["note"] == "b"
    assert coach.call("GET", "/tags")[1]["tags"][0]["note"] == ""


# -- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/tags", None), ("PUT", "/tags/tag-0001", TAG), ("PATCH", "/tags/tag-0001", {"note": ""}),
    ("DELETE", "/tags/tag-0001", None), ("GET", "/nudges", None), ("POST", "/nudges/n-1/dismiss", {"session_time": 1}),
    ("GET", "/settings", None), ("PUT", "/settings", {}),
])
def test_every_call_needs_the_coachs_token(coach, store, session, server, method, path, body):
    assert error_code(coach.call(method, path, body, token=None)) == (401, "bad-token")
    assert error_code(coach.call(method, path, body, token="not-the-token")) == (401, "bad-token")
    assert error_code(coach.call(method, path, body, token=store.create_session().coach_token)) == (401, "bad-token")
    assert error_code(coach.call(method, path, body, token=session.client_token)) == (403, "forbidden")
    nowhere = Client(server.url, "no-such-session", session.coach_token)
    assert error_code(nowhere.call(method, path, body)) == (404, "unknown-session")
    assert store.tags(session.id) == [] and store.nudges(session.id) == []
    assert store.coach_settings("local") == DEFAULTS


def test_the_token_must_come_as_a_bearer_header(coach, session):
    req = urllib.request.Request(f"{coach.url}/api/sessions/{session.id}/tags",
                                 headers={"Authorization": f"Basic {session.coach_token}"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 401
    assert coach.call("GET", "/tags", token=session.coach_token) == (200, {"tags": []})


# -- malformed requests -----------------------------------------------------------------


@pytest.mark.parametrize("tag_id", ["short", "x" * 65, "has%20space", "semi;colon", "dots.dots.dots"])
def test_bad_tag_ids_are_refused(coach, store, session, tag_id):
    assert error_code(coach.call("PUT", f"/tags/{tag_id}", TAG)) == (400, "bad-message")
    assert store.tags(session.id) == []


@pytest.mark.parametrize("raw", [
    b"", b"not json", b"[1, 2]", b'"a string"', b"\xff\xfe",
    json.dumps(TAG | {"session_time": "312"}).encode(),
    json.dumps(TAG | {"session_time": -0.1}).encode(),
    json.dumps(TAG | {"session_time": True}).encode(),
    json.dumps(TAG | {"session_time": 1e12}).encode(),
    json.dumps(TAG | {"session_time": 10**400}).encode(),
    json.dumps(TAG).replace("312.4", "NaN").encode(),
    json.dumps(TAG).replace("312.4", "Infinity").encode(),
    json.dumps(TAG).replace("312.4", "1e999").encode(),
    json.dumps(TAG | {"clicked_at": -5}).encode(),
    json.dumps({k: v for k, v in TAG.items() if k != "session_time"}).encode(),
    json.dumps({k: v for k, v in TAG.items() if k != "kind"}).encode(),
    json.dumps(TAG | {"kind": "has space"}).encode(),
    json.dumps(TAG | {"kind": "k" * 41}).encode(),
    json.dumps(TAG | {"label": ""}).encode(),
    json.dumps(TAG | {"label": "   "}).encode(),
    json.dumps(TAG | {"label": "L" * 61}).encode(),
    json.dumps(TAG | {"label": 7}).encode(),
    json.dumps(TAG | {"note": "n" * 501}).encode(),
    json.dumps(TAG | {"note": None}).encode(),
])
def test_malformed_tag_bodies_are_refused(coach, store, session, raw):
    assert error_code(coach.call("PUT", "/tags/tag-0001", raw=raw)) == (400, "bad-message")
    assert store.tags(session.id) == []


def test_the_limits_themselves_are_accepted(coach):
    status, tag = coach.call("PUT", "/tags/" + "a" * 64, TAG | {"kind": "k" * 40, "label": "L" * 60, "note": "n" * 500,
                                                             "session_time": 0, "unknown_field": 1})
    assert status == 201 and tag["note"] == "n" * 500 and tag["session_time"] == 0
    assert coach.call("PUT", "/tags/abcdefgh", TAG)[0] == 201


def test_a_body_over_16_kib_is_too_big(coach, store, session):
    huge = json.dumps(TAG | {"padding": "p" * 16 * 1024}).encode()
    assert error_code(coach.call("PUT", "/tags/tag-0001", raw=huge)) == (413, "too-big")
    assert error_code(coach.call("PUT", "/settings", raw=huge)) == (413, "too-big")
    assert store.tags(session.id) == []


# -- nudges -----------------------------------------------------------------------------


def test_nudges_are_listed_and_a_dismissal_is_logged_once(coach, store, session):
    store.add_nudge(session.id, "n-3", "talk_balance", "Listen", 400.2)
    store.add_nudge(session.id, "n-1", "monologue", "Pause", 100.0)
    status, body = coach.call("GET", "/nudges")
    assert status == 200
    assert body == {"nudges": [
        {"id": "n-1", "kind": "monologue", "text": "Pause", "session_time": 100.0, "dismissed_at": None},
        {"id": "n-3", "kind": "talk_balance", "text": "Listen", "session_time": 400.2, "dismissed_at": None},
    ]}
    status, nudge = coach.call("POST", "/nudges/n-3/dismiss", {"session_time": 402.0})
    assert status == 200 and nudge == body["nudges"][1] | {"dismissed_at": 402.0}
    assert coach.call("POST", "/nudges/n-3/dismiss", {"session_time": 450.0}) == (200, nudge)
    assert store.nudge(session.id, "n-3")["dismissed_at"] == 402.0
    assert error_code(coach.call("POST", "/nudges/n-9/dismiss", {"session_time": 1})) == (404, "unknown-nudge")
    assert error_code(coach.call("POST", "/nudges/n-1/dismiss", {"session_time": -1})) == (400, "bad-message")
    assert error_code(coach.call("POST", "/nudges/n-1/dismiss", {})) == (400, "bad-message")
    assert error_code(coach.call("POST", "/nudges/n%3B1/dismiss", {"session_time": 1})) == (400, "bad-message")
    assert store.nudge(session.id, "n-1")["dismissed_at"] is None


# -- settings ---------------------------------------------------------------------------


def test_settings_start_as_the_defaults(coach):
    status, settings = coach.call("GET", "/settings")
    assert status == 200 and settings == DEFAULTS
    assert settings["tag_lead_s"] == 5 and len(settings["tag_kinds"]) == 6
    assert settings["nudges"]["talk_balance"] == {"enabled": True, "share": 0.65, "min_speech_s": 120}


def test_settings_round_trip_and_belong_to_the_coach_not_the_session(coach, store, server):
    mine = json.loads(json.dumps(DEFAULTS))
    mine["tag_lead_s"] = 8
    mine["tag_kinds"] = [{"id": "insight", "label": "Insight"}] + mine["tag_kinds"] + [
        {"id": "k8", "label": "Eight"}, {"id": "k9", "label": "Nine"}]
    mine["nudges"]["monologue"] = {"enabled": False, "seconds": 120}
    mine["nudges"]["wait"]["filled_silences"] = 4
    assert coach.call("PUT", "/settings", mine) == (200, mine)
    assert coach.call("GET", "/settings") == (200, mine)
    later = store.create_session()
    assert Client(server.url, later.id, later.coach_token).call("GET", "/settings") == (200, mine)


def test_settings_left_out_take_their_defaults(coach):
    status, settings = coach.call("PUT", "/settings", {"nudges": {"client_quiet": {"seconds": 300}}})
    assert status == 200
    assert settings["nudges"]["client_quiet"] == {"enabled": True, "seconds": 300}
    assert settings["nudges"]["monologue"] == DEFAULTS["nudges"]["monologue"]
    assert settings["tag_kinds"] == DEFAULTS["tag_kinds"]


@pytest.mark.parametrize("change,names", [
    ({"tag_lead_s": -1}, "tag_lead_s"),
    ({"tag_lead_s": "5"}, "tag_lead_s"),
    ({"tag_lead_s": True}, "tag_lead_s"),
    ({"colour": "blue"}, "colour"),
    ({"nudges": {"talk_balance": {"share": 1.5}}}, "nudges.talk_balance.share"),
    ({"nudges": {"talk_balance": {"enabled": "yes"}}}, "nudges.talk_balance.enabled"),
    ({"nudges": {"monologue": {"seconds": 0}}}, "nudges.monologue.seconds"),
    ({"nudges": {"wait": {"filled_silences": 2.5}}}, "nudges.wait.filled_silences"),
    ({"nudges": {"wait": {"window_s": 10**6}}}, "nudges.wait.window_s"),
    ({"nudges": {"show_s": 0}}, "nudges.show_s"),
    ({"nudges": {"wait": 3}}, "nudges.wait"),
    ({"nudges": {"sulking": {"enabled": True}}}, "nudges.sulking"),
    ({"tag_kinds": [{"id": f"k{i}", "label": f"K{i}"} for i in range(10)]}, "tag_kinds"),
    ({"tag_kinds": [{"id": "a", "label": "A"}, {"id": "a", "label": "B"}]}, "tag_kinds"),
    ({"tag_kinds": [{"id": "has space", "label": "A"}]}, "tag_kinds[0].id"),
    ({"tag_kinds": [{"id": "a", "label": ""}]}, "tag_kinds[0].label"),
    ({"tag_kinds": [{"id": "a"}]}, "tag_kinds[0]"),
    ({"tag_kinds": {"id": "a", "label": "A"}}, "tag_kinds"),
])
def test_invalid_settings_are_refused_naming_the_setting(coach, store, change, names):
    status, body = coach.call("PUT", "/settings", change)
    assert (status, body["error"]["code"]) == (400, "bad-message")
    assert names in body["error"]["message"]
    assert store.coach_settings("local") == DEFAULTS


def test_settings_must_be_an_object_of_finite_numbers(coach):
    assert error_code(coach.call("PUT", "/settings", raw=b'{"tag_lead_s": NaN}')) == (400, "bad-message")
    assert error_code(coach.call("PUT", "/settings", raw=b"[]")) == (400, "bad-message")


# -- the store underneath ---------------------------------------------------------------


def test_an_older_database_gets_the_coach_column_and_a_busy_timeout(tmp_path):
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, label TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL,"
                " coach_token_sha256 TEXT NOT NULL, client_token_sha256 TEXT NOT NULL)")
    old.execute("INSERT INTO sessions VALUES ('old-session', '', 0, 'x', 'y')")
    old.commit()
    old.close()
    store = Store(path)
    again = Store(path)  # a second process opening the upgraded file
    try:
        assert store.coach_of("old-session") == "local"
        assert store._db.execute("PRAGMA busy_timeout").fetchone() == (5000,)
        assert again.coach_of(again.create_session().id) == "local"
    finally:
        store.close()
        again.close()


def test_the_app_serves_the_sidebar_api(tmp_path):
    from livecoach.app import create_app
    from livecoach.settings import Settings

    app = create_app(Settings(data=tmp_path / "data"))
    store = app.state.store
    new = store.create_session()
    srv = ThreadServer(app)
    try:
        coach = Client(srv.url, new.id, new.coach_token)
        assert coach.call("PUT", "/tags/from-app-1", TAG)[0] == 201
        assert coach.call("GET", "/settings") == (200, DEFAULTS)
    finally:
        srv.stop()

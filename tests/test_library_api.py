"""The library's API on a running server (docs/library.md): only the logged-in coach's own
sessions, clients and reports (a stranger 401, another coach 403 or 404), filters, trends as
JSON and CSV, filing a session under a client, the report's text, its reads in the access log,
and a shared copy without what the coach left out; the same guards as every route (Origin,
body size, JSON only)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlencode
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from library_data import make_session
from liveserver import COACH_EMAIL, COACH_PASSWORD, Server, add_coach
from livecoach.store import Store
from strategies import SEGMENT_TEXT, TEXT, json_values

OTHER_EMAIL, OTHER_PASSWORD = "other@example.com", "the other coach's password"
DAY = 86400.0
T0 = 1795000000.0  # 2026-11-18 11:06:40 UTC


def request(server: Server, method: str, path: str, body=None, headers: dict | None = None,
            raw: bytes | None = None) -> tuple[int, Any, bytes]:
    """(status, headers, body bytes) of one request; errors are answers too."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    sent = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(server.url + path, data=data, method=method, headers=sent | (headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def answer(server: Server, method: str, path: str, cookie: str | None = None, body=None, **kw) -> tuple[int, dict]:
    status, _, text = request(server, method, path, body, {"Cookie": cookie} if cookie else {}, **kw)
    return status, json.loads(text) if text else {}


def login(server: Server, email: str, password: str) -> str:
    status, head, _ = request(server, "POST", "/api/login", {"email": email, "password": password})
    assert status == 200
    return head["Set-Cookie"].split(";", 1)[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A server whose test coach has Alex (3 weekly sessions) and Blair (2), and another coach
    with Casey (1); each session's figures kept as a call's end keeps them."""
    data = tmp_path_factory.mktemp("library-api")
    add_coach(data)
    add_coach(data, OTHER_EMAIL, OTHER_PASSWORD, "Other Coach")
    store = Store(data / "livecoach.sqlite3")
    coaches = {c.email: c.id for c in store.coaches()}
    made: dict[str, list] = {"Alex": [], "Blair": [], "Casey": []}
    for i in range(3):
        made["Alex"].append(make_session(store, coaches[COACH_EMAIL], "Alex", T0 + i * 7 * DAY, seed=i, minutes=3,
                                         tags=i + 1, nudges=1, note="PRIVATE-NOTE"))
    for i in range(2):
        made["Blair"].append(make_session(store, coaches[COACH_EMAIL], "Blair", T0 + i * 7 * DAY + 3600, seed=10 + i,
                                          minutes=3, tags=1))
    made["Casey"].append(make_session(store, coaches[OTHER_EMAIL], "Casey", T0, seed=20, minutes=3))
    store.close()
    server = Server(data, workers=0)
    try:
        yield server, made, login(server, COACH_EMAIL, COACH_PASSWORD), login(server, OTHER_EMAIL, OTHER_PASSWORD)
    finally:
        server.stop()


# -- who may ---------------------------------------------------------------------------------


def test_a_stranger_gets_401_everywhere(world):
    server, made, _, _ = world
    s = made["Alex"][0].id
    for method, path, body in [("GET", "/api/library", None), ("GET", "/api/clients/Alex/trends", None),
                               ("GET", "/api/clients/Alex/trends?format=csv", None),
                               ("PUT", f"/api/sessions/{s}/client", {"client": "Mine now"}),
                               ("GET", f"/api/sessions/{s}/report", None),
                               ("GET", f"/api/sessions/{s}/report?format=html&download=1", None),
                               ("GET", f"/api/sessions/{s}/report/text", None),
                               ("PUT", f"/api/sessions/{s}/report/text", {"summary": "x", "next_steps": ""})]:
        assert answer(server, method, path, body=body)[0] == 401, path


def test_another_coach_sees_none_of_it(world):
    server, made, _, other = world
    status, library = answer(server, "GET", "/api/library", other)
    assert status == 200 and [s["id"] for s in library["sessions"]] == [made["Casey"][0].id]
    assert [c["name"] for c in library["clients"]] == ["Casey"]
    assert answer(server, "GET", "/api/clients/Alex/trends", other)[1]["error"]["code"] == "unknown-client"
    s = made["Alex"][0].id
    for method, path, body in [("PUT", f"/api/sessions/{s}/client", {"client": "Mine now"}),
                               ("GET", f"/api/sessions/{s}/report", None),
                               ("GET", f"/api/sessions/{s}/report?format=html", None),
                               ("GET", f"/api/sessions/{s}/report/text", None),
                               ("PUT", f"/api/sessions/{s}/report/text", {"summary": "x", "next_steps": ""})]:
        status, body_ = answer(server, method, path, other, body)
        assert (status, body_["error"]["code"]) == (403, "forbidden"), path
    assert answer(server, "GET", "/api/sessions/no-such-session/report", other)[0] == 404


def test_the_session_link_opens_its_report_too(world):
    server, made, _, _ = world
    s = made["Blair"][0]
    status, _, body = request(server, "GET", f"/api/sessions/{s.id}/report",
                              headers={"Authorization": f"Bearer {s.coach_token}"})
    assert status == 200 and json.loads(body)["session"]["id"] == s.id


# -- the library -------------------------------------------------------------------------------


def test_the_library_lists_the_coachs_sessions_with_their_figures(world):
    server, made, cookie, _ = world
    status, head, body = request(server, "GET", "/api/library", headers={"Cookie": cookie, "Accept-Encoding": "gzip"})
    assert status == 200 and head["Content-Encoding"] == "gzip" and head["Cache-Control"] == "no-store"
    library = json.loads(gzip.decompress(body))
    ids = [s["id"] for s in library["sessions"]]
    assert set(ids) == {m.id for m in made["Alex"] + made["Blair"]}
    assert [s["created_at"] for s in library["sessions"]] == sorted((s["created_at"] for s in library["sessions"]),
                                                                     reverse=True)
    first = next(s for s in library["sessions"] if s["id"] == made["Alex"][2].id)
    assert first["client"] == "Alex" and first["figures"]["duration_s"] == 180.0
    assert first["figures"]["tag_count"] == 3 and first["figures"]["recorded"] and first["figures"]["nudges"] == 1
    assert library["pending"] == 0 and library["tag_kinds"][0]["id"] == "breakthrough"


def test_the_library_as_its_page_lists_it(world):
    server, made, cookie, _ = world
    status, whole = answer(server, "GET", "/api/library?client=Alex", cookie)
    status_listed, listed = answer(server, "GET", "/api/library?client=Alex&fields=list", cookie)
    assert status == status_listed == 200
    assert [s["id"] for s in listed["sessions"]] == [s["id"] for s in whole["sessions"]]
    first = listed["sessions"][0]
    assert set(first) == {"id", "client", "label", "created_at", "origin", "figures"}
    assert first["figures"] == {k: v for k, v in whole["sessions"][0]["figures"].items() if k in first["figures"]}
    assert "nudges" not in first["figures"] and listed["clients"] == whole["clients"]
    status, body = answer(server, "GET", "/api/library?fields=all", cookie)
    assert (status, body["error"]["code"]) == (400, "bad-message") and "fields" in body["error"]["message"]


def test_the_librarys_filters(world):
    server, made, cookie, _ = world

    def ids(query: str) -> set[str]:
        status, body = answer(server, "GET", f"/api/library?{query}", cookie)
        assert status == 200, body
        return {s["id"] for s in body["sessions"]}

    assert ids("client=Blair") == {m.id for m in made["Blair"]}
    assert ids("from=2026-11-25&to=2026-11-25") == {made["Alex"][1].id, made["Blair"][1].id}
    assert ids(f"from={T0 + 7 * DAY}&to={T0 + 7 * DAY + 1}") == {made["Alex"][1].id}
    assert ids("client=Alex&tag_kind=breakthrough") <= {m.id for m in made["Alex"]}
    assert ids("tag_kind=emotional_shift") == set()
    for bad in ("from=yesterday", "tag_kind=no%20spaces", "to=2026-13-01"):
        status, body = answer(server, "GET", f"/api/library?{bad}", cookie)
        assert (status, body["error"]["code"]) == (400, "bad-message"), bad


def test_a_clients_trends_as_json_and_csv(world):
    server, made, cookie, _ = world
    status, trends = answer(server, "GET", "/api/clients/Alex/trends", cookie)
    assert status == 200 and [p["id"] for p in trends["points"]] == [m.id for m in made["Alex"]]
    assert trends["targets"]["talk_share_coach_max"] == 0.65
    status, head, body = request(server, "GET", "/api/clients/Alex/trends?format=csv", headers={"Cookie": cookie})
    assert status == 200 and head["Content-Type"].startswith("text/csv")
    assert head["Content-Disposition"] == 'attachment; filename="trends-alex.csv"'
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert [r["session"] for r in rows] == [p["id"] for p in trends["points"]]
    assert [float(r["talk_share_coach"]) for r in rows] == [p["figures"]["talk_share_coach"] for p in trends["points"]]
    assert answer(server, "GET", "/api/clients/Alex/trends?format=xml", cookie)[0] == 400


def test_filing_a_session_under_another_client(world):
    server, made, cookie, _ = world
    s = made["Blair"][1].id
    status, body = answer(server, "PUT", f"/api/sessions/{s}/client", cookie, {"client": "  Blair Two  "})
    assert (status, body) == (200, {"session": s, "client": "Blair Two"})
    library = answer(server, "GET", "/api/library", cookie)[1]
    assert ("Blair Two", 1) in [(c["name"], c["sessions"]) for c in library["clients"]]
    assert answer(server, "GET", "/api/clients/Blair%20Two/trends", cookie)[1]["points"][0]["id"] == s
    assert answer(server, "PUT", f"/api/sessions/{s}/client", cookie, {"client": 7})[0] == 400
    assert answer(server, "PUT", f"/api/sessions/{s}/client", cookie, {"client": "Blair"})[0] == 200
    # A page of another site cannot do it with the coach's cookie.
    status, _, _ = request(server, "PUT", f"/api/sessions/{s}/client", {"client": "Evil"},
                           {"Cookie": cookie, "Origin": "http://evil.example"})
    assert status == 403 and answer(server, "GET", "/api/library?client=Evil", cookie)[1]["sessions"] == []


# -- the report ----------------------------------------------------------------------------------


def test_the_reports_text_is_kept_and_checked(world):
    server, made, cookie, _ = world
    s = made["Alex"][0].id
    path = f"/api/sessions/{s}/report/text"
    status, text = answer(server, "PUT", path, cookie, {"summary": "Named the goal.\r\n\r\nKept at it.",
                                                        "next_steps": "Call the manager."})
    assert status == 200 and text["summary"] == "Named the goal.\n\nKept at it." and text["updated_at"]
    assert answer(server, "GET", path, cookie)[1] == text
    assert answer(server, "GET", f"/api/sessions/{s}/report", cookie)[1]["results"]["summary"] == text["summary"]
    assert answer(server, "PUT", path, cookie, {"summary": "x" * 10_001, "next_steps": ""})[0] == 400
    assert answer(server, "PUT", path, cookie, {"summary": ["no"], "next_steps": ""})[0] == 400
    assert request(server, "PUT", path, raw=b"summary=x", headers={"Cookie": cookie,
                                                                   "Content-Type": "text/plain"})[0] == 415
    huge = json.dumps({"summary": "x" * 200_000, "next_steps": ""}).encode()
    assert request(server, "PUT", path, raw=huge, headers={"Cookie": cookie})[0] == 413
    assert request(server, "PUT", path, raw=b'{"summary": NaN}', headers={"Cookie": cookie})[0] == 400


def test_opening_or_downloading_a_report_is_in_the_access_log(world):
    server, made, cookie, _ = world
    s = made["Alex"][1].id
    assert answer(server, "GET", f"/api/sessions/{s}/report", cookie)[0] == 200
    status, head, _ = request(server, "GET", f"/api/sessions/{s}/report?format=html&download=1&without=notes",
                              headers={"Cookie": cookie})
    assert status == 200
    entries = answer(server, "GET", f"/api/sessions/{s}/access-log", cookie)[1]["entries"]
    actions = [(e["who"], e["action"], e["detail"]) for e in entries]
    assert (f"coach {COACH_EMAIL}", "opened the report", "") in actions
    assert (f"coach {COACH_EMAIL}", "downloaded the report", "without notes") in actions


def test_a_shared_copy_is_a_standalone_file_without_what_was_left_out(world):
    server, made, cookie, _ = world
    s = made["Alex"][2].id
    status, head, body = request(server, "GET", f"/api/sessions/{s}/report?format=html&download=1&tz=Europe/Paris",
                                 headers={"Cookie": cookie})
    full = body.decode()
    assert status == 200 and head["Content-Type"] == "text/html; charset=utf-8"
    assert head["Content-Disposition"] == 'attachment; filename="report-alex-2026-12-02-full.html"'
    assert full.startswith("<!doctype html>") and "<style>" in full and "PRIVATE-NOTE" in full and "Listen at" in full
    assert "CET" in full  # written in the coach's time zone
    status, head, body = request(server, "GET", f"/api/sessions/{s}/report?format=html&download=1&without=notes,nudges",
                                 headers={"Cookie": cookie})
    shared = body.decode()
    assert head["Content-Disposition"].endswith('-shared.html"')
    assert "PRIVATE-NOTE" not in shared and "Listen" not in shared and "report-tag" in shared
    status, _, body = request(server, "GET", f"/api/sessions/{s}/report?format=article", headers={"Cookie": cookie})
    assert body.decode().startswith('<article class="report"') and "<style>" not in body.decode()
    for bad in ("without=secrets", "format=pdf", "tz=Not/AZone", "tz=../../etc/passwd"):
        assert answer(server, "GET", f"/api/sessions/{s}/report?{bad}", cookie)[0] == 400, bad


def test_the_command_line_report_is_the_pages_report(world, tmp_path):
    server, made, cookie, _ = world
    s = made["Blair"][0].id
    _, _, body = request(server, "GET", f"/api/sessions/{s}/report?format=html&tz=UTC", headers={"Cookie": cookie})
    out = tmp_path / "report.html"
    data = Path(server.log).parent
    subprocess.run([sys.executable, "-m", "livecoach", "report", s, "--data", str(data), "-o", str(out)],
                   check=True, capture_output=True, timeout=60, env=os.environ | {"TZ": "UTC"})
    assert out.read_text() == body.decode()


# -- whatever is sent ----------------------------------------------------------------------------

QUERY_KEYS = ("client", "from", "to", "tag_kind", "format", "without", "tz", "download")
QUERY_VALUES = st.one_of(TEXT, st.sampled_from(["2026-11-18", "2026-11-18T10:00:00+01:00", "1795000000", "-1", "1e400",
                                                "nan", "inf", "csv", "html", "article", "notes,nudges", "UTC",
                                                "Europe/Paris", "../../x", "1", ""]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from(QUERY_KEYS), QUERY_VALUES, max_size=4),
       name=st.one_of(st.just("Alex"), SEGMENT_TEXT))
def test_no_query_or_client_name_makes_a_500(world, params, name):
    server, made, cookie, _ = world
    query = urlencode(params)
    for path in ("/api/library", f"/api/clients/{quote(name, safe='')}/trends",
                 f"/api/sessions/{made['Alex'][0].id}/report"):
        status = request(server, "GET", f"{path}?{query}", headers={"Cookie": cookie})[0]
        assert status in (200, 400, 404), (path, params)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(body=json_values(8))
def test_no_text_or_client_body_makes_a_500(world, body):
    server, made, cookie, _ = world
    session = made["Blair"][0].id
    for path in (f"/api/sessions/{session}/report/text", f"/api/sessions/{session}/client"):
        status, answer = answer_of(server, "PUT", path, cookie, body)
        assert status in (200, 400, 415), (path, body, answer)  # 415: null, sent as no body at all
    # Put back what the other tests of the module expect.
    assert answer_of(server, "PUT", f"/api/sessions/{session}/client", cookie, {"client": "Blair"})[0] == 200


def answer_of(server: Server, method: str, path: str, cookie: str, body) -> tuple[int, bytes]:
    status, _, text = request(server, method, path, body, {"Cookie": cookie})
    return status, text

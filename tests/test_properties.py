"""Property-based tests (Hypothesis) of every message and body the server parses from outside:
signalling messages and the indicator stream's hello, tags, settings, video uploads and their
chunks, session and login bodies, query strings and path parameters (docs/security.md, "What
every request passes"; docs/signalling.md; docs/sidebar.md; docs/review.md, "Video uploads").

Each input gets a documented answer, a 2xx or a clear JSON error, never a 500 or a connection
dropped without an answer; leaks nothing (peer connections, calls, files, rows); and disturbs no
other session.

Two layers:

1. The pure parsers (jsontext, signalling.parse, coach_settings.validate, media's Range parsing,
   the guards as an ASGI app, the upload's ``start``), hundreds of examples each, each against a
   model written from the documentation rather than from the code.
2. One real server (tests/liveserver.py, started once for the module), tens of examples per
   route or websocket. After each test: another coach's session reads back unchanged, the
   server's log has no traceback, recordings/ holds folders only of sessions that exist, and
   /healthz shows no peer connection, no open websocket and no restarted worker.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import JSONResponse
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from liveserver import COACH_EMAIL, Server, add_coach
from strategies import (ANY_TEXT, ID_ALPHABET, KNOWN_TYPES, SCALARS, SEGMENT_TEXT, TEXT,
                        VALID_SETTINGS, depth, invalid_messages, invalid_settings, json_texts, json_values, nested,
                        range_headers, segments, tag_bodies, valid_messages)
from test_access import OTHER_EMAIL, OTHER_PASSWORD, call, login

from livecoach import coach_settings, consent, jsontext
from livecoach.coach_api import ApiError
from livecoach.coach_settings import DEFAULTS, INTEGERS, MAX_TAG_KINDS, NUMBER_RANGES, SettingsError
from livecoach.guards import DEFAULT_MAX_BODY, Guards
from livecoach.live.signalling import MAX_MESSAGE_BYTES, ProtocolError, parse
from livecoach.media import parse_range, ranged_response
from livecoach.recordings.uploads import MAX_CHUNK, MAX_CHUNKS
from livecoach.store import Store
from livecoach.upload_api import UPLOAD_PATH, _start

PURE = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
"""Fast parsers: many examples. No deadline: the machine is shared, and a slow example is not a
wrong one. (Failing examples are kept in .hypothesis/, which Hypothesis keeps out of git.)"""
LIVE = settings(max_examples=50, deadline=None, print_blob=True, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
"""The real server: each example is a request or a websocket, and the module stays well under two
minutes. The function-scoped fixture is the batch check, which must run once per test, not per
example."""
FEW = settings(LIVE, max_examples=30)

MAX_SESSION_TIME = 7 * 24 * 3600
MAX_NOTE = 500
MAX_SESSION_LABEL = 200


# == helpers: independent models of the documented rules ===========================================


def walk(value: Any):
    """Every value inside ``value`` (itself included), keys of objects too; no recursion, so a
    value nested a thousand deep is fine."""
    stack = [value]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def nesting(value: Any) -> int:
    """``strategies.depth`` without recursion (a refused text may hold 1000 levels)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            level += 1
            deepest = max(deepest, level)
            stack.extend((v, level) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def text_ok(value: Any) -> bool:
    """No lone surrogate and no NUL in any text of the value (docs/security.md: such text is
    refused)."""
    for item in walk(value):
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
            if "\x00" in item:
                return False
    return True


def what_json_allows(text: str | bytes) -> tuple[bool, Any]:
    """The documented JSON rule, from Python's own reader: (taken, value). UTF-8 only; refused when
    not JSON, nested over 32 levels, holding NaN or an infinity, or text with a lone surrogate or
    a NUL."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return False, None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return False, None
    if nesting(value) > 32 or not text_ok(value):
        return False, None
    if any(isinstance(x, float) and not math.isfinite(x) for x in walk(value)):
        return False, None
    return True, value


def is_id(value: Any, low: int, high: int) -> bool:
    """An id as the docs define it: ``low`` to ``high`` characters of A-Z a-z 0-9 _ -."""
    return isinstance(value, str) and low <= len(value) <= high and all(c in ID_ALPHABET for c in value)


def is_label(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 60 and bool(value.strip())


def is_time(value: Any) -> bool:
    """A session time: a number (not a boolean) from 0 to a week."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and 0 <= value <= MAX_SESSION_TIME)


def is_note(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_NOTE


def tag_body_ok(body: Any) -> bool:
    """docs/sidebar.md, Tags: the fields of a PUT."""
    return (isinstance(body, dict) and is_id(body.get("kind"), 1, 40) and is_label(body.get("label"))
            and is_time(body.get("session_time"))
            and (body.get("clicked_at") is None or is_time(body["clicked_at"]))
            and ("note" not in body or is_note(body["note"]))
            and body.get("origin", "live") in ("live", "review"))


def patch_changes(body: Any) -> dict | None:
    """docs/sidebar.md, PATCH: the changes of a body, or None if it is refused."""
    if not isinstance(body, dict):
        return None
    changes: dict[str, Any] = {}
    if "note" in body:
        if not is_note(body["note"]):
            return None
        changes["note"] = body["note"]
    if "kind" in body or "label" in body:
        if not (is_id(body.get("kind"), 1, 40) and is_label(body.get("label"))):
            return None
        changes |= {"kind": body["kind"], "label": body["label"]}
    if "session_time" in body:
        if not is_time(body["session_time"]):
            return None
        changes["session_time"] = float(body["session_time"])
    return changes or None


def overlay(default: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The defaults with what a (valid) settings body gives put over them."""
    return {key: overlay(value, given.get(key, {})) if isinstance(value, dict) else given.get(key, value)
            for key, value in default.items()}


def assert_complete_settings(out: Any, default: dict[str, Any] = DEFAULTS, path: str = "") -> None:
    """Every setting there, of its type and in its documented range (docs/sidebar.md)."""
    assert isinstance(out, dict) and set(out) == set(default), (path, out)
    for key, value in default.items():
        name = f"{path}.{key}" if path else key
        got = out[key]
        if isinstance(value, dict):
            assert_complete_settings(got, value, name)
        elif key == "tag_kinds":
            assert isinstance(got, list) and len(got) <= MAX_TAG_KINDS
            assert all(set(k) == {"id", "label"} and is_id(k["id"], 1, 40) and is_label(k["label"]) for k in got)
            assert len({k["id"] for k in got}) == len(got)
        elif isinstance(value, bool):
            assert isinstance(got, bool), name
        else:
            low, high = NUMBER_RANGES[name]
            assert isinstance(got, int if name in INTEGERS else (int, float)) and not isinstance(got, bool), name
            assert low <= got <= high, name


def declared_within(length: str, limit: int) -> bool:
    """A Content-Length that is a count of bytes up to ``limit`` (ASCII digits: RFC 9110 8.6)."""
    return bool(re.fullmatch(r"[0-9]+", length)) and Decimal(length) <= limit


# == 1. pure parsers ==================================================================================

# -- jsontext -----------------------------------------------------------------------------------------

SOME_TEXT = st.one_of(json_texts(), st.text(max_size=80), st.binary(max_size=80),
                      json_texts().map(lambda t: t.encode("utf-8", "surrogatepass")),
                      json_texts().map(lambda t: t.encode("utf-16", "surrogatepass")))


@PURE
@given(SOME_TEXT)
@example("[" * 100_000 + "]" * 100_000)
@example('{"a": "\\ud800"}')
@example('{"a": "\\u0000"}')
@example(b'\xef\xbb\xbf{"a": 1}')
@example("[" + "9" * 5000 + "]")
def test_jsontext_gives_a_value_or_bad_json_as_documented(text: str | bytes) -> None:
    """Any text or bytes: the value Python reads, or BadJson exactly when docs/security.md says
    (not UTF-8, not JSON, over 32 deep, NaN or Infinity, a lone surrogate, a NUL); never another exception."""
    taken, value = what_json_allows(text)
    try:
        got = jsontext.loads(text)
    except jsontext.BadJson as err:
        assert str(err)
        assert not taken, f"refused what the rules take: {err}"
    else:
        assert taken, f"took what the rules refuse: {got!r}"
        assert got == value


@PURE
@given(json_values(20).filter(lambda v: depth(v) <= jsontext.MAX_DEPTH), st.booleans())
def test_valid_json_within_the_limits_round_trips(value: Any, ascii_only: bool) -> None:
    """What the server may send back it also takes: the same value, from text or from UTF-8 bytes."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert jsontext.loads(text) == value
    assert jsontext.loads(text.encode("utf-8")) == value


@PURE
@given(nested(1, 80))
def test_the_nesting_limit_is_exactly_32(text: str) -> None:
    levels = nesting(json.loads(text))
    if levels <= jsontext.MAX_DEPTH:
        assert nesting(jsontext.loads(text)) == levels
    else:
        with pytest.raises(jsontext.BadJson, match="nested"):
            jsontext.loads(text)


# -- signalling.parse -------------------------------------------------------------------------------

FRAMES = st.one_of(
    st.text(max_size=100), st.binary(max_size=100), json_texts(), valid_messages().map(json.dumps),
    invalid_messages().map(json.dumps), valid_messages().map(lambda m: json.dumps(m, ensure_ascii=False).encode()),
    st.integers(MAX_MESSAGE_BYTES - 40, MAX_MESSAGE_BYTES + 40).map(
        lambda n: json.dumps({"type": "ping", "id": "x" * n})),
    st.tuples(st.sampled_from("é€😀"), st.integers(-20, 20)).map(  # characters of 2, 3, 4 bytes near the limit
        lambda c: json.dumps({"type": "ping", "id": c[0] * (MAX_MESSAGE_BYTES // len(c[0].encode()) - 20 + c[1])},
                             ensure_ascii=False)),
)


def size(frame: str | bytes) -> int:
    return len(frame if isinstance(frame, bytes) else frame.encode("utf-8", "surrogatepass"))


@PURE
@given(FRAMES)
def test_signalling_parse_gives_a_known_message_or_a_protocol_error(frame: str | bytes) -> None:
    try:
        msg = parse(frame)
    except ProtocolError as err:
        assert str(err)
        assert err.code in ("bad-message", "too-big")
        assert (err.code == "too-big") == (size(frame) > MAX_MESSAGE_BYTES) == err.close
    else:
        assert isinstance(msg, dict) and msg["type"] in KNOWN_TYPES
        assert size(frame) <= MAX_MESSAGE_BYTES


@PURE
@given(valid_messages(), st.booleans())
def test_every_well_formed_message_parses_as_sent(msg: dict, as_bytes: bool) -> None:
    """docs/signalling.md's messages, with fields beyond their own (ignored), from text or bytes."""
    text = json.dumps(msg)
    assert parse(text.encode() if as_bytes else text) == msg


@PURE
@given(invalid_messages())
def test_a_message_with_one_thing_wrong_is_a_bad_message_that_keeps_the_connection(msg: dict) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse(json.dumps(msg))
    assert caught.value.code == "bad-message" and not caught.value.close and str(caught.value)


# -- the coach's settings ------------------------------------------------------------------------------


@PURE
@given(st.one_of(json_values(), VALID_SETTINGS, invalid_settings().map(lambda pair: pair[0]),
                 st.dictionaries(st.sampled_from(sorted(DEFAULTS) + ["x"]), json_values(6), max_size=3)))
def test_settings_validate_gives_complete_settings_or_a_settings_error(value: Any) -> None:
    try:
        out = coach_settings.validate(value)
    except SettingsError as err:
        assert str(err)
    else:
        assert_complete_settings(out)
        assert coach_settings.validate(out) == out  # what is stored is taken again as it is


@PURE
@given(VALID_SETTINGS)
def test_valid_settings_are_taken_as_given_over_the_defaults(body: dict) -> None:
    assert coach_settings.validate(body) == overlay(DEFAULTS, body)


@PURE
@given(invalid_settings())
def test_one_bad_setting_is_refused_by_its_name(case: tuple[dict, str]) -> None:
    """docs/sidebar.md: an unknown or out-of-range setting is refused and the message names it."""
    body, name = case
    with pytest.raises(SettingsError) as caught:
        coach_settings.validate(body)
    assert name in str(caught.value)


# -- Range headers -----------------------------------------------------------------------------------


def range_model(header: str | None, size: int) -> tuple[int, int] | None | str:
    """media.py's contract: one ``bytes=first-last`` range (RFC 9110 14.1.2) within the file, None
    (the whole file) for anything else, "unsatisfiable" (416) for one that starts past the end, ends
    before it starts, or asks for the last 0 bytes (or any last bytes of an empty file). Numbers
    are compared as decimals, however many digits."""
    if not header:
        return None
    h = header.strip()
    if not h.startswith("bytes="):
        return None
    spec = h[len("bytes="):]
    if spec.count("-") != 1 or any(c not in "0123456789-" for c in spec):
        return None
    first, last = spec.split("-")
    if not first and not last:
        return None
    if not first:
        n = Decimal(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return size - int(min(n, size)), size - 1
    start = Decimal(first)
    if start >= size or (last and Decimal(last) < start):
        return "unsatisfiable"
    return int(start), int(min(Decimal(last), size - 1)) if last else size - 1


@PURE
@given(range_headers(), st.integers(0, 3) | st.integers(0, 2**40))
@example("bytes=-5", 0)
@example("bytes=" + "1" * 5000 + "-", 10)
@example("bytes=0-" + "9" * 5000, 10)
def test_a_range_header_gives_a_range_inside_the_file_or_the_documented_answer(header: str | None,
                                                                              size: int) -> None:
    got = parse_range(header, size)
    assert got == range_model(header, size)
    if isinstance(got, tuple):
        assert 0 <= got[0] <= got[1] < size
    response = ranged_response(size, "video/webm", header, lambda a, b: iter([b""]), {})
    if got == "unsatisfiable":
        assert response.status_code == 416 and response.headers["content-range"] == f"bytes */{size}"
    elif got is None:
        assert response.status_code == 200
    else:
        assert response.status_code == 206
        assert response.headers["content-range"] == f"bytes {got[0]}-{got[1]}/{size}"
        assert int(response.headers["content-length"]) == got[1] - got[0] + 1


# -- the guards, as an ASGI app -------------------------------------------------------------------------

SMALL_PATH = r"/small/[^/]+"
ALLOWED = "https://Coach.Example.com/"
HOSTS = st.sampled_from([None, "127.0.0.1:8080", "coach.example", "COACH.Example:8443", "localhost"])
METHODS = st.sampled_from(["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "get", "PROPFIND"])
PATHS = st.one_of(st.sampled_from(["/", "/api/sessions", "/api/sessions/a/tags/t", "/small/x", "/small/x/y"]),
                  st.builds(lambda s, r, n: f"/api/sessions/{s}/uploads/{r}/{n}", TEXT.filter(lambda t: "/" not in t),
                            st.text(ID_ALPHABET, min_size=1, max_size=9), st.sampled_from(["0", "7", "x"])),
                  st.text(max_size=30).map(lambda t: "/" + t))
LENGTHS = st.one_of(st.integers(0, 100), st.integers(DEFAULT_MAX_BODY - 3, DEFAULT_MAX_BODY + 3),
                    st.integers(MAX_CHUNK + 1020, MAX_CHUNK + 1030), st.integers(0, 2**70))


def body_limit(path: str) -> int:
    """docs/security.md: 16 KiB, a video chunk 8 MiB (and its JSON-less headroom); here also a
    small made-up route, so that a body over its limit is cheap to make."""
    if re.fullmatch(UPLOAD_PATH, path):
        return MAX_CHUNK + 1024
    if re.fullmatch(SMALL_PATH, path):
        return 64
    return DEFAULT_MAX_BODY


@st.composite
def origins(draw: st.DrawFn, scheme: str, host: str | None) -> tuple[str | None, bool]:
    """An Origin header and whether docs/security.md lets it through: none (a program), the
    server's own (any case, a trailing slash), the allowed one, or another site's."""
    own = f"{ {'ws': 'http', 'wss': 'https'}.get(scheme, scheme)}://{host or ''}"
    ok_forms = {own.lower(), ALLOWED.rstrip("/").lower()}
    kind = draw(st.sampled_from(["none", "own", "allowed", "foreign", "random"]))
    if kind == "none":
        return None, True
    if kind in ("own", "allowed"):
        base = own if kind == "own" else ALLOWED.rstrip("/")
        # Without a Host header the server does not know its own origin: only the allowed ones pass.
        forms = [base, base.upper(), base + "/", base.lower() + "//"]
        return draw(st.sampled_from(forms)), kind == "allowed" or bool(host)
    if kind == "foreign":
        return draw(st.sampled_from([own + ".evil.example", "https://evil.example", "null", own.replace("//", "///"),
                                     ("https" if own.startswith("http:") else "http") + own[own.index(":"):],
                                     own + ":1", ""])), False
    text = draw(st.text(st.characters(max_codepoint=255), max_size=40))
    assume(text.rstrip("/").lower() not in ok_forms)
    return text, False


def header_bytes(value: str) -> bytes:
    """A header value as sent: Latin-1 where it can be (so "²" arrives as the one byte 0xB2, as
    HTTP/1.1 carries it), else UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


async def reading_app(scope: dict, receive, send) -> None:
    """An app that reads the whole body before it answers (as a JSON route does)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.accept"})
        return
    body = await Request(scope, receive).body()
    await JSONResponse({"got": len(body)})(scope, receive, send)


async def answering_app(scope: dict, receive, send) -> None:
    """An app that answers without reading the body."""
    await JSONResponse({"got": None})(scope, receive, send)


async def run_asgi(app, scope: dict, chunks: list[bytes]) -> list[dict]:
    """The messages ``app`` sends for one request whose body comes in ``chunks``; after the body
    the client is gone (as servers say it)."""
    queue: list[dict] = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                         for i, c in enumerate(chunks)] or [{"type": "http.request", "body": b"", "more_body": False}]
    if scope["type"] == "websocket":
        queue = [{"type": "websocket.connect"}]
    sent: list[dict] = []

    async def receive() -> dict:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@PURE
@given(data=st.data(), method=METHODS, path=PATHS, scheme=st.sampled_from(["http", "https"]), host=HOSTS,
       body_size=st.integers(0, 80) | st.integers(DEFAULT_MAX_BODY - 2, DEFAULT_MAX_BODY + 2),
       reads=st.booleans())
@example(data=None, method="POST", path="/", scheme="http", host=None, body_size=0, reads=True).via(
    "Content-Length with a superscript two, which str.isdigit takes and int refuses")
def test_the_guards_refuse_exactly_what_the_rules_say(data, method: str, path: str, scheme: str, host: str | None,
                                                      body_size: int, reads: bool) -> None:
    """Never an exception; 403 bad-origin for a state-changing request from another site's page;
    413 too-big when Content-Length is not a count of bytes within the route's limit, or when a
    body the app reads passes it; otherwise the app's own answer."""
    if data is None:  # the explicit example
        origin, origin_ok, length, chunks = None, True, "²", [b""]
    else:
        origin, origin_ok = data.draw(origins(scheme, host), label="origin")
        body = b"x" * body_size
        cuts = sorted(data.draw(st.lists(st.integers(0, body_size), max_size=3), label="cuts"))
        chunks = [body[a:b] for a, b in zip([0] + cuts, cuts + [body_size])]
        length = data.draw(st.none() | st.just(str(body_size)) | LENGTHS.map(str) | st.sampled_from(
            ["", "²", "١٢", "-1", " 5", "5 ", "+5", "0x10", "1e3", "0" * 5000 + "1", "9" * 5000]), label="length")
    headers = [(b"host", host.encode())] if host is not None else []
    if origin is not None:
        headers.append((b"origin", origin.encode("latin-1")))
    if length is not None:
        headers.append((b"content-length", header_bytes(length)))
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode("utf-8", "replace"),
             "query_string": b"", "root_path": "", "headers": headers, "scheme": scheme, "http_version": "1.1"}
    guards = Guards(reading_app if reads else answering_app, body_limits=[(UPLOAD_PATH, MAX_CHUNK + 1024),
                                                                          (SMALL_PATH, 64)],
                    allowed_origins=[ALLOWED])
    sent = asyncio.run(run_asgi(guards, scope, chunks))

    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent
    body = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    limit = body_limit(path)
    total = sum(len(c) for c in chunks)
    if method not in ("GET", "HEAD", "OPTIONS") and not origin_ok:
        expected = (403, "bad-origin")
    elif length is not None and not declared_within(header_bytes(length).decode("latin-1"), limit):
        expected = (413, "too-big")
    elif reads and total > limit:
        expected = (413, "too-big")
    else:
        expected = (200, None)
    assert (starts[0]["status"], body.get("error", {}).get("code")) == expected
    if expected[0] == 200:
        assert body == {"got": total if reads else None}


@PURE
@given(data=st.data(), scheme=st.sampled_from(["ws", "wss"]), host=HOSTS)
def test_a_websocket_from_another_sites_page_is_refused_and_others_pass(data, scheme: str, host: str | None) -> None:
    origin, origin_ok = data.draw(origins(scheme, host))
    headers = [(b"host", host.encode())] if host is not None else []
    if origin is not None:
        headers.append((b"origin", origin.encode("latin-1")))
    scope = {"type": "websocket", "path": "/ws/signal", "headers": headers, "scheme": scheme, "query_string": b""}
    sent = asyncio.run(run_asgi(Guards(reading_app, allowed_origins=[ALLOWED]), scope, []))
    if origin_ok:
        assert sent == [{"type": "websocket.accept"}]
    else:
        assert len(sent) == 1 and sent[0]["type"] == "websocket.close" and sent[0]["code"] == 1008


# -- the upload's start= -------------------------------------------------------------------------------


@PURE
@given(st.none() | st.text(max_size=30) | st.floats().map(repr) | st.integers(-5, 10**7).map(str)
       | st.sampled_from(["nan", "inf", "-0", "1e400", "1_000", " 5 ", "0x10", "604800", "604800.0001", "²"]))
def test_the_upload_start_is_a_session_time_or_a_bad_message(raw: str | None) -> None:
    """docs/review.md: ``start`` is the session time a recording begins at, 0 to a week."""
    try:
        value = _start(raw)
    except ApiError as err:
        assert (err.status, err.code) == (400, "bad-message")
        try:
            number = float(raw)
        except ValueError:
            return
        assert not (math.isfinite(number) and 0 <= number <= MAX_SESSION_TIME)
    else:
        assert value is None if raw is None else (value == float(raw) and 0 <= value <= MAX_SESSION_TIME)


# == 2. a real server =====================================================================================


@dataclass
class Answer:
    status: int
    headers: Any
    raw: bytes
    json: Any


@dataclass
class Live:
    """The module's server, its two coaches and their sessions, and what must not change."""

    server: Server
    data: Path
    store: Store
    cookie: str
    coach_id: str
    session: str
    coach_token: str
    client_token: str
    tag: str
    spare: str
    spare_token: str
    other: str
    other_cookie: str
    other_state: tuple
    chunk0: bytes
    chunk1: bytes
    known_tags: set[str] = field(default_factory=set)
    joined: set[str] = field(default_factory=set)
    """Sessions whose call a websocket example opened (each may linger 60 s without anyone)."""
    fresh: list[tuple[str, str, int]] = field(default_factory=list)
    """Sessions for the messages after a hello: (id, coach token, joins so far)."""
    log_at: int = 0

    def __repr__(self) -> str:  # a failing example prints this: the session ids, not the chunks' bytes
        return f"Live({self.server.url}, session={self.session!r}, other={self.other!r})"

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # Hypothesis prints a dataclass field by field
        printer.text(repr(self))

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        """One request over its own connection; any failure to answer raises."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        self.assert_quiet_log()
        return Answer(response.status, response.headers, raw, value)

    def json_request(self, method: str, path: str, body: Any, auth: str | None = "coach",
                     content_type: str = "application/json", raw: bytes | None = None) -> Answer:
        headers = {"Content-Type": content_type} if content_type else {}
        if auth == "coach":
            headers["Authorization"] = f"Bearer {self.coach_token}"
        elif auth == "cookie":
            headers["Cookie"] = self.cookie
        data = raw if raw is not None else json.dumps(body).encode()
        return self.request(method, path, data, headers)

    def assert_quiet_log(self) -> None:
        """No traceback since the last look (each request's own, so the failing example is named)."""
        new = self.server.log.read_bytes()[self.log_at:]
        self.log_at += len(new)
        text = new.decode("utf-8", "replace")
        assert "Traceback" not in text, text[-4000:]

    def other_now(self) -> tuple:
        tags = call(self.server, "GET", f"/api/sessions/{self.other}/tags", headers={"Cookie": self.other_cookie})
        got = call(self.server, "GET", f"/api/sessions/{self.other}/settings", headers={"Cookie": self.other_cookie})
        return tags[0], tags[2], got[0], got[2]

    def session_for_messages(self) -> tuple[str, str]:
        """A session of the test coach whose coach may join now (30 joins a minute per
        participant): a new one every 20 joins."""
        if not self.fresh or self.fresh[-1][2] >= 20:
            status, _, body = call(self.server, "POST", "/api/sessions", {"video_recording": False},
                                   {"Cookie": self.cookie})
            assert status == 201, body
            self.fresh.append((body["session"], body["coach_url"].split("#")[1], 0))
        session, token, joins = self.fresh[-1]
        self.fresh[-1] = (session, token, joins + 1)
        return session, token

    def retire_session(self) -> None:
        """The coach withdrew the analysis here: they cannot join this session again."""
        if self.fresh:
            self.fresh[-1] = (self.fresh[-1][0], self.fresh[-1][1], 10**6)


def documented(answer: Answer, allowed: set[int], routed: bool = True) -> Answer:
    """A documented status; an error is JSON ``{"error": {"code", "message"}}`` (``expected`` for an
    upload's order). A path that the router cannot match (a decoded ``/`` in a parameter) gets
    Starlette's own 404 or 405 (or its trailing-slash redirect)."""
    assert answer.status < 500, (answer.status, answer.raw[:500])
    event(f"{answer.status} {error_code(answer)[1] or ''}".strip())  # shown by --hypothesis-show-statistics
    if not routed:
        assert answer.status in allowed | {404, 405, 307}, (answer.status, answer.raw[:300])
        return answer
    assert answer.status in allowed, (answer.status, answer.raw[:300])
    if answer.status >= 400:
        assert isinstance(answer.json, dict) and set(answer.json) == {"error"}, answer.raw[:300]
        error = answer.json["error"]
        assert set(error) <= {"code", "message", "expected"}, error
        assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str) and error["message"]
        assert answer.headers.get("content-type", "").startswith("application/json")
    return answer


def error_code(answer: Answer) -> tuple[int, str | None]:
    error = answer.json.get("error") if isinstance(answer.json, dict) else None
    return answer.status, error.get("code") if isinstance(error, dict) else None


def routes_to(sent_path: str, template: str) -> bool:
    """Whether the server's router sends ``sent_path`` to ``template``: it percent-decodes the
    path first (uvicorn), and each parameter is one segment (Starlette)."""
    pattern = re.sub(r"\{[a-z]+\}", "[^/]+", template)
    return re.fullmatch(pattern, unquote(sent_path.split("?", 1)[0])) is not None


def chunk_number_ok(number: str) -> bool:
    """docs/review.md: a chunk number is 0 to 99999, in ASCII digits (at most 9 of them)."""
    return re.fullmatch(r"[0-9]{1,9}", number) is not None and int(number) < MAX_CHUNKS


def decoded(segment: str) -> str:
    return unquote(segment)


def encoded_body(body: Any, how: str) -> bytes:
    """A JSON body as a browser or a program might send it (escaped, or raw UTF-8)."""
    if how == "ascii":
        return json.dumps(body).encode()
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


CONTENT_TYPES = st.sampled_from(["application/json"] * 6 + ["application/json; charset=utf-8", "APPLICATION/JSON",
                                                            "text/plain", "", "application/jsonx",
                                                            "multipart/form-data"])


def json_media_type(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "application/json"


def body_expectation(content_type: str, raw: bytes) -> tuple[int, str] | None:
    """The refusal every JSON body route gives before its own checks, or None to go on."""
    if not json_media_type(content_type):
        return 415, "bad-media-type"
    taken, value = what_json_allows(raw)
    if not taken or not isinstance(value, dict):
        return 400, "bad-message"
    return None


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Live:
    """One server for the module: the test coach with a session to fuzz (video agreed to by both
    participants) and a spare one, and another coach's session with a tag and settings of its own,
    which nothing here may change."""
    from test_uploads import live_webm

    data = tmp_path_factory.mktemp("properties")
    add_coach(data, OTHER_EMAIL, OTHER_PASSWORD, "Other Coach")
    server = Server(data)
    store = Store(data / "livecoach.sqlite3")
    try:
        cookie = server.login()
        coach_id = call(server, "GET", "/api/me", headers={"Cookie": cookie})[2]["coach"]["id"]

        def new(who: str, body: dict) -> dict:
            status, _, made = call(server, "POST", "/api/sessions", body, {"Cookie": who})
            assert status == 201, made
            return made

        mine = new(cookie, {"label": "Fuzzed", "video_recording": True})
        session = mine["session"]
        coach_token, client_token = mine["coach_url"].split("#")[1], mine["client_url"].split("#")[1]
        scopes = consent.session_scopes(True)
        for role in ("coach", "client"):
            store.record_consent(session, role, consent.notice(scopes), scopes)
        tag = "fixture-tag-0001"
        assert call(server, "PUT", f"/api/sessions/{session}/tags/{tag}",
                    {"kind": "breakthrough", "label": "Breakthrough", "session_time": 12.5},
                    {"Cookie": cookie})[0] == 201
        spare = new(cookie, {"label": "Spare"})

        other_cookie = login(server, OTHER_EMAIL, OTHER_PASSWORD)
        other = new(other_cookie, {"label": "Not to be touched"})["session"]
        assert call(server, "PUT", f"/api/sessions/{other}/tags/their-tag-0001",
                    {"kind": "theirs", "label": "Theirs", "session_time": 3, "note": "their note"},
                    {"Cookie": other_cookie})[0] == 201
        assert call(server, "PUT", f"/api/sessions/{other}/settings",
                    {"tag_lead_s": 7, "tag_kinds": [{"id": "theirs", "label": "Theirs"}]},
                    {"Cookie": other_cookie})[0] == 200

        webm = live_webm(data / "camera.webm", seconds=2.0)
        state = Live(server, data, store, cookie, coach_id, session, coach_token, client_token, tag,
                     spare["session"], spare["coach_url"].split("#")[1], other, other_cookie, (), webm[:4000],
                     webm[4000:8000], known_tags={tag})
        state.other_state = state.other_now()
        assert state.other_state[0] == 200 and len(state.other_state[1]["tags"]) == 1
        assert state.other_state[3]["tag_lead_s"] == 7
        yield state
    finally:
        store.close()
        server.stop()


@pytest.fixture(autouse=True)
def batch_check(request):
    """After each test on the server: nothing leaked, nobody else disturbed."""
    live: Live | None = request.getfixturevalue("live") if "live" in request.fixturenames else None
    log_start = live.server.log.stat().st_size if live else 0
    if live:
        live.log_at = log_start  # an earlier test's late traceback is that test's, not this one's
    yield
    if live is None:
        return
    assert live.other_now() == live.other_state, "another coach's session changed"
    deadline = time.monotonic() + 10
    while True:
        health = live.server.get("/healthz")
        settled = (health["peers"] == 0 and health["calls"] <= len(live.joined)
                   and all(w["sessions_open"] == 0 for w in health["workers"]))
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert settled, f"left over after the examples: {health}"
    assert all(w["alive"] and w["started"] == 1 for w in health["workers"]), health
    log = live.server.log.read_bytes()[log_start:].decode("utf-8", "replace")  # this test's part
    assert "Traceback" not in log and "starting it again" not in log, log[-4000:]
    recordings = live.data / "recordings"
    folders = [p.name for p in recordings.iterdir()] if recordings.is_dir() else []
    strays = [name for name in folders if live.store.get_session(name) is None]
    assert not strays, f"recordings/ has folders of sessions that do not exist: {strays}"


# -- bodies ------------------------------------------------------------------------------------------


@LIVE
@given(body=tag_bodies(), new_id=st.text(ID_ALPHABET, min_size=8, max_size=64), reuse=st.booleans(),
       content_type=CONTENT_TYPES, how=st.sampled_from(["ascii", "utf-8"]))
def test_put_tag_stores_a_valid_tag_once_and_refuses_the_rest_clearly(live: Live, body: Any, new_id: str,
                                                                      reuse: bool, content_type: str,
                                                                      how: str) -> None:
    tag_id = live.tag if reuse else new_id
    existed = tag_id in live.known_tags
    raw = encoded_body(body, how)
    answer = documented(live.json_request("PUT", f"/api/sessions/{live.session}/tags/{tag_id}", body,
                                          content_type=content_type, raw=raw), {200, 201, 400, 415})
    refused = body_expectation(content_type, raw)
    if refused is None and not tag_body_ok(body):
        refused = (400, "bad-message")
    if refused:
        assert error_code(answer) == refused
        if not existed:
            assert tag_id not in {t["id"] for t in live.store.tags(live.session)}
        return
    assert answer.status == (200 if existed else 201)
    live.known_tags.add(tag_id)
    if not existed:
        tag = answer.json
        assert (tag["id"], tag["kind"], tag["label"], tag["session_time"], tag["note"], tag["origin"]) == (
            tag_id, body["kind"], body["label"], float(body["session_time"]), body.get("note", ""),
            body.get("origin", "live"))
        assert tag["clicked_at"] == (None if body.get("clicked_at") is None else float(body["clicked_at"]))
        assert tag in live.store.tags(live.session)


@LIVE
@given(body=tag_bodies() | st.fixed_dictionaries({}, optional={"note": st.text(max_size=20), "session_time": st.floats(
    0, 604800)}), unknown=st.booleans(), content_type=CONTENT_TYPES)
def test_patch_tag_changes_what_it_names_or_nothing(live: Live, body: Any, unknown: bool, content_type: str) -> None:
    tag_id = f"unknown-{uuid.uuid4().hex[:12]}" if unknown else live.tag
    before = {t["id"]: t for t in live.store.tags(live.session)}.get(live.tag)
    raw = encoded_body(body, "ascii")
    answer = documented(live.json_request("PATCH", f"/api/sessions/{live.session}/tags/{tag_id}", body,
                                          content_type=content_type, raw=raw), {200, 400, 404, 415})
    refused = body_expectation(content_type, raw)
    changes = patch_changes(body)
    if refused is None and changes is None:
        refused = (400, "bad-message")
    if refused is None and unknown:
        refused = (404, "unknown-tag")
    after = {t["id"]: t for t in live.store.tags(live.session)}.get(live.tag)
    if refused:
        assert error_code(answer) == refused
        assert after == before
        return
    assert answer.status == 200 and all(answer.json[k] == v for k, v in changes.items())
    assert answer.json["original_session_time"] == 12.5 and after == answer.json


@LIVE
@given(body=st.one_of(VALID_SETTINGS, invalid_settings().map(lambda pair: pair[0]), json_values(8)),
       content_type=CONTENT_TYPES)
def test_put_settings_stores_valid_settings_whole_or_nothing(live: Live, body: Any, content_type: str) -> None:
    path = f"/api/sessions/{live.session}/settings"
    before = call(live.server, "GET", path, headers={"Cookie": live.cookie})[2]
    raw = encoded_body(body, "ascii")
    answer = documented(live.json_request("PUT", path, body, auth="cookie", content_type=content_type, raw=raw),
                        {200, 400, 415})
    refused = body_expectation(content_type, raw)
    expected = None
    if refused is None:
        try:
            expected = coach_settings.validate(body)
        except SettingsError:
            refused = (400, "bad-message")
    after = call(live.server, "GET", path, headers={"Cookie": live.cookie})[2]
    if refused:
        assert error_code(answer) == refused and after == before
    else:
        assert answer.status == 200 and answer.json == expected == after


@FEW
@given(body=st.fixed_dictionaries({"video": st.booleans()}) | st.fixed_dictionaries({}, optional={"video": SCALARS})
       | json_values(4), content_type=CONTENT_TYPES)
def test_put_recording_takes_only_true_or_false(live: Live, body: Any, content_type: str) -> None:
    before = live.store.get_session(live.spare).video_recording
    raw = encoded_body(body, "ascii")
    answer = documented(live.request("PUT", f"/api/sessions/{live.spare}/recording", raw, {
        "Content-Type": content_type, "Authorization": f"Bearer {live.spare_token}"}), {200, 400, 415})
    refused = body_expectation(content_type, raw)
    if refused is None and not isinstance(body.get("video"), bool):
        refused = (400, "bad-message")
    if refused:
        assert error_code(answer) == refused
        assert live.store.get_session(live.spare).video_recording == before
    else:
        assert answer.json == {"video": body["video"]} == {"video": live.store.get_session(live.spare).video_recording}


CLIP_SECONDS = st.one_of(st.integers(0, 300), st.floats(0, 300), st.just(300.5), st.just(-1), st.booleans(),
                         st.none(), TEXT)


@FEW
@given(body=st.fixed_dictionaries({"tag": st.just("fixture-tag-0001")}, optional={
    "kind": st.sampled_from(["audio", "video"]), "participant": st.sampled_from(["coach", "client"]),
    "before_s": st.floats(0, 300), "after_s": st.floats(0, 300)}) | st.fixed_dictionaries({}, optional={
        "kind": st.sampled_from(["audio", "video", "Audio", "", 1]), "participant": st.sampled_from(
            ["coach", "client", "both", None]), "before_s": CLIP_SECONDS, "after_s": CLIP_SECONDS,
        "tag": st.sampled_from(["fixture-tag-0001", "no-such-tag-1"]) | TEXT | st.integers()}) | json_values(4),
       content_type=CONTENT_TYPES)
def test_post_clip_refuses_clearly_and_makes_nothing_it_cannot(live: Live, body: Any, content_type: str) -> None:
    raw = encoded_body(body, "ascii")
    answer = documented(live.json_request("POST", f"/api/sessions/{live.session}/clips", body,
                                          content_type=content_type, raw=raw), {201, 400, 404, 409, 415})
    refused = body_expectation(content_type, raw)

    def seconds_ok(key: str) -> bool:
        value = body.get(key, 1)
        return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 300

    if refused is None:
        tags = {t["id"] for t in live.store.tags(live.session)}
        if body.get("kind", "audio") not in ("audio", "video") or body.get("participant", "client") not in (
                "coach", "client") or not seconds_ok("before_s") or not seconds_ok("after_s"):
            refused = (400, "bad-message")
        elif not isinstance(body.get("tag"), str) or body["tag"] not in tags:
            refused = (404, "unknown-tag")
    if refused:
        assert error_code(answer) == refused
    else:
        assert answer.status in (201, 409)  # 409 no-recording: this call recorded no audio


@LIVE
@given(body=st.builds(lambda extra, b: extra | b, st.dictionaries(TEXT, SCALARS, max_size=2), st.fixed_dictionaries(
    {}, optional={"label": ANY_TEXT | st.text(min_size=199, max_size=202) | SCALARS,
                  "video_recording": st.booleans() | SCALARS})) | json_values(4),
       logged_in=st.integers(0, 9).map(bool), content_type=CONTENT_TYPES)
def test_post_sessions_makes_one_session_or_none(live: Live, body: Any, logged_in: bool, content_type: str) -> None:
    before = len(live.store.sessions_of(live.coach_id))
    raw = encoded_body(body, "ascii")
    headers = {"Content-Type": content_type} | ({"Cookie": live.cookie} if logged_in else {})
    answer = documented(live.request("POST", "/api/sessions", raw, headers), {201, 400, 401, 415})
    refused = None if logged_in else (401, "not-logged-in")
    refused = refused or body_expectation(content_type, raw)
    if refused is None:
        label, video = body.get("label", ""), body.get("video_recording", True)
        if not (isinstance(label, str) and len(label) <= MAX_SESSION_LABEL) or not isinstance(video, bool):
            refused = (400, "bad-message")
    after = len(live.store.sessions_of(live.coach_id))
    if refused:
        assert error_code(answer) == refused and after == before
    else:
        assert answer.status == 201 and after == before + 1
        made = live.store.get_session(answer.json["session"])
        assert made.video_recording == body.get("video_recording", True)
        assert answer.headers["Cache-Control"] == "no-store"


MADE_UP_EMAILS = st.emails().filter(lambda e: e.lower() not in (COACH_EMAIL, OTHER_EMAIL))


@FEW
@given(body=st.fixed_dictionaries({"email": MADE_UP_EMAILS, "password": st.text(max_size=40)})
       | st.fixed_dictionaries({}, optional={"email": MADE_UP_EMAILS | ANY_TEXT | SCALARS,
                                             "password": ANY_TEXT | SCALARS}) | json_values(4),
       content_type=CONTENT_TYPES)
def test_post_login_refuses_clearly_and_never_logs_in_a_made_up_coach(live: Live, body: Any,
                                                                      content_type: str) -> None:
    """The emails are made up, so each answer is a refusal: 401 bad-login, or 429 once this
    address has failed 20 times (docs/security.md); the test coach's login was made first."""
    raw = encoded_body(body, "ascii")
    answer = documented(live.request("POST", "/api/login", raw, {"Content-Type": content_type}),
                        {400, 401, 415, 429})
    refused = body_expectation(content_type, raw)
    if refused is None and not (isinstance(body.get("email"), str) and isinstance(body.get("password"), str)):
        refused = (400, "bad-message")
    if refused:
        assert error_code(answer) == refused
    else:
        assert error_code(answer) in ((401, "bad-login"), (429, "too-many-attempts"))
        assert "set-cookie" not in {k.lower() for k in answer.headers}


@FEW
@given(body=st.fixed_dictionaries({"keep_recordings_days": st.none() | st.integers(0, 36500)})
       | st.fixed_dictionaries({}, optional={"keep_recordings_days": SCALARS | st.integers(-2, 2) | st.integers(
           36499, 36502) | st.floats(0, 10)}) | json_values(4), content_type=CONTENT_TYPES)
def test_put_retention_takes_whole_days_or_null(live: Live, body: Any, content_type: str) -> None:
    """docs/security.md: a session's recordings kept for 0 to 36500 whole days, or null (the
    installation's time, here unlimited)."""
    path = f"/api/sessions/{live.spare}/retention"
    before = live.store.keep_recordings_days(live.spare)
    raw = encoded_body(body, "ascii")
    answer = documented(live.request("PUT", path, raw, {"Content-Type": content_type,
                                                        "Authorization": f"Bearer {live.spare_token}"}),
                        {200, 400, 415})
    refused = body_expectation(content_type, raw)
    if refused is None:
        days = body.get("keep_recordings_days")
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 36500):
            refused = (400, "bad-message")
    if refused:
        assert error_code(answer) == refused and live.store.keep_recordings_days(live.spare) == before
    else:
        assert answer.json["keep_recordings_days"] == body.get("keep_recordings_days")
        assert live.store.keep_recordings_days(live.spare) == body.get("keep_recordings_days")


@FEW
@given(body=st.fixed_dictionaries({"session_time": st.floats(0, 604800)}) | st.fixed_dictionaries(
    {}, optional={"session_time": SCALARS}) | json_values(4), content_type=CONTENT_TYPES,
       nudge=st.text(ID_ALPHABET, min_size=1, max_size=64))
def test_dismissing_a_nudge_checks_the_time_before_the_nudge(live: Live, body: Any, content_type: str,
                                                             nudge: str) -> None:
    """docs/sidebar.md: ``session_time`` is required, 0 to a week; this call fired no nudge, so a
    valid dismissal is ``unknown-nudge``, and nothing is stored."""
    raw = encoded_body(body, "ascii")
    answer = documented(live.json_request("POST", f"/api/sessions/{live.session}/nudges/{nudge}/dismiss", body,
                                          content_type=content_type, raw=raw), {400, 404, 415})
    refused = body_expectation(content_type, raw)
    if refused is None and not is_time(body.get("session_time")):
        refused = (400, "bad-message")
    assert error_code(answer) == (refused or (404, "unknown-nudge"))
    assert live.store.nudges(live.session) == []


# -- uploads: chunks, queries, headers -----------------------------------------------------------------

QUERY_VALUE = st.one_of(st.floats(0, 604800).map(repr), st.integers(-3, 604803).map(str), st.text(max_size=12),
                        st.sampled_from(["nan", "inf", "-0", "1e400", "1_000", " 5", "0x10", "", "²", "1%00"]))


UPLOAD_CASES = st.one_of(
    st.fixed_dictionaries({  # the way a browser sends it: stored, or a documented 200/403/409
        "who": st.sampled_from(["coach", "client"]),
        "recording": st.sampled_from(["shared-recording-1", "shared-recording-2"]) | st.text(
            ID_ALPHABET, min_size=8, max_size=12),
        "number": st.sampled_from(["0", "0", "1"]), "payload": st.sampled_from(["chunk0", "chunk0", "chunk1"]),
        "sha": st.sampled_from(["right", "upper"]),
        "query": st.builds(lambda t, last: f"start={t!r}" + last, st.floats(0, 604800),
                           st.sampled_from(["", "", "&last=1", "&last=0"]))}),
    st.fixed_dictionaries({  # anything goes
        "who": st.sampled_from(["coach", "coach", "client", "none", "bad"]),
        "recording": st.sampled_from(["shared-recording-1", "shared-recording-2"]) | st.text(
            ID_ALPHABET, min_size=8, max_size=12),
        "number": st.sampled_from(["0", "0", "1", "2"]) | segments(SEGMENT_TEXT),
        "payload": st.sampled_from(["chunk0", "chunk1", "random", "empty"]),
        "sha": st.sampled_from(["right", "right", "upper", "wrong", "none", "short"]),
        "query": st.lists(st.tuples(st.sampled_from(["start", "last", "start", "x"]), QUERY_VALUE, st.booleans()),
                          max_size=3).map(lambda params: "&".join(
                              f"{quote(k)}={quote(v, safe='' if whole else '%')}" for k, v, whole in params))}),
)


@LIVE
@given(case=UPLOAD_CASES)
@example({"who": "coach", "recording": "digit-superscript", "number": quote("²"), "payload": "chunk0", "sha": "right",
          "query": "start=1"}).via("a superscript two as the chunk number: a 500 before upload_api took ASCII only")
@example({"who": "coach", "recording": "digit-many-zeros", "number": "0" * 5000, "payload": "chunk0", "sha": "right",
          "query": "start=1"}).via("5000 digits as the chunk number: int() raised, a 500")
def test_upload_chunks_are_stored_whole_or_refused_clearly(live: Live, case: dict[str, str]) -> None:
    """docs/review.md, Video uploads: 201/200, or a documented refusal that stores nothing."""
    who, recording, number, payload, sha, query = (case[k] for k in ("who", "recording", "number", "payload", "sha",
                                                                      "query"))
    body = {"chunk0": live.chunk0, "chunk1": live.chunk1, "random": hashlib.sha256(recording.encode()).digest(),
            "empty": b""}[payload]
    digest = hashlib.sha256(body).hexdigest()
    headers = {"X-Content-SHA256": {"right": digest, "upper": digest.upper(), "wrong": "0" * 64, "short": digest[:10]}
               [sha]} if sha != "none" else {}
    if who in ("coach", "client"):
        headers["Authorization"] = f"Bearer {live.coach_token if who == 'coach' else live.client_token}"
    elif who == "bad":
        headers["Authorization"] = "Bearer not-a-token"
    path = f"/api/sessions/{live.session}/uploads/{recording}/{number}" + (f"?{query}" if query else "")

    rows_before = live.store.recordings(live.session)
    folder = live.data / "recordings" / live.session
    sizes_before = {p.name: p.stat().st_size for p in folder.iterdir()} if folder.is_dir() else {}
    answer = documented(live.request("PUT", path, body, headers), {200, 201, 400, 401, 403, 409},
                        routes_to(path, "/api/sessions/{session}/uploads/{recording}/{number}"))
    if answer.status in (404, 405, 307):
        return
    status, error = error_code(answer)
    if who in ("none", "bad"):
        assert (status, error) == (401, "bad-token")
    n = decoded(number)
    if who in ("coach", "client") and not chunk_number_ok(n):
        assert (status, error) == (400, "bad-message")
    if status >= 400:
        assert live.store.recordings(live.session) == rows_before, "a refused chunk changed a recording's row"
        sizes_after = {p.name: p.stat().st_size for p in folder.iterdir()} if folder.is_dir() else {}
        assert sizes_after == sizes_before, "a refused chunk changed a file"
    else:
        assert answer.json["stored"] == (status == 201)
        row = live.store.recording(live.session, recording)
        assert row is not None and row["chunks"] == answer.json["chunks"] >= int(n) + 1


# -- path parameters -----------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/api/sessions/{session}/tags", None),
    ("PUT", "/api/sessions/{session}/tags/{tag}", {"kind": "k", "label": "K", "session_time": 1}),
    ("PATCH", "/api/sessions/{session}/tags/{tag}", {"note": "a note"}),
    ("DELETE", "/api/sessions/{session}/tags/{tag}", None),
    ("GET", "/api/sessions/{session}/settings", None),
    ("GET", "/api/sessions/{session}/nudges", None),
    ("POST", "/api/sessions/{session}/nudges/{nudge}/dismiss", {"session_time": 1}),
    ("GET", "/api/sessions/{session}/recording", None),
    ("GET", "/api/sessions/{session}/invite", None),
    ("GET", "/api/sessions/{session}/retention", None),
    ("GET", "/api/sessions/{session}/access-log", None),
    ("GET", "/api/sessions/{session}/notice", None),
    ("GET", "/api/sessions/{session}/review", None),
    ("PUT", "/api/sessions/{session}/uploads/{recording}/{number}", b"not a webm chunk"),
    ("DELETE", "/api/sessions/{session}", None),
    ("GET", "/media/{session}/{name}", None),
]


@LIVE
@given(data=st.data(), route=st.sampled_from(ROUTES), which=st.sampled_from(["mine", "mine-encoded", "other",
                                                                               "generated", "generated"]))
@example(data=None, route=ROUTES[13], which="mine").via("the chunk number ², again")
def test_path_parameters_get_a_documented_answer(live: Live, data, route: tuple, which: str) -> None:
    """Generated session ids, tag ids, nudge ids, recording ids, chunk numbers and file names
    (unicode, ``..``, ``%2e%2e``, very long): each a 2xx or a clear error, and a made-up session
    is always ``unknown-session`` (never another session's data)."""
    method, template, body = route
    if method == "DELETE" and template.endswith("{session}") and which.startswith("mine"):
        which = "generated"  # never delete the session the other tests use
    draw = (lambda s, label: data.draw(s, label=label)) if data is not None else (lambda s, label: quote("²"))
    session = {"mine": live.session, "mine-encoded": quote(live.session, safe="").replace("-", "%2D"),
               "other": live.other}.get(which) or draw(segments(), "session")
    params = {"session": session}
    for name in re.findall(r"\{([a-z]+)\}", template)[1:]:
        params[name] = draw(segments(), name)
    if data is None:
        params["recording"] = "fixed-recording"
    path = template
    for name, value in params.items():
        path = path.replace("{" + name + "}", value)
    headers = {"Authorization": f"Bearer {live.coach_token}"}
    raw = None
    if isinstance(body, dict):
        raw, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    elif isinstance(body, bytes):
        raw, headers["X-Content-SHA256"] = body, hashlib.sha256(body).hexdigest()
        path += "?start=1"
    if template.startswith("/media"):
        path += "?e=9999999999&k=" + draw(st.text(ID_ALPHABET, max_size=20), "signature")
    answer = documented(live.request(method, path, raw, headers), {200, 201, 400, 401, 403, 404, 409},
                        routes_to(path, template))
    if answer.status in (405, 307) or not routes_to(path, template):
        return
    real = decoded(session)
    got = error_code(answer)
    if template.endswith("{tag}") and real == live.session and answer.status in (200, 201):
        live.known_tags.add(decoded(params["tag"]))  # made here: a PUT of the same id elsewhere answers 200
    if template.startswith("/media"):
        assert got == (403, "forbidden")  # no valid signature, whatever the names
    elif template.endswith("/notice"):
        assert answer.status == 200 if real == live.session else got == (401, "bad-token")
    elif real == live.other:
        assert got == (401, "bad-token")  # this session's coach token is not the other's
    elif real != live.session:
        assert got == (404, "unknown-session")
    elif "tag" in params and not is_id(decoded(params["tag"]), 8, 64):
        assert got == (400, "bad-message")
    elif "nudge" in params:
        assert got == ((404, "unknown-nudge") if is_id(decoded(params["nudge"]), 1, 64) else (400, "bad-message"))
    elif "recording" in params:
        if not is_id(decoded(params["recording"]), 8, 64) or not chunk_number_ok(decoded(params["number"])):
            assert got == (400, "bad-message")
        else:
            assert got in ((409, "out-of-order"), (400, "not-media"), (409, "finished"), (403, "forbidden"))
    else:
        assert answer.status in (200, 201, 404)


# -- websockets: the first message (hello) -----------------------------------------------------------------

WS_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)


def hello_frames(live: Live) -> st.SearchStrategy[str | bytes]:
    """First frames: hellos naming this module's sessions and tokens (right, wrong, the other
    participant's, another session's), any other message, JSON near misses, noise, too big."""
    sessions = st.sampled_from([live.session, live.other]) | TEXT
    tokens = st.sampled_from([live.coach_token, live.client_token]) | TEXT
    hello = st.builds(lambda extra, s, t, c: extra | {"type": "hello", "session": s, "token": t} | c,
                      st.dictionaries(TEXT, SCALARS, max_size=2), sessions, tokens,
                      st.sampled_from([{}, {"consent": True}, {"consent": False}, {"consent": "true"},
                                       {"consent": 1}, {"consent": None}]))
    return st.one_of(
        hello.map(json.dumps), hello.map(lambda m: json.dumps(m).encode()),
        valid_messages().map(json.dumps), invalid_messages().map(json.dumps),
        json_texts().filter(lambda t: text_ok(t)), WS_TEXT, st.binary(max_size=200),
        nested(30, 40), st.integers(MAX_MESSAGE_BYTES - 20, 200_000).map(
            lambda n: json.dumps({"type": "hello", "session": live.session, "token": live.coach_token,
                                  "pad": "x" * n})),
    )


def expected_first(frame: str | bytes, live: Live, indicators: bool) -> set[str]:
    """docs/signalling.md (Opening, Errors) and docs/indicators.md: what answers a first frame,
    as a message type ("welcome", "snapshot") or an error code."""
    try:
        msg = parse(frame)
    except ProtocolError as err:
        return {"too-big"} if err.close else {"bad-hello"}
    if msg["type"] != "hello":
        return {"bad-hello"}
    if msg["session"] != live.session:
        return {"unknown-session"} if msg["session"] != live.other else {"bad-token"}
    role = {live.coach_token: "coach", live.client_token: "client"}.get(msg["token"])
    if role is None:
        return {"bad-token"}
    if indicators:
        return {"snapshot"} if role == "coach" else {"forbidden"}
    if role == "client" and msg.get("consent") is not True:
        return {"consent-required"}
    return {"welcome", "too-many"}


async def first_answer(url: str, frame: str | bytes) -> tuple[dict, bool]:
    """The first message the server answers ``frame`` with, and whether it then closed the
    connection (within 10 s). A connection closed with no answer fails here."""
    async with connect(url, max_size=None, open_timeout=10, ping_interval=None, compression=None) as ws:
        await ws.send(frame)
        try:
            first = json.loads(await asyncio.wait_for(ws.recv(), 15))
        except ConnectionClosed as err:
            raise AssertionError(f"closed without an answer: {err}") from None
        if first.get("type") != "error":
            return first, False
        try:
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
        except ConnectionClosed:
            return first, True
        except TimeoutError:
            return first, False


def check_first(live: Live, frame: str | bytes, indicators: bool) -> None:
    url = live.server.url.replace("http", "ws") + ("/ws/indicators" if indicators else "/ws/signal")
    expected = expected_first(frame, live, indicators)
    answer, closed = asyncio.run(first_answer(url, frame))
    got = answer["code"] if answer.get("type") == "error" else answer.get("type")
    event(got)
    assert got in expected, (answer, expected)
    if answer.get("type") == "error":
        assert closed, f"the error {got} did not close the connection"
        assert isinstance(answer.get("message"), str) and answer["message"]
    else:
        live.joined.add(live.session)
    live.assert_quiet_log()


@LIVE
@given(data=st.data())
def test_the_first_signalling_frame_gets_welcome_or_a_closing_error(live: Live, data) -> None:
    check_first(live, data.draw(hello_frames(live), label="frame"), indicators=False)


@FEW
@given(data=st.data())
def test_the_first_indicator_frame_gets_a_snapshot_or_a_closing_error(live: Live, data) -> None:
    check_first(live, data.draw(hello_frames(live), label="frame"), indicators=True)


# -- websockets: a message after the hello ----------------------------------------------------------------


def after_hello_messages() -> st.SearchStrategy[str | bytes]:
    offers = st.builds(lambda to, sdp: json.dumps({"type": "offer", "to": to, "sdp": sdp}),
                       st.sampled_from(["server", "server", "peer"]),
                       st.sampled_from(["", "v=0\r\n", "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
                                                        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"]) | TEXT)
    return st.one_of(valid_messages().map(json.dumps), invalid_messages().map(json.dumps), offers, WS_TEXT,
                     st.binary(max_size=50), json_texts().filter(lambda t: text_ok(t)),
                     st.just(json.dumps({"type": "ping", "id": "x" * (MAX_MESSAGE_BYTES + 1)})))


def expected_after(frame: str | bytes) -> tuple[set[str], bool, bool]:
    """docs/signalling.md: the error codes a message after the hello may get, whether one of them
    must come, and whether the connection then ends (too big, a withdrawn analysis, a leave)."""
    try:
        msg = parse(frame)
    except ProtocolError as err:
        return {err.code}, True, err.close
    kind = msg["type"]
    if kind == "leave":
        return set(), False, True
    if kind == "withdraw":
        return ({"consent-withdrawn"}, True, True) if consent.ANALYSIS in msg["scopes"] else (set(), False, False)
    if msg.get("to") == "peer":
        return {"no-peer"}, True, False  # the client is not there
    if kind == "offer":
        return {"bad-sdp"}, False, False  # or its answer
    if kind == "ice":
        return {"bad-message"}, False, False  # only if a server connection could not use the candidate
    return set(), False, False


async def exchange(url: str, session: str, token: str, frame: str | bytes) -> tuple[str, list[dict], bool]:
    """Hello, then ``frame``, then a ping: (the hello's answer, every message up to the pong,
    whether the connection ended instead)."""
    marker = uuid.uuid4().hex
    async with connect(url, max_size=None, open_timeout=10, ping_interval=None, compression=None) as ws:
        await ws.send(json.dumps({"type": "hello", "session": session, "token": token}))
        first = json.loads(await asyncio.wait_for(ws.recv(), 15))
        if first["type"] != "welcome":
            return first.get("code", first["type"]), [], True
        await ws.send(frame)
        await ws.send(json.dumps({"type": "ping", "id": marker}))
        seen: list[dict] = []
        try:
            async with asyncio.timeout(20):
                while True:
                    message = json.loads(await ws.recv())
                    if message == {"type": "pong", "id": marker}:
                        return "welcome", seen, False
                    seen.append(message)
        except ConnectionClosed:
            return "welcome", seen, True


@LIVE
@given(frame=after_hello_messages())
@example(json.dumps({"type": "withdraw", "scopes": ["analysis"]})).via(
    "the connection stayed open (and in the call) after consent-withdrawn, before signalling.py honoured close")
def test_a_message_after_the_hello_gets_its_answer_and_leaks_no_peer(live: Live, frame: str | bytes) -> None:
    """Each message in a call: its answer or a documented error, the connection kept unless the
    message ends it; a refused offer leaves no peer connection (checked after the batch)."""
    url = live.server.url.replace("http", "ws") + "/ws/signal"
    codes, must, ends = expected_after(frame)
    for _ in range(3):
        session, token = live.session_for_messages()
        hello, seen, closed = asyncio.run(exchange(url, session, token, frame))
        if hello == "welcome":
            break
        assert hello in ("too-many", "consent-withdrawn"), hello
        live.retire_session()
    else:
        raise AssertionError("no session to join")
    live.joined.add(session)
    errors = [m for m in seen if m.get("type") == "error"]
    event(" ".join(sorted({m["type"] if m["type"] != "error" else m["code"] for m in seen})) or "nothing")
    assert all(m["code"] in codes and m.get("message") for m in errors), (errors, codes)
    assert len(errors) <= 1 and (len(errors) == 1 or not must), (seen, codes)
    assert closed == ends, (seen, closed)
    if closed and "consent-withdrawn" in codes:
        live.retire_session()
    live.assert_quiet_log()


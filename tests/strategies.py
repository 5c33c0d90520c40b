"""Hypothesis strategies for what the server parses (tests/test_properties.py): JSON texts and
values, signalling messages, settings bodies, tag bodies, Range headers, URL path segments.

Each strategy mixes the well-formed with the near miss (a field of the wrong type, a number just
out of range, the wrong kind of digit), because the near miss is where a parser forgets a case.
"""

from __future__ import annotations

import json
import math
import string
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from livecoach import consent
from livecoach.coach_settings import DEFAULTS, INTEGERS, MAX_TAG_KINDS, NUMBER_RANGES

# -- text and JSON ------------------------------------------------------------------------------

TEXT_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
"""Characters the server takes in JSON text: no lone surrogate, no NUL (docs/security.md)."""
TEXT = st.text(TEXT_CHARS, max_size=30)
"""Text that UTF-8 can encode (no lone surrogates) and PostgreSQL can store (no NUL): what a
websocket or an HTTP body can carry."""
ANY_TEXT = st.text(max_size=40)
"""Any text, lone surrogates included."""
ID_ALPHABET = string.ascii_letters + string.digits + "_-"
NEAR_ID_CHARS = ID_ALPHABET + " ./%\\\x00é²٣\u200b\ufeff"
"""The id alphabet and the characters an id check forgets: separators, NUL, a Latin-1 letter,
a superscript and an Arabic-Indic digit (``str.isdigit`` takes both), zero-width ones."""

SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**30), max_value=10**30)
           | st.floats(allow_nan=False, allow_infinity=False) | TEXT)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value the server should take: no NaN, no infinities, text UTF-8 can encode."""
    return st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
        max_leaves=max_leaves,
    )


def depth(value: Any) -> int:
    """How deeply arrays and objects nest (a scalar: 0), as jsontext.MAX_DEPTH counts it."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


@st.composite
def nested(draw: st.DrawFn, min_depth: int = 1, max_depth: int = 200) -> str:
    """A JSON text nested exactly ``n`` levels deep, arrays and objects mixed, with a value inside."""
    n = draw(st.integers(min_depth, max_depth))
    kinds = draw(st.lists(st.sampled_from("[{"), min_size=n, max_size=n))
    space = draw(st.sampled_from(["", " ", "\n"]))
    inner = json.dumps(draw(SCALARS))
    text = inner
    for kind in reversed(kinds):
        text = f"[{space}{text}{space}]" if kind == "[" else f'{{"k":{space}{text}}}'
    return text


@st.composite
def json_texts(draw: st.DrawFn) -> str:
    """JSON texts and near misses: valid ones, cut ones, ones with NaN or Infinity, escaped lone
    surrogates, deep nesting, huge integers, random text."""
    value = draw(json_values())
    text = json.dumps(value, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1])))
    how = draw(st.sampled_from(["valid", "cut", "insert", "constant", "surrogate", "deep", "huge-int", "random"]))
    if how == "cut" and text:
        return text[: draw(st.integers(0, len(text) - 1))]
    if how == "insert":
        at = draw(st.integers(0, len(text)))
        piece = draw(st.sampled_from(list('[]{}",:\\') + ["NaN", "-Infinity", "\\ud800", "\x00"]))
        return text[:at] + piece + text[at:]
    if how == "constant":
        return json.dumps([value, {"x": draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))}]).replace(
            '"NaN"', "NaN").replace('"Infinity"', "Infinity").replace('"-Infinity"', "-Infinity")
    if how == "surrogate":
        escape = draw(st.sampled_from(["\\ud800", "\\udfff", "\\udc00x", "\\ud83d"]))
        return json.dumps({"a": [value]})[:-2] + f', "{escape}"]}}'
    if how == "deep":
        return draw(nested(1, 120))
    if how == "huge-int":
        return "[" + "9" * draw(st.integers(4000, 5000)) + "]"
    if how == "random":
        return draw(st.text(max_size=60))
    return text


# -- signalling ---------------------------------------------------------------------------------

KNOWN_TYPES = ("hello", "offer", "answer", "ice", "mute", "recording", "withdraw", "direct-failed", "leave", "ping")
FINITE = st.floats(allow_nan=False, allow_infinity=False)
WRONG_FOR_STR = st.none() | st.booleans() | st.integers() | FINITE | st.lists(TEXT, max_size=2) | st.dictionaries(
    TEXT, TEXT, max_size=2)
WRONG_FOR_BOOL = st.none() | st.integers() | FINITE | TEXT | st.lists(st.booleans(), max_size=2)
EXTRA = st.dictionaries(st.text(TEXT_CHARS, min_size=1, max_size=8).filter(lambda k: k not in (
    "type", "session", "token", "consent", "to", "sdp", "candidate", "muted", "paused", "scopes", "id", "offer")),
    SCALARS, max_size=3)
"""Fields a message may carry beyond its own: ignored."""

OFFER_NUMBER = st.none() | st.integers()
"""A peer offer's number, which its answer and candidates carry back."""
CANDIDATE = st.none() | st.fixed_dictionaries({}, optional={
    "candidate": TEXT, "sdpMid": st.none() | TEXT, "sdpMLineIndex": st.none() | st.integers(0, 9)})


def valid_message(kind: str, session: st.SearchStrategy[str] = TEXT,
                  token: st.SearchStrategy[str] = TEXT) -> st.SearchStrategy[dict]:
    """A well-formed message of one type (docs/signalling.md), extra fields included."""
    fields: dict[str, st.SearchStrategy] = {"type": st.just(kind)}
    optional: dict[str, st.SearchStrategy] = {}
    if kind == "hello":
        fields |= {"session": session, "token": token}
        optional = {"consent": st.booleans()}
    elif kind in ("offer", "answer"):
        fields |= {"to": st.sampled_from(["server", "peer"] if kind == "offer" else ["peer"]), "sdp": TEXT}
        optional = {"offer": OFFER_NUMBER}
    elif kind == "ice":
        fields |= {"to": st.sampled_from(["server", "peer"]), "candidate": CANDIDATE}
        optional = {"offer": OFFER_NUMBER}
    elif kind == "mute":
        fields["muted"] = st.booleans()
    elif kind == "recording":
        fields["paused"] = st.booleans()
    elif kind == "withdraw":
        fields["scopes"] = st.lists(st.sampled_from(consent.SCOPES), min_size=1, max_size=4)
    elif kind == "ping":
        optional = {"id": TEXT | st.integers() | FINITE}
    return st.builds(lambda extra, msg: extra | msg, EXTRA, st.fixed_dictionaries(fields, optional=optional))


def valid_messages(**kw: st.SearchStrategy[str]) -> st.SearchStrategy[dict]:
    return st.one_of(*(valid_message(kind, **kw) for kind in KNOWN_TYPES))


@st.composite
def invalid_messages(draw: st.DrawFn) -> dict:
    """A message with exactly one thing wrong: a field missing, of the wrong type or value, or an
    unknown type. Each must be refused ``bad-message``."""
    kind = draw(st.sampled_from(KNOWN_TYPES[:-3] + ("ping", "unknown")))
    if kind == "unknown":
        other = draw(st.text(max_size=50).filter(lambda t: t not in KNOWN_TYPES))
        return draw(EXTRA) | {"type": other}
    if kind == "ping":
        return {"type": "ping", "id": draw(st.none() | st.booleans() | st.lists(SCALARS, max_size=2))}
    msg = draw(valid_message(kind))
    required = {"hello": ["session", "token", "consent"], "offer": ["to", "sdp", "offer"],
                "answer": ["to", "sdp", "offer"], "ice": ["to", "candidate", "offer"], "mute": ["muted"], "recording": ["paused"], "withdraw": ["scopes"]}[kind]
    key = draw(st.sampled_from(required))
    if key == "consent":  # optional: only a wrong type is wrong
        msg[key] = draw(WRONG_FOR_BOOL)
    elif key == "offer":  # optional too
        msg[key] = draw(st.booleans() | FINITE | TEXT | st.lists(st.integers(), max_size=2))
    elif draw(st.booleans()):
        msg.pop(key, None)
    elif key in ("session", "token", "sdp"):
        msg[key] = draw(WRONG_FOR_STR)
    elif key == "to":
        allowed = {"offer": ["server", "peer"], "answer": ["peer"], "ice": ["server", "peer"]}[kind]
        msg[key] = draw(WRONG_FOR_STR | TEXT.filter(lambda t: t not in allowed))
    elif key == "candidate":
        msg[key] = draw(st.booleans() | st.integers() | TEXT | st.lists(TEXT, max_size=2)
                        | st.fixed_dictionaries({"candidate": WRONG_FOR_STR.filter(lambda v: v is not None)}))
    elif key in ("muted", "paused"):
        msg[key] = draw(WRONG_FOR_BOOL)
    else:  # scopes
        msg[key] = draw(st.just([]) | TEXT | st.lists(TEXT.filter(lambda t: t not in consent.SCOPES), min_size=1,
                                                      max_size=3) | st.lists(st.integers(), min_size=1, max_size=2))
    return msg


# -- the coach's settings -----------------------------------------------------------------------

LABEL = st.text(TEXT_CHARS, min_size=1, max_size=60).filter(lambda t: t.strip())
KIND_ID = st.text(ID_ALPHABET, min_size=1, max_size=40)


def _number(name: str) -> st.SearchStrategy[float | int]:
    low, high = NUMBER_RANGES[name]
    ints = st.integers(math.ceil(low), math.floor(high))
    return ints if name in INTEGERS else ints | st.floats(low, high)


def _settings_of(default: dict[str, Any], path: str) -> st.SearchStrategy[dict]:
    """Any subset of the settings, each value valid (what a PUT may send: the rest defaults)."""
    optional: dict[str, st.SearchStrategy] = {}
    for key, value in default.items():
        name = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            optional[key] = _settings_of(value, name)
        elif key == "tag_kinds":
            optional[key] = st.lists(st.fixed_dictionaries({"id": KIND_ID, "label": LABEL}), max_size=MAX_TAG_KINDS,
                                     unique_by=lambda k: k["id"])
        elif isinstance(value, bool):
            optional[key] = st.booleans()
        else:
            optional[key] = _number(name)
    return st.fixed_dictionaries({}, optional=optional)


VALID_SETTINGS = _settings_of(DEFAULTS, "")


def _leaf_names(default: dict[str, Any], path: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in default.items():
        name = f"{path}.{key}" if path else key
        out += _leaf_names(value, name) if isinstance(value, dict) else [(name, value)]
    return out


LEAVES = _leaf_names(DEFAULTS)


def _bad_number(name: str) -> st.SearchStrategy[Any]:
    low, high = NUMBER_RANGES[name]
    wrong = [st.floats(max_value=low, exclude_max=True, allow_nan=False), st.floats(min_value=high, exclude_min=True),
             st.just(math.nan), st.booleans(), st.none(), TEXT, st.lists(st.integers(), max_size=2)]
    if name in INTEGERS:
        wrong.append(st.floats(low, high))  # a float where an integer must be (3.0 too)
    return st.one_of(*wrong)


@st.composite
def invalid_settings(draw: st.DrawFn) -> tuple[dict, str]:
    """A settings body with one thing wrong, and the name the error message must give."""
    body = draw(VALID_SETTINGS)
    name, default = draw(st.sampled_from(LEAVES + [("unknown", None), ("nudges.unknown", None)]))
    *parents, leaf = name.split(".")
    node = body
    for p in parents:
        node = node.setdefault(p, {})
    if leaf == "unknown":
        node[draw(st.text(TEXT_CHARS, min_size=1, max_size=10).filter(lambda k: k not in (DEFAULTS if not parents
                                                                              else DEFAULTS["nudges"])))] = 1
        return body, "unknown setting"
    if name == "tag_kinds":
        node[leaf] = draw(st.one_of(
            st.lists(st.fixed_dictionaries({"id": KIND_ID, "label": LABEL}), min_size=MAX_TAG_KINDS + 1,
                     max_size=MAX_TAG_KINDS + 3),
            st.just([{"id": "same", "label": "A"}, {"id": "same", "label": "B"}]),
            st.lists(st.fixed_dictionaries({"id": st.text(NEAR_ID_CHARS, max_size=45).filter(
                lambda t: not (0 < len(t) <= 40 and all(c in ID_ALPHABET for c in t))), "label": LABEL}),
                min_size=1, max_size=2),
            st.lists(st.fixed_dictionaries({"id": KIND_ID, "label": st.just("") | st.just("   ")
                                            | st.text(min_size=61, max_size=70) | st.integers()}),
                     min_size=1, max_size=1),
            st.lists(st.fixed_dictionaries({"id": KIND_ID, "label": LABEL, "extra": SCALARS}), min_size=1, max_size=1),
            TEXT | st.none() | st.dictionaries(TEXT, TEXT, max_size=2)))
        return body, "tag_kinds"
    if isinstance(default, bool):
        node[leaf] = draw(WRONG_FOR_BOOL)
    else:
        node[leaf] = draw(_bad_number(name))
    return body, name


# -- HTTP -----------------------------------------------------------------------------------------


def range_headers() -> st.SearchStrategy[str | None]:
    """Range headers: single ranges of every form (with spaces, huge numbers, leading zeros),
    several ranges, other units, and noise."""
    number = (st.integers(0, 2**42).map(str) | st.text("0123456789", min_size=1, max_size=30)
              | st.integers(4000, 5000).map(lambda n: "7" * n) | st.just(""))
    single = st.builds(lambda a, b, pad: f"{pad}bytes={a}-{b}{pad}", number, number, st.sampled_from(["", " ", "\t"]))
    return st.one_of(
        st.none(), single, st.text(max_size=30),
        st.builds(lambda a, b: f"bytes={a},{b}", single, single),
        st.builds(lambda u, a: f"{u}={a}", st.sampled_from(["items", "Bytes", "bytes ", "byte"]), number),
        st.builds(lambda a, b: f"bytes={a}-{b}", st.sampled_from(["²", "١", "-1", "+1", "0x10", "1e3", " 1"]),
                  number),
    )


TIME_OK = st.integers(0, 604800) | st.floats(0, 604800)
VALID_TAG = st.fixed_dictionaries(
    {"kind": KIND_ID, "label": LABEL, "session_time": TIME_OK},
    optional={"clicked_at": st.none() | TIME_OK, "note": st.text(TEXT_CHARS, max_size=20),
              "origin": st.sampled_from(["live", "review"])})
"""A tag as docs/sidebar.md describes it."""
BAD_TAG_FIELDS: dict[str, st.SearchStrategy] = {
    "kind": st.text(NEAR_ID_CHARS, max_size=42).filter(lambda t: not (0 < len(t) <= 40 and all(
        c in ID_ALPHABET for c in t))) | WRONG_FOR_STR,
    "label": st.sampled_from(["", "  ", "\t\n"]) | st.text(min_size=61, max_size=64) | WRONG_FOR_STR,
    "session_time": st.sampled_from([-1, -0.001, 604800.001, 10**9, True, None, "1"])
    | st.lists(st.integers(), max_size=1),
    "clicked_at": st.sampled_from([-1, 604801, True, "1"]),
    "note": st.text(min_size=501, max_size=503) | st.integers() | st.lists(TEXT, max_size=1),
    "origin": st.sampled_from(["Live", "", None, 1, "replay"]),
}


@st.composite
def one_bad_tag(draw: st.DrawFn) -> dict:
    """A valid tag with exactly one field wrong or missing."""
    body = draw(VALID_TAG)
    key = draw(st.sampled_from(sorted(BAD_TAG_FIELDS)))
    if key in ("kind", "label", "session_time") and draw(st.booleans()):
        del body[key]
    else:
        body[key] = draw(BAD_TAG_FIELDS[key])
    return body


def tag_bodies() -> st.SearchStrategy[Any]:
    """PUT/PATCH tag bodies: valid ones (with fields beyond their own), one field wrong, any mix of
    near misses, and any JSON value."""
    extra = st.dictionaries(TEXT, SCALARS, max_size=2)
    mixed = st.fixed_dictionaries({}, optional={key: good | bad for key, (good, bad) in {
        "kind": (KIND_ID, BAD_TAG_FIELDS["kind"]), "label": (LABEL, BAD_TAG_FIELDS["label"]),
        "session_time": (TIME_OK, BAD_TAG_FIELDS["session_time"]),
        "note": (st.text(max_size=10), BAD_TAG_FIELDS["note"]),
    }.items()})
    return st.one_of(
        st.builds(lambda e, b: e | b, extra, VALID_TAG), one_bad_tag(), mixed, json_values(6))


# -- URL path segments ------------------------------------------------------------------------------

SEGMENT_TEXT = st.one_of(
    st.text(ID_ALPHABET, min_size=1, max_size=70),
    st.text(NEAR_ID_CHARS, min_size=1, max_size=70),
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40),
    st.sampled_from(["..", ".", "%2e%2e", "%2E%2E", "%2f", "%00", "%ff", "%", "..%2f..", "a" * 300, "0" * 5000,
                     "²", "٣", "-1", "+1", "1e3", "99999", "100000", "0" * 30 + "1", " 1", "1 "]),
    st.integers(4000, 5000).map(lambda n: "9" * n),
)
"""What a path parameter may be: ids, near-ids, any text, traversal and encoding tricks, long ones."""


@st.composite
def segments(draw: st.DrawFn, text: st.SearchStrategy[str] = SEGMENT_TEXT) -> str:
    """One path segment as sent: percent-encoded in full, or with the ASCII it may keep left raw
    (so ``%2e%2e`` reaches the server as ``..`` once it decodes the path)."""
    raw = draw(text)
    if draw(st.booleans()):
        return quote(raw, safe="")
    return quote(raw, safe="%.:@!$&'()*+,;=~-_")

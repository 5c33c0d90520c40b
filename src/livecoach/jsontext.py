"""JSON from outside (request bodies, websocket messages), checked before anything uses it.

``json.loads`` takes JSON that the rest of the server cannot: nesting 100,000 deep (the parser
itself then fails with RecursionError), ``NaN`` and ``Infinity``, and lone UTF-16 surrogates
(``"\\ud800"``), which no UTF-8 encoder, and so no database write or answer, accepts. Each is
refused here with a clear message instead of a 500 later (docs/security.md).
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32
"""Deeper than any message or body of the API (the deepest, a settings body, is 3 levels)."""


class BadJson(ValueError):
    """The text is not JSON the server takes; the message says why."""


def loads(text: str | bytes | bytearray) -> Any:
    """The value of a JSON text, or BadJson."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise BadJson("the text is not UTF-8") from None
    if _depth(text) > MAX_DEPTH:
        raise BadJson(f"JSON nested more than {MAX_DEPTH} levels deep")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise BadJson(f"JSON nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as err:
        raise BadJson(f"not JSON ({err})") from None
    _check_text(value)
    return value


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects, counted without parsing (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def _check_text(value: Any) -> None:
    """Every string (and key) must be encodable as UTF-8 (no lone surrogates) and free of NUL,
    which PostgreSQL's text cannot hold (SQLite's can: refused on both, so both behave alike)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise BadJson("text with a lone UTF-16 surrogate (\\ud800-\\udfff) is not valid Unicode") from None
            if "\x00" in item:
                raise BadJson("text with a NUL character (\\u0000) is not accepted") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")

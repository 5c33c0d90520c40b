"""Serving a recording over HTTP with byte ranges, which media elements need to seek.

Chromium asks for ``Range: bytes=N-`` and jumps around a file by further ranges; without a 206
answer it cannot seek at all. One range per request is served (multipart ranges are answered
with the whole file, as RFC 9110 allows). The bytes come from the recordings' storage.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from starlette.responses import Response, StreamingResponse

RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
BEYOND = 1 << 64
"""Stands for a position of more digits than any file has bytes (``int`` of thousands of digits raises)."""


def byte_count(digits: str) -> int:
    """A count of bytes written in ASCII digits (the caller has checked they are), as an int;
    ``BEYOND`` for more digits than any file has bytes (``int`` of thousands of digits raises)."""
    digits = digits.lstrip("0")
    return int(digits or "0") if len(digits) <= 18 else BEYOND


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """``(first, last)`` byte of a single satisfiable range; None to send the whole file;
    "unsatisfiable" for a range past the end."""
    if not header:
        return None
    match = RANGE.fullmatch(header.strip())
    if match is None:
        return None  # not a form we serve (several ranges, another unit): the whole file
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = byte_count(last)
        if length == 0 or size == 0:  # no last bytes of an empty file (RFC 9110, 14.1.2)
            return "unsatisfiable"
        return max(0, size - length), size - 1
    start = byte_count(first)
    end = min(byte_count(last), size - 1) if last else size - 1
    if start >= size or (last and byte_count(last) < start):
        return "unsatisfiable"
    return start, end


def ranged_response(size: int, media_type: str, range_header: str | None,
                    read: Callable[[int, int], Iterator[bytes]], headers: dict[str, str]) -> Response:
    """200 with the whole file, 206 with one range, or 416."""
    common = headers | {"Accept-Ranges": "bytes"}
    wanted = parse_range(range_header, size)
    if wanted == "unsatisfiable":
        return Response(status_code=416, headers=common | {"Content-Range": f"bytes */{size}"})
    if wanted is None:
        if size == 0:
            return Response(b"", media_type=media_type, headers=common)
        return StreamingResponse(read(0, size - 1), media_type=media_type,
                                 headers=common | {"Content-Length": str(size)})
    start, end = wanted
    return StreamingResponse(read(start, end), status_code=206, media_type=media_type, headers=common | {
        "Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)})

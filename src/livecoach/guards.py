"""What every request passes before a route sees it: its origin and its size (docs/security.md).

- **Origin.** A browser names the page that sends a request (``Origin``). A state-changing
  request (any method but GET, HEAD, OPTIONS) or a websocket from a page of another site is
  refused: a coach's login cookie must not let some other site act as the coach (cross-site
  request forgery, including a ``text/plain`` form), nor may another site's page open the call's
  websockets. Requests without ``Origin`` come from programs, not pages, and carry no cookie
  they were not given.
- **Size.** A body larger than the route allows is refused with 413 as soon as that is known
  (from ``Content-Length``, or as it streams in), so a large body costs neither memory nor time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .media import byte_count

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_MAX_BODY = 16 * 1024
"""Every JSON body of the API is far smaller (the largest, the settings with their tag kinds, a few KB)."""


class Guards:
    """ASGI middleware: refuses cross-site requests and oversized bodies (see the module)."""

    def __init__(self, app: ASGIApp, body_limits: Iterable[tuple[str, int]] = (),
                 allowed_origins: Iterable[str] = ()) -> None:
        """``body_limits``: (path regex, bytes) for the routes that take more than the default
        (the first match counts); ``allowed_origins``: other origins that may use the server
        (e.g. ``https://coach.example.com`` behind a proxy that rewrites Host)."""
        self.app = app
        self.body_limits = [(re.compile(pattern), limit) for pattern, limit in body_limits]
        self.allowed = {o.rstrip("/").lower() for o in allowed_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            if not self._origin_ok(scope):
                await send({"type": "websocket.close", "code": 1008, "reason": "this page's origin may not connect"})
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS and not self._origin_ok(scope):
            await _refuse(send, 403, "bad-origin", "requests from pages of another site are refused")
            return
        limit = self._limit(scope["path"])
        length = _header(scope, b"content-length")
        if length is not None and not _within(length, limit):
            await _refuse(send, 413, "too-big", f"the body may have at most {limit} bytes")
            return
        await self._limited(scope, receive, send, limit)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the app, counting the body as it arrives: past ``limit`` the app sees the client
        gone and the client gets 413 (unless the app had answered already)."""
        received = 0
        over = False
        started = False

        async def counted() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the app's answer to a body it did not get whole: ours goes instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except ClientDisconnect:
            if not over:
                raise
        if over and not started:
            await _refuse(send, 413, "too-big", f"the body may have at most {limit} bytes")

    def _limit(self, path: str) -> int:
        for pattern, limit in self.body_limits:
            if pattern.fullmatch(path):
                return limit
        return DEFAULT_MAX_BODY

    def _origin_ok(self, scope: Scope) -> bool:
        origin = _header(scope, b"origin")
        if origin is None:
            return True
        origin = origin.rstrip("/").lower()
        host = (_header(scope, b"host") or "").lower()
        scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
        return origin == f"{scheme}://{host}" or origin in self.allowed


def _within(length: str, limit: int) -> bool:
    """Whether a ``Content-Length`` is a number of bytes up to ``limit``: ASCII digits only
    (``str.isdigit`` also takes "²", which ``int`` refuses)."""
    return length.isascii() and length.isdigit() and byte_count(length) <= limit


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})

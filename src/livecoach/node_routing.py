"""How a request reaches the node that owns its session, when several nodes share the database
(nodes.py; docs/deploy.md, "Several nodes"; docs/signalling.md for the close code).

- **The prefix.** A node serves its whole app both at ``/`` and under ``/n/<id>/``, for any id:
  ``NodePrefix`` takes the prefix off the path before anything else sees it (the proxy passes
  paths unchanged) and remembers the id. HAProxy routes ``/n/<id>/`` to that node while it is up
  and to any live node otherwise (deploy/haproxy.cfg.in); the pages call the API and open their
  websockets under the prefix their page was loaded from (web/js/node.js).
- **Session-scoped requests** (``/s/<session>/…``, ``/api/sessions/<session>/…``,
  ``/media/<session>/…``, and the websockets ``/ws/signal`` and ``/ws/indicators``, whose hello
  names the session) are served by the session's owner only (``NodeRouting``). Elsewhere an HTTP
  request gets ``307`` to the owner, and a websocket an ``error`` ``moved`` and the close code
  ``MOVED`` (4307) whose reason is where to go. Where: ``/n/<owner>`` behind the proxy (a request
  that came under a prefix, or with the ``X-Livecoach-Proxy`` header the proxy sets), else the
  owner's ``--node-url``.
- A request that came under its owner's own prefix and still reached another node was sent here
  by the proxy because it could not reach the owner, though the registry still has the owner
  alive (up to ``ALIVE_S`` after its death): sending it back would loop, so it gets ``503`` with
  ``Retry-After`` (a websocket: ``unavailable``), and the page tries again until the session has
  moved. A request that came under another node's prefix for a session this node owns (it took
  the session over from that dead node) is sent to this node's prefix, so that the page goes on
  under it.
- Everything else (the pages' files, login, the library, creating a session) is served by any node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import jsontext
from .live.signalling import HELLO_TIMEOUT, payload
from .nodes import Node
from .store import NodeRow

MOVED = 4307
"""The websocket close code (application range) of a session that runs on another node: the
close reason is where to go (``/n/<owner>`` or the owner's URL), and so is the ``to`` of the
``error`` message ``moved`` sent just before."""
PROXY_HEADER = b"x-livecoach-proxy"
"""Set by the proxy on every request it passes (deploy/haproxy.cfg.in): answers then point at
``/n/<owner>/…`` on the same address rather than at the owner's own URL."""
PREFIX_KEY = "livecoach.node_prefix"
"""Where ``NodePrefix`` leaves the id of the prefix a request came under (absent: none)."""
WEBSOCKETS = ("/ws/signal", "/ws/indicators")
_PREFIX = re.compile(r"/n/([A-Za-z0-9_-]{1,64})(/.*)?", re.S)
_SESSION_PATH = re.compile(r"/(?:s|media)/([^/]+)/.*|/api/sessions/([^/]+)(?:/.*)?", re.S)
RETRY_AFTER_S = 1


def session_of_path(path: str) -> str | None:
    """The session a request's path names, if it is session-scoped."""
    match = _SESSION_PATH.fullmatch(path)
    return (match.group(1) or match.group(2)) if match else None


def hello_session(data: str | bytes) -> str | None:
    """The session a websocket's first message names (None: not a hello with one)."""
    try:
        msg = jsontext.loads(data)
    except jsontext.BadJson:
        return None
    session = msg.get("session") if isinstance(msg, dict) and msg.get("type") == "hello" else None
    return session if isinstance(session, str) and 0 < len(session) <= 64 else None


def proxied(scope: Scope) -> bool:
    """Whether the request came through the proxy that routes by prefix."""
    return PREFIX_KEY in scope or any(key == PROXY_HEADER for key, _ in scope.get("headers", ()))


def link_base(owner: NodeRow, scope: Scope) -> str:
    """What goes before a path to reach ``owner``: ``/n/<id>`` behind the proxy, else its URL."""
    return f"/n/{owner.id}" if proxied(scope) else owner.url.rstrip("/")


class NodePrefix:
    """ASGI middleware, outermost: ``/n/<id>/rest`` is served as ``/rest``, the id kept in the scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and (match := _PREFIX.fullmatch(scope["path"])):
            rest = match.group(2) or "/"
            scope = dict(scope, path=rest, **{PREFIX_KEY: match.group(1)})
            raw = scope.get("raw_path")
            head = f"/n/{match.group(1)}".encode()
            if raw is not None:
                scope["raw_path"] = (raw[len(head):] or b"/") if raw.startswith(head) else rest.encode()
        await self.app(scope, receive, send)


class NodeRouting:
    """ASGI middleware, inside the guards: session-scoped requests go to their owner (see the module)."""

    def __init__(self, app: ASGIApp, node: Node) -> None:
        self.app = app
        self.node = node

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            session = session_of_path(scope["path"])
            if session is not None and scope["method"] != "OPTIONS":
                owner = await run_in_threadpool(self.node.place, session)
                if owner is not None and (owner.id != self.node.id or _other_prefix(scope, owner)):
                    return await self._elsewhere(scope, send, owner)
        elif scope["type"] == "websocket" and scope["path"] in WEBSOCKETS:
            return await self._websocket(scope, receive, send)
        await self.app(scope, receive, send)

    async def _elsewhere(self, scope: Scope, send: Send, owner: NodeRow) -> None:
        if scope.get(PREFIX_KEY) == owner.id and owner.id != self.node.id:
            body = json.dumps({"error": {"code": "unavailable", "message": "the node of this session cannot be "
                                         "reached just now: try again in a moment"}}).encode()
            headers = [(b"content-type", b"application/json"), (b"retry-after", str(RETRY_AFTER_S).encode())]
            return await _answer(send, 503, headers, body)
        raw = scope.get("raw_path") or quote(scope["path"]).encode()
        query = scope.get("query_string") or b""
        location = link_base(owner, scope).encode() + raw + (b"?" + query if query else b"")
        await _answer(send, 307, [(b"location", location)], b"")

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Accept, read the hello, and either pass the websocket on (the hello replayed) or tell
        the page where its session runs."""
        connect = await receive()
        if connect["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        try:
            first = await asyncio.wait_for(receive(), HELLO_TIMEOUT)
        except TimeoutError:
            return await _close(send, "timeout", f"no hello within {HELLO_TIMEOUT:.0f} s")
        if first["type"] == "websocket.disconnect":
            return
        session = hello_session(payload(first))
        owner = await run_in_threadpool(self.node.place, session) if session is not None else None
        if owner is not None and (owner.id != self.node.id or _other_prefix(scope, owner)):
            if scope.get(PREFIX_KEY) == owner.id and owner.id != self.node.id:
                return await _close(send, "unavailable", "the node of this session cannot be reached just now: "
                                                         "try again in a moment")
            where = link_base(owner, scope)
            return await _close(send, "moved", "this session runs on another node", code_number=MOVED, to=where)
        replay: list[Message] = [connect, first]

        async def replayed() -> Message:
            return replay.pop(0) if replay else await receive()

        async def accepted(message: Message) -> None:
            if message["type"] != "websocket.accept":  # accepted already, above
                await send(message)

        call = scope["path"] == "/ws/signal" and owner is not None
        if call:
            self.node.call_opened(session)
        try:
            await self.app(scope, replayed, accepted)
        finally:
            if call:
                self.node.call_closed(session)


def _other_prefix(scope: Scope, owner: NodeRow) -> bool:
    """Whether the request came under another node's prefix (the proxy sent it here because that
    node is down, and this node owns the session now): the page should go on under this one's."""
    return scope.get(PREFIX_KEY, owner.id) != owner.id


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        *headers, (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


async def _close(send: Send, code: str, message: str, *, code_number: int = 1000, **fields) -> None:
    """An ``error`` message, then the close (``MOVED`` carries ``to`` as its reason too)."""
    with contextlib.suppress(OSError, RuntimeError):
        await send({"type": "websocket.send", "text": json.dumps({"type": "error", "code": code, "message": message,
                                                                  **fields})})
        reason = fields.get("to", "")
        await send({"type": "websocket.close", "code": code_number,
                    "reason": reason if len(reason.encode()) <= 123 else ""})

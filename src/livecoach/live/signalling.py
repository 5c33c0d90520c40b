"""The signalling and indicator websockets: validating every message, then acting on it.

The protocol is documented in docs/signalling.md and docs/indicators.md. A bad message gets an
``error`` naming what was wrong; errors about who is speaking (session, token, consent) close
the connection, and closing always releases the server's peer connection for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from .. import consent, jsontext
from ..store import Store
from .backpressure import drain_waiter
from .call import Calls, other
from .indicators import deliver

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024
HELLO_TIMEOUT = 10.0
RATE_WINDOW, RATE_MAX = 10.0, 200


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.close = close


def _bad(message: str) -> ProtocolError:
    return ProtocolError("bad-message", message)


def _need(msg: dict, key: str, kinds: type | tuple[type, ...], optional: bool = False) -> Any:
    if key not in msg:
        if optional:
            return None
        raise _bad(f"'{msg['type']}' needs '{key}'")
    value = msg[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _tuple(kinds)):
        raise _bad(f"'{key}' of '{msg['type']}' has the wrong type")
    return value


def _tuple(kinds) -> tuple:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def utf8_length(text: str | bytes) -> int:
    """A message's size in bytes, as the limit counts it: a text frame's characters as UTF-8
    (up to 4 bytes each; a lone surrogate as 3)."""
    if isinstance(text, bytes) or text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def parse(text: str | bytes) -> dict[str, Any]:
    """One message of the protocol, checked for size, form and its type's fields."""
    if utf8_length(text) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too-big", f"messages are at most {MAX_MESSAGE_BYTES} bytes", close=True)
    try:
        msg = jsontext.loads(text)
    except jsontext.BadJson as err:
        raise _bad(str(err)) from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise _bad("a message is a JSON object with a string 'type'")
    kind = msg["type"]
    if kind == "hello":
        _need(msg, "session", str)
        _need(msg, "token", str)
        _need(msg, "consent", bool, optional=True)
    elif kind in ("offer", "answer"):
        to = _need(msg, "to", str)
        if to not in (("server", "peer") if kind == "offer" else ("peer",)):
            raise _bad(f"'{kind}' cannot go to '{to}'")
        _need(msg, "sdp", str)
        _need(msg, "offer", (int, type(None)), optional=True)
    elif kind == "ice":
        if _need(msg, "to", str) not in ("server", "peer"):
            raise _bad("'ice' goes to 'server' or 'peer'")
        _need(msg, "offer", (int, type(None)), optional=True)
        if "candidate" not in msg:
            raise _bad("'ice' needs 'candidate' (an object, or null)")
        cand = msg["candidate"]
        if cand is not None:
            if not isinstance(cand, dict) or not isinstance(cand.get("candidate", ""), str):
                raise _bad("'candidate' is an RTCIceCandidateInit object or null")
    elif kind == "mute":
        _need(msg, "muted", bool)
    elif kind == "recording":
        _need(msg, "paused", bool)
    elif kind == "withdraw":
        scopes = _need(msg, "scopes", list)
        if not scopes or not all(isinstance(x, str) and x in consent.SCOPES for x in scopes):
            raise _bad(f"'scopes' lists some of {', '.join(consent.SCOPES)}")
    elif kind == "ping":
        _need(msg, "id", (str, int, float), optional=True)
    elif kind == "dismiss":
        if len(_need(msg, "id", str)) > 64:
            raise _bad("'id' is a nudge's id")
    elif kind not in ("direct-failed", "leave"):
        raise _bad(f"unknown message type '{kind[:40]}'")
    return msg


def payload(event: dict[str, Any]) -> str | bytes:
    """The text (or bytes) of an ASGI ``websocket.receive`` event."""
    return event["text"] if event.get("text") is not None else event.get("bytes", b"")


class _Connection:
    """Common to both websockets: bounded receiving, serialised sending, closing with an error."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self._send_lock = asyncio.Lock()
        self._times: list[float] = []
        self.closed = False

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_text(json.dumps(message))

    async def send_text(self, text: str) -> None:
        if self.closed:
            return
        async with self._send_lock:
            try:
                await self.ws.send_text(text)
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.closed = True

    async def fail(self, code: str, message: str) -> None:
        """Send an error and close."""
        await self.send({"type": "error", "code": code, "message": message})
        await self.close()

    async def close(self, code: int = 1000) -> None:
        if not self.closed:
            self.closed = True
            if self.ws.client_state == WebSocketState.CONNECTED:
                try:
                    await self.ws.close(code)
                except (WebSocketDisconnect, RuntimeError, OSError):
                    pass  # the other side went first: nothing left to close

    async def receive(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next valid message; None when the connection has ended."""
        try:
            event = await asyncio.wait_for(self.ws.receive(), timeout)
        except TimeoutError:
            raise ProtocolError("timeout", "no hello within 10 s", close=True) from None
        if event["type"] == "websocket.disconnect":
            self.closed = True
            return None
        now = time.monotonic()
        self._times = [t for t in self._times if now - t < RATE_WINDOW]
        self._times.append(now)
        if len(self._times) > RATE_MAX:
            raise ProtocolError("too-many", f"more than {RATE_MAX} messages in {RATE_WINDOW:.0f} s", close=True)
        return parse(payload(event))

    async def authenticate(self, store: Store, coach_only: bool) -> tuple[str, str, dict] | None:
        """Wait for a valid hello; return (session id, role, hello) or None after failing."""
        try:
            hello = await self.receive(HELLO_TIMEOUT)
        except ProtocolError as err:
            await self.fail("timeout" if err.code == "timeout" else err.code if err.close else "bad-hello", str(err))
            return None
        if hello is None:
            return None
        if hello["type"] != "hello":
            await self.fail("bad-hello", "the first message must be 'hello'")
            return None
        session_id = hello["session"]
        if store.get_session(session_id) is None:
            await self.fail("unknown-session", "there is no such session")
            return None
        role = store.role_for(session_id, hello["token"])
        if role is None:
            await self.fail("bad-token", "this link is not valid for the session")
            return None
        if coach_only and role != "coach":
            await self.fail("forbidden", "only the coach receives indicators")
            return None
        return session_id, role, hello


async def _opened(ws: WebSocket, store: Store, coach_only: bool) -> tuple[_Connection, tuple[str, str, dict] | None]:
    """Accept a websocket and wait for its hello: the connection, and who it is (None: refused)."""
    conn = _Connection(ws)
    await ws.accept()
    return conn, await conn.authenticate(store, coach_only)


async def serve_signalling(ws: WebSocket, store: Store, calls: Calls) -> None:
    conn, who = await _opened(ws, store, coach_only=False)
    if who is None:
        return
    session_id, role, hello = who
    if role == "client" and hello.get("consent") is not True:
        await conn.fail("consent-required", "the client must agree to the notice before joining")
        return
    if not calls.may_join(session_id, role):
        await conn.fail("too-many", "joined too often in the last minute: wait a moment")
        return
    # The coach agrees by starting the call (their page says what is recorded); the client
    # by joining from the notice. Either way the row keeps the exact notice. What they withdrew
    # earlier in this session stays withdrawn; without the analysis they cannot join again.
    withdrawn = store.withdrawn_scopes(session_id, role)
    if consent.ANALYSIS in withdrawn:
        await conn.fail("consent-withdrawn", "you withdrew your consent to this session's analysis: "
                                             "ask your coach for a new session to meet again here")
        return
    scopes = consent.session_scopes(store.get_session(session_id).video_recording, calls.settings.recording)
    store.record_consent(session_id, role, consent.notice(scopes), scopes)
    call = calls.open(session_id)
    call.consent(role, set(scopes) - withdrawn, withdrawn)  # before joining: the welcome carries the status
    await call.join(role, conn)
    try:
        await conn.send(
            {
                "type": "welcome",
                "role": role,
                "session": session_id,
                "topology": call.live.topology,
                "ice_servers": [s.to_dict() for s in call.settings.ice_servers],
                "peer_present": call.present(other(role)),
                "session_time": round(call.live.session_time, 3),
                "recording": call.recording.status(),
            }
        )
        while not conn.closed:
            try:
                msg = await conn.receive()
            except ProtocolError as err:
                if err.close:
                    await conn.fail(err.code, str(err))
                    break
                await conn.send({"type": "error", "code": err.code, "message": str(err)})
                continue
            if msg is None:
                break
            if msg["type"] == "leave":
                break
            try:
                await _act(call, role, msg, conn)
            except ProtocolError as err:
                if err.close:  # a withdrawn analysis ends the call (docs/signalling.md, Errors)
                    await conn.fail(err.code, str(err))
                    break
                await conn.send({"type": "error", "code": err.code, "message": str(err)})
    finally:
        await call.leave(role, conn)
        await conn.close()


async def _act(call, role: str, msg: dict[str, Any], conn: _Connection) -> None:
    kind = msg["type"]
    if kind == "ping":
        await conn.send({"type": "pong", "id": msg.get("id")})
    elif kind == "mute":
        call.set_muted(role, msg["muted"])
    elif kind == "recording":
        if role != "coach":
            raise ProtocolError("forbidden", "only the coach pauses and resumes the recording")
        await call.set_recording_paused(msg["paused"])
    elif kind == "withdraw":
        withdrawn = call.withdraw(role, set(msg["scopes"]))
        await conn.send({"type": "withdrawn", "scopes": sorted(withdrawn)})
        if consent.ANALYSIS in withdrawn:
            raise ProtocolError("consent-withdrawn", "you withdrew your consent to the analysis: you have left "
                                                     "the call", close=True)
    elif kind == "direct-failed":
        await call.relay()
    elif kind == "dismiss":
        raise ProtocolError("bad-message", "a nudge is dismissed on the coach's indicator stream")
    elif msg.get("to") == "peer":
        forwarded = {k: v for k, v in msg.items() if k != "to"} | {"from": "peer"}
        if not await call.send_to(other(role), forwarded):
            raise ProtocolError("no-peer", "the other participant is not connected")
    elif kind == "offer":
        try:
            sdp = await call.server_offer(role, msg["sdp"])
        except Exception as err:  # aiortc raises several kinds on a bad or unsupported offer
            log.info("session %s: %s's offer refused: %s", call.id, role, err)
            raise ProtocolError("bad-sdp", f"the offer could not be accepted: {err}") from None
        await conn.send({"type": "answer", "from": "server", "sdp": sdp})
    elif kind == "ice":
        peer = call.peers.get(role)
        if peer is not None:
            try:
                await peer.add_candidate(msg["candidate"])
            except Exception as err:
                raise ProtocolError("bad-message", f"the candidate could not be used: {err}") from None


async def serve_indicators(ws: WebSocket, store: Store, calls: Calls) -> None:
    """The coach's indicator stream: the session's messages through this connection's mailbox,
    so that a slow reader gets the newest state, not a backlog (live/indicators.py)."""
    conn, who = await _opened(ws, store, coach_only=True)
    if who is None:
        return
    call = calls.open(who[0])
    live = call.live
    box = live.hub.subscribe(live.snapshot())

    async def send(text: str) -> None:
        if not conn.closed:
            await conn.send_text(text)

    sender = asyncio.get_running_loop().create_task(deliver(box, send, drain_waiter(ws)))
    try:
        while not conn.closed:
            try:
                msg = await conn.receive()
                if msg is None:
                    break
                if msg["type"] == "ping":
                    box.offer({"type": "pong", "id": msg.get("id"), "session_time": round(live.session_time, 3)})
                elif msg["type"] == "dismiss":  # the coach's click, straight to the live call
                    live.nudger.dismiss(msg["id"])
            except ProtocolError as err:
                box.offer({"type": "error", "code": err.code, "message": str(err),
                           "session_time": round(live.session_time, 3)})
                if err.close:
                    break
    finally:
        live.hub.unsubscribe(box)  # what is pending (an error, say) still goes, then the sender ends
        try:
            await asyncio.wait_for(sender, 1.0)
        except (TimeoutError, asyncio.CancelledError):
            sender.cancel()
        call.subscriber_left()
        await conn.close()

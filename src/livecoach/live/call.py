"""A session's call on the server: its participants' connections, the server's peers, the tap.

The server holds one ``Call`` per session that has someone connected. A participant has at
most one signalling connection (a new one replaces the old: a reload, a rejoin) and at most one
server peer connection (a new offer replaces the old: the switch to relay).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import SessionDescription, candidate_from_sdp

from .. import heap
from ..config import EngineConfig
from ..recordings.call import CallRecording, recorded_until
from ..review_source import warm as warm_review
from ..settings import Settings
from ..store import Store
from .relay import Switchboard
from .session import ABSENT, CONNECTED, MUTED, LiveSession
from .storing import StoreExchange, exchange_slot
from .decoding import decode_inline
from .packet_time import with_packet_time
from .tap import AudioTap

log = logging.getLogger(__name__)

JOIN_LIMIT, JOIN_WINDOW_S = 30, 60.0
"""Joins of one participant of a session allowed per window (Calls.may_join)."""

IDLE_SECONDS = 60.0
"""A call with nobody connected is closed after this long."""
TURN_END_SECONDS = 1.0
"""How long the engine needs after the last audio to end an open segment (bridging, 300 ms,
and its confirmation), with the session's tick filling the absence meanwhile."""
RECORDING_TICK = 1.0
"""Seconds between the recording's writes of pages (what a killed process loses of its audio);
its rows go to the store with the rest of the live session's, every ``STORE_INTERVAL``
(storing.py)."""



class Connection(Protocol):
    """A participant's signalling connection, as the call sees it."""

    async def send(self, message: dict[str, Any]) -> None: ...

    async def fail(self, code: str, message: str) -> None: ...


class ServerPeer:
    """The server's end of one participant's server connection."""

    def __init__(self, call: Call, role: str) -> None:
        self.call = call
        self.role = role
        servers = [RTCIceServer(**s.to_dict()) for s in call.settings.ice_servers]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self.taps: list[AudioTap] = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if self.call.live.topology == "relay":
            track_for_tap = self.call.switchboard.received(self.role, track)
        else:
            track_for_tap = track
        if track.kind == "audio":
            tap = AudioTap(self.call.live, self.role, track_for_tap)
            receiver = next((t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track), None)
            forwarded = self.call.live.topology == "relay"
            if receiver is None or decode_inline(receiver, track, forwarded) is None:
                log.warning("session %s: %s's audio is decoded by aiortc's own thread (the inline decoder "
                            "did not take: is aiortc outside the tested range?); the recording lacks it",
                            self.call.id, self.role)
            self.taps.append(tap)
            self.call.tap_started(self, tap)

    async def answer(self, sdp: str) -> str:
        offer = SessionDescription.parse(sdp)
        if not any(m.kind == "audio" and m.direction in ("sendonly", "sendrecv") for m in offer.media):
            raise ValueError("the offer sends no audio")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        if self.call.live.topology == "relay":
            offered = [t.kind for t in self.pc.getTransceivers()]
            for track in self.call.switchboard.outputs_for(self.role, offered):
                self.pc.addTrack(track)
        else:
            # In a direct call the server takes the microphone only: other media is declined,
            # so nothing arrives that no one would consume (aiortc would queue it unbounded).
            for transceiver in self.pc.getTransceivers():
                if transceiver.kind != "audio":
                    transceiver.direction = "inactive"
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        if self.call.live.topology == "relay":
            return self.pc.localDescription.sdp
        return with_packet_time(self.pc.localDescription.sdp, self.call.settings.tap_packet_ms)

    async def add_candidate(self, init: dict[str, Any] | None) -> None:
        if init is None or not init.get("candidate"):
            await self.pc.addIceCandidate(None)
            return
        text = init["candidate"]
        candidate = candidate_from_sdp(text.split(":", 1)[1] if text.startswith("candidate:") else text)
        candidate.sdpMid = init.get("sdpMid")
        candidate.sdpMLineIndex = init.get("sdpMLineIndex")
        await self.pc.addIceCandidate(candidate)

    async def close(self) -> None:
        await self.pc.close()
        for tap in self.taps:
            if tap.task is not None:
                tap.task.cancel()


class Call:
    def __init__(self, session_id: str, settings: Settings, store: Store, config: EngineConfig | None,
                 exchange: StoreExchange) -> None:
        """``exchange``: the process's exchange with the store, which its calls share (storing.py)."""
        self.id = session_id
        self.settings = settings
        self.store = store
        storage = settings.recordings_storage()
        self.live = LiveSession(
            session_id,
            settings.topology,
            config,
            store=store,
            exchange=exchange,
            recorded_until=lambda: recorded_until(store, storage, session_id),
        )
        self.recording = CallRecording(session_id, store, storage, self._recording_changed, exchange.submit)
        self.switchboard = Switchboard()
        self.connections: dict[str, Connection] = {}
        self.peers: dict[str, ServerPeer] = {}
        self.muted: dict[str, bool] = {"coach": False, "client": False}
        self._current_tap: dict[str, AudioTap] = {}
        self._idle: asyncio.TimerHandle | None = None
        self.closed = False
        self.on_closed: Callable[[Call], None] | None = None
        self._recording_ticker: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()

    def start(self) -> None:
        self.live.start(self.settings.snapshot_interval)
        self._recording_ticker = asyncio.get_running_loop().create_task(self._tick_recording())

    async def _tick_recording(self) -> None:
        """Each second of the wall clock (just after it turns); at each turn of the store's
        exchange, also the session's exchange and the recording's rows (storing.py): every call of
        the process hands them in at that instant, so that they go in one transaction, and soon."""
        rows_slot = None
        while True:
            await asyncio.sleep(RECORDING_TICK - time.time() % RECORDING_TICK + 0.01)
            slot = exchange_slot(time.time())
            if slot != rows_slot:
                self.live.exchange_if_due()
            await self.recording.tick(rows=slot != rows_slot)
            rows_slot = slot

    # -- recording -------------------------------------------------------------------------

    def consent(self, role: str, scopes: set[str], withdrawn: set[str] = frozenset()) -> None:
        """What a participant agreed to for this call (their hello), and what they had withdrawn."""
        self.recording.consent(role, scopes, withdrawn)

    def withdraw(self, role: str, scopes: set[str]) -> set[str]:
        """The participant withdrew these scopes: logged, and their recording stops at once (the
        status tells both pages and the coach's sidebar). Returns all they have withdrawn."""
        self.store.withdraw_consent(self.id, role, scopes, self.live.session_time)
        withdrawn = self.recording.withdrawn.get(role, set()) | scopes
        self.recording.consent(role, self.store.consent_scopes(self.id, role), withdrawn)
        return withdrawn

    async def set_recording_paused(self, paused: bool) -> None:
        self.recording.set_paused(paused)

    def _recording_changed(self, status: dict) -> None:
        """Both pages show whether they are recorded; the coach's sidebar too. Those connected
        now are told; a participant joining learns it from their welcome."""
        self.live.set_recording(status)
        self._spawn(self._tell(list(self.connections.values()), {"type": "recording", **status}))

    @staticmethod
    async def _tell(connections: list[Connection], message: dict[str, Any]) -> None:
        for conn in connections:
            await conn.send(message)

    async def _emptied(self) -> None:
        """Nobody is in the call: the timeline so far is written and the recordings finished
        now, so the coach can review the call at once; anyone who comes back starts new files.
        First the engine is given the time to end the last turns (its bridging and confirmation
        take under a second of absence). Then the review's timeline is built and kept, for the
        coach who opens the review straight away."""
        await asyncio.sleep(TURN_END_SECONDS)
        await self.live.exchange_with_store()
        await self.recording.finish()
        if not self.connections:
            try:
                await asyncio.to_thread(warm_review, self.store, self.id)
                await asyncio.to_thread(heap.after_big_job)
            except Exception:  # the review builds it again when asked; the call is not hurt
                log.exception("session %s: keeping the review's timeline failed", self.id)

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- participants --------------------------------------------------------------------

    async def join(self, role: str, conn: Connection) -> None:
        """A participant's signalling connection is open; an older one of theirs is replaced."""
        old = self.connections.get(role)
        self.connections[role] = conn
        if old is not None:
            await old.fail("replaced", "this call was opened in another window")
            await self._drop_peer(role)
        self._cancel_idle()
        self.store.log_event(self.id, "joined", role, self.live.session_time)
        self.store.touch_session(self.id)  # the client's invite runs from the call's last activity
        await self.send_to(other(role), {"type": "peer-joined"})

    async def leave(self, role: str, conn: Connection) -> None:
        """A participant's signalling connection ended (left, closed, dropped)."""
        if self.connections.get(role) is not conn:
            return  # already replaced by a newer connection
        del self.connections[role]
        await self._drop_peer(role)
        self.switchboard.left(role)
        self.live.set_state(role, ABSENT)
        self.store.log_event(self.id, "left", role, self.live.session_time)
        self.store.touch_session(self.id)
        await self.send_to(other(role), {"type": "peer-left"})
        if not self.connections:
            self._spawn(self._emptied())
            if not self.live.hub.subscribers:
                self._schedule_idle()

    def present(self, role: str) -> bool:
        return role in self.connections

    async def send_to(self, role: str, message: dict[str, Any]) -> bool:
        conn = self.connections.get(role)
        if conn is None:
            return False
        await conn.send(message)
        return True

    def set_muted(self, role: str, muted: bool) -> None:
        self.muted[role] = muted
        if self.live.state(role) != ABSENT:
            self.live.set_state(role, MUTED if muted else CONNECTED)

    # -- media ---------------------------------------------------------------------------

    async def server_offer(self, role: str, sdp: str) -> str:
        """A participant offers a (new) server connection; the old one is closed."""
        await self._drop_peer(role)
        peer = ServerPeer(self, role)
        self.peers[role] = peer
        try:
            return await peer.answer(sdp)
        except Exception:
            if self.peers.get(role) is peer:
                del self.peers[role]
            await peer.close()
            raise

    def tap_started(self, peer: ServerPeer, tap: AudioTap) -> None:
        """A participant's audio track arrived: they count as connected from its first audio
        until it ends, unless a newer track of theirs has taken over."""
        role = peer.role
        self._current_tap[role] = tap

        def started() -> None:
            if self._current_tap.get(role) is tap:
                self.live.set_state(role, MUTED if self.muted[role] else CONNECTED)

        def packet(position48: int, samples: int, data: bytes, peak: int, priming: int) -> None:
            if self._current_tap.get(role) is tap:
                self.recording.packet(role, position48, samples, data, peak, priming)

        def ended(task: asyncio.Task) -> None:
            if not task.cancelled() and task.exception() is not None:  # a bug: say so, never end quietly
                log.error("session %s: the %s's audio tap failed", self.live.id, role, exc_info=task.exception())
            if self._current_tap.get(role) is tap:
                del self._current_tap[role]
                self.live.set_state(role, ABSENT)

        tap.on_start = started
        tap.on_packet = packet
        tap.start().add_done_callback(ended)

    async def relay(self) -> None:
        """Switch the session to relay: the browsers now send everything to the server."""
        if self.live.topology != "relay":
            self.live.set_topology("relay")
            for role in list(self.connections):
                await self.send_to(role, {"type": "topology", "topology": "relay"})

    async def _drop_peer(self, role: str) -> None:
        peer = self.peers.pop(role, None)
        if peer is not None:
            await peer.close()

    # -- lifetime ------------------------------------------------------------------------

    def _schedule_idle(self) -> None:
        self._cancel_idle()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(IDLE_SECONDS, lambda: loop.create_task(self.close()))

    def _cancel_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def subscriber_left(self) -> None:
        if not self.connections and not self.live.hub.subscribers:
            self._schedule_idle()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._cancel_idle()
        for conn in list(self.connections.values()):
            await conn.fail("closing", "the call is closing")
        for role in list(self.peers):
            await self._drop_peer(role)
        self.switchboard.close()
        if self._recording_ticker is not None:
            self._recording_ticker.cancel()
        await self.recording.finish()
        await self.live.stop()
        if self.on_closed is not None:
            self.on_closed(self)


class Calls:
    """The calls in progress on this server, by session id."""

    def __init__(self, settings: Settings, store: Store, config: EngineConfig | None = None) -> None:
        self.settings = settings
        self.store = store
        self.config = config
        self.exchange = StoreExchange(store)
        """The calls' exchange with the store: one transaction for all (storing.py)."""
        self._calls: dict[str, Call] = {}
        self._joins: dict[tuple[str, str], deque[float]] = {}

    def may_join(self, session_id: str, role: str) -> bool:
        """At most JOIN_LIMIT joins of one participant in JOIN_WINDOW_S: a page reloading in a
        loop (or a script) must not fill the session's log with joins and leaves."""
        now = time.monotonic()
        times = self._joins.setdefault((session_id, role), deque())
        while times and times[0] <= now - JOIN_WINDOW_S:
            times.popleft()
        if len(times) >= JOIN_LIMIT:
            return False
        times.append(now)
        if len(self._joins) > 10_000:
            self._joins = {k: v for k, v in self._joins.items() if v and v[-1] > now - JOIN_WINDOW_S}
        return True

    def get(self, session_id: str) -> Call | None:
        return self._calls.get(session_id)

    def open(self, session_id: str) -> Call:
        call = self._calls.get(session_id)
        if call is None or call.closed:
            call = Call(session_id, self.settings, self.store, self.config, self.exchange)
            call.on_closed = lambda c: self._calls.pop(c.id, None) if self._calls.get(c.id) is c else None
            self._calls[session_id] = call
            call.start()
        return call

    def __len__(self) -> int:
        return len(self._calls)

    def peer_count(self) -> int:
        """Server peer connections held open, over all calls (a leak shows here)."""
        return sum(len(c.peers) for c in self._calls.values())

    async def close(self) -> None:
        for call in list(self._calls.values()):
            await call.close()


def other(role: str) -> str:
    return "client" if role == "coach" else "coach"

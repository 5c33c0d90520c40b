"""A simulated participant: a browser stand-in built on aiortc that plays an audio file.

It speaks the protocol of docs/signalling.md exactly as the web pages do (server connection,
direct peer connection, the relay switch, mute, leave), so tests and ``scripts/bench_live.py``
exercise the real server with real WebRTC, and an operator can check a deployment with it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any

import av
import websockets
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole, MediaPlayer, MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from ..opus import OPUS_RATE, joined_packets, packet_samples
from .packet_time import packet_ms

log = logging.getLogger(__name__)

PEER_TIMEOUT = 6.0


class MutableAudio(MediaStreamTrack):
    """An audio track that sends silence while muted, as a browser does for a disabled track.

    With a ``start`` event it waits for it before its first frame: simulated participants whose
    recordings belong together (the coach's voice leaking into the client's file) must start
    playing at the same moment, as two people in a real call speak in the same time.
    """

    kind = "audio"

    def __init__(self, source: MediaStreamTrack, start: asyncio.Event | None = None) -> None:
        super().__init__()
        self.source = source
        self.start = start
        self.muted = False

    async def recv(self):
        if self.start is not None:
            await self.start.wait()
        frame = await self.source.recv()
        if self.muted:
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
        return frame


class LongerPackets(MediaStreamTrack):
    """Encoded Opus packets joined ``frames`` at a time, as a browser asked for longer packets
    (``a=ptime`` in the server's answer, live/packet_time.py) sends them; ``frames`` is set once
    the answer is read. Each joined packet goes when its last frame would have."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.source = source
        self.frames = 1
        self.joined = 0
        """Source packets sent inside another's (what a count of sent packets leaves out)."""
        self._ready: list[av.Packet] = []

    async def recv(self):
        if self._ready:
            return self._ready.pop(0)
        first = await self.source.recv()
        if self.frames == 1 or not isinstance(first, av.Packet):
            return first
        packets = [first] + [await self.source.recv() for _ in range(self.frames - 1)]
        out = joined_packets([bytes(p) for p in packets])
        self.joined += len(packets) - len(out)
        for data in out:
            packet = av.Packet(data)
            packet.pts, packet.time_base = first.pts, first.time_base
            self._ready.append(packet)
            first.pts += packet_samples(data) * first.time_base.denominator // (OPUS_RATE * first.time_base.numerator)
        return self._ready.pop(0)


class Jitter:
    """Network jitter on what a simulated participant sends to the server: each packet is held a
    random time (gamma-distributed, mean ``mean_ms``; one in ``spike_every`` held ``spike_ms``
    longer, as when a home router's queue fills), never overtaking the one before, as queues on
    a real path bunch packets up rather than reorder them. Seeded, so a run can be repeated."""

    def __init__(self, mean_ms: float = 15.0, spike_ms: float = 80.0, spike_every: int = 100, seed: int = 0) -> None:
        self.mean = mean_ms / 1000
        self.spike = spike_ms / 1000
        self.spike_every = spike_every
        self._random = random.Random(seed)
        self._pumps: list[asyncio.Task] = []

    def _draw(self) -> float:
        hold = self._random.gammavariate(2.0, self.mean / 2) if self.mean > 0 else 0.0
        if self.spike_every and self._random.randrange(self.spike_every) == 0:
            hold += self.spike
        return hold

    def apply(self, transport: Any) -> None:
        """Hold the packets of an aiortc ``RTCDtlsTransport`` (RTP and RTCP alike), sending them
        in order from one task."""
        send = transport._send_rtp
        loop = asyncio.get_running_loop()
        waiting: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        last = 0.0

        async def pump() -> None:
            while True:
                at, data = await waiting.get()
                if at > loop.time():
                    await asyncio.sleep(at - loop.time())
                try:
                    await send(data)
                except ConnectionError:  # closed meanwhile, as a real path drops it
                    pass

        async def held(data: bytes) -> None:
            nonlocal last
            last = max(last, loop.time() + self._draw())
            waiting.put_nowait((last, data))

        transport._send_rtp = held
        self._pumps.append(loop.create_task(pump()))

    def close(self) -> None:
        for pump in self._pumps:
            pump.cancel()


class SimPeer:
    """One participant. ``await join()``, then it runs until ``leave()`` or ``close()``."""

    def __init__(
        self,
        base_url: str,
        session: str,
        token: str,
        audio: str,
        consent: bool = True,
        start: asyncio.Event | None = None,
        direct_blocked: bool = False,
        packets: bool = False,
        jitter: Jitter | None = None,
    ) -> None:
        """``packets``: send an Ogg/Opus file's packets as they are, as a browser's RTP carries
        its encoder's output (no decoding and encoding again here). ``jitter``: hold what goes
        to the server as a real network's queues do."""
        self.ws_url = base_url.replace("http", "ws", 1).rstrip("/") + "/ws/signal"
        self.session = session
        self.token = token
        self.audio_path = audio
        self.packets = packets
        self.jitter = jitter
        self.consent = consent
        self.start = start
        self.direct_blocked = direct_blocked  # ignore peer offers, as if a firewall stood between
        self.role: str | None = None
        self.topology: str | None = None
        self.messages: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.server_pc: RTCPeerConnection | None = None
        self.server_audio: MediaStreamTrack | None = None
        """What the server connection sends (a ``LongerPackets`` when sending packets)."""
        self.peer_pc: RTCPeerConnection | None = None
        self.peer_connected = asyncio.Event()
        self.received_frames = 0  # media frames arrived from the other participant
        self._ws = None
        self._player: MediaPlayer | None = None
        self._relay = MediaRelay()
        self._mic: MutableAudio | None = None
        self._reader: asyncio.Task | None = None
        self._sinks: list[MediaBlackhole] = []
        self._answers: asyncio.Queue = asyncio.Queue()

    async def join(self) -> dict[str, Any]:
        self._ws = await websockets.connect(self.ws_url, max_size=1 << 20)
        hello = {"type": "hello", "session": self.session, "token": self.token}
        if self.consent:
            hello["consent"] = True
        await self._send(hello)
        welcome = json.loads(await self._ws.recv())
        self.messages.append(welcome)
        if welcome["type"] != "welcome":
            self.errors.append(welcome)
            return welcome
        self.role, self.topology = welcome["role"], welcome["topology"]
        self._player = MediaPlayer(self.audio_path, decode=not self.packets)
        self._mic = MutableAudio(self._player.audio, self.start)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self._offer_server()
        if welcome["peer_present"] and self.role == "coach" and self.topology == "direct":
            await self._offer_peer()
        return welcome

    async def server_connected(self, timeout: float = 10.0) -> None:
        """Wait until the server connection is up (the audio flows once it is)."""
        deadline = time.monotonic() + timeout
        while self.server_pc is None or self.server_pc.connectionState != "connected":
            if time.monotonic() > deadline:
                raise TimeoutError("the server connection did not come up")
            await asyncio.sleep(0.02)

    async def mute(self, muted: bool) -> None:
        if self._mic is not None:
            self._mic.muted = muted
        await self._send({"type": "mute", "muted": muted})

    async def leave(self) -> None:
        await self._send({"type": "leave"})
        await self.close()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.jitter is not None:
            self.jitter.close()
        for pc in (self.server_pc, self.peer_pc):
            if pc is not None:
                await pc.close()
        for sink in self._sinks:
            await sink.stop()
        if self._player is not None and self._player.audio is not None:
            self._player.audio.stop()
        if self._ws is not None:
            await self._ws.close()

    # -- internals -----------------------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        await self._ws.send(json.dumps(message))

    def _audio(self) -> MediaStreamTrack:
        """The microphone for one more connection. Buffered: when this process's loop is busy
        (many simulated participants), frames come due in bunches, and an unbuffered relay keeps
        only the latest of a bunch; at 4 calls that lost 40% of the audio before sending, which
        a browser, whose encoder gets every frame, never does."""
        return self._relay.subscribe(self._mic, buffered=True)

    async def _offer_server(self) -> None:
        if self.server_pc is not None:
            await self.server_pc.close()
        pc = RTCPeerConnection()
        self.server_pc = pc
        direction = "sendrecv" if self.topology == "relay" else "sendonly"
        sent = LongerPackets(self._audio()) if self.packets else self._audio()
        transceiver = pc.addTransceiver(sent, direction=direction)
        self.server_audio = sent
        if self.topology == "relay":
            pc.on("track", self._consume)
        await pc.setLocalDescription(await pc.createOffer())
        if self.jitter is not None:
            self.jitter.apply(transceiver.sender.transport)
        await self._send({"type": "offer", "to": "server", "sdp": pc.localDescription.sdp})
        answer = await asyncio.wait_for(self._answers.get(), 10)
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        if isinstance(sent, LongerPackets):  # a browser's encoder follows the answer's ptime
            sent.frames = max(1, (packet_ms(answer) or 20) // 20)

    def _new_peer_pc(self) -> RTCPeerConnection:
        pc = RTCPeerConnection()
        self.peer_pc = pc
        self.peer_connected.clear()
        pc.on("track", self._consume)

        @pc.on("connectionstatechange")
        def changed() -> None:
            if pc.connectionState == "connected":
                self.peer_connected.set()

        return pc

    async def _offer_peer(self) -> None:
        pc = self._new_peer_pc()
        pc.addTransceiver(self._audio(), direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        await self._send({"type": "offer", "to": "peer", "sdp": pc.localDescription.sdp})
        asyncio.get_running_loop().create_task(self._watch_peer(pc))

    async def _watch_peer(self, pc: RTCPeerConnection) -> None:
        try:
            await asyncio.wait_for(self.peer_connected.wait(), PEER_TIMEOUT)
        except TimeoutError:
            if self.peer_pc is pc:
                await self._send({"type": "direct-failed"})

    def _consume(self, track: MediaStreamTrack) -> None:
        async def pull() -> None:
            while True:
                try:
                    await track.recv()
                except Exception:
                    return
                self.received_frames += 1

        asyncio.get_running_loop().create_task(pull())

    async def _read(self) -> None:
        async for raw in self._ws:
            msg = json.loads(raw)
            self.messages.append(msg)
            kind = msg["type"]
            try:
                if kind == "answer" and msg.get("from") == "server":
                    self._answers.put_nowait(msg["sdp"])
                elif kind == "error":
                    self.errors.append(msg)
                elif kind == "peer-joined" and self.role == "coach" and self.topology == "direct":
                    await self._offer_peer()
                elif kind == "offer" and msg.get("from") == "peer" and not self.direct_blocked:
                    pc = self._new_peer_pc()
                    await pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "offer"))
                    pc.addTrack(self._audio())
                    await pc.setLocalDescription(await pc.createAnswer())
                    await self._send({"type": "answer", "to": "peer", "sdp": pc.localDescription.sdp})
                elif kind == "answer" and msg.get("from") == "peer" and self.peer_pc is not None:
                    await self.peer_pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "answer"))
                elif kind == "peer-left" and self.peer_pc is not None:
                    await self.peer_pc.close()
                    self.peer_pc = None
                elif kind == "topology" and msg["topology"] == "relay":
                    self.topology = "relay"
                    if self.peer_pc is not None:
                        await self.peer_pc.close()
                        self.peer_pc = None
                    asyncio.get_running_loop().create_task(self._offer_server())
            except Exception:
                log.exception("simulated %s: handling %s failed", self.role, kind)


class IndicatorReader:
    """The coach's indicator stream, collected with each message's arrival time."""

    def __init__(self, base_url: str, session: str, token: str) -> None:
        self.url = base_url.replace("http", "ws", 1).rstrip("/") + "/ws/indicators"
        self.session = session
        self.token = token
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self._ws = None
        self._task: asyncio.Task | None = None

    async def open(self) -> None:
        self._ws = await websockets.connect(self.url, max_size=1 << 22)
        await self._ws.send(json.dumps({"type": "hello", "session": self.session, "token": self.token}))
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                self.messages.append((time.time(), json.loads(raw)))
        except websockets.ConnectionClosed:
            pass

    def latest(self, kind: str = "snapshot") -> dict[str, Any] | None:
        for _, msg in reversed(self.messages):
            if msg["type"] == kind:
                return msg
        return None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._ws is not None:
            await self._ws.close()

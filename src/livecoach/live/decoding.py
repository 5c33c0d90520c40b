"""Decoding received audio on the event loop instead of in aiortc's decoder thread.

aiortc gives every received track a decoder thread: each 20 ms packet goes to it over a
``queue.Queue`` and each decoded frame comes back with ``run_coroutine_threadsafe``. With 40
tracks in one process that is 4000 thread hand-overs a second, each a fight for the GIL, and
profiles of 20 calls showed the event loop spending a quarter of its time there while the
decoding itself (libopus, about 20 µs a frame) is cheap. So for audio the receiver's decoder
queue is replaced by :class:`InlineDecoding`, which hands each packet on where it is handed over,
straight into the track's queue. An Opus packet the tap alone reads is not decoded here at all
(an :class:`EncodedAudio`): the tap decodes it at the engine's 16 kHz (opus.SpeechDecoder). One
the relay also forwards is decoded to 48 kHz mono frames for the other participant, the first
of them carrying the packet. Either way the packet itself travels on (``opaque``), so that the
recording keeps the audio exactly as it was received, without encoding it again.

Audio also skips aiortc's jitter buffer (:class:`PassThroughJitter`): it held every packet 80 ms
for a playout the tap does not do.

The decoder thread still starts (aiortc starts it), but it only waits for the end of the track
and then ends it as before. If a future aiortc no longer has the private attributes this
replaces, nothing is replaced and aiortc's own path runs (tests/test_decoding.py checks them
for the pinned range).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import av
from aiortc import RTCRtpReceiver
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.utils import uint16_add
from aiortc.mediastreams import MediaStreamTrack

from ..opus import OPUS_RATE, FullRateDecoder, packet_samples

log = logging.getLogger(__name__)

_QUEUE_ATTRIBUTE = "_RTCRtpReceiver__decoder_queue"
_JITTER_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"


class _MonoOpus(FullRateDecoder):
    """aiortc's encoded frames to mono frames for the relay (aiortc's own decoder makes stereo)."""

    def decode(self, encoded_frame) -> list[av.AudioFrame]:  # type: ignore[override]
        return super().decode(encoded_frame.data, encoded_frame.timestamp)


class EncodedAudio:
    """A received Opus packet, not decoded: what the tap's queue gets in a direct call. It has
    the attributes of a decoded frame the tap and the queue read (48 kHz counts)."""

    __slots__ = ("opaque", "pts", "samples")
    sample_rate = OPUS_RATE

    def __init__(self, packet: bytes, pts: int, samples: int) -> None:
        self.opaque = packet
        self.pts = pts
        self.samples = samples


class InlineDecoding:
    """Stands in for a receiver's decoder queue (``put``), handing each packet at once to
    ``output``: Opus undecoded unless ``forwarded`` (the relay re-encodes its frames)."""

    def __init__(self, output: asyncio.Queue, forwarded: bool = False) -> None:
        self.output = output
        self.forwarded = forwarded
        self.failed = 0
        self._decoder: Any = None
        self._codec_name: str | None = None
        self._ended = threading.Event()

    def put(self, item: Any) -> None:
        if item is None:  # the receiver stops: let its thread end the track
            self._ended.set()
            return
        codec, encoded_frame = item
        if not self.forwarded and codec.name.lower() == "opus":
            samples = packet_samples(encoded_frame.data)
            if not samples:
                self.failed += 1
                log.warning("an Opus packet of %d bytes holds no audio", len(encoded_frame.data))
                return
            self.output.put_nowait(EncodedAudio(bytes(encoded_frame.data), encoded_frame.timestamp, samples))
            return
        if codec.name != self._codec_name:
            self._decoder = _MonoOpus() if codec.name.lower() == "opus" else get_decoder(codec)
            self._codec_name = codec.name
        try:
            frames = self._decoder.decode(encoded_frame)
        except av.FFmpegError as err:
            self.failed += 1
            log.warning("a %s frame could not be decoded: %s", codec.name, err)
            return
        for index, frame in enumerate(frames):
            if index == 0:
                frame.opaque = bytes(encoded_frame.data)  # the packet as received, for the recording
            self.output.put_nowait(frame)

    def get(self) -> None:
        """What aiortc's decoder thread waits on: nothing until the end, then None."""
        self._ended.wait()
        return None


class PassThroughJitter:
    """Stands in for an audio receiver's jitter buffer: each packet goes on at once.

    aiortc's audio jitter buffer holds 4 packets (80 ms) before it releases one, to smooth
    playout. The tap plays nothing out: it places audio by RTP timestamp and leaves gaps where
    packets are missing, so the wait bought nothing and cost every live figure 80 ms. An Opus
    packet is one RTP packet, so each is a whole frame. A packet older than one already passed on
    (reordered by the network) is dropped: its place is already filled, and the decoder must see
    packets in order. Its audio is counted as dropped on ``output`` (the tap's queue, whose
    dropped samples become the session's ``dropped_s``), as audio dropped anywhere else is."""

    capacity = 1

    def __init__(self, output: Any = None) -> None:
        self._last: int | None = None  # sequence number of the last packet passed on
        self._output = output
        self.reordered = 0

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._last is not None and uint16_add(seq, -self._last) >= 0x8000:
            self.reordered += 1
            if hasattr(self._output, "dropped_samples"):
                self._output.dropped_samples += packet_samples(packet.payload)
            return False, None
        self._last = seq
        return False, JitterFrame(data=packet._data, timestamp=packet.timestamp)


def decode_inline(receiver: RTCRtpReceiver, track: MediaStreamTrack, forwarded: bool = False) -> InlineDecoding | None:
    """Make ``receiver`` hand its audio on on the event loop, each packet as it arrives (decoded
    only if ``forwarded``). Call it when the track appears, before the receiver starts (aiortc
    hands the queue to its thread then)."""
    output = getattr(track, "_queue", None)
    if track.kind != "audio" or not isinstance(output, asyncio.Queue):
        return None
    if not hasattr(receiver, _QUEUE_ATTRIBUTE) or getattr(receiver, "_RTCRtpReceiver__started", True):
        return None
    inline = InlineDecoding(output, forwarded)
    setattr(receiver, _QUEUE_ATTRIBUTE, inline)
    if hasattr(receiver, _JITTER_ATTRIBUTE):
        setattr(receiver, _JITTER_ATTRIBUTE, PassThroughJitter(output))
    return inline

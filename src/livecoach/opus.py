"""Opus decoded one way on every path: a live call's packets and a recorded file's.

The engine's decisions are made on 10 ms frames, and on hard audio (a quiet talker under noise
and echo) they hang on the last bit of a sample: FFmpeg's own Opus decoder and libopus differ by
a few units, and the same packets decoded by both gave talk shares 1-2 points apart. So a live
track and an Opus file read for analysis go through this one decoder (``SpeechDecoder``):
libopus, mono, 16-bit, straight at the engine's 16 kHz. A file's pre-skip (the encoder's 6.5 ms
of priming) is skipped here; a live stream has none to read, and the tap asks for the same 312
samples to be skipped (live/tap.py ``OPUS_PRIMING``).

Why libopus is called directly (``ctypes``): PyAV's libopus decoder always makes 48 kHz, and
decoding at 48 kHz and resampling to 16 kHz was the largest part of what a live call costs the
server (about 90 µs a 20 ms packet, against 45 µs straight at 16 kHz). The library is the one
inside PyAV's wheel (the build PyAV itself decodes with), else the system's. Where neither can
be loaded, PyAV's 48 kHz decoder and a resampler stand in, on both paths alike.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .frames import SAMPLE_RATE

log = logging.getLogger(__name__)

OPUS_RATE = 48000
_TIME_BASE = Fraction(1, OPUS_RATE)


def pre_skip(extradata: bytes | None) -> int:
    """The pre-skip of an OpusHead (RFC 7845 5.1: bytes 10-11, little-endian); 0 without one."""
    head = bytes(extradata or b"")
    return int.from_bytes(head[10:12], "little") if head.startswith(b"OpusHead") and len(head) >= 12 else 0


_FRAME_MS = {"silk": (10, 20, 40, 60), "hybrid": (10, 20), "celt": (2.5, 5, 10, 20)}


def packet_samples(data: bytes) -> int:
    """How many 48 kHz samples an Opus packet holds, from its TOC byte (RFC 6716 3.1): the frame
    size its configuration names times its frame count; 0 for an empty or malformed packet."""
    if not data:
        return 0
    config, code = data[0] >> 3, data[0] & 3
    if config < 12:
        ms = _FRAME_MS["silk"][config % 4]
    elif config < 16:
        ms = _FRAME_MS["hybrid"][config % 2]
    else:
        ms = _FRAME_MS["celt"][config % 4]
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        frames = data[1] & 0x3F if len(data) > 1 else 0
    return int(frames * ms * OPUS_RATE / 1000)


class FullRateDecoder:
    """Opus packets to 48 kHz mono s16 frames (a stereo stream is mixed down by libopus), less
    the first ``skip`` samples: what the relay forwards to the other participant, and what
    ``SpeechDecoder`` falls back on."""

    def __init__(self, skip: int = 0) -> None:
        self.skip = skip
        self.codec = av.CodecContext.create("libopus", "r")
        self.codec.format = "s16"
        self.codec.layout = "mono"
        self.codec.sample_rate = OPUS_RATE

    def decode(self, data: bytes, pts: int | None = None) -> list[av.AudioFrame]:
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = _TIME_BASE
        frames = self.codec.decode(packet)
        while self.skip and frames:
            first = frames[0]
            rest = without_start(first, min(self.skip, first.samples))
            self.skip -= first.samples - (rest.samples if rest is not None else 0)
            frames = ([rest] if rest is not None else []) + frames[1:]
        return frames


def without_start(frame: av.AudioFrame, samples: int) -> av.AudioFrame | None:
    """The frame less its first ``samples`` (None if nothing is left); packed formats only, as
    this decoder makes them."""
    if samples >= frame.samples:
        return None
    rest = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(frame.to_ndarray()[:, samples:]), format=frame.format.name, layout=frame.layout.name)
    rest.sample_rate = frame.sample_rate
    return rest


def joined_packets(packets: list[bytes]) -> list[bytes]:
    """Single-frame Opus packets as one packet of all their frames (RFC 6716 3.2.5, code 3 with
    frame lengths), as an encoder asked for longer packets sends them; returned as they are
    where they cannot be joined (a frame count other than one, configurations that differ, more
    than 120 ms, an empty packet)."""
    if len(packets) < 2 or any(not p or p[0] & 3 != 0 for p in packets) or len({p[0] for p in packets}) != 1:
        return packets
    if sum(packet_samples(p) for p in packets) > OPUS_RATE * 120 // 1000:
        return packets
    frames = [p[1:] for p in packets]
    header = bytearray([packets[0][0] | 3, 0x80 | len(frames)])  # code 3, variable frame lengths
    for frame in frames[:-1]:
        size = len(frame)
        if size < 252:
            header.append(size)
        else:
            first = 252 + ((size - 252) & 3)
            header += bytes([first, (size - first) >> 2])
    return [bytes(header) + b"".join(frames)]


_MAX_PACKET_MS = 120
_INVALID_DATA = -1094995529
"""FFmpeg's AVERROR_INVALIDDATA, which PyAV raises as ``InvalidDataError``: what readers of damaged
files already handle."""


def _load_libopus() -> ctypes.CDLL | None:
    """libopus with the decoder's three functions declared; None if it cannot be loaded."""
    av_dir = Path(av.__file__).resolve().parent
    candidates = [str(p) for pattern in ("av.libs/libopus*.so*", "av/.dylibs/libopus*.dylib")
                  for p in sorted(av_dir.parent.glob(pattern))]
    system = ctypes.util.find_library("opus")
    if system:
        candidates.append(system)
    for name in candidates:
        try:
            lib = ctypes.CDLL(name)
            lib.opus_decoder_create.restype = ctypes.c_void_p
            lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
            lib.opus_decode.restype = ctypes.c_int
            lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_void_p,
                                        ctypes.c_int, ctypes.c_int]
            lib.opus_decoder_destroy.restype = None
            lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
            return lib
        except (OSError, AttributeError):
            continue
    log.warning("libopus could not be loaded directly: Opus is decoded at 48 kHz and resampled (slower)")
    return None


_LIBOPUS = _load_libopus()


class SpeechDecoder:
    """Opus packets to the engine's audio: 16 kHz mono int16, less the first ``skip`` samples
    (counted at 48 kHz, as a pre-skip is). One per stream: libopus keeps state across packets."""

    def __init__(self, skip: int = 0) -> None:
        self._lib = _LIBOPUS
        self._decoder = None
        if self._lib is not None:
            error = ctypes.c_int()
            decoder = self._lib.opus_decoder_create(SAMPLE_RATE, 1, ctypes.byref(error))
            if error.value == 0 and decoder:
                self._decoder = decoder
        if self._decoder is not None:
            self._skip = round(skip * SAMPLE_RATE / OPUS_RATE)
            self._out = np.empty(SAMPLE_RATE * _MAX_PACKET_MS // 1000, dtype=np.int16)
        else:
            self._full = FullRateDecoder(skip)
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)

    def pcm(self, data: bytes) -> np.ndarray:
        """One packet's audio (an empty array while priming is skipped); raises
        ``av.error.InvalidDataError`` for a packet libopus rejects."""
        if self._decoder is None:
            parts = [out.to_ndarray().reshape(-1) for frame in self._full.decode(data)
                     for out in self._resampler.resample(frame)]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        n = self._lib.opus_decode(self._decoder, data, len(data), self._out.ctypes.data, self._out.size, 0)
        if n < 0:
            raise av.error.InvalidDataError(_INVALID_DATA, f"Invalid data found when processing input (libopus {n})")
        start = min(self._skip, n)
        self._skip -= start
        return self._out[start:n].copy()

    def frames(self, data: bytes) -> list[av.AudioFrame]:
        """``pcm`` as a PyAV frame, for readers of files."""
        samples = self.pcm(data)
        if not samples.size:
            return []
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        return [frame]

    def __del__(self) -> None:
        if getattr(self, "_decoder", None) is not None:
            self._lib.opus_decoder_destroy(self._decoder)
            self._decoder = None

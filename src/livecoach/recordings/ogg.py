"""Ogg Opus, written page by page: the format a recording grows in while the call runs.

Ogg suits a file that may be cut off at any moment: it is a sequence of self-contained pages,
each with its own checksum, so a file whose writer was killed is playable up to its last
complete page, and :func:`valid_length` finds where that is. The writer takes Opus packets as
they arrived over RTP (no re-encoding) and never splits a packet over two pages.

Format: RFC 3533 (Ogg) and RFC 7845 (Opus in Ogg).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

OPUS_RATE = 48000
"""Ogg Opus granule positions always count 48 kHz samples."""
MAX_SEGMENTS = 255
_PAGE_HEADER = struct.Struct("<4sBBqIIIB")
_BOS, _EOS = 0x02, 0x04

# Ogg's CRC is CRC-32 with polynomial 0x04C11DB7, unreflected, initial value 0 and no final xor.
# zlib's crc32 is the reflected form with 0xFFFFFFFF in and out, so: reverse each byte's bits,
# cancel zlib's initial value with the CRC of as many zero bytes (CRC is linear), and reverse
# the 32-bit result. All of it runs in C.
_REVERSED_BITS = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _reverse32(x: int) -> int:
    return int(f"{x:032b}"[::-1], 2)


def crc(data: bytes) -> int:
    """The Ogg page checksum of ``data``."""
    return _reverse32(zlib.crc32(data.translate(_REVERSED_BITS)) ^ zlib.crc32(bytes(len(data))))


def page(serial: int, sequence: int, granule: int, packets: list[bytes], flags: int = 0) -> bytes:
    """One complete page holding whole ``packets``."""
    lacing = bytearray()
    for packet in packets:
        lacing += b"\xff" * (len(packet) // 255) + bytes((len(packet) % 255,))
    if len(lacing) > MAX_SEGMENTS:
        raise ValueError("too many packets for one page")
    header = _PAGE_HEADER.pack(b"OggS", 0, flags, granule, serial, sequence, 0, len(lacing))
    raw = bytearray(header + lacing + b"".join(packets))
    struct.pack_into("<I", raw, 22, crc(bytes(raw)))
    return bytes(raw)


def segments_of(packet: bytes) -> int:
    """Lacing values a packet takes in a page's segment table."""
    return len(packet) // 255 + 1


def opus_head(channels: int = 1, pre_skip: int = 0) -> bytes:
    """The identification header (RFC 7845 5.1): channel mapping family 0."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, OPUS_RATE, 0, 0)


def opus_tags(vendor: str = "livecoach") -> bytes:
    """The comment header (RFC 7845 5.2), with no comments: nothing about the session goes in."""
    raw = vendor.encode()
    return b"OpusTags" + struct.pack("<I", len(raw)) + raw + struct.pack("<I", 0)


class OggOpusWriter:
    """Builds the bytes of an Ogg Opus stream; the caller writes them where it wants.

    ``add`` buffers a packet; ``flush`` returns the pending packets as one page (or b"").
    The stream's time 0 is granule 0: the caller fills any silence itself, so that the file's
    time stays the session's.
    """

    def __init__(self, serial: int, channels: int = 1, pre_skip: int = 0) -> None:
        self.serial = serial
        self.channels = channels
        self.pre_skip = pre_skip  # samples of encoder priming at the start, which players skip
        self.granule = 0  # 48 kHz samples in every packet added so far
        self._sequence = 0
        self._pending: list[bytes] = []
        self._pending_segments = 0

    def headers(self) -> bytes:
        """The two header pages; they come first in the file."""
        return self._page([opus_head(self.channels, self.pre_skip)], 0, _BOS) + self._page([opus_tags()], 0, 0)

    def add(self, packet: bytes, samples: int) -> bytes:
        """Buffer one packet of ``samples`` (48 kHz); returns a full page if one was completed."""
        out = b""
        if self._pending_segments + segments_of(packet) > MAX_SEGMENTS:
            out = self.flush()
        self._pending.append(packet)
        self._pending_segments += segments_of(packet)
        self.granule += samples
        return out

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self, last: bool = False) -> bytes:
        """The pending packets as one page (b"" if none; an empty last page marks the end)."""
        if not self._pending and not last:
            return b""
        packets, self._pending, self._pending_segments = self._pending, [], 0
        return self._page(packets, self.granule, _EOS if last else 0)

    def _page(self, packets: list[bytes], granule: int, flags: int) -> bytes:
        raw = page(self.serial, self._sequence, granule, packets, flags)
        self._sequence += 1
        return raw


def pages(data: bytes) -> Iterator[tuple[int, int, int]]:
    """``(offset, length, granule)`` of each complete, intact page from the start of ``data``;
    stops at the first one that is cut off or damaged."""
    offset = 0
    while offset + _PAGE_HEADER.size <= len(data):
        magic, version, _, granule, _, _, checksum, count = _PAGE_HEADER.unpack_from(data, offset)
        if magic != b"OggS" or version != 0:
            return
        table_end = offset + _PAGE_HEADER.size + count
        if table_end > len(data):
            return
        end = table_end + sum(data[offset + _PAGE_HEADER.size : table_end])
        if end > len(data):
            return
        raw = bytearray(data[offset:end])
        raw[22:26] = b"\0\0\0\0"
        if crc(bytes(raw)) != checksum:
            return
        yield offset, end - offset, granule
        offset = end


def packets(data: bytes) -> Iterator[bytes]:
    """The packets of the intact pages at the start of ``data`` in order, the headers first (a
    packet continued over pages comes joined)."""
    partial = b""
    for offset, _, _ in pages(data):
        count = data[offset + _PAGE_HEADER.size - 1]
        at = offset + _PAGE_HEADER.size + count
        for lacing in data[offset + _PAGE_HEADER.size : at]:
            partial += data[at : at + lacing]
            at += lacing
            if lacing < 255:
                yield partial
                partial = b""


def valid_length(data: bytes) -> tuple[int, int]:
    """``(bytes, granule)`` of the intact pages at the start of ``data``: where a file cut off
    by a killed writer should be truncated, and the time (48 kHz samples) it then holds."""
    length, granule = 0, 0
    for offset, size, page_granule in pages(data):
        length = offset + size
        granule = max(granule, page_granule)
    return length, granule


def last_granule(tail: bytes) -> int | None:
    """The granule of the last intact page in ``tail``, the end of a file read from any byte
    (a page found by its capture pattern counts only once its checksum holds); None if no
    whole page is in it. Where a killed writer's file ends, without reading all of it."""
    granule, at = None, tail.find(b"OggS")
    while at >= 0:
        end = at + 1
        for offset, size, page_granule in pages(tail[at:]):
            end = at + offset + size
            if page_granule >= 0:  # -1: no packet ends in the page
                granule = page_granule if granule is None else max(granule, page_granule)
        at = tail.find(b"OggS", end)
    return granule

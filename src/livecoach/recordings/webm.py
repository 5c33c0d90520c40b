"""Checking that uploaded chunks continue a WebM stream, chunk by chunk, without decoding it.

A browser's MediaRecorder writes WebM as it goes: an EBML header, then a Segment of unknown size
holding Info, Tracks and Clusters (also of unknown size) of blocks. The chunks it hands over cut
that stream anywhere. The server appends them to the recording; before it does, this scanner
walks the element headers from where the previous chunk left off, so bytes that are not the
continuation of a WebM stream (another file, garbage, a chunk from the wrong place) are refused
before anything is stored. The scan state is small and is kept between chunks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

EBML = 0x1A45DFA3
SEGMENT = 0x18538067
CLUSTER = 0x1F43B675
SEGMENT_CHILDREN = {0x114D9B74, 0x1549A966, 0x1654AE6B, CLUSTER, 0x1C53BB6B, 0x1043A770, 0x1254C367, 0x1941A469,
                    0xEC, 0xBF}
"""SeekHead, Info, Tracks, Cluster, Cues, Chapters, Tags, Attachments, Void, CRC-32."""
CLUSTER_CHILDREN = {0xE7, 0xA3, 0xA0, 0xA7, 0xAB, 0xEC, 0xBF, 0x5854}
"""Timestamp, SimpleBlock, BlockGroup, Position, PrevSize, Void, CRC-32, SilentTracks."""
MAX_ELEMENT = 1 << 30
UNKNOWN = -1


class NotWebM(ValueError):
    """The bytes do not continue a WebM stream; the message says where and why."""


@dataclass
class ScanState:
    """Where the stream stands after the bytes scanned so far."""

    level: str = "start"  # start, top (after the EBML header), segment, cluster
    skip: int = 0  # bytes of the current element's body still to come
    carry: str = ""  # hex of an element header cut off at the end of the last chunk
    scanned: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _vint(data: bytes, at: int, max_length: int) -> tuple[int, int, bool] | None:
    """(value, length, all ones) of the variable-size integer at ``at``; None if cut off."""
    if at >= len(data):
        return None
    first = data[at]
    if first == 0:
        raise NotWebM("an element header with no length marker")
    length = 8 - first.bit_length() + 1
    if length > max_length:
        raise NotWebM("an element header longer than EBML allows")
    if at + length > len(data):
        return None
    raw = int.from_bytes(data[at : at + length], "big")
    value = raw & ((1 << (7 * length)) - 1)
    return value, length, value == (1 << (7 * length)) - 1


def scan(state: ScanState, chunk: bytes) -> ScanState:
    """The state after ``chunk``, or NotWebM. ``state`` is not changed."""
    s = ScanState(**state.to_dict())
    data = bytes.fromhex(s.carry) + chunk
    s.carry = ""
    at = 0
    while at < len(data):
        if s.skip:
            step = min(s.skip, len(data) - at)
            s.skip -= step
            at += step
            continue
        ident = _vint(data, at, 4)
        if ident is None:
            s.carry = data[at:].hex()
            break
        element_id = int.from_bytes(data[at : at + ident[1]], "big")
        size = _vint(data, at + ident[1], 8)
        if size is None:
            if len(data) - at > 12:
                raise NotWebM("an element header that does not end")
            s.carry = data[at:].hex()
            break
        body = UNKNOWN if size[2] else size[0]
        _place(s, element_id, body, s.scanned + at)
        at += ident[1] + size[1]
        if body != UNKNOWN and element_id not in (SEGMENT, CLUSTER):
            s.skip = body
        elif body != UNKNOWN:
            s.skip = 0  # a known-size segment or cluster: its children are walked all the same
    s.scanned += len(chunk)
    return s


def _place(s: ScanState, element_id: int, body: int, offset: int) -> None:
    """Check an element against where the stream stands, and move into it if it holds others."""
    if body != UNKNOWN and body > MAX_ELEMENT:
        raise NotWebM(f"an element of {body} bytes at byte {offset}")
    if s.level == "start":
        if element_id != EBML:
            raise NotWebM("a WebM stream starts with an EBML header")
        s.level = "top"
        return
    if s.level == "top":
        if element_id != SEGMENT:
            raise NotWebM(f"expected the Segment at byte {offset}")
        s.level = "segment"
        return
    if s.level == "cluster" and element_id in CLUSTER_CHILDREN:
        return
    if element_id not in SEGMENT_CHILDREN:
        raise NotWebM(f"element {element_id:#x} at byte {offset} has no place in a WebM stream")
    if body == UNKNOWN and element_id != CLUSTER:
        raise NotWebM(f"element {element_id:#x} at byte {offset} has an unknown size")
    s.level = "cluster" if element_id == CLUSTER else "segment"

"""One participant's audio recording: their Opus packets, as received, on the session clock.

The file's time 0 is the session time of the participant's first packet; after that every
packet goes where the session clock puts it (the tap's placement, the same the engine uses),
and whatever did not arrive (a network gap, a leave and rejoin, a pause) is filled with Opus
silence. So file time + start = session time, to within 1.25 ms, for the whole call, and the
filled spans are listed as gaps.

Pages are written at least once a second of audio and whenever the call's recording ticks, so a
killed process loses at most about a second. The level strip (one byte per 100 ms) is kept
beside the audio from the decoded samples the tap already has, so the review never downloads
audio to draw it.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from .ogg import OPUS_RATE, OggOpusWriter
from .storage import RecordingStorage

SILENCE = {
    960: bytes.fromhex("f8fffe"),
    480: bytes.fromhex("f0fffe"),
    240: bytes.fromhex("e8fffe"),
    120: bytes.fromhex("e0fffe"),
}
"""Digital silence as libopus encodes it (CELT, fullband, mono): 20, 10, 5 and 2.5 ms."""
SILENCE_STEP_MIN = min(SILENCE)
PAGE_PACKETS = 50
"""A page at least every 50 packets (a second of 20 ms packets, two of the 40 ms ones a direct
call asks for), should the call's once-a-second tick that writes the pages be late."""
PEAK_SAMPLES = OPUS_RATE // 10
"""The level strip's resolution: 100 ms."""
PEAK_FLOOR_DB = -60.0
PEAKS_MAY_LOSE_S = math.inf
"""How much of its end the level strip may lose when its writer is killed: all of it, since the
strip is made again from the audio when a killed writer's recording is finished
(finalise.complete_level_strip). So in an object store it goes up once, at the close, and a
call's puts are its audio's only (a quarter fewer than with the strip every 30 s, each about
4.5 ms of CPU between the node and SeaweedFS: recordings/objects.py)."""
LATE_SLACK = 480
"""A packet up to 10 ms before the end of what is written is taken as continuing it (jitter in
the placement); earlier than that it would overlap audio already written, and is dropped."""


class LevelStrip:
    """A recording's level strip as its packets come: each packet's sample peak accounted to the
    ``PEAK_SAMPLES`` bins it covers, a bin's byte made once it is full (``done``)."""

    def __init__(self) -> None:
        self.at = 0  # 48 kHz samples accounted, from the file's granule 0
        self.done = bytearray()  # bins made and not yet taken
        self._bin_peak = 0  # the peak of the bin being filled

    def add(self, samples: int, peak: int) -> None:
        end = self.at + samples
        while self.at < end:
            bin_end = (self.at // PEAK_SAMPLES + 1) * PEAK_SAMPLES
            self._bin_peak = max(self._bin_peak, peak)
            if bin_end > end:
                self.at = end
                break
            self.done.append(peak_byte(self._bin_peak))
            self._bin_peak = 0
            self.at = bin_end

    def finish(self) -> None:
        """The last bin, if partly filled: the recording ends."""
        if self.at % PEAK_SAMPLES:
            self.done.append(peak_byte(self._bin_peak))
            self._bin_peak = 0
            self.at += PEAK_SAMPLES - self.at % PEAK_SAMPLES

    def take(self) -> bytes:
        out = bytes(self.done)
        self.done.clear()
        return out


def sample_peak(audio: np.ndarray) -> int:
    """The peak (0-32768) of int16 samples, as the level strip takes it; 0 for none."""
    return max(int(audio.max()), -int(audio.min())) if audio.size else 0


def peak_byte(peak: int) -> int:
    """A sample peak (0–32768) on the level strip's scale: 0 at −60 dBFS or below, 255 at 0 dBFS."""
    if peak <= 0:
        return 0
    db = 20 * math.log10(peak / 32768)
    return max(0, min(255, round((db - PEAK_FLOOR_DB) / -PEAK_FLOOR_DB * 255)))


@dataclass
class RecordingFile:
    """What the store keeps of a recording while it grows."""

    id: str
    participant: str
    name: str
    peaks_name: str
    start48: int  # session sample (48 kHz) of the first packet's first sample
    pre_skip: int = 0  # samples of encoder priming at the start of the first packet
    gaps: list[list[float]] = field(default_factory=list)
    bytes: int = 0
    dropped_packets: int = 0

    @property
    def start_s(self) -> float:
        """Session time of the file's time 0, which follows the pre-skip."""
        return (self.start48 + self.pre_skip) / OPUS_RATE


def new_audio_id(participant: str) -> str:
    """A new audio recording's id, the stem of its files (``<id>.webm``, ``<id>.peaks``)."""
    return f"{participant}-audio-{secrets.token_hex(4)}"


class AudioRecorder:
    """Writes one participant's packets into ``<id>.ogg`` and their levels into ``<id>.peaks``."""

    def __init__(self, storage: RecordingStorage, session: str, participant: str, start48: int, pre_skip: int = 0) -> None:
        """``pre_skip``: the first packet starts with that much encoder priming (the tap left it
        out of the analysis), so players skip it, and the file's time 0 is the analysis's."""
        rid = new_audio_id(participant)
        self.info = RecordingFile(rid, participant, f"{rid}.ogg", f"{rid}.peaks", start48, pre_skip)
        self.session = session
        self._storage = storage
        self._ogg = OggOpusWriter(serial=secrets.randbits(32), pre_skip=pre_skip)
        self._file: BinaryIO = storage.create(session, self.info.name)
        self._peaks_file: BinaryIO = storage.create(session, self.info.peaks_name, may_lose_s=PEAKS_MAY_LOSE_S)
        self._strip = LevelStrip()
        self._write(self._ogg.headers())

    @property
    def written48(self) -> int:
        """Samples (48 kHz) of file time written or buffered."""
        return self._ogg.granule

    @property
    def duration_s(self) -> float:
        return max(0, self._ogg.granule - self.info.pre_skip) / OPUS_RATE

    def add(self, position48: int, samples: int, packet: bytes, peak: int) -> None:
        """A packet of ``samples`` whose first sample is at session sample ``position48``."""
        offset = position48 - self.info.start48
        if offset < self._ogg.granule - LATE_SLACK:
            self.info.dropped_packets += 1
            return
        if offset > self._ogg.granule + SILENCE_STEP_MIN // 2:
            self.fill_to(position48)
        self._strip.add(samples, peak)
        page = self._ogg.add(packet, samples)
        if page:
            self._write(page)
        if self._ogg.pending >= PAGE_PACKETS:
            self.flush()

    def fill_to(self, position48: int) -> None:
        """Silence from the end of what is written up to ``position48``, listed as a gap."""
        gap = position48 - self.info.start48 - self._ogg.granule
        if gap < SILENCE_STEP_MIN:
            return
        start = (self.info.start48 + self._ogg.granule) / OPUS_RATE
        for size in sorted(SILENCE, reverse=True):
            while gap >= size:
                self._strip.add(size, 0)
                page = self._ogg.add(SILENCE[size], size)
                if page:
                    self._write(page)
                gap -= size
                if self._ogg.pending >= PAGE_PACKETS:
                    self.flush()
        end = (self.info.start48 + self._ogg.granule) / OPUS_RATE
        if self.info.gaps and abs(self.info.gaps[-1][1] - start) < 1e-3:
            self.info.gaps[-1][1] = round(end, 3)
        else:
            self.info.gaps.append([round(start, 3), round(end, 3)])

    def flush(self) -> None:
        """Write the buffered packets as a page, and the finished level bins; the files are
        flushed (an object store's puts what has waited a few seconds: recordings/objects.py)."""
        self._write(self._ogg.flush())
        if self._strip.done:
            self._peaks_file.write(self._strip.take())
        self._file.flush()
        self._peaks_file.flush()

    def close(self) -> None:
        """The last page (marked as the end) and the last level bin; the files are closed."""
        try:
            self._write(self._ogg.flush(last=True))
            self._strip.finish()
            if self._strip.done:
                self._peaks_file.write(self._strip.take())
        finally:
            self._file.close()
            self._peaks_file.close()

    def abandon(self) -> None:
        """Close the files without writing more (after a write failed)."""
        for f in (self._file, self._peaks_file):
            try:
                f.close()
            except OSError:
                pass

    def _write(self, data: bytes) -> None:
        if data:
            self._file.write(data)
            self.info.bytes += len(data)


"""Audio files in, the engine's 16 kHz mono int16 samples out, streamed.

Anything PyAV (FFmpeg) can open is accepted: WAV, FLAC, Ogg/Opus, WebM/Opus, MP3, M4A/AAC, at any
sample rate, channel count and sample format. Files are decoded packet by packet and handed out in
fixed-size chunks, so memory use does not grow with the length of the file.

Timing: output is gapless and sample-counted. Container timestamps (pts) are ignored, gaps or
jumps in them included; media time is the number of samples yielded so far divided by 16 000, as
in :mod:`livecoach.frames`. Encoder delay and padding are removed where the file records them
(Opus pre-skip, the LAME header of MP3, the MP4 edit list); AAC's end padding is not, so M4A
files can come out up to one AAC frame (1024 samples at the file's rate) long. Opus read as mono
is decoded as a live call decodes it (:mod:`livecoach.opus`), so that a file and the same
packets sent live give the engine the same samples.

Damaged data (behaviour measured with PyAV 18 / FFmpeg 8):

* A packet the *decoder* rejects (``av.error.InvalidDataError`` from ``avcodec_send_packet``, as
  AAC and MP3 do) is skipped and replaced by silence of the packet's duration, so later speech
  keeps its place in time, and a warning is logged. Only if no packet decodes at all is it an
  :class:`AudioError`. Decoders are left to conceal what they can; PyAV itself already drops an
  error that comes after some frames of the same packet were decoded.
* Damage the *demuxer* or parser absorbs is dropped by FFmpeg without any error reaching us: an
  Ogg page with a bad CRC (a whole page, ~1 s, with FFmpeg's muxer), a broken WebM cluster, a
  FLAC frame that fails its CRC, MP3 bytes the parser resyncs over. That audio is simply missing
  and what follows moves earlier. PCM WAV has no checks at all; damage plays as noise.
* A read error the demuxer cannot get past raises :class:`AudioError` naming the file and the
  media time reached. A file that just stops (truncated download) ends early without an error,
  except M4A/MP4 with its index at the end, which cannot be opened at all once truncated.
"""

from __future__ import annotations

import logging
import math
import os
import stat
import wave
from pathlib import Path
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

import av
import av.error
import numpy as np

from livecoach.frames import SAMPLE_RATE
from livecoach.opus import SpeechDecoder, pre_skip

__all__ = ["AudioError", "AudioInfo", "probe", "read_mono", "read_stereo", "write_wav"]

log = logging.getLogger(__name__)

# Sample-format scale factors to floats in [-1, 1), for the rare >2-channel and odd-layout path.
_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


class AudioError(Exception):
    """A file that cannot be used, with a one-line message fit for the user (names the file and why).

    Raised for every problem with the file itself, so callers need catch nothing from PyAV.
    """


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read from its headers (and its first packet)."""

    path: str
    duration_seconds: float | None  # from the headers, so approximate; None when unknown
    sample_rate: int  # of the file, before conversion to 16 kHz
    channels: int
    codec: str  # FFmpeg decoder name, e.g. "pcm_s16le", "opus", "mp3float", "aac"


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Open and check the file without decoding it all; raises AudioError.

    Decodes up to the first audio frame, so a file that opens but holds no usable audio fails
    here rather than halfway through an analysis.
    """
    name = os.fspath(path)
    container, stream = _open(name)
    frames = _decoded_frames(name, container, stream)
    try:
        first = next(frames, None)
        if first is None:
            raise AudioError(f"{name}: the audio stream contains no samples")
        return AudioInfo(
            path=name,
            duration_seconds=_duration(container, stream),
            sample_rate=first.sample_rate,
            channels=first.layout.nb_channels,
            codec=stream.codec_context.name,
        )
    finally:
        frames.close()
        container.close()


def read_mono(path: str | os.PathLike[str], chunk_seconds: float = 2.0) -> Iterator[np.ndarray]:
    """Yield int16 arrays (1-D) of 16 kHz mono audio, each about chunk_seconds long (the last one
    shorter).

    Chunks are exactly round(chunk_seconds * 16000) samples, so their edges fall on 10 ms frames
    when chunk_seconds is a multiple of 0.01. A multi-channel file is mixed down to the average of
    its channels. Problems found on opening (missing, not audio, no samples...) raise AudioError
    from this call itself; damage found later raises it from the iteration. Call ``close()`` on
    the result to release the file early.
    """
    return _Primed(_generate(os.fspath(path), _chunk_samples(chunk_seconds), stereo=False))


def read_stereo(
    path: str | os.PathLike[str], chunk_seconds: float = 2.0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (left, right) int16 16 kHz arrays of equal length: the left channel and the right
    channel, each resampled separately (not downmixed). A file with fewer than 2 channels raises
    AudioError.

    For two-person calls recorded one speaker per channel. With more than two channels, the first
    two are used. Errors are raised as for :func:`read_mono`.
    """
    return _Primed(_generate(os.fspath(path), _chunk_samples(chunk_seconds), stereo=True))


def write_wav(path: str | os.PathLike[str], samples: np.ndarray) -> Path:
    """Write 16 kHz 16-bit PCM: a 1-D array as mono, an (n, 2) array as stereo (left, right).

    The engine's own format, so reading it back takes the fast path and gives the same samples;
    16-bit also because Chromium's fake microphone plays 24-bit files as silence.
    """
    data = np.ascontiguousarray(samples, dtype="<i2")
    with wave.open(os.fspath(path), "wb") as w:
        w.setnchannels(1 if data.ndim == 1 else data.shape[1])
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(data.tobytes())
    return Path(path)


# --- opening -------------------------------------------------------------------------------------


def _open(name: str) -> tuple[av.container.InputContainer, av.audio.stream.AudioStream]:
    """Open the container and pick its first audio stream, turning every failure into AudioError."""
    try:
        st = os.stat(name)
    except FileNotFoundError:
        raise AudioError(f"{name}: no such file") from None
    except PermissionError:
        raise AudioError(f"{name}: permission denied") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the name
        raise AudioError(f"{name}: cannot open ({_why(e)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(f"{name}: is a directory, not an audio file")
    if st.st_size == 0:
        raise AudioError(f"{name}: empty file (0 bytes)")

    try:
        container = av.open(name, mode="r", metadata_errors="replace")
    except FileNotFoundError:
        raise AudioError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise AudioError(f"{name}: is a directory, not an audio file") from None
    except PermissionError:
        raise AudioError(f"{name}: permission denied") from None
    except EOFError:  # av.error.EOFError: headers present, then nothing (e.g. an Ogg with no pages)
        raise AudioError(f"{name}: the file ends before any audio (empty or truncated)") from None
    except av.error.InvalidDataError:
        raise AudioError(
            f"{name}: not a readable audio file (unknown format, or damaged or truncated)"
        ) from None
    except (av.error.FFmpegError, OSError) as e:
        raise AudioError(f"{name}: cannot open ({_why(e)})") from None

    try:
        if not container.streams.audio:
            kinds = sorted({s.type for s in container.streams})
            found = f" (it has only {', '.join(kinds)})" if kinds else ""
            raise AudioError(f"{name}: no audio stream{found}")
        stream = container.streams.audio[0]
        if stream.codec_context is None or stream.codec_context.codec is None:
            raise AudioError(f"{name}: its audio codec is not supported")
    except AudioError:
        container.close()
        raise
    except (av.error.FFmpegError, ValueError, OSError) as e:
        container.close()
        raise AudioError(f"{name}: cannot open ({_why(e)})") from None
    # No stream.thread_type = "AUTO": measured no faster for Opus, MP3, AAC or WAV, and about 15%
    # slower for FLAC (frame threading); FFmpeg's audio decoders gain nothing from it.
    return container, stream


def _duration(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> float | None:
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None


# --- decoding ------------------------------------------------------------------------------------


def _decoded_frames(
    name: str,
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    on_skip: Callable[[float], None] | None = None,
    mono: bool = False,
) -> Iterator[av.AudioFrame]:
    """Decode the stream frame by frame, skipping packets the decoder rejects.

    ``on_skip`` gets the duration in seconds of each skipped packet, so the caller can keep time.
    ``mono``: the caller mixes to mono anyway, so Opus may go through the live path's decoder.
    """
    at = 0.0  # media time reached, for messages
    good = skipped = 0
    decode: Callable[[av.Packet], list[av.AudioFrame]] = av.Packet.decode
    if mono and stream.codec_context.name in ("opus", "libopus"):
        opus = SpeechDecoder(skip=pre_skip(stream.codec_context.extradata))
        decode = lambda packet: opus.frames(bytes(packet)) if packet.size else []  # noqa: E731
    packets = container.demux(stream)
    try:
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except (av.error.FFmpegError, OSError) as e:
                raise AudioError(f"{name}: read error at {_clock(at)} ({_why(e)})") from None
            try:
                frames = decode(packet)
            except av.error.InvalidDataError:
                if packet.size == 0:  # the final flush: nothing more to lose
                    continue
                skipped += 1
                if skipped == 1:
                    log.warning(
                        "%s: damaged audio at %s skipped (replaced by silence)", name, _clock(at)
                    )
                seconds = _packet_seconds(packet)
                at += seconds
                if on_skip is not None:
                    on_skip(seconds)
                continue
            except (av.error.FFmpegError, ValueError, OSError) as e:
                where = _clock(at)
                raise AudioError(f"{name}: cannot decode audio at {where} ({_why(e)})") from None
            for frame in frames:
                if frame.samples:
                    good += 1
                    at += frame.samples / frame.sample_rate
                    yield frame
    finally:
        packets.close()  # before the caller closes the container
    if skipped and not good:
        raise AudioError(f"{name}: no decodable audio (all {skipped} packets are damaged)")
    if skipped > 1:
        log.warning("%s: %d damaged audio packets skipped in all", name, skipped)


def _packet_seconds(packet: av.Packet) -> float:
    if packet.duration and packet.time_base:
        return float(packet.duration * packet.time_base)
    return 0.0


class _Converter:
    """Frames of any format, layout and rate in; int16 16 kHz arrays out, shape (n, 1) or (n, 2).

    Decoded frames are small (20 ms for Opus, 26 ms for MP3) and each PyAV call costs tens of
    microseconds, so frames are first gathered in an AudioFifo and converted in blocks of about
    a second: that alone makes Opus and MP3 ingest over twice as fast.

    The common cases (mono or stereo in) go straight through libswresample, which also mixes
    stereo to mono as (L + R) / 2 with saturation. Three or more channels, or a layout other than
    plain mono/stereo, are first reduced in numpy to exactly the average of all channels (mono)
    or the first two channels (stereo), because FFmpeg's own downmix weighs channels unequally
    and drops LFE. 16 kHz s16 input that already has the wanted channels skips conversion.
    """

    BLOCK_SECONDS = 1.0

    def __init__(self, channels_out: int) -> None:
        self.channels_out = channels_out
        self._layout_out = "mono" if channels_out == 1 else "stereo"
        self._fifo: av.AudioFifo | None = None
        self._block = 0
        self._resampler: av.AudioResampler | None = None
        self._key: tuple[str, str, int] | None = None
        self._route = ""

    def push(self, frame: av.AudioFrame) -> list[np.ndarray]:
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        out: list[np.ndarray] = []
        if key != self._key:  # first frame, or the stream changed format mid-file: start afresh
            out = self.flush()
            self._key, self._route = key, self._choose(frame)
            self._fifo = av.AudioFifo()
            self._block = max(1, int(frame.sample_rate * self.BLOCK_SECONDS))
            if self._route in ("resample", "reduce"):
                self._resampler = av.AudioResampler(
                    format="s16", layout=self._layout_out, rate=SAMPLE_RATE
                )
        frame.pts = None  # timing comes from sample counts only (and the fifo checks pts otherwise)
        assert self._fifo is not None
        self._fifo.write(frame)
        if self._fifo.samples >= self._block:
            out += self._convert(self._fifo.read())
        return out

    def flush(self) -> list[np.ndarray]:
        """Convert what is buffered and drain the resampler's delay line, so no samples are lost."""
        out: list[np.ndarray] = []
        if self._fifo is not None and self._fifo.samples:
            out += self._convert(self._fifo.read())
        if self._resampler is not None:
            out += [self._array(f) for f in self._resampler.resample(None)]
        self._fifo, self._resampler, self._key, self._route = None, None, None, ""
        return out

    def _convert(self, frame: av.AudioFrame) -> list[np.ndarray]:
        route = self._route
        if route == "s16":  # already the engine's format: no resampler at all
            return [frame.to_ndarray().reshape(-1, self.channels_out)]
        if route == "s16p":
            return [np.ascontiguousarray(frame.to_ndarray().T)]
        if route == "reduce":
            frame = self._reduce(frame)
        assert self._resampler is not None
        return [self._array(f) for f in self._resampler.resample(frame)]

    def _choose(self, frame: av.AudioFrame) -> str:
        layout = frame.layout
        nch = layout.nb_channels
        plain = layout.name in ("mono", "stereo") or all(c.name == "NONE" for c in layout.channels)
        if not plain or nch > 2:
            return "reduce"
        fmt = frame.format.name
        if nch == self.channels_out and frame.sample_rate == SAMPLE_RATE and fmt in ("s16", "s16p"):
            return fmt
        return "resample"

    def _array(self, frame: av.AudioFrame) -> np.ndarray:
        return frame.to_ndarray().reshape(-1, self.channels_out)

    def _reduce(self, frame: av.AudioFrame) -> av.AudioFrame:
        data = _as_float(frame)  # (channels, n)
        if self.channels_out == 1:
            mono = data.mean(axis=0, dtype=np.float32)[None, :]
            new = av.AudioFrame.from_ndarray(mono, format="flt", layout="mono")
        else:
            first_two = np.ascontiguousarray(data[:2])
            new = av.AudioFrame.from_ndarray(first_two, format="fltp", layout="stereo")
        new.sample_rate = frame.sample_rate
        return new


def _as_float(frame: av.AudioFrame) -> np.ndarray:
    """Any sample format as float32 of shape (channels, n)."""
    fmt = frame.format
    nch = frame.layout.nb_channels
    arr = frame.to_ndarray()
    if not fmt.is_planar:
        arr = arr.reshape(-1, nch).T
    base = fmt.name.rstrip("p")
    if base in _INT_SCALE:
        out = arr.astype(np.float32)
        if base == "u8":
            out -= 128.0
        out /= _INT_SCALE[base]
        return out
    return arr.astype(np.float32, copy=False)


def _generate(name: str, chunk: int, stereo: bool) -> Generator:
    """Open, decode, convert and re-cut into chunks; always yields at least one chunk or raises."""
    container, stream = _open(name)
    if _is_engine_pcm(stream, stereo):
        container.close()
        try:
            yield from _read_pcm_wav(name, chunk, stereo)
            return
        except _NotPlainWav:
            container, stream = _open(name)
    frames: Iterator[av.AudioFrame] | None = None
    try:
        nch = stream.codec_context.channels
        if stereo and 0 < nch < 2:
            raise AudioError(f"{name}: has only {nch} channel; two (left and right) are needed")
        conv = _Converter(2 if stereo else 1)
        chunker = _Chunker(chunk, stereo)
        gap = [0.0]  # seconds of rejected packets not yet replaced by silence

        def fill_gap() -> list[np.ndarray]:
            n = round(gap[0] * SAMPLE_RATE)
            gap[0] = 0.0
            # Flush first so the silence lands after all the audio decoded before the damage.
            return conv.flush() + [np.zeros((n, conv.channels_out), np.int16)]

        def on_skip(seconds: float) -> None:
            gap[0] += seconds

        frames = _decoded_frames(name, container, stream, on_skip, mono=not stereo)
        for frame in frames:
            if gap[0]:
                yield from chunker.push(fill_gap())
            if stereo and frame.layout.nb_channels < 2:  # the stream changed mid-file
                where = _clock(chunker.total / SAMPLE_RATE)
                raise AudioError(
                    f"{name}: has only {frame.layout.nb_channels} channel from {where} on;"
                    " two (left and right) are needed"
                )
            yield from chunker.push(conv.push(frame))
        yield from chunker.push(conv.flush() + (fill_gap() if gap[0] else []))
        yield from chunker.finish()
        if chunker.total == 0:
            raise AudioError(f"{name}: the audio stream contains no samples")
    except AudioError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise AudioError(f"{name}: cannot decode audio ({_why(e)})") from None
    finally:
        if frames is not None:
            frames.close()
        container.close()


class _NotPlainWav(Exception):
    """The fast path does not apply after all; decode with PyAV."""


def _is_engine_pcm(stream: av.audio.stream.AudioStream, stereo: bool) -> bool:
    ctx = stream.codec_context
    return ctx.name == "pcm_s16le" and ctx.sample_rate == SAMPLE_RATE and ctx.channels == (2 if stereo else 1)


def _read_pcm_wav(name: str, chunk: int, stereo: bool) -> Generator:
    """A WAV already in the engine's format (16 kHz, 16-bit, mono or stereo): read its samples
    directly in large blocks, several times faster than decoding it packet by packet."""
    channels = 2 if stereo else 1
    try:
        w = wave.open(name, "rb")
    except (wave.Error, EOFError):
        raise _NotPlainWav from None  # e.g. WAVE_FORMAT_EXTENSIBLE, which PyAV reads fine
    except OSError as e:
        raise AudioError(f"{name}: cannot read ({_why(e)})") from None
    with w:
        if (w.getframerate(), w.getsampwidth(), w.getnchannels()) != (SAMPLE_RATE, 2, channels):
            raise _NotPlainWav
        total = 0
        while True:
            try:
                data = w.readframes(chunk)
            except OSError as e:
                raise AudioError(f"{name}: read error at {_clock(total / SAMPLE_RATE)} ({_why(e)})") from None
            usable = len(data) // (2 * channels) * 2 * channels
            if not usable:
                break
            samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.int16, copy=False)
            total += samples.size // channels
            if stereo:
                pairs = samples.reshape(-1, 2)
                yield np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1])
            else:
                yield samples
        if total == 0:
            raise AudioError(f"{name}: the audio stream contains no samples")


class _Chunker:
    """Re-cuts (n, channels) int16 arrays into chunks of exactly ``size`` samples (last shorter)."""

    def __init__(self, size: int, stereo: bool) -> None:
        self.size = size
        self.stereo = stereo
        self.total = 0
        self._pending: list[np.ndarray] = []
        self._have = 0

    def push(self, arrays: list[np.ndarray]) -> Iterator:
        for a in arrays:
            if a.shape[0]:
                self._pending.append(a)
                self._have += a.shape[0]
        while self._have >= self.size:
            yield self._take(self.size)

    def finish(self) -> Iterator:
        if self._have:
            yield self._take(self._have)

    def _take(self, n: int):
        data = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        out, rest = data[:n], data[n:]
        self._pending = [rest] if rest.shape[0] else []
        self._have -= n
        self.total += n
        if self.stereo:
            return np.ascontiguousarray(out[:, 0]), np.ascontiguousarray(out[:, 1])
        return np.ascontiguousarray(out[:, 0])


class _Primed(Iterator):
    """An iterator whose first item is computed on creation, so opening errors raise at the call.

    ``close()`` releases the file at once when a caller stops early.
    """

    def __init__(self, gen: Generator) -> None:
        self._gen = gen
        self._first = [next(gen)]

    def __next__(self):
        if self._first:
            return self._first.pop()
        return next(self._gen)

    def close(self) -> None:
        self._first.clear()
        self._gen.close()


# --- small helpers -------------------------------------------------------------------------------


def _chunk_samples(chunk_seconds: float) -> int:
    ok = isinstance(chunk_seconds, (int, float)) and math.isfinite(chunk_seconds)
    if not (ok and chunk_seconds > 0):
        raise ValueError(f"chunk_seconds must be a positive number, not {chunk_seconds!r}")
    return max(1, round(chunk_seconds * SAMPLE_RATE))


def _clock(seconds: float) -> str:
    """Media time as h:mm:ss.s or m:ss.s, the way users see it in a player."""
    tenths = int(round(seconds * 10))
    h, rest = divmod(tenths, 36000)
    m, rest = divmod(rest, 600)
    s = rest / 10
    return f"{h}:{m:02d}:{s:04.1f}" if h else f"{m}:{s:04.1f}"


def _why(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e) or type(e).__name__

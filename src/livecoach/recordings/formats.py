"""The audio formats a recording may have, and what a browser is told each one is.

A live call's recordings are Opus in WebM (Ogg while they grow). An imported call keeps the
audio its files already hold when Chromium plays that codec: the packets are copied into the
container that suits the codec (with its seek index), never encoded again, so a long import costs
little more than its analysis and loses nothing of the original. Any other audio is kept as
what the engine heard: 16 kHz 16-bit mono WAV.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import av


@dataclass(frozen=True)
class Container:
    """How a recording file is written: the muxer, its options, the file's extension and the
    media type served with it. A file of the user's that FFmpeg reads with one of the
    ``as_is`` demuxers and that holds nothing but its audio is kept byte for byte."""

    muxer: str
    extension: str
    media_type: str
    options: tuple[tuple[str, str], ...] = ()
    as_is: tuple[str, ...] = ()


WEBM = Container("webm", "webm", "audio/webm", (("cues_to_front", "1"),))
"""The seek index (Cues) before the media: a browser reads it with the header in its first request."""
M4A = Container("ipod", "m4a", "audio/mp4", (("movflags", "+faststart"),), ("mov,mp4,m4a,3gp,3g2,mj2",))
"""The index (moov) before the media, for the same reason; a file of the user's has its index
wherever it is (a browser asks for the end of the file when it is there)."""
MP3 = Container("mp3", "mp3", "audio/mpeg", as_is=("mp3",))
FLAC = Container("flac", "flac", "audio/flac", as_is=("flac",))
WAV = Container("wav", "wav", "audio/wav", as_is=("wav",))

KEPT_CODECS: dict[str, Container] = {
    "opus": WEBM, "vorbis": WEBM, "aac": M4A, "mp3": MP3, "flac": FLAC,
    "pcm_s16le": WAV, "pcm_s24le": WAV, "pcm_f32le": WAV,
}
"""Codecs Chromium plays (tests/test_import_formats.py plays and seeks each kept form in it), by
FFmpeg's name."""

MEDIA_TYPES: dict[str, str] = {
    c.extension: c.media_type for c in (WEBM, M4A, MP3, FLAC, WAV)
} | {"ogg": "audio/ogg", "peaks": "application/octet-stream"}
"""The media type of an audio recording's file (and its level strip), by the file's extension."""


def media_type(name: str) -> str:
    """What to serve an audio recording's file ``name`` as."""
    return MEDIA_TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")


@dataclass(frozen=True)
class Keeping:
    """How a file of the user's is kept: in ``container``, copied byte for byte when ``as_is``
    (else its audio packets are copied into a new file, finalise.keep_audio)."""

    container: Container
    as_is: bool


def keeping(path: str | os.PathLike) -> Keeping | None:
    """How to keep the audio of ``path`` as it is, or None when Chromium does not play its codec
    (or the file cannot be opened: the analysis says why)."""
    try:
        with av.open(os.fspath(path)) as media:
            if not media.streams.audio:
                return None
            container = KEPT_CODECS.get(media.streams.audio[0].codec_context.codec.canonical_name)
            if container is None:
                return None
            return Keeping(container, media.format.name in container.as_is and len(media.streams) == 1)
    except (av.FFmpegError, OSError):
        return None

"""The live path replaces a private part of aiortc (live/decoding.py: the receiver's decoder
queue) to decode audio on the event loop. pyproject.toml pins aiortc to the tested range; this
test fails if, with the installed aiortc, the replacements (and the jitter buffer's) do not take effect (decode_inline
finds nothing to replace, or the frames do not come through it), instead of the server quietly
running aiortc's slower path without the packets the recording needs."""

from __future__ import annotations

import asyncio
import fractions

import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack
import av

from livecoach.live.decoding import EncodedAudio, InlineDecoding, PassThroughJitter, decode_inline
from livecoach.opus import SpeechDecoder


class Tone(AudioStreamTrack):
    """A 440 Hz tone, 20 ms frames of 48 kHz mono."""

    def __init__(self) -> None:
        super().__init__()
        self.pts = 0

    async def recv(self) -> av.AudioFrame:
        await asyncio.sleep(0.02)
        t = (np.arange(960) + self.pts) / 48000
        samples = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self.pts, fractions.Fraction(1, 48000)
        self.pts += 960
        return frame


@pytest.mark.parametrize("forwarded", [False, True])
async def test_received_audio_is_handed_on_inline_with_its_packets(forwarded):
    """Direct: the packets themselves, which the tap decodes at 16 kHz. Relay (``forwarded``):
    48 kHz mono frames for the other participant, each with its packet."""
    sender, receiver = RTCPeerConnection(), RTCPeerConnection()
    sender.addTrack(Tone())
    found: asyncio.Future = asyncio.get_running_loop().create_future()

    @receiver.on("track")
    def on_track(track) -> None:
        transceiver = next(t for t in receiver.getTransceivers() if t.receiver.track is track)
        found.set_result((decode_inline(transceiver.receiver, track, forwarded), track))

    try:
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        inline, track = await asyncio.wait_for(found, 10)
        assert isinstance(inline, InlineDecoding), "aiortc's decoder queue was not replaced (aiortc changed?)"
        jitter = getattr(next(t for t in receiver.getTransceivers()).receiver, "_RTCRtpReceiver__jitter_buffer")
        assert isinstance(jitter, PassThroughJitter), "aiortc's jitter buffer was not replaced (aiortc changed?)"
        frames = [await asyncio.wait_for(track.recv(), 10) for _ in range(25)]
        assert all(isinstance(f.opaque, bytes) and f.opaque for f in frames), "frames without their packets"
        assert all(f.sample_rate == 48000 and f.samples == 960 for f in frames)
        assert inline.failed == 0 and jitter.reordered == 0
        if forwarded:
            assert all(isinstance(f, av.AudioFrame) and f.layout.name == "mono" for f in frames)
            assert np.abs(np.concatenate([f.to_ndarray().ravel() for f in frames[5:]])).max() > 4000  # the tone
        else:
            assert all(isinstance(f, EncodedAudio) for f in frames)
            decoder = SpeechDecoder()
            tone = np.concatenate([decoder.pcm(f.opaque) for f in frames])
            assert tone.size == 25 * 320 and np.abs(tone[5 * 320:]).max() > 4000  # 16 kHz, the tone
    finally:
        await sender.close()
        await receiver.close()


def test_a_reordered_packet_is_dropped_and_counted_as_dropped_audio():
    """The network delivers packet 3 after 4: 3's place is already filled, so it is dropped,
    and its 20 ms count in the tap queue's dropped samples (the session's ``dropped_s``)."""
    from types import SimpleNamespace

    from livecoach.live.tap import DropOldestQueue
    from livecoach.opus import packet_samples

    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "mono", "s16"
    tone = Tone()
    packets = []
    for _ in range(6):
        frame = asyncio.run(tone.recv())
        packets += [bytes(p) for p in encoder.encode(frame)]
    assert packets and all(packet_samples(p) == 960 for p in packets)  # 20 ms at 48 kHz
    assert packet_samples(b"") == 0

    queue = DropOldestQueue(100)
    jitter = PassThroughJitter(queue)
    sent = [SimpleNamespace(sequence_number=n, timestamp=960 * n, payload=packets[n % len(packets)],
                            _data=packets[n % len(packets)]) for n in (1, 2, 4, 3, 5)]
    passed = [jitter.add(p)[1] for p in sent]
    assert [f is not None for f in passed] == [True, True, True, False, True]
    assert jitter.reordered == 1 and queue.dropped_samples == 960


def test_opus_is_decoded_by_libopus_at_16_khz_and_the_fallback_agrees(monkeypatch):
    """opus.SpeechDecoder calls libopus directly (the build inside PyAV's wheel, else the
    system's): if it could not be loaded here, the server would quietly run the slower 48 kHz
    path. The fallback (PyAV at 48 kHz, then resampled) gives 16 kHz audio of the same length and
    nearly the same samples."""
    import livecoach.opus as opus

    assert opus._LIBOPUS is not None, "libopus could not be loaded: is PyAV's wheel laid out differently?"
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "mono", "s16"
    tone = Tone()
    packets = [bytes(p) for _ in range(50) for p in encoder.encode(asyncio.run(tone.recv()))]
    primed = opus.SpeechDecoder(skip=312)
    assert [primed.pcm(p).size for p in packets[:2]] == [320 - 104, 320]  # 16 kHz, 312 at 48 kHz skipped
    with pytest.raises(av.error.InvalidDataError):
        opus.SpeechDecoder().pcm(b"\xff\xff\xff")  # 63 frames: more than a packet may hold
    decoder = opus.SpeechDecoder()
    fast = np.concatenate([decoder.pcm(p) for p in packets])
    monkeypatch.setattr(opus, "_LIBOPUS", None)
    fallback_decoder = opus.SpeechDecoder()
    slow = np.concatenate([fallback_decoder.pcm(p) for p in packets])
    assert abs(slow.size - fast.size) <= 32  # the resampler's delay
    n = min(slow.size, fast.size) - 400
    best = min(np.sqrt(np.mean((fast[200:200 + n].astype(float) - slow[200 + lag:200 + lag + n]) ** 2))
               for lag in range(-20, 21))
    assert best < 0.05 * np.sqrt(np.mean(fast[200:200 + n].astype(float) ** 2))  # the same tone

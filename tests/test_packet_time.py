"""Longer Opus packets for the tap (live/packet_time.py): the server's answer asks for them, and
the simulated participants join their 20 ms packets as a browser's encoder then sends them
(opus.joined_packets). That Chromium follows the answer is checked in test_browser.py."""

from __future__ import annotations

import asyncio

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from livecoach.live.packet_time import packet_ms, with_packet_time
from livecoach.opus import SpeechDecoder, joined_packets, packet_samples


def encoded(seconds: float, bit_rate: int, seed: int = 1) -> list[bytes]:
    """20 ms Opus packets of a noisy, changing signal (speech-like bursts over noise)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 48000)
    t = np.arange(n) / 48000
    bursts = (np.sin(2 * np.pi * 1.3 * t) > 0).astype(float)
    signal = 6000 * bursts * np.sin(2 * np.pi * (180 + 40 * np.sin(2 * np.pi * 3 * t)) * t) + rng.normal(0, 300, n)
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format, encoder.bit_rate = 48000, "mono", "s16", bit_rate
    frame = av.AudioFrame.from_ndarray(signal.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate, frame.pts = 48000, 0
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48000, frame_size=960)
    return [bytes(p) for f in resampler.resample(frame) for p in encoder.encode(f)]


def decoded(packets: list[bytes]) -> np.ndarray:
    decoder = SpeechDecoder()
    return np.concatenate([decoder.pcm(p) for p in packets])


@pytest.mark.parametrize("bit_rate", [16000, 32000, 160000])  # 160 kbit/s: frames over 252 bytes
@pytest.mark.parametrize("frames", [2, 3])
def test_joined_packets_decode_to_the_same_audio(bit_rate, frames):
    packets = encoded(2.0, bit_rate)
    if bit_rate == 160000:
        assert max(len(p) for p in packets) > 252  # the two-byte frame lengths are exercised
    whole = len(packets) // frames * frames
    packets = packets[:whole]
    joined = [j for i in range(0, whole, frames) for j in joined_packets(packets[i:i + frames])]
    assert len(joined) == whole // frames  # every group joined
    assert all(packet_samples(p) == 960 * frames for p in joined)
    assert np.array_equal(decoded(joined), decoded(packets))


def test_packets_that_cannot_be_joined_are_left_as_they_are():
    packets = encoded(0.2, 32000)
    a, b = packets[2], packets[3]
    assert joined_packets([a]) == [a]
    assert joined_packets([a, b"" ]) == [a, b""]  # an empty packet
    other = bytes([a[0] ^ 0x08]) + b[1:]  # another configuration (frame size)
    assert joined_packets([a, other]) == [a, other]
    two = joined_packets([a, b])[0]
    assert joined_packets([two, a]) == [two, a]  # already more than one frame
    assert joined_packets(packets[:7]) == packets[:7]  # 140 ms: over Opus's 120 ms


class Tone(AudioStreamTrack):
    kind = "audio"


async def answer_of(pc_kind: str) -> str:
    offerer, answerer = RTCPeerConnection(), RTCPeerConnection()
    try:
        offerer.addTrack(Tone())
        if pc_kind == "audio+video":
            offerer.addTransceiver("video")
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription(await answerer.createAnswer())
        return answerer.localDescription.sdp
    finally:
        await offerer.close()
        await answerer.close()


def test_the_answer_asks_for_the_packet_length_in_its_audio_section_only():
    sdp = asyncio.run(answer_of("audio+video"))
    assert "a=ptime" not in sdp and packet_ms(sdp) is None
    asked = with_packet_time(sdp, 40)
    assert packet_ms(asked) == 40 and asked.count("a=ptime:") == 1
    audio, video = asked.split("m=video")
    assert "a=ptime:40" in audio.split("m=audio")[1] and "a=ptime" not in video
    assert asked.replace("a=ptime:40\r\n", "") == sdp  # nothing else changed
    assert with_packet_time(asked, 60) == asked  # a length already asked for stays

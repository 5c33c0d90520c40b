"""A participant's network drops for 10 s and comes back (issue 9): nothing of theirs reaches the
server, nor anything of the server them, then everything flows again. The call recovers by
itself (ICE keeps its pair: consent lapses only after 30 s), the coach sees the client as
"no-audio" over the gap and "connected" after it, the client's speech is measured again, and the
review's timeline marks the gap as the client's span of ``no-audio`` (docs/review.md)."""

from __future__ import annotations

import asyncio

import pytest

from livecoach.live.simpeer import IndicatorReader, SimPeer
from test_recording_live import review, server, start_call, wait_for  # noqa: F401 (server: the fixture)

DROP_AT_S, DROP_S = 8.0, 10.0


class Blackout:
    """Every datagram of one peer connection's ICE transport lost, both ways, while ``on``: a
    cable pulled at the participant's end (aioice's sockets, aiortc 1.x, see pyproject's pin)."""

    def __init__(self, peer: SimPeer) -> None:
        self.on = False
        transport = peer.server_pc.getTransceivers()[0].sender.transport.transport
        for protocol in transport._connection._protocols:
            self._cut(protocol)

    def _cut(self, protocol) -> None:
        received, sendto = protocol.datagram_received, protocol.transport.sendto
        protocol.datagram_received = lambda data, addr: None if self.on else received(data, addr)
        protocol.transport.sendto = lambda data, addr=None: None if self.on else sendto(data, addr)


async def test_a_10_s_network_drop_recovers_and_the_timeline_marks_the_gap(server, tmp_path):
    sid, coach_token, _, coach, client, _ = await start_call(server, tmp_path, "clean", 60.0)
    reader = IndicatorReader(server.url, sid, coach_token)
    await reader.open()
    blackout = Blackout(client)
    try:
        await asyncio.sleep(DROP_AT_S)
        blackout.on = True
        dropped_at = reader.latest()["session_time"]
        await wait_for(lambda: reader.latest()["participants"]["client"] == "no-audio", 3, "the client shown without audio")
        await asyncio.sleep(DROP_S - 1.0)
        assert reader.latest()["participants"]["client"] == "no-audio"
        heard_before = reader.latest()["audio"]["client"]["received_s"]
        blackout.on = False
        back = await wait_for(lambda: (lambda s: s if s["participants"]["client"] == "connected" else None)(
            reader.latest()), 10, "the client connected again")
        await asyncio.sleep(8.0)
        after = reader.latest()
        assert after["audio"]["client"]["received_s"] > heard_before + 4, after["audio"]  # measured again
        assert client.server_pc.connectionState == "connected" and reader.latest()["participants"]["coach"] == "connected"
    finally:
        await asyncio.gather(coach.leave(), client.leave())
        await reader.close()
    data = await wait_for(lambda: (lambda d: d if d["session"]["state"] == "ended" else None)(
        review(server, sid, coach_token)), 20, "the session ended")
    unheard = [gap for gap in data["absences"]["client"] if gap[2] == "no-audio"]
    assert len(unheard) == 1, data["absences"]
    start, end, _ = unheard[0]
    assert start == pytest.approx(dropped_at + 0.5, abs=1.0) and end == pytest.approx(back["session_time"], abs=1.0)
    assert end - start == pytest.approx(DROP_S, abs=1.5)
    assert all(b <= start or a >= end for a, b in data["segments"]["client"])  # no speech while cut off
    assert not [gap for gap in data["absences"]["coach"] if gap[2] == "no-audio"]

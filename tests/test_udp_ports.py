"""--udp-ports: the media's UDP sockets are bound in the node's range (docs/deploy.md, "Several
hosts"), checked on aiortc's own peer connections and on a real server's answer."""

from __future__ import annotations

import asyncio
import errno
import re
import socket

import pytest
from aiortc import RTCPeerConnection

from liveserver import Server, excerpt, free_port
from livecoach.live.ice import parse_udp_ports, restrict_host_addresses, restrict_udp_ports
from livecoach.live.simpeer import SimPeer

CANDIDATE_PORT = re.compile(r"^a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ host", re.M | re.I)


def free_range(size: int) -> tuple[int, int]:
    """``size`` consecutive UDP ports that are free now on 127.0.0.1."""
    for _ in range(50):
        first = free_port()
        if first + size > 65535:
            continue
        socks = []
        try:
            for port in range(first, first + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return first, first + size - 1
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free range of UDP ports")


@pytest.fixture
def ranged():
    """A range of 4 ports for this process's media, undone after."""
    first, last = free_range(4)
    restrict_host_addresses(["127.0.0.1"])
    restrict_udp_ports((first, last))
    yield first, last
    restrict_udp_ports(None)
    restrict_host_addresses([])


async def test_every_host_candidate_is_in_the_range(ranged):
    first, last = ranged
    pcs = [RTCPeerConnection() for _ in range(3)]
    try:
        ports = []
        for pc in pcs:
            pc.addTransceiver("audio", direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            ports += [int(p) for _, p in CANDIDATE_PORT.findall(pc.localDescription.sdp)]
        assert len(ports) == 3 and len(set(ports)) == 3, ports  # one each, all different
        assert all(first <= p <= last for p in ports), (ports, ranged)
    finally:
        await asyncio.gather(*(pc.close() for pc in pcs))


async def test_a_full_range_is_a_clear_error_and_ports_of_their_own_are_left_alone(ranged):
    first, last = ranged
    loop = asyncio.get_running_loop()
    held = []
    try:
        for _ in range(last - first + 1):  # the whole range taken
            transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
            held.append(transport)
        assert sorted(t.get_extra_info("sockname")[1] for t in held) == list(range(first, last + 1))
        with pytest.raises(OSError) as err:
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        assert err.value.errno == errno.EADDRINUSE and f"{first}-{last}" in str(err.value)
        own = free_port()  # a port asked for by number is not moved into the range
        transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", own))
        held.append(transport)
        assert transport.get_extra_info("sockname")[1] == own
    finally:
        for t in held:
            t.close()


def test_the_option_is_checked():
    assert parse_udp_ports("40000-40999") == (40000, 40999)
    for bad in ("40000", "40999-40000", "0-10", "a-b", "40000-70000"):
        with pytest.raises(ValueError):
            parse_udp_ports(bad)


async def test_a_server_answers_with_candidates_in_its_range(tmp_path):
    first, last = free_range(8)
    server = Server(tmp_path / "data", workers=1, extra=["--udp-ports", f"{first}-{last}"])
    try:
        sid, coach_token, _ = server.new_session()
        coach = SimPeer(server.url, sid, coach_token, str(excerpt("clean", "coach", 4, tmp_path)))
        await coach.join()
        await coach.server_connected(20)
        ports = [int(p) for _, p in CANDIDATE_PORT.findall(coach.server_pc.remoteDescription.sdp)]
        await coach.close()
        assert ports and all(first <= p <= last for p in ports), (ports, first, last)
    finally:
        log = server.stop()
    assert "Traceback" not in log, log

"""Which local addresses and UDP ports the server's WebRTC side offers as ICE candidates.

aioice offers every interface's address and deliberately never loopback. An operator may want
to pin the server to one address (a host with several networks), and the tests pin it to
127.0.0.1 so that media never leaves the machine. Its sockets get ports the kernel chooses; a
node behind a firewall needs them in a range of its own (``--udp-ports``).
"""

from __future__ import annotations

import asyncio
import errno
import random

import aioice.ice

_original = aioice.ice.get_host_addresses


def restrict_host_addresses(addresses: list[str]) -> None:
    """Offer only these local addresses (an empty list restores aioice's own choice)."""
    if not addresses:
        aioice.ice.get_host_addresses = _original
        return
    fixed = list(addresses)

    def chosen(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in fixed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = chosen


_original_endpoint = asyncio.BaseEventLoop.create_datagram_endpoint


def restrict_udp_ports(ports: tuple[int, int] | list[int] | None) -> None:
    """Bind the media's UDP sockets to ports FIRST..LAST (None restores the kernel's choice).

    aioice binds each host candidate with ``loop.create_datagram_endpoint(local_addr=(address,
    0))`` and has no option for a range, so in this process every datagram endpoint asked for on
    port 0 gets a free port of the range instead, from a random start (two calls setting up at
    once rarely race for one port). Endpoints with a port of their own are left alone. Each
    connection to the server holds one port while it lasts (two per call, more when relayed)."""
    if ports is None:
        asyncio.BaseEventLoop.create_datagram_endpoint = _original_endpoint
        return
    first, last = _port_range(int(ports[0]), int(ports[1]))

    async def in_range(loop, protocol_factory, local_addr=None, remote_addr=None, **kwargs):
        if not local_addr or local_addr[1] != 0:
            return await _original_endpoint(loop, protocol_factory, local_addr=local_addr, remote_addr=remote_addr,
                                            **kwargs)
        count = last - first + 1
        start = random.randrange(count)
        for i in range(count):
            port = first + (start + i) % count
            try:
                return await _original_endpoint(loop, protocol_factory, local_addr=(local_addr[0], port, *local_addr[2:]),
                                                remote_addr=remote_addr, **kwargs)
            except OSError as err:
                if err.errno != errno.EADDRINUSE:
                    raise
        raise OSError(errno.EADDRINUSE, f"no free UDP port in {first}-{last} on {local_addr[0]} (--udp-ports)")

    asyncio.BaseEventLoop.create_datagram_endpoint = in_range


def parse_udp_ports(text: str) -> tuple[int, int]:
    """``FIRST-LAST`` (``--udp-ports``) as two ports; ValueError says what is wrong."""
    first, sep, last = text.strip().partition("-")
    if sep and first.isdigit() and last.isdigit():
        try:
            return _port_range(int(first), int(last))
        except ValueError:
            pass
    raise ValueError(f"--udp-ports is FIRST-LAST, e.g. 40000-40999, not {text!r}")


def _port_range(first: int, last: int) -> tuple[int, int]:
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"not a range of UDP ports: {first}-{last}")
    return first, last

"""Which local addresses the server's WebRTC side offers as ICE candidates.

aioice offers every interface's address and deliberately never loopback. An operator may want
to pin the server to one address (a host with several networks), and the tests pin it to
127.0.0.1 so that media never leaves the machine.
"""

from __future__ import annotations

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

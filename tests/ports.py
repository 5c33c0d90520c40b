"""A free loopback port for a server a test or a script starts (ours, PostgreSQL, SeaweedFS)."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def free_port() -> int:
    """A port free now, below the system's ephemeral range. A port bind(0) gives is in that range,
    where any outgoing connection (a test's to PostgreSQL or to a server) may take it before the
    server binds it: seen as "address already in use" and a module's tests all erroring."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(10000, max(low, 10001))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

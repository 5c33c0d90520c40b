"""How long an Opus packet the browsers send the server: fewer, longer packets for the tap.

Most of what a tapped call costs the server is paid per packet, not per sample: aiortc's
receive path (SRTP, RTP parsing, receiver statistics), a decoder call, a frame object, a queue
hand-over. A browser sends 20 ms packets unless the answer asks for others (``a=ptime``, which
Chromium's Opus encoder follows). In a direct call the server's connection only listens, so
asking for 40 ms packets halves those costs, while the participants' own connection to each
other keeps its 20 ms: their conversation is not delayed. The tap's figures wait for a packet's
last sample, so onsets reach the coach on average about 10 ms later (the tap handed audio on in
40 ms batches before anyway). In a relay call the server forwards what it receives, so the
browsers keep their 20 ms there.
"""

from __future__ import annotations

PACKET_MS = (20, 40, 60)
"""The choices of ``--tap-packet-ms``: whole Opus frame lengths of 20 ms."""


def with_packet_time(sdp: str, ms: int) -> str:
    """``sdp`` with ``a=ptime:ms`` in each audio section that has none (RFC 4566: the packet
    length the answerer wants to receive)."""
    lines = sdp.split("\r\n")
    out: list[str] = []
    audio = has_ptime = False

    def close_section() -> None:
        if audio and not has_ptime:
            out.append(f"a=ptime:{ms}")

    for line in lines:
        if line.startswith("m=") or line == "":
            close_section()
            audio, has_ptime = line.startswith("m=audio"), False
        elif line.startswith("a=ptime:"):
            has_ptime = True
        out.append(line)
    return "\r\n".join(out)


def packet_ms(sdp: str) -> int | None:
    """The packet length an SDP asks for (its first ``a=ptime``), if it asks: what a sender
    such as simpeer.SimPeer reads from the server's answer."""
    for line in sdp.splitlines():
        if line.startswith("a=ptime:"):
            return int(line.split(":", 1)[1])
    return None

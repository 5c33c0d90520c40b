"""The call in real browsers: two headless Chromiums, a coach and a client, on a real server.

tests/browser_call.py does the call and reports what it saw; browser_run.py runs it inside a fresh
network namespace with only loopback (`unshare -rn`), and this test checks the report. It needs
what browser_run.py says. Screenshots go to test-artifacts/browser-<topology>/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_run import diagnostics, fresh_artifacts, run_script

SCRIPT = Path(__file__).resolve().parent / "browser_call.py"
RUN_TIMEOUT_S = 90  # the call itself takes about 10 s; browser_call.py bounds its own waits
MAX_COACH_SHARE = 30  # percent: the coach only makes -70 dBFS noise


def percent(text: str | None) -> int | None:
    return int(text[:-1]) if text and text.endswith("%") and text[:-1].isdigit() else None


@pytest.mark.parametrize("topology", ["direct", "relay"])
def test_coach_and_client_call_in_chromium(topology, tmp_path):
    artifacts = fresh_artifacts(f"browser-{topology}")
    result, stderr = run_script(SCRIPT, ["--topology", topology], tmp_path, artifacts, RUN_TIMEOUT_S)

    why = diagnostics(result, stderr)
    assert "error" not in result, why
    coach, client = result["coach"], result["client"]

    # The client's page: the notice, no sidebar, never the indicator stream.
    assert result["client_notice_visible"], why
    assert result["client_sidebar_elements"] == [], why
    assert not any("/ws/indicators" in url for url in result["websockets"]["client"]), why
    assert any("/ws/signal" in url for url in result["websockets"]["client"]), why
    assert any("/ws/indicators" in url for url in result["websockets"]["coach"]), why

    # The call: both live in the topology asked for, and each hears and sees the other.
    assert result["reached_live_and_speaking"], f"within 30 s of the client's Join, not all of: both live, " \
        f"client connected, the sidebar showing the client speaking\n{why}"
    for page in (coach, client):
        assert page["call_state"] == "live", why
        assert page["call_topology"] == topology, why
        assert page["problem"] is None, why
        remote = page["remote"]
        assert remote["audio_tracks"] == 1 and remote["video_tracks"] == 1, why
        assert remote["width"] > 0 and remote["time"] > 0, why

    # The coach's sidebar: the client speaking, and dominating the talk share.
    assert coach["client_state"] == "connected" and coach["coach_state"] == "connected", why
    assert coach["topology"] == topology, why
    assert coach["stream_state"] == "live", why
    assert "client" in coach["speaking_seen"], why
    share = percent(coach["share_session"])
    assert share is not None and share <= MAX_COACH_SHARE, f"coach's session share {coach['share_session']!r}\n{why}"
    assert percent(coach["share_session_client"]) == 100 - share, why
    assert (artifacts / "coach-call.png").stat().st_size > 10_000, why

    # What Chromium sent the server, as the recordings keep it: in a direct call the server's
    # answer asks for 40 ms Opus packets (live/packet_time.py), which Chromium's encoder follows;
    # in a relay call what the server forwards keeps the usual 20 ms.
    expected = "1920" if topology == "direct" else "960"  # 48 kHz samples (JSON keys)
    lengths = result["packet_samples"]
    assert len(lengths) == 2, why
    for name, counts in lengths.items():
        assert max(counts, key=counts.get) == expected and counts[expected] >= 0.95 * sum(counts.values()), \
            f"{name}: packet lengths {counts}\n{why}"

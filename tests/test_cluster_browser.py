"""A node killed mid-call, seen from two real browsers through HAProxy (tests/cluster_call.py):
both pages go on under the other node's prefix without a reload, the coach's sidebar is live
there again and shows the client speaking, and the session's clock runs on. Screenshots go to
test-artifacts/cluster/."""

from __future__ import annotations

from pathlib import Path

from browser_run import diagnostics, fresh_artifacts, run_script
from liveserver import needs_haproxy

SCRIPT = Path(__file__).resolve().parent / "cluster_call.py"
REJOIN_LIMIT_S = 10.0  # issue 13: the pages rejoin on another node within 10 s of the death
TAP_LIMIT_S = 15.0
"""... and the calls are live again there and the new node hears the client (its tap of the
client's audio connected, the client seen speaking). Every time is the pages' own (cluster_call.py's
``RECORD_STATES``), from the kill: this process's reads lagged them by up to 2 s on a busy machine,
and its "client speaking" was read from the speaker list of before the kill. 2026-12-01, 13 quiet
runs: moved 3.1-5.8 s, stream live 3.4-8.1 s, calls live 4.4-9.7 s, client speaking 6.9-10.8 s."""


@needs_haproxy
def test_a_node_killed_mid_call_the_pages_go_on_on_the_other_node(tmp_path):
    artifacts = fresh_artifacts("cluster")
    result, stderr = run_script(SCRIPT, [], tmp_path, artifacts, 180)
    why = diagnostics(result, stderr) + "\n--- node logs:\n" + "\n".join(
        f"[{i}] {text}" for i, text in result.get("node_logs", {}).items())
    assert "error" not in result, why
    seen = result["after_kill_s"]
    for key in ("coach_moved", "client_moved", "stream_live"):
        assert key in seen and seen[key] <= REJOIN_LIMIT_S, f"{key}: {seen}\n{result.get('states')}\n{why}"
    for key in ("calls_live", "client_connected", "client_speaking"):
        assert key in seen and seen[key] <= TAP_LIMIT_S, f"{key}: {seen}\n{result.get('states')}\n{why}"
    before, after = result["before"]["coach"], result["after"]["coach"]
    # the same page all along (the call went on; no reload), now under the other node's prefix
    assert after["loads"] == before["loads"] == 1, why
    assert after["path"] == before["path"].replace(f"/n/{result['owner']}/", f"/n/{result['other']}/", 1), why
    assert result["after"]["client"]["call_state"] == "live", why
    # a tag acknowledged by the dead node, and one made after the move, both stored once
    (before_id, before_state), (after_id, after_state) = result["tag_before"], result["tag_after"]
    assert before_state == "saved" and after_state == "saved", why
    assert [list(r) for r in result["tag_rows"]] == [[before_id, "breakthrough", 1], [after_id, "goal_clarity", 1]], why
    # the session's clock ran on across the death (the gap marked, not restarted at 0)
    t_before, t_after = (_seconds(x["session_time"]) for x in (before, after))
    assert t_before is not None and t_after is not None and t_after > t_before, why


def _seconds(text: str | None) -> float | None:
    if not text or ":" not in text or not all(p.isdigit() for p in text.split(":")):
        return None
    total = 0
    for part in text.split(":"):
        total = total * 60 + int(part)
    return float(total)

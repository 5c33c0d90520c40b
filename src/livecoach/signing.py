"""Signed, expiring links: how a media element, which cannot send the coach's token, fetches
one recording file.

The key is an HMAC of what the link opens and until when, under the installation's secret
(made once in the data folder, readable only by the server's user, shared by every process
of the server; with several nodes, kept in the database they share instead, so that a link
made by one node opens on any). A link opens exactly that file until it expires; nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import Store

SECRET_FILE = "secret.key"
SHARED_SECRET = "secret"
"""The secret's key in the database's ``installation`` table, when several nodes share it."""
LINK_SECONDS = 12 * 3600


def installation_secret(data: Path) -> bytes:
    """The secret in ``<data>/secret.key``, made at first use (processes racing agree on one)."""
    path = data / SECRET_FILE
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32).hex().encode())
    for _ in range(50):  # another process may be writing it this instant
        text = path.read_bytes().strip()
        if len(text) == 64:
            return bytes.fromhex(text.decode())
        time.sleep(0.01)
    raise RuntimeError(f"{path} is not a valid secret; delete it to make a new one")


def shared_secret(store: Store, data: Path) -> bytes:
    """The secret of an installation of several nodes (nodes.py), which every node must sign
    and check with alike: kept in the database, made by the first node to start (processes
    racing agree on one). That node's ``<data>/secret.key``, if it has one (a single server
    turned into the first node), is the secret then, so that its links go on working; no file is
    made, and a node's file is not read once the database has the secret."""
    path = data / SECRET_FILE
    first = installation_secret(data) if path.exists() else secrets.token_bytes(32)
    return bytes.fromhex(store.shared_value(SHARED_SECRET, first.hex()))


class Signer:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, path: str, expires: int) -> str:
        return hmac.new(self._secret, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def sign(self, path: str, now: float | None = None, seconds: int = LINK_SECONDS) -> str:
        """``path`` with the query that opens it until ``now + seconds``."""
        expires = int((time.time() if now is None else now) + seconds)
        return f"{path}?e={expires}&k={self._mac(path, expires)}"

    def valid(self, path: str, expires: str, key: str, now: float | None = None) -> bool:
        if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
            return False
        return hmac.compare_digest(self._mac(path, int(expires)), key)

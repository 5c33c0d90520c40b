"""The server's settings: command-line flags, with environment variables as defaults.

Every flag ``--some-thing`` has the variable ``LIVECOACH_SOME_THING``; a flag wins over the
variable, the variable over the built-in default.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from .live.packet_time import PACKET_MS

TOPOLOGIES = ("direct", "relay")
DATABASE_FILE = "livecoach.sqlite3"
"""The database when none is chosen: an SQLite file of this name in the data folder."""


@dataclass(frozen=True)
class IceServer:
    urls: list[str]
    username: str | None = None
    credential: str | None = None

    def to_dict(self) -> dict:
        out: dict = {"urls": self.urls}
        if self.username is not None:
            out["username"] = self.username
        if self.credential is not None:
            out["credential"] = self.credential
        return out


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data: Path = Path("data")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    ice_servers: list[IceServer] = field(default_factory=list)
    ice_addresses: list[str] = field(default_factory=list)
    """Local addresses the server's WebRTC side may use; empty: every interface."""
    udp_ports: list[int] | None = None
    """The UDP ports (first, last) the media's sockets are bound in (``--udp-ports``); None: any
    the kernel gives (live/ice.py)."""
    topology: str = "direct"
    tap_packet_ms: int = 40
    """The Opus packet length the browsers are asked to send the server in a direct call
    (``--tap-packet-ms``; live/packet_time.py)."""
    snapshot_interval: float = 0.25
    workers: int = 0
    """Worker processes for the calls (see workers.py); 0 runs them in the server process."""
    recording: bool = True
    """Whether calls are recorded at all (with each participant's consent)."""
    keep_recordings_days: float | None = None
    """Recordings older than this (from the call's last activity) are deleted; None: kept."""
    keep_sessions_days: float | None = None
    """Whole sessions older than this are deleted; None: kept."""
    invite_hours: float = 24.0
    """How long a client's invite admits them after the session's call was last active."""
    allowed_origins: list[str] = field(default_factory=list)
    """Origins of pages, besides the server's own, that may use it (behind a proxy that
    rewrites the Host header)."""
    database_url: str | None = None
    """The database chosen with ``--database`` (a postgresql:// URL); None: the SQLite file."""
    recordings_url: str | None = None
    """Where recordings are kept, chosen with ``--recordings`` (an s3:// bucket or a folder);
    None: ``recordings`` in the data folder. recordings/storage.open_storage opens it."""
    header_timeout_s: float = 15.0
    """A connection that has not sent a whole request head this long after it opened, or after
    its previous response, is closed (http_protocol.py: a "slowloris" holds no connection)."""
    node_url: str | None = None
    """Where this node is reached (``--node-url``): one of several servers sharing a PostgreSQL
    database (nodes.py). None: a single server, with no registry, prefix or redirect."""
    node_id: str | None = None
    """This node's id (``--node-id``; default: made from ``node_url``)."""

    @property
    def cluster_node_id(self) -> str | None:
        """This node's id when it is one of several (``node_url`` given), else None."""
        return self.node_id if self.node_url else None

    @property
    def database(self) -> str | Path:
        """What ``Store`` opens: ``database_location``."""
        return database_location(self.data, self.database_url)

    @property
    def recordings(self) -> Path:
        """The recordings' folder when they are kept on this disk (no ``--recordings``)."""
        return self.data / "recordings"

    def recordings_storage(self):
        """The recordings' storage (recordings/storage.py), as ``--recordings`` chose it."""
        from .recordings.storage import open_storage

        return open_storage(self.recordings_url, self.data)

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    def to_json(self) -> str:
        """The settings as JSON, to hand them to a worker process."""
        return json.dumps({
            **{f.name: getattr(self, f.name) for f in fields(self)},
            "data": str(self.data),
            "tls_cert": None, "tls_key": None,  # workers speak plain HTTP on loopback; the front does TLS
            "ice_servers": [s.to_dict() for s in self.ice_servers],
        })

    @classmethod
    def from_json(cls, text: str) -> "Settings":
        raw = json.loads(text)
        raw["data"] = Path(raw["data"])
        raw["ice_servers"] = [IceServer(**s) for s in raw["ice_servers"]]
        return cls(**raw)

    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def env_default(name: str, default=None):
    return os.environ.get(f"LIVECOACH_{name.upper().replace('-', '_')}", default)


def database_location(data: Path, database: str | None = None) -> str | Path:
    """Where the store is, for the server and every command alike: ``database`` if one was
    chosen (a postgresql:// URL, or an SQLite file), else ``DATABASE_FILE`` in the data folder."""
    return database if database else data / DATABASE_FILE


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    """``--database``, on the server and on every command that opens the store."""
    parser.add_argument(
        "--database", default=env_default("database"), metavar="URL",
        help=f"the database: postgresql://user@host/name, or an SQLite file (env LIVECOACH_DATABASE; "
             f"default: {DATABASE_FILE} in the data folder; docs/deploy.md)",
    )


def add_recordings_argument(parser: argparse.ArgumentParser) -> None:
    """``--recordings``, on the server and on every command that reads or deletes recordings."""
    parser.add_argument(
        "--recordings", default=env_default("recordings"), metavar="URL",
        help="where recordings are kept: s3://BUCKET[/PREFIX]?endpoint=URL for an S3-compatible object store "
             "(credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), or a folder (env LIVECOACH_RECORDINGS; "
             "default: recordings in the data folder; docs/deploy.md)",
    )


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``livecoach serve``; defaults come from the environment."""
    parser.add_argument("--host", default=env_default("host", "127.0.0.1"), help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(env_default("port", "8080")), help="port (default 8080)")
    parser.add_argument("--data", default=env_default("data", "data"), help="data folder: database and recordings (default ./data)")
    add_database_argument(parser)
    add_recordings_argument(parser)
    parser.add_argument("--tls-cert", default=env_default("tls-cert"), help="TLS certificate (PEM) to serve https")
    parser.add_argument("--tls-key", default=env_default("tls-key"), help="TLS private key (PEM)")
    parser.add_argument(
        "--stun", action="append", default=None, metavar="URL",
        help="a STUN server for the browsers, e.g. stun:stun.example.org:3478 (repeatable; env LIVECOACH_STUN, comma-separated)",
    )
    parser.add_argument(
        "--turn", action="append", default=None, metavar="URL",
        help="a TURN server, e.g. turn:turn.example.org:3478 (repeatable; env LIVECOACH_TURN); with --turn-user/--turn-password",
    )
    parser.add_argument("--turn-user", default=env_default("turn-user"))
    parser.add_argument("--turn-password", default=env_default("turn-password"))
    parser.add_argument(
        "--ice-address", action="append", default=None, metavar="ADDR",
        help="local address the server's WebRTC side may use (repeatable; env LIVECOACH_ICE_ADDRESS; default: all)",
    )
    parser.add_argument(
        "--udp-ports", default=env_default("udp-ports"), metavar="FIRST-LAST",
        help="UDP ports for the calls' media, e.g. 40000-40999 (env LIVECOACH_UDP_PORTS; default: any the kernel "
             "gives); each connection to the server holds one while it lasts, two per call",
    )
    parser.add_argument(
        "--topology", choices=TOPOLOGIES, default=env_default("topology", "direct"),
        help="direct: browsers call each other and the server taps their audio (default); relay: the server relays",
    )
    parser.add_argument(
        "--tap-packet-ms", type=int, choices=PACKET_MS, default=int(env_default("tap-packet-ms", str(Settings.tap_packet_ms))),
        metavar="MS", help=f"in a direct call, ask the browsers for Opus packets of MS milliseconds ({', '.join(map(str, PACKET_MS))}; "
                           f"default {Settings.tap_packet_ms}): longer packets cost the server less, and the coach's "
                           f"figures wait for a packet's end (docs/engine.md)",
    )
    parser.add_argument(
        "--no-recording", dest="recording", action="store_false",
        default=env_default("recording", "on").lower() not in ("off", "0", "no", "false"),
        help="record nothing: calls are only analysed, and the notice says so (env LIVECOACH_RECORDING=off)",
    )
    parser.add_argument(
        "--keep-recordings-days", type=float, default=days_or_none(env_default("keep-recordings-days")), metavar="D",
        help="delete recordings D days after their call was last active (default: keep them)",
    )
    parser.add_argument(
        "--keep-sessions-days", type=float, default=days_or_none(env_default("keep-sessions-days")), metavar="D",
        help="delete whole sessions D days after their call was last active (default: keep them)",
    )
    parser.add_argument(
        "--invite-hours", type=float, default=float(env_default("invite-hours", "24")), metavar="H",
        help="a client's invite admits them until H hours after the session's call was last active (default 24)",
    )
    parser.add_argument(
        "--header-timeout", type=float, default=float(env_default("header-timeout", str(Settings.header_timeout_s))),
        metavar="S", help=f"close a connection that has not sent a request's headers within S seconds "
                          f"(default {Settings.header_timeout_s:g})",
    )
    parser.add_argument(
        "--allowed-origin", action="append", default=None, metavar="URL",
        help="an origin (scheme://host[:port]) besides the server's own whose pages may use it, e.g. behind a "
             "proxy that rewrites Host (repeatable; env LIVECOACH_ALLOWED_ORIGIN, comma-separated)",
    )
    parser.add_argument(
        "--workers", default=env_default("workers", "auto"), metavar="N",
        help="worker processes for the calls: a number, 'auto' (one per core, the default), or 0 for none",
    )
    parser.add_argument(
        "--node-url", default=env_default("node-url"), metavar="URL",
        help="run as one of several nodes sharing the database, reached at URL, e.g. http://10.0.0.5:8080 "
             "(env LIVECOACH_NODE_URL; docs/deploy.md)",
    )
    parser.add_argument(
        "--node-id", default=env_default("node-id"), metavar="ID",
        help="this node's id in paths /n/ID/ (letters, digits, - and _; default: from --node-url)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    def listed(value, env_name):
        if value:
            return value
        raw = env_default(env_name, "")
        return [v.strip() for v in raw.split(",") if v.strip()]

    ice = [IceServer([url]) for url in listed(args.stun, "stun")]
    turn = listed(args.turn, "turn")
    if turn:
        ice.append(IceServer(turn, args.turn_user, args.turn_password))
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("livecoach: --tls-cert and --tls-key go together")
    if args.tap_packet_ms not in PACKET_MS:  # argparse checks the flag's choices, not the variable's
        raise SystemExit(f"livecoach: --tap-packet-ms (or LIVECOACH_TAP_PACKET_MS) must be one of "
                         f"{', '.join(map(str, PACKET_MS))}, not {args.tap_packet_ms}")
    return Settings(
        host=args.host,
        port=args.port,
        data=Path(args.data),
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
        ice_servers=ice,
        ice_addresses=listed(args.ice_address, "ice-address"),
        udp_ports=_udp_ports(args.udp_ports),
        topology=args.topology,
        tap_packet_ms=args.tap_packet_ms,
        workers=_worker_count(args.workers),
        recording=args.recording,
        keep_recordings_days=args.keep_recordings_days,
        keep_sessions_days=args.keep_sessions_days,
        invite_hours=args.invite_hours,
        allowed_origins=listed(args.allowed_origin, "allowed-origin"),
        database_url=args.database or None,
        recordings_url=args.recordings or None,
        header_timeout_s=args.header_timeout,
        **_node_settings(args.node_url, args.node_id),
    )


def _udp_ports(text: str | None) -> list[int] | None:
    """``--udp-ports`` checked (a usage mistake ends the command)."""
    if not text:
        return None
    from .live.ice import parse_udp_ports

    try:
        return list(parse_udp_ports(text))
    except ValueError as err:
        raise SystemExit(f"livecoach: {err}") from None


def _node_settings(url: str | None, node_id: str | None) -> dict:
    """``node_url`` and ``node_id`` as checked by nodes.py (a usage mistake ends the command)."""
    if not url:
        if node_id:
            raise SystemExit("livecoach: --node-id goes with --node-url")
        return {}
    from .nodes import NodeError, node_identity

    try:
        url, node_id = node_identity(url, node_id or None)
    except NodeError as err:
        raise SystemExit(f"livecoach: {err}") from None
    return {"node_url": url, "node_id": node_id}


def days_or_none(value: str | None) -> float | None:
    return float(value) if value else None


def _worker_count(value: str) -> int:
    """'auto' is one worker per core; on a single core the calls stay in the server process."""
    if value == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return cores if cores > 1 else 0
    try:
        count = int(value)
    except ValueError:
        raise SystemExit(f"livecoach: --workers takes a number or 'auto', not {value!r}") from None
    if not 0 <= count <= 64:
        raise SystemExit("livecoach: --workers is between 0 and 64")
    return count

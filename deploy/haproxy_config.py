#!/usr/bin/env python3
"""Write an HAProxy configuration for livecoach nodes (deploy/haproxy.cfg.in; docs/deploy.md).

    python3 deploy/haproxy_config.py [--listen ADDR:PORT] [--tls-cert PEM] ID=URL [ID=URL …] > haproxy.cfg

Each ``ID=URL`` is a node as it was started: ``--node-id ID --node-url URL`` (an http:// URL the
proxy reaches it at; TLS, if any, ends at the proxy: ``--tls-cert``). Only the standard library:
it runs on the proxy's machine without livecoach installed. Reload HAProxy after adding a node.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

TEMPLATE = Path(__file__).with_name("haproxy.cfg.in")
NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # as livecoach.nodes.NODE_ID


def node(text: str) -> tuple[str, str]:
    """``ID=URL`` as (id, host:port)."""
    node_id, sep, url = text.partition("=")
    parts = urlsplit(url)
    if not sep or not NODE_ID.fullmatch(node_id):
        raise argparse.ArgumentTypeError(f"a node is ID=URL with an id of letters, digits, - and _: {text!r}")
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(f"a node's URL is http://HOST[:PORT] (TLS ends at the proxy): {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return node_id, f"{host}:{parts.port or 80}"


def render(nodes: list[tuple[str, str]], listen: str = ":80", tls_cert: str | None = None) -> str:
    if len({n for n, _ in nodes}) != len(nodes):
        raise ValueError("two nodes with the same id")
    routes = "\n".join(
        f"    acl to_{n} path_beg /n/{n}/\n    acl to_{n} path /n/{n}\n"
        f"    use_backend node_{n} if to_{n} {{ nbsrv(node_{n}) gt 0 }}"
        for n, _ in nodes)
    servers = "\n".join(f"    server {n} {address} check" for n, address in nodes)
    # Each node's backend has the other nodes as backups: once the node is down, its prefix's
    # requests reach a live node (which takes its sessions over) at once, without the switch to
    # the default backend, and never an error page of HAProxy's that browsers then throttle.
    backends = "\n".join(
        f"backend node_{n}\n    server {n} {address} track nodes/{n} observe layer4 error-limit 1 on-error mark-down\n"
        + "".join(f"    server {o} {other} track nodes/{o} backup\n" for o, other in nodes if o != n)
        for n, address in nodes)
    bind = f"{listen} ssl crt {tls_cert}" if tls_cert else listen
    text = TEMPLATE.read_text()
    for name, value in (("LISTEN", bind), ("ROUTES", routes), ("SERVERS", servers), ("NODE_BACKENDS", backends)):
        text = text.replace(f"@{name}@", value)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default=":80", help="HAProxy's address, e.g. :443 or 127.0.0.1:8080 (default :80)")
    parser.add_argument("--tls-cert", metavar="PEM", help="certificate and key in one PEM file: serve https")
    parser.add_argument("nodes", nargs="+", type=node, metavar="ID=URL")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(render(args.nodes, args.listen, args.tls_cert))
    except ValueError as err:
        parser.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())

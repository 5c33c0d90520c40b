"""The ``livecoach`` command."""

from __future__ import annotations

import argparse
import sys

from pathlib import Path

from .ingest import AudioError
from .settings import env_default
from .settings import add_server_arguments, settings_from

FORMATS = ("text", "json", "rttm")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="livecoach", description="Talk balance, silence and wait time for coaching calls.")
    sub = parser.add_subparsers(dest="command", required=True)

    analyze = sub.add_parser("analyze", help="analyse a recorded session", description=(
        "Analyse a recorded 1:1 session: either one file per participant, or one stereo file "
        "(left channel the coach, right channel the client)."))
    source = analyze.add_mutually_exclusive_group(required=True)
    source.add_argument("--coach", metavar="AUDIO", help="the coach's recording (needs --client)")
    source.add_argument("--stereo", metavar="FILE", help="a stereo recording: left coach, right client")
    analyze.add_argument("--client", metavar="AUDIO", help="the client's recording (with --coach)")
    analyze.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    analyze.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")

    serve = sub.add_parser("serve", help="start the server", description="Start the livecoach server.")
    add_server_arguments(serve)

    session = sub.add_parser("session", help="manage sessions")
    session_sub = session.add_subparsers(dest="session_command", required=True)
    new = session_sub.add_parser("new", help="create a session and print its two links")
    new.add_argument("--data", default=env_default("data", "data"), help="data folder (default ./data)")
    new.add_argument("--label", default="", help="a name for the session, e.g. the client's")
    new.add_argument("--url", default=None, help="the server's public base URL (default http://127.0.0.1:8080)")

    args = parser.parse_args(argv)
    if args.command == "analyze":
        if args.coach and not args.client:
            parser.error("--coach needs --client (or use --stereo)")
        if args.client and not args.coach:
            parser.error("--client needs --coach (or use --stereo)")
        return _analyze(args)
    if args.command == "serve":
        from .app import serve as run_server

        run_server(settings_from(args))
        return 0
    if args.command == "session":
        return _new_session(args)
    return 2


def _new_session(args: argparse.Namespace) -> int:
    from .store import Store

    base = (args.url or env_default("url", "http://127.0.0.1:8080")).rstrip("/")
    store = Store(Path(args.data) / "livecoach.sqlite3")
    try:
        new = store.create_session(args.label)
    finally:
        store.close()
    print(f"session   {new.id}")
    print(f"coach     {base}{new.coach_path()}")
    print(f"client    {base}{new.client_path()}")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from . import report
    from .analyze import analyze_stereo, analyze_tracks

    try:
        result = analyze_stereo(args.stereo) if args.stereo else analyze_tracks(args.coach, args.client)
    except AudioError as err:
        print(f"livecoach: {err}", file=sys.stderr)
        return 1
    text = {"text": report.to_text, "json": report.to_json, "rttm": report.to_rttm}[args.format](result)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as err:
            print(f"livecoach: cannot write {args.output}: {err.strerror}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

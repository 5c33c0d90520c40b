"""The ``livecoach`` command."""

from __future__ import annotations

import argparse
import sys

from .ingest import AudioError

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

    sub.add_parser("serve", help="start the server")

    args = parser.parse_args(argv)
    if args.command == "analyze":
        if args.coach and not args.client:
            parser.error("--coach needs --client (or use --stereo)")
        if args.client and not args.coach:
            parser.error("--client needs --coach (or use --stereo)")
        return _analyze(args)
    if args.command == "serve":
        print("livecoach serve: the server arrives with the live relay; for now use `livecoach analyze`.", file=sys.stderr)
        return 2
    return 2


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

"""``livecoach export`` and ``livecoach import``: a session in other programs' formats, and a
recorded call made a session, on the data folder, without a server (docs/exports.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from .cli_arguments import add_call_files, add_data, open_recordings, open_store
from .settings import add_recordings_argument, env_default

COMMANDS = ("export", "import")
TABLE_HELP = "one table only: csv: segments, tags or nudges; vtt: tags or nudges; audacity: tags or turns"


def add_parsers(sub: Any) -> None:
    """The two commands' arguments, on ``livecoach``'s subparsers (the formats are checked when the
    command runs: importing exports.py here would slow every ``livecoach`` command's start)."""
    export = sub.add_parser("export", help="write a session in a format other programs open", description=(
        "Write a stored session as json (everything), csv (a zip of segments.csv, tags.csv and nudges.csv), "
        "vtt (WebVTT: tags as cues, nudges as metadata cues), rttm (speech segments) or audacity (a label "
        "track of tags and turns). docs/exports.md describes each."))
    export.add_argument("session")
    export.add_argument("--format", required=True, metavar="FORMAT",
                        help="json, csv, vtt, rttm or audacity (docs/exports.md)")
    export.add_argument("--table", metavar="NAME", help=TABLE_HELP)
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")

    call = sub.add_parser("import", help="make a session of a recorded call", description=(
        "Analyse a recorded call (one file per participant, or one stereo file: left the coach, right the "
        "client; any format FFmpeg opens), keep its audio as the session's recordings, and store it as a "
        "session like a live one: its review, exports and report."))
    add_call_files(call)
    call.add_argument("--label", required=True, help="a name for the session, e.g. the client's")
    call.add_argument("--client-name", metavar="NAME", help="the client the session is filed under (default: the label)")
    call.add_argument("--owner", metavar="EMAIL", help="whose session it is (needed when there are several coaches)")
    call.add_argument("--date", metavar="WHEN", help=(
        "when the call was: 2026-11-30 or 2026-11-30T14:00 (local time) "
        "(default: when the files were last changed)"))
    call.add_argument("--url", default=None, help="the server's public base URL (default http://127.0.0.1:8080)")
    call.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    call.add_argument("--progress", choices=("auto", "bar", "none"), default="auto",
                      help="a progress bar on standard error (auto: when it is a terminal)")
    for command in (export, call):
        add_data(command)
    add_recordings_argument(call)


def run(args: argparse.Namespace) -> int:
    return _export(args) if args.command == "export" else _import(args)


def _fail(message: str, code: int = 1) -> int:
    print(f"livecoach: {message}", file=sys.stderr)
    return code


# -- export ---------------------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    from . import exports

    store = open_store(args)
    try:
        data = exports.load(store, args.session)
        if data is None:
            return _fail(f"there is no session {args.session}")
        try:
            made = exports.export(data, args.format, args.table)
        except exports.ExportError as err:
            return _fail(str(err), 2)
    finally:
        store.close()
    if args.output:
        try:
            Path(args.output).write_bytes(made.body)
        except OSError as err:
            return _fail(f"cannot write {args.output}: {err.strerror}")
        return 0
    if made.media_type == exports.MEDIA_TYPES["zip"] and sys.stdout.isatty():
        return _fail("the csv export is a zip file: write it to a file with -o FILE (or pick one --table)")
    sys.stdout.buffer.write(made.body)
    sys.stdout.flush()
    return 0


# -- import ---------------------------------------------------------------------------------------


class ProgressBar:
    """A bar on standard error, redrawn at most ten times a second; the share of the audio done,
    or the time spent while the files' length is unknown."""

    WIDTH = 30

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.started = time.monotonic()
        self._drawn_at = float("-inf")
        self._width = 0

    def __call__(self, fraction: float | None) -> None:
        now = time.monotonic()
        if fraction != 1.0 and now - self._drawn_at < 0.1:
            return
        self._drawn_at = now
        if fraction is None:
            text = f"importing  {int(now - self.started)} s"
        else:
            filled = int(fraction * self.WIDTH)
            text = f"importing  [{'#' * filled}{'.' * (self.WIDTH - filled)}] {fraction:4.0%}"
        self.out.write("\r" + text.ljust(self._width))
        self.out.flush()
        self._width = len(text)

    def clear(self) -> None:
        if self._width:
            self.out.write("\r" + " " * self._width + "\r")
            self.out.flush()
            self._width = 0


def _when(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(f"--date {text!r} is not a date like 2026-11-30 or 2026-11-30T14:00") from None


def _import(args: argparse.Namespace) -> int:
    from . import accounts
    from .importing import CallFiles, ImportFailed, import_call
    from .ingest import AudioError
    from .report import clock

    try:
        created_at = _when(args.date)
    except ValueError as err:
        return _fail(str(err), 2)
    files = (CallFiles(stereo=Path(args.stereo)) if args.stereo
             else CallFiles(coach=Path(args.coach), client=Path(args.client)))
    show = args.progress == "bar" or (args.progress == "auto" and sys.stderr.isatty())
    bar = ProgressBar() if show else None
    store = open_store(args)
    try:
        storage = open_recordings(args)
        try:
            owner = accounts.owner_of_new_session(store, args.owner, "--owner")
        except accounts.AccountError as err:
            return _fail(str(err))
        try:
            done = import_call(store, storage, files, label=args.label,
                               client=args.client_name, coach_id=owner, created_at=created_at, progress=bar)
        except (AudioError, ImportFailed) as err:
            if bar is not None:
                bar.clear()
            return _fail(str(err))
        except KeyboardInterrupt:
            if bar is not None:
                bar.clear()
            return _fail("import stopped; nothing was kept", 130)
        stored = store.get_session(done.session.id)
    finally:
        store.close()
    if bar is not None:
        bar.clear()
    base = (args.url if args.url is not None else env_default("url", "http://127.0.0.1:8080")).rstrip("/")
    review = f"{base}{done.review_path()}"
    if args.format == "json":
        print(json.dumps({"session": done.session.id, "review": review}))
        return 0
    share = done.analysis.metrics.talk_share_coach
    balance = "nobody spoke" if share is None else f"coach {share:.0%}, client {1 - share:.0%}"
    print(f"session   {done.session.id}")
    print(f"review    {review}")
    print(f"client    {stored.client}")
    print(f"length    {clock(done.analysis.duration)}; talk balance {balance}")
    return 0
